"""Documents per minute with `--parallel N` (several sequences in one context) vs one at a time.

Runs the installed `llmcli summarize` and `llmcli translate` over the same folder of news articles
(../shared/eval) with the bench model, each sequence getting the same context (--ctx = N x 2,048),
greedy, and prints documents/minute, the speedup over N = 1 and whether the outputs are identical.
With --rounds R, the levels run R times, interleaved, and the seconds are medians (one run of this
VM varies by 2 s). Then llama-batched-bench's figures for the same model and the same levels.

    python bench/parallel.py [--docs 8] [--threads 2] [--levels 1,2,4,8] [--rounds 1]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import LLMCLI, SHARED, arguments, chosen_model, native_tool

PER_SEQUENCE_CTX = 2048
TASKS = {
    "summarize": ["summarize", "--greedy", "-n", "64"],
    # About as many tokens as the 1,200-character articles have (270-300): outputs as long as inputs.
    "translate": ["translate", "--to", "de", "--greedy", "-n", "300"],
}


def write_docs(folder: Path, count: int) -> None:
    lines = (SHARED / "eval" / "summ" / "summeval_cnndm_gold.jsonl").read_text(encoding="utf-8").splitlines()
    for i in range(count):
        article = json.loads(lines[i])["article"]
        (folder / f"doc{i}.txt").write_text(article[:1200], encoding="utf-8")


def run(command: list[str], out: Path) -> tuple[float, dict[str, str]]:
    start = time.perf_counter()
    subprocess.run([str(LLMCLI), *command, "--out-dir", str(out)], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return seconds, {p.name: p.read_text() for p in sorted(out.glob("doc*"))}


def compare(
    docs: Path, count: int, levels: list[int], rounds: int, command: Callable[[list[str], int], list[str]]
) -> None:
    """For each task and level N, run command(task flags with the folder, N) `rounds` times and print
    a table row: the median seconds, and the first round's outputs compared with N = 1's."""
    print(f"{'task':<10} {'N':>2} {'seconds':>8} {'docs/min':>9} {'speedup':>8} {'identical':>10}")
    for task, flags in TASKS.items():
        runs: dict[int, list[tuple[float, dict[str, str]]]] = {n: [] for n in levels}
        for _ in range(rounds):
            for n in levels:
                out = docs.parent / f"{task}-{n}-{len(runs[n])}"
                runs[n].append(run(command([flags[0], str(docs), *flags[1:]], n), out))
        median = {n: statistics.median(seconds for seconds, _ in runs[n]) for n in levels}
        first = runs[levels[0]][0][1]
        for n in levels:
            seconds, outputs = median[n], runs[n][0][1]
            same = sum(outputs[k] == first[k] for k in outputs)
            print(
                f"{task:<10} {n:>2} {seconds:>8.1f} {count / seconds * 60:>9.1f} "
                f"{median[levels[0]] / seconds:>8.2f} {f'{same}/{len(outputs)}':>10}"
            )


def batched_bench(model: Path, threads: int, levels: list[int]) -> str:
    cmd = [str(native_tool("llama-batched-bench")), "-m", str(model), "-t", str(threads)]
    cmd += ["-c", str(PER_SEQUENCE_CTX * max(levels)), "-npp", "256", "-ntg", "64"]
    cmd += ["-npl", ",".join(map(str, levels))]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return "\n".join(line for line in done.stdout.splitlines() if line.startswith("|"))


def main() -> None:
    args = arguments(__doc__, docs=8, threads=2, model=None, levels="1,2,4,8", rounds=1)
    levels = [int(n) for n in args.levels.split(",")]
    model = chosen_model(args.model)

    def command(task: list[str], n: int) -> list[str]:
        sizes = ["--parallel", str(n), "--ctx", str(PER_SEQUENCE_CTX * n), "--threads", str(args.threads)]
        return [*task, "-m", str(model), *sizes]

    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        write_docs(docs, args.docs)
        print(f"{args.docs} documents, {model.name}, {args.threads} threads, {PER_SEQUENCE_CTX} per sequence")
        compare(docs, args.docs, levels, args.rounds, command)
    print("\nllama-batched-bench, same model (PP 256 prompt tokens and TG 64 generated per sequence):")
    print(batched_bench(model, args.threads, levels))


if __name__ == "__main__":
    main()

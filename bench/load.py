"""Decode speed on a busy machine: llmcli (threads tuned at run time) next to native llama-bench.

A bounded load generator starts `--load` CPU-bound processes that stop by themselves after
`--seconds` (a compile, a browser tab), afresh for each loaded run and before it, as when a build
is already running. In the same run, with and without the load: `llmcli bench` tg128 with its
default threads, and llama-bench tg128 at every thread count. The fair share of the
machine among the busy processes is idle speed x cores / (load + cores); the goal under load is at
least 75% of it, with idle speed unchanged.

With --parallel N, the batched case instead: `llmcli translate` of --docs news articles with
--parallel N (documents/minute; default threads, and each thread count given), next to
llama-batched-bench's generation speed for N sequences at each thread count.

    python bench/load.py --model M.gguf [--load 2] [--seconds 120] [--gen 128] [--rounds 3]
    python bench/load.py --parallel 4 [--docs 8] ...
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from common import LLMCLI, chosen_model, native_tool
from parallel import PER_SEQUENCE_CTX, TASKS, write_docs

BUSY = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end:\n    pass\n"


def llmcli_tg(model: Path, gen: int) -> float:
    cmd = [str(LLMCLI), "bench", "-m", str(model), "-p", "0", "-n", str(gen), "-r", "2", "--json"]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return float(next(t["avg_ts"] for t in report["tests"] if t["n_gen"]))


def native_tg(model: Path, gen: int, threads: int) -> float:
    cmd = [str(native_tool("llama-bench")), "-m", str(model), "-t", str(threads), "-p", "0", "-n", str(gen)]
    out = subprocess.run([*cmd, "-r", "2", "-o", "json"], check=True, capture_output=True, text=True).stdout
    return float(json.loads(out)[0]["avg_ts"])


def llmcli_docs(model: Path, docs: Path, parallel: int, threads: int | None) -> float:
    """Documents per minute of `llmcli translate` over the folder docs with --parallel."""
    count = len(list(docs.iterdir()))
    flags = TASKS["translate"]
    cmd = [str(LLMCLI), flags[0], str(docs), *flags[1:], "-m", str(model), "--parallel", str(parallel)]
    cmd += ["--ctx", str(PER_SEQUENCE_CTX * parallel), *(["--threads", str(threads)] if threads else [])]
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([*cmd, "--out-dir", out], check=True, capture_output=True)
        return count / (time.perf_counter() - start) * 60


def native_batched(model: Path, parallel: int, threads: int) -> float:
    """llama-batched-bench's generation t/s of `parallel` sequences (all of them together)."""
    cmd = [
        str(native_tool("llama-batched-bench")),
        "-m",
        str(model),
        "-t",
        str(threads),
        "--output-format",
        "jsonl",
    ]
    cmd += ["-c", str(PER_SEQUENCE_CTX * parallel), "-npp", "256", "-ntg", "64", "-npl", str(parallel)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(json.loads(next(line for line in out.splitlines() if line.startswith("{")))["speed_tg"])


def shown(name: str, how: str, figure: float) -> float:
    """figure, told on stderr as it comes (a loaded round takes minutes)."""
    print(f"{name}, {how}: {figure:.1f}", file=sys.stderr, flush=True)
    return figure


def loaded(run: Callable[[], float], load: int, seconds: float) -> float:
    """run() beside `load` busy processes started for it alone (they stop by themselves after
    `seconds`); fails where they stopped before run() did, since the figure would be half idle."""
    busy = [subprocess.Popen([sys.executable, "-c", BUSY, str(seconds)]) for _ in range(load)]
    try:
        figure = run()
        if any(proc.poll() is not None for proc in busy):
            sys.exit(f"the load stopped before the run did: give more --seconds than {seconds:g}")
        return figure
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a GGUF (default: the bench model)")
    ap.add_argument("--load", type=int, default=2, help="busy processes")
    ap.add_argument("--seconds", type=float, default=120, help="they stop by themselves after this")
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3, help="loaded runs of each, interleaved; medians")
    ap.add_argument("--parallel", type=int, default=0, help="the batched case: sequences decoded together")
    ap.add_argument("--docs", type=int, default=8, help="documents of the batched case")
    args = ap.parse_args()
    model, cores = chosen_model(args.model), len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp)
        write_docs(docs, args.docs)
        compare(args, model, cores, docs)


def compare(args: argparse.Namespace, model: Path, cores: int, docs: Path) -> None:
    """Print each run's figures, idle and loaded, against the fair share of llmcli's idle figure (or,
    for native runs of the batched case, of native's best idle figure: another unit)."""
    runs: dict[str, Callable[[], float]] = {}
    if args.parallel:
        runs["llmcli"] = partial(llmcli_docs, model, docs, args.parallel, None)
        for threads in range(cores, 0, -1):
            runs[f"llmcli --threads {threads}"] = partial(llmcli_docs, model, docs, args.parallel, threads)
        for threads in range(cores, 0, -1):
            runs[f"native -t {threads}"] = partial(native_batched, model, args.parallel, threads)
    else:
        runs["llmcli"] = partial(llmcli_tg, model, args.gen)
        for threads in range(cores, 0, -1):
            runs[f"native -t {threads}"] = partial(native_tg, model, args.gen, threads)
    # Rounds interleave the runs: a loaded machine's scheduling differs more between runs than idle.
    idle = {name: shown(name, "idle", run()) for name, run in runs.items()}
    rounds = [
        {name: shown(name, "loaded", loaded(run, args.load, args.seconds)) for name, run in runs.items()}
        for _ in range(args.rounds)
    ]
    busy = {name: statistics.median(r[name] for r in rounds) for name in runs}
    native_best = max(v for name, v in idle.items() if name.startswith("native"))
    batched = bool(args.parallel)

    def share(name: str) -> float:
        best = native_best if batched and name.startswith("native") else idle["llmcli"]
        return best * cores / (args.load + cores)

    each = ", ".join(f"{r['llmcli']:.1f}" for r in rounds)
    what = f"translate of {args.docs} documents, --parallel {args.parallel}" if batched else f"tg{args.gen}"
    print(
        f"{model.name}, {what}, {cores} cores, {args.load} busy processes; fair share {share('llmcli'):.1f}"
    )
    print(f"loaded: medians of {args.rounds} interleaved rounds (llmcli: {each})")
    unit = "docs/min (llmcli), TG t/s (native)" if batched else "t/s"
    print(f"| run | idle, {unit} | loaded | loaded / fair share |")
    print("|---|---|---|---|")
    for name in idle:
        print(f"| {name} | {idle[name]:.1f} | {busy[name]:.1f} | {busy[name] / share(name):.2f} |")


if __name__ == "__main__":
    main()

"""Decode speed on a busy machine: llmcli (threads tuned at run time) next to native llama-bench.

A bounded load generator starts `--load` CPU-bound processes that stop by themselves after
`--seconds` (a compile, a browser tab). In the same run, with and without the load: `llmcli bench`
tg128 with its default threads, and llama-bench tg128 at every thread count. The fair share of the
machine among the busy processes is idle speed x cores / (load + cores); the goal under load is at
least 75% of it, with idle speed unchanged.

    python bench/load.py --model M.gguf [--load 2] [--seconds 120] [--gen 128]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import LLMCLI, chosen_model, native_tool

BUSY = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end:\n    pass\n"


def llmcli_tg(model: Path, gen: int) -> float:
    cmd = [str(LLMCLI), "bench", "-m", str(model), "-p", "0", "-n", str(gen), "-r", "2", "--json"]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return float(next(t["avg_ts"] for t in report["tests"] if t["n_gen"]))


def native_tg(model: Path, gen: int, threads: int) -> float:
    cmd = [str(native_tool("llama-bench")), "-m", str(model), "-t", str(threads), "-p", "0", "-n", str(gen)]
    out = subprocess.run([*cmd, "-r", "2", "-o", "json"], check=True, capture_output=True, text=True).stdout
    return float(json.loads(out)[0]["avg_ts"])


def measure(model: Path, gen: int, cores: int) -> dict[str, float]:
    figures = {"llmcli": llmcli_tg(model, gen)}
    for threads in range(cores, 0, -1):
        figures[f"native -t {threads}"] = native_tg(model, gen, threads)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a GGUF (default: the bench model)")
    ap.add_argument("--load", type=int, default=2, help="busy processes")
    ap.add_argument("--seconds", type=float, default=120, help="they stop by themselves after this")
    ap.add_argument("--gen", type=int, default=128)
    args = ap.parse_args()
    model, cores = chosen_model(args.model), len(os.sched_getaffinity(0))
    idle = measure(model, args.gen, cores)
    busy_procs = [subprocess.Popen([sys.executable, "-c", BUSY, str(args.seconds)]) for _ in range(args.load)]
    try:
        loaded = measure(model, args.gen, cores)
    finally:
        for proc in busy_procs:
            proc.kill()
    share = idle["llmcli"] * cores / (args.load + cores)
    print(
        f"{model.name}, tg{args.gen}, {cores} cores, {args.load} busy processes; fair share {share:.1f} t/s"
    )
    print("| run | idle t/s | loaded t/s | loaded / fair share |")
    print("|---|---|---|---|")
    for name in idle:
        print(f"| {name} | {idle[name]:.1f} | {loaded[name]:.1f} | {loaded[name] / share:.2f} |")


if __name__ == "__main__":
    main()

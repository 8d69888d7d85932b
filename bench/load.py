"""Decode speed on a busy machine: llmcli (threads tuned at run time) next to native llama-bench.

A bounded load generator starts `--load` CPU-bound processes that stop by themselves after
`--seconds` (a compile, a browser tab), afresh for each loaded run and before it, as when a build
is already running. In the same run, with and without the load: `llmcli bench` tg128 with its
default threads, and llama-bench tg128 at every thread count. The fair share of the
machine among the busy processes is idle speed x cores / (load + cores); the goal under load is at
least 75% of it, with idle speed unchanged.

    python bench/load.py --model M.gguf [--load 2] [--seconds 120] [--gen 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from functools import partial
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
    args = ap.parse_args()
    model, cores = chosen_model(args.model), len(os.sched_getaffinity(0))
    runs: dict[str, Callable[[], float]] = {"llmcli": partial(llmcli_tg, model, args.gen)}
    for threads in range(cores, 0, -1):
        runs[f"native -t {threads}"] = partial(native_tg, model, args.gen, threads)
    # Rounds interleave the runs: a loaded machine's scheduling differs more between runs than idle.
    idle = {name: run() for name, run in runs.items()}
    rounds = [
        {name: loaded(run, args.load, args.seconds) for name, run in runs.items()} for _ in range(args.rounds)
    ]
    busy = {name: statistics.median(r[name] for r in rounds) for name in runs}
    share = idle["llmcli"] * cores / (args.load + cores)
    each = ", ".join(f"{r['llmcli']:.1f}" for r in rounds)
    print(f"{model.name}, tg{args.gen}, {cores} cores, {args.load} busy processes; fair share {share:.1f}")
    print(f"loaded: medians of {args.rounds} interleaved rounds (llmcli: {each})")
    print("| run | idle t/s | loaded t/s | loaded / fair share |")
    print("|---|---|---|---|")
    for name in idle:
        print(f"| {name} | {idle[name]:.1f} | {busy[name]:.1f} | {busy[name] / share:.2f} |")


if __name__ == "__main__":
    main()

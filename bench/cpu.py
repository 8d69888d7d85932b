"""llmcli with AMX kept off (as on a CPU whose AMX faults) against native llama.cpp built without AMX.

Where AMX faults, llmcli denies llama.cpp the tile permission, so ggml leaves out its AMX buffer
type and keeps its other repacked kernels. The reference is what a user there would otherwise
have to build by hand: the same llama.cpp with `-mno-amx-tile -mno-amx-int8 -mno-amx-bf16`
(`bench/build_native.sh --no-amx`). `llmcli bench` runs twice, with the guard forced on
(`LLMCLI_AMX=off`) and as it runs by default here; rounds interleave the three, flash attention
off (llmcli's CPU default). Goals: decode >= 0.98x and prompt >= 0.95x of native.

    python bench/cpu.py [--threads 2] [--rounds 3] [--quant q4_0 q8_0]
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from common import LLMCLI, OUT, arguments, bench_model, median


def native(model: Path, threads: int) -> dict[str, float]:
    """pp512 and tg128 t/s of llama-bench from the AMX-free build."""
    tool = OUT / "native-noamx" / "build" / "bin" / "llama-bench"
    if not tool.is_file():
        raise SystemExit(f"{tool} not found: run bench/build_native.sh --no-amx")
    cmd = [
        str(tool),
        "-m",
        str(model),
        "-t",
        str(threads),
        "-fa",
        "0",
        "-p",
        "512",
        "-n",
        "128",
        "-o",
        "json",
    ]
    records = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {("pp512" if r["n_prompt"] else "tg128"): r["avg_ts"] for r in records}


def llmcli(model: Path, threads: int, guard: bool) -> dict[str, float]:
    """pp512 and tg128 t/s of `llmcli bench`, with the AMX guard forced on or as detected."""
    env = {**os.environ, "LLMCLI_AMX": "off" if guard else "auto"}
    cmd = [str(LLMCLI), "bench", "-m", str(model), "-t", str(threads), "--flash-attn", "off", "--json"]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)
    return {t["name"]: t["avg_ts"] for t in report["tests"]}


def main() -> None:
    args = arguments(__doc__, threads=2, rounds=3, quant=["q4_0", "q8_0"])
    info = json.loads(subprocess.run([str(LLMCLI), "info", "--json"], check=True, capture_output=True).stdout)
    print(f"CPU: {info['cpu']['model']}, AMX {info['cpu']['amx']}; kernels {', '.join(info['kernels'])}")
    print("| model | test | native no-AMX t/s | llmcli guarded t/s | ratio | llmcli default t/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for quant in args.quant:
        model = bench_model(quant)
        runs: dict[str, list[dict[str, float]]] = {"native": [], "guarded": [], "default": []}
        for _ in range(args.rounds):
            runs["native"].append(native(model, args.threads))
            runs["guarded"].append(llmcli(model, args.threads, guard=True))
            runs["default"].append(llmcli(model, args.threads, guard=False))
        for test in ("pp512", "tg128"):
            ref, guarded, default = (
                median([r[test] for r in runs[k]]) for k in ("native", "guarded", "default")
            )
            print(
                f"| {model.name} | {test} | {ref:.1f} | {guarded:.1f} | {guarded / ref:.3f} "
                f"| {default:.1f} | {default / ref:.3f} |"
            )


if __name__ == "__main__":
    main()

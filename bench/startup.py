"""Start-up time of `llmcli --help` against `python -c "import typer"` (target: at most 1.5x), and of
what the shell runs on Tab: command names, and model names (registry and hub cache) after `-m`.

python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from common import LLMCLI, median


def tab(line: str) -> dict[str, str]:
    """The environment bash's completion script gives llmcli for Tab at the end of line."""
    return {"_LLMCLI_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(line.split()))}


CASES: dict[str, tuple[list[str], dict[str, str]]] = {
    "import typer": ([sys.executable, "-c", "import typer"], {}),
    "llmcli --help": ([str(LLMCLI), "--help"], {}),
    "llmcli <Tab>": ([str(LLMCLI)], tab("llmcli ")),
    "llmcli complete -m <Tab>": ([str(LLMCLI)], tab("llmcli complete -m ")),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    runs = ap.parse_args().runs
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(runs):  # interleaved: a change in the machine's load hits every case alike
        for name, (cmd, env) in CASES.items():
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, **env})
            times[name].append(time.perf_counter() - start)
    typer = median(times["import typer"])
    for name in CASES:
        t = median(times[name])
        target = "   (target <= 1.5)" if name == "llmcli --help" else ""
        print(f"{name:<26} {t * 1000:6.1f} ms   ratio {t / typer:.2f}{target}")


if __name__ == "__main__":
    main()

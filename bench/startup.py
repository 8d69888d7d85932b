"""Start-up time of `llmcli --help` against `python -c "import typer"` (target: at most 1.5x).

python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common import LLMCLI, median


def timed(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    runs = ap.parse_args().runs
    typer = timed([sys.executable, "-c", "import typer"], runs)
    help_ = timed([str(LLMCLI), "--help"], runs)
    print(f"import typer   {typer * 1000:6.1f} ms")
    print(f"llmcli --help  {help_ * 1000:6.1f} ms   ratio {help_ / typer:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()

"""`llmcli perplexity` vs llama.cpp's `llama-perplexity`: the same figure, and the time it takes.

Both score the same text (FLORES-200 English devtest, from ../shared/eval) with the same model and
window, in this run: the real stories260K model and the Qwen2.5-0.5B-shaped bench model (q4_0).

    python bench/perplexity.py [--threads 2] [--lines 400]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from common import LLMCLI, SHARED, bench_model, native_tool

TEXT = SHARED / "eval" / "flores200_devtest" / "eng_Latn.devtest"


def native(model: Path, text: Path, ctx: int, threads: int) -> tuple[float, float, float]:
    start = time.perf_counter()
    cmd = [str(native_tool("llama-perplexity")), "-m", str(model), "-f", str(text), "-c", str(ctx)]
    log = subprocess.run([*cmd, "-t", str(threads)], capture_output=True, text=True, check=True).stderr
    found = re.search(r"Final estimate: PPL = ([\d.]+) \+/- ([\d.]+)", log)
    assert found, log[-2000:]
    return float(found[1]), float(found[2]), time.perf_counter() - start


def ours(model: Path, text: Path, ctx: int, threads: int) -> tuple[float, float, float]:
    start = time.perf_counter()
    cmd = [str(LLMCLI), "perplexity", str(text), "-m", str(model), "--ctx", str(ctx), "--json"]
    out = subprocess.run([*cmd, "--threads", str(threads)], capture_output=True, text=True, check=True).stdout
    (result,) = json.loads(out)["models"]
    return result["ppl"], result["error"], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lines", type=int, default=400, help="FLORES lines to score")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text.txt"
        text.write_text("".join(TEXT.read_text(encoding="utf-8").splitlines(keepends=True)[: args.lines]))
        heads = ("llama-perplexity", "llmcli", "ratio", "time ratio")
        print(f"{'model':<20} {'ctx':>4} {heads[0]:>22} {heads[1]:>22} {heads[2]:>8} {heads[3]:>10}")
        for model, ctx in ((SHARED / "models" / "stories260K.gguf", 128), (bench_model(), 512)):
            n_ppl, n_err, n_s = native(model, text, ctx, args.threads)
            o_ppl, o_err, o_s = ours(model, text, ctx, args.threads)
            figures = f"{n_ppl:.4f} ± {n_err:.4f}", f"{o_ppl:.4f} ± {o_err:.4f}"
            print(
                f"{model.name:<20} {ctx:>4} {figures[0]:>22} {figures[1]:>22}"
                f" {o_ppl / n_ppl:>8.5f} {o_s / n_s:>10.2f}"
            )


if __name__ == "__main__":
    main()

"""Shared pieces of the benchmarks: the bench model, native llama.cpp tools, prompts, statistics."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
OUT = ROOT / "bench" / "out"
LLMCLI = Path(sys.executable).parent / "llmcli"


def bench_model(quant: str = "q4_0") -> Path:
    """The Qwen2.5-0.5B-shaped model with random weights, written once into bench/out/."""
    path = OUT / f"bench-{quant}.gguf"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        tool = SHARED / "tools" / "make_bench_model.py"
        subprocess.run([sys.executable, str(tool), str(path), "--quant", quant], check=True)
    return path


def chosen_model(path: str | None) -> Path:
    """--model PATH (e.g. the tests' cached Gemma 3 270M, ~/.cache/llmcli-test), else the bench model."""
    return Path(path).expanduser() if path else bench_model()


def stories_model(quant: str = "f32") -> Path:
    """The trained stories260K model (../shared/models), or a copy quantized by llama.cpp into bench/out/."""
    source = SHARED / "models" / "stories260K.gguf"
    if quant == "f32":
        return source
    path = OUT / f"stories260K-{quant}.gguf"
    if not path.exists():
        import llama_cpp

        OUT.mkdir(parents=True, exist_ok=True)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant.upper()}")
        if llama_cpp.llama_model_quantize(str(source).encode(), str(path).encode(), params) != 0:
            sys.exit(f"llama.cpp could not quantize {source} to {quant}")
    return path


def native_tool(name: str) -> Path:
    """A native llama.cpp binary: $LLAMA_CPP_BIN/NAME, PATH, or bench/build_native.sh's output."""
    candidates = [Path(os.environ["LLAMA_CPP_BIN"]) / name] if os.environ.get("LLAMA_CPP_BIN") else []
    if found := shutil.which(name):
        candidates.append(Path(found))
    candidates.append(OUT / "native" / "build" / "bin" / name)
    for path in candidates:
        if path.is_file():
            return path
    sys.exit(f"{name} not found: run bench/build_native.sh (or set LLAMA_CPP_BIN)")


def llama_bench(model: Path, threads: int, args: list[str]) -> list[dict]:
    """Run llama-bench with JSON output and return its records."""
    cmd = [
        str(native_tool("llama-bench")),
        "-m",
        str(model),
        "-t",
        str(threads),
        "-fa",
        "1",
        "-o",
        "json",
        *args,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def prompt_text(n_tokens: int) -> str:
    """About n_tokens of real English prose (news articles from ../shared/eval)."""
    records = (SHARED / "eval" / "summ" / "summeval_cnndm_gold.jsonl").read_text().splitlines()
    text = " ".join(json.loads(line)["article"] for line in records[:5])
    words = text.split()
    return " ".join(words[: int(n_tokens * 0.75)])  # ~1.3 tokens per word for this tokenizer


def llmcli_json(*args: str, stdin: str = "") -> dict:
    """Run the installed `llmcli ... --json` and parse its one JSON object."""
    result = subprocess.run(
        [str(LLMCLI), *args, "--json"], input=stdin, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def arguments(doc: str | None, **defaults: object) -> argparse.Namespace:
    """The script's command line: `--name-with-dashes` for each default, typed by it (a list takes
    several values; False is a flag; None is a text, `model` a GGUF path), --help from doc."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in defaults.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true")
        elif isinstance(default, list):
            parser.add_argument(flag, type=type(default[0]), nargs="+", default=default)
        elif default is None:
            parser.add_argument(
                flag, help="a GGUF to measure instead of the bench model" if name == "model" else None
            )
        else:
            parser.add_argument(flag, type=type(default), default=default)
    return parser.parse_args()

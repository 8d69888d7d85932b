"""Perplexity: windows like llama-perplexity's, the engine's scoring against its own logits, and
the figures llama.cpp's `llama-perplexity` printed for the same model, text and context."""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tinymodel import SHARED

from llmcli.engine import EngineOptions, LocalEngine
from llmcli.errors import UsageError
from llmcli.tasks.perplexity import perplexity, plan_windows, window_nll

Run = Callable[..., subprocess.CompletedProcess[str]]
FLORES_EN = SHARED / "eval" / "flores200_devtest" / "eng_Latn.devtest"
# `llama-perplexity -m stories260K.gguf -f TEXT -c 128 -t 2` (the llama.cpp bundled with
# llama-cpp-python 0.3.36), TEXT = the first 100 lines of FLORES-200 eng_Latn devtest:
# "Final estimate: PPL = 59.6798 +/- 3.00426" over 67 chunks. Its strided mode widens the window to
# ctx + stride/2 rounded up to 256: `-c 64 -b 64 --ppl-stride 64` scores 131 windows of 256
# tokens, "[131]52.6871", which is llmcli's --ctx 256 --stride 64.
NATIVE_PPL, NATIVE_ERROR, NATIVE_STRIDED = 59.6798, 3.00426, 52.6871


@pytest.fixture(scope="module")
def text() -> str:
    return "".join(FLORES_EN.read_text(encoding="utf-8").splitlines(keepends=True)[:100])


def test_windows_follow_llama_perplexity() -> None:
    plan = plan_windows(1000, 128, None, bos=True)
    assert plan.starts == [0, 128, 256, 384, 512, 640, 768] and plan.first == 64 and plan.bos
    strided = plan_windows(1000, 256, 32, bos=True)
    assert len(strided.starts) == (1000 - 256 + 31) // 32 and strided.starts[1] == 32
    assert strided.first == 256 - 32 - 1 and not strided.bos
    with pytest.raises(UsageError, match="needs at least 256"):
        plan_windows(255, 128, None, bos=True)
    with pytest.raises(UsageError, match="--stride must be between 1 and"):
        plan_windows(1000, 128, 128, bos=True)


def test_score_is_the_log_softmax_of_the_models_logits(stories: Path) -> None:
    with LocalEngine(stories, EngineOptions(n_ctx=128)) as engine:
        tokens = engine.tokenize("Once upon a time, there was a little girl named Lily. She loved to play.")
        nll = window_nll(engine, tokens, 3)
        assert len(nll) == len(tokens) - 4
        for position in (3, 8, len(tokens) - 2):
            logits = engine.next_logits(tokens[: position + 1]).astype(np.float64)
            log_probs = logits - logits.max() - math.log(np.exp(logits - logits.max()).sum())
            assert nll[position - 3] == pytest.approx(-log_probs[tokens[position + 1]], abs=1e-4)


def test_matches_llama_perplexity(stories: Path, text: str) -> None:
    with LocalEngine(stories, EngineOptions(n_ctx=128)) as engine:
        result = perplexity(engine, text, 128)
    assert result.windows == 67 and result.scored == 67 * 63
    assert result.ppl == pytest.approx(NATIVE_PPL, rel=1e-3)
    assert result.error == pytest.approx(NATIVE_ERROR, rel=1e-2)
    with LocalEngine(stories, EngineOptions(n_ctx=256)) as engine:
        strided = perplexity(engine, text, 256, stride=64)
    assert strided.windows == 131 and strided.ppl == pytest.approx(NATIVE_STRIDED, rel=1e-3)


def test_cli_compares_models(run_cli: Run, stories: Path, text: str, tmp_path: Path) -> None:
    source = tmp_path / "text.txt"
    source.write_text(text, encoding="utf-8")
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(stories.read_bytes())
    table = run_cli("perplexity", str(source), "-m", str(stories), "-m", str(copy), "--ctx", "128")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    heads = [cell.strip() for cell in lines[0].split("|")[1:-1]]
    assert heads == ["model", "ctx", "windows", "scored tokens", "PPL", "±", "t/s"]
    assert len(lines) == 4 and "stories260K.gguf" in lines[2] and "copy.gguf" in lines[3]
    assert lines[2].split("|")[5] == lines[3].split("|")[5]  # the same weights, the same figure
    report = json.loads(
        run_cli("perplexity", str(source), "-m", str(stories), "--ctx", "128", "--json").stdout
    )
    (model,) = report["models"]
    assert model["model"] == "stories260K.gguf" and model["windows"] == model["text_tokens"] // 128
    assert f"{model['ppl']:.4f}" in lines[2]


def test_cli_errors(run_cli: Run, stories: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("Once upon a time there was a cat.\n")
    few = run_cli("perplexity", str(short), "-m", str(stories), "--ctx", "128")
    assert few.returncode == 2 and "needs at least 256" in few.stderr and "Traceback" not in few.stderr
    missing = run_cli("perplexity", str(tmp_path / "nope.txt"), "-m", str(stories))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    stride = run_cli("perplexity", str(short), "-m", str(stories), "--ctx", "128", "--stride", "0")
    assert (
        stride.returncode == 2
        and "scoring" not in stride.stderr
        and "--stride must be between 1 and --ctx - 1 (127), got 0" in stride.stderr
    )

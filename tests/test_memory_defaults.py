"""Memory-aware defaults: the context follows the memory the KV cache may take, and the cache's types."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from llmcli import engine as engine_module
from llmcli.engine import EngineOptions, LocalEngine, default_ctx
from llmcli.errors import ExitCode
from llmcli.models.ggufinfo import read_gguf

Run = Callable[..., subprocess.CompletedProcess[str]]


def test_the_default_context_is_the_trained_length_when_it_fits(stories: Path) -> None:
    info = read_gguf(stories)
    assert default_ctx(info) == (info.context_length, False)
    with LocalEngine(stories) as engine:
        assert engine.n_ctx == info.context_length and not engine.ctx_capped


def test_the_default_context_shrinks_to_what_memory_holds(
    stories: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = read_gguf(stories)
    per_1k = info.kv_cache_bytes(1024)
    assert per_1k == 640 * 1024  # 5 layers, 4 KV heads of 8 dims, f16 keys and values, 1,024 tokens
    # Half of what the weights leave may go to the cache: room here for 1.1 x 1,024 tokens of it.
    monkeypatch.setattr(
        engine_module.hardware, "available_memory", lambda: int(info.file_size + 2.2 * per_1k)
    )
    assert default_ctx(info) == (1024, True)
    assert default_ctx(info, "q8_0", "q8_0") == (2048, False)  # a q8_0 cache takes about half


def test_quantized_cache_types_run_and_are_checked(run_cli: Run, gemma: Path) -> None:
    args = ("complete", "-m", str(gemma), "--greedy", "-n", "8", "The Eiffel Tower is located in the city of")
    quantized = run_cli(*args, "--cache-type-k", "q8_0", "--cache-type-v", "q8_0")
    assert quantized.returncode == 0, quantized.stderr
    assert quantized.stdout.startswith(" Paris")
    refused = run_cli(*args, "-ctv", "q4_0", "--flash-attn", "off")
    assert refused.returncode == ExitCode.USAGE and "needs flash attention" in refused.stderr
    bad = run_cli(*args, "-ctk", "q5_1")
    assert bad.returncode == ExitCode.USAGE and "--cache-type-k must be one of f16, q8_0, q4_0" in bad.stderr


def test_a_q8_0_cache_halves_the_memory_the_engine_plans_for(gemma: Path) -> None:
    with LocalEngine(gemma, EngineOptions(n_ctx=512, cache_type_k="q8_0", cache_type_v="q8_0")) as engine:
        f16 = read_gguf(gemma).kv_cache_bytes(512) or 0
        assert engine.kv_cache_bytes(512) == pytest.approx(f16 * 34 / 64)


def test_models_show_gives_the_kv_cache_size_and_default_context(run_cli: Run, gemma: Path) -> None:
    shown = json.loads(run_cli("models", "show", str(gemma), "--json").stdout)
    # 18 layers of 1 KV head of 256 dims, f16 keys and values: 18 KiB a token (every layer in full).
    assert shown["kv_cache_per_1k"] == 18 * 1024 * 1024
    assert shown["default_context"] == 32768
    text = run_cli("models", "show", str(gemma)).stdout
    assert "per 1,024 tokens" in text and "32,768 tokens" in text

"""`llmcli bench` through the installed command: figures present, test counts, table, usage errors."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from test_cli_complete import assert_one_line_error

from llmcli.engine import LocalEngine
from llmcli.tasks.bench import random_tokens

Run = Callable[..., subprocess.CompletedProcess[str]]

# One thread: a second one only adds waiting on a shared two-core machine; timings are never asserted.
SMALL = ("-p", "32", "-n", "16", "-r", "2", "--threads", "1")


def test_json_figures(run_cli: Run, stories: Path) -> None:
    result = run_cli("bench", "-m", str(stories), *SMALL, "--json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    data = json.loads(result.stdout)
    pp, tg = data["tests"]
    assert (pp["name"], pp["n_prompt"], pp["n_gen"]) == ("pp32", 32, 0)
    assert (tg["name"], tg["n_prompt"], tg["n_gen"]) == ("tg16", 0, 16)
    for test in (pp, tg):
        assert len(test["samples_ts"]) == 2
        assert test["avg_ts"] > 0 and all(v > 0 for v in test["samples_ts"])
        assert test["stddev_ts"] >= 0
    assert pp["avg_ttft_ms"] > 0 and len(pp["samples_ttft_ms"]) == 2
    assert "avg_ttft_ms" not in tg
    assert data["model"]["name"] == stories.name
    assert data["model"]["size_bytes"] == stories.stat().st_size
    assert data["model"]["params"] > 0 and data["model"]["quantization"] == "F32"
    assert data["peak_rss_bytes"] > data["model"]["size_bytes"]
    settings = data["settings"]
    assert settings["threads"] == 1 and settings["repetitions"] == 2 and settings["n_ctx"] >= 48
    assert settings["flash_attn"] is False and settings["backend"] == "CPU"
    assert data["build"]["llama_cpp_python"] and data["build"]["llmcli"]


def test_table(run_cli: Run, stories: Path) -> None:
    result = run_cli("bench", "-m", str(stories), *SMALL)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["model", "quant", "size", "params", "backend", "ngl", "threads", "fa", "test", "t/s"]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:4]]
    assert [row[8] for row in rows] == ["pp32", "tg16"]
    for row in rows:
        assert row[0] == stories.name and row[6] == "1" and row[7] == "off"
        mean, _, sd = row[9].partition(" ± ")
        assert float(mean) > 0 and float(sd) >= 0
    assert lines[4] == ""
    assert lines[5].startswith("time to first token (pp32): ") and lines[5].endswith(" ms")
    assert lines[6].startswith("peak memory: ") and "model file 1.13 MiB" in lines[6]
    assert "pp32 (warm-up + 2 runs)" in result.stderr


@pytest.mark.parametrize(("args", "names"), [(["-p", "0"], ["tg16"]), (["-n", "0"], ["pp32"])])
def test_zero_skips_a_test(run_cli: Run, stories: Path, args: list[str], names: list[str]) -> None:
    result = run_cli("bench", "-m", str(stories), *SMALL, *args, "--json")
    assert result.returncode == 0, result.stderr
    assert [t["name"] for t in json.loads(result.stdout)["tests"]] == names


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--ctx", "256", "-p", "256", "-n", "16"], "the context holds 256 tokens but -p 256 -n 16 need 272"),
        (["--ctx", "256", "-p", "256", "-n", "0"], "need 257"),
        (["-p", "-1"], "--prompt-tokens must be >= 0"),
        (["-n", "-5"], "--gen-tokens must be >= 0"),
        (["-p", "0", "-n", "0"], "both 0"),
        (["-r", "0"], "--repetitions must be > 0"),
        (["-p", "many"], "--prompt-tokens"),
        (["--threads", "0"], "--threads must be > 0"),
    ],
)
def test_usage_errors(run_cli: Run, stories: Path, args: list[str], needle: str) -> None:
    assert_one_line_error(run_cli("bench", "-m", str(stories), "--threads", "1", *args), 2, needle)


def test_random_prompt_is_fixed_and_plain(stories_engine: LocalEngine) -> None:
    tokens = random_tokens(stories_engine, 200)
    assert tokens == random_tokens(stories_engine, 200)
    assert tokens[0] == stories_engine.tokenize("")[0]  # BOS, as llama-bench starts its prompts
    assert all(not stories_engine.is_eog(t) and stories_engine.token_bytes(t) for t in tokens[1:])
    assert len(set(tokens)) > 50

"""`llmcli complete` through the installed command, as users and scripts run it."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import LLMCLI

HELLO, WORLD = 15043, 3186

Run = Callable[..., subprocess.CompletedProcess[str]]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    err = result.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    for needle in needles:
        assert needle in err


def test_greedy_story_from_argument(run_cli: Run, stories: Path) -> None:
    result = run_cli("complete", "-m", str(stories), "--greedy", "-n", "12", "Once upon a time")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(", there was a little girl named Lily")
    assert result.stderr == ""


def test_stdin_then_prompt(run_cli: Run, stories: Path) -> None:
    piped = run_cli("complete", "-m", str(stories), "--greedy", "-n", "8", input="Once upon a time\n")
    assert piped.stdout.startswith(", there was a little girl")
    both = run_cli("complete", "-m", str(stories), "--greedy", "-n", "8", "Lily", input="Once upon a time\n")
    assert both.returncode == 0 and both.stdout


def test_json_output(run_cli: Run, stories: Path) -> None:
    result = run_cli("complete", "-m", str(stories), "--greedy", "-n", "10", "--json", "Once upon a time")
    data = json.loads(result.stdout)
    assert data["text"].startswith(", there was")
    assert data["finish_reason"] == "length"
    assert data["generated_tokens"] == 10
    assert data["prompt_tokens"] > 0 and data["decode_tps"] > 0
    assert result.stdout.count("\n") == 1


def test_stats_go_to_stderr(run_cli: Run, stories: Path) -> None:
    result = run_cli("complete", "-m", str(stories), "--greedy", "-n", "5", "--stats", "Once upon a time")
    assert "generated 5 tokens" in result.stderr
    assert "tokens" not in result.stdout


def test_stop_flag(run_cli: Run, stories: Path) -> None:
    result = run_cli("complete", "-m", str(stories), "--greedy", "--stop", "Lily", "Once upon a time")
    assert result.stdout == ", there was a little girl named "


def test_same_seed_same_text_across_processes(run_cli: Run, stories: Path) -> None:
    args = ("complete", "-m", str(stories), "-t", "1.5", "-n", "30", "Once upon a time")
    first, second = run_cli(*args, "--seed", "42"), run_cli(*args, "--seed", "42")
    assert first.stdout == second.stdout and first.stdout
    unseeded = {run_cli(*args).stdout for _ in range(3)}
    assert len(unseeded) > 1


def test_top_k_1_is_greedy_from_the_cli(run_cli: Run, stories: Path) -> None:
    base = ("complete", "-m", str(stories), "-n", "25", "Once upon a time")
    assert run_cli(*base, "--top-k", "1", "-t", "1.3").stdout == run_cli(*base, "--greedy").stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--top-p", "0"], "top-p must be in (0, 1]"),
        (["--top-p", "1.5"], "top-p"),
        (["-t", "-1"], "temperature must be >= 0"),
        (["--top-k", "-1"], "top-k must be >= 0"),
        (["--ctx", "0"], "--ctx must be > 0"),
        (["--gpu-layers", "banana"], "--gpu-layers"),
        (["--gpu-layers", "-3"], "--gpu-layers"),
        (["--top-k", "abc"], "top-k"),
        (["--no-such-flag"], "no-such-flag"),
    ],
)
def test_invalid_values(run_cli: Run, stories: Path, args: list[str], needle: str) -> None:
    assert_one_line_error(run_cli("complete", "-m", str(stories), *args, "hi"), 2, needle)


def test_empty_prompt_and_empty_stdin(run_cli: Run, stories: Path) -> None:
    assert_one_line_error(run_cli("complete", "-m", str(stories)), 2, "prompt is empty")
    assert_one_line_error(run_cli("complete", "-m", str(stories), input="  \n"), 2, "prompt is empty")


def test_default_model_when_none_is_given(run_cli: Run) -> None:
    offline = run_cli("complete", "hi", env={"HF_HUB_OFFLINE": "1"})
    assert_one_line_error(offline, 3, "gemma3-4b is not downloaded", "llmcli models pull gemma3-4b")
    unreachable = run_cli("complete", "hi")
    assert_one_line_error(unreachable, 6, "cannot reach the hub")


def test_model_file_errors(run_cli: Run, tmp_path: Path, stories: Path) -> None:
    assert_one_line_error(run_cli("complete", "-m", str(tmp_path / "missing.gguf"), "hi"), 3, "not found")
    assert_one_line_error(run_cli("complete", "-m", str(tmp_path), "hi"), 3, "directory")
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    assert_one_line_error(run_cli("complete", "-m", str(empty), "hi"), 4, "empty")
    text = tmp_path / "notes.txt"
    text.write_text("just some notes")
    assert_one_line_error(run_cli("complete", "-m", str(text), "hi"), 4, "not a GGUF")
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(stories.read_bytes()[:700_000])
    assert_one_line_error(run_cli("complete", "-m", str(truncated), "hi"), 4, "truncated or corrupt")
    corrupt = tmp_path / "corrupt.gguf"
    data = bytearray(stories.read_bytes())
    data[8:24] = b"\xff" * 16
    corrupt.write_bytes(bytes(data))
    assert_one_line_error(run_cli("complete", "-m", str(corrupt), "hi"), 4, "corrupt")


def test_prompt_longer_than_context(run_cli: Run, stories: Path) -> None:
    result = run_cli("complete", "-m", str(stories), "--ctx", "256", "Once upon a time " * 100)
    assert_one_line_error(result, 5, "tokens but the context holds 256", "--ctx")


def test_a_context_llama_cpp_rounds_up_is_noted(run_cli: Run, stories: Path) -> None:
    def run(ctx: str) -> subprocess.CompletedProcess[str]:
        return run_cli("complete", "-m", str(stories), "--ctx", ctx, "--greedy", "-n", "5", "Once upon")

    result = run("100")
    assert result.returncode == 0 and result.stdout.startswith(" a time")
    assert "context 256 tokens, not the 100 of --ctx" in result.stderr
    assert "of --ctx" not in run("256").stderr


def test_model_from_environment(run_cli: Run, stories: Path) -> None:
    result = run_cli(
        "complete", "--greedy", "-n", "5", "Once upon a time", env={"LLMCLI_MODEL": str(stories)}
    )
    assert result.stdout.startswith(", there was")


def start_endless(program_model: Callable[..., Path], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`llmcli complete` on a model that never stops (" Hello world" forever). Prompt lookup drafts
    the loop whole, so the context is long enough to take a while even at that speed."""
    model = program_model({HELLO: {WORLD: 30.0}, WORLD: {HELLO: 30.0}}, n_ctx=131072)
    argv = [str(LLMCLI), "complete", "-m", str(model), "--ctx", "131072", "--greedy", "Hello"]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env
    )


def test_closed_pipe_ends_quietly(program_model: Callable[..., Path], cli_env: dict[str, str]) -> None:
    proc = start_endless(program_model, cli_env)
    assert proc.stdout and proc.stderr
    assert proc.stdout.read(20) == b" world Hello world H"
    proc.stdout.close()  # like `| head -c 20`
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == b""


def test_ctrl_c_keeps_text_and_exits_130(program_model: Callable[..., Path], cli_env: dict[str, str]) -> None:
    proc = start_endless(program_model, cli_env)
    assert proc.stdout
    head = proc.stdout.read(12)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert head == b" world Hello"
    assert b"Traceback" not in err


def test_info(run_cli: Run) -> None:
    result = run_cli("info")
    assert result.returncode == 0
    assert "GPU offload" in result.stdout
    data = json.loads(run_cli("info", "--json").stdout)
    if not data["gpu_offload"]:
        assert (
            'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python'
            in (result.stdout)
        )


def test_help_lists_defaults(run_cli: Run) -> None:
    text = " ".join(run_cli("complete", "--help").stdout.split())
    assert "stdin comes first" in text
    assert "top-p 0.95 and min-p 0.05" in text


def test_no_command_shows_the_help(run_cli: Run) -> None:
    for args in ((), ("models",)):
        result = run_cli(*args)
        assert result.returncode == 2 and result.stderr == ""
        assert result.stdout.startswith(f"Usage: llmcli {' '.join(args)}".rstrip() + " [OPTIONS] COMMAND")

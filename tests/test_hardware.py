"""Every machine: AMX that faults is kept away from llama.cpp, native crashes are one line, and
settings that crashed llama.cpp are bounded or refused."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tinymodel import quantize

from llmcli.engine.hardware import logical_cpus, probe_amx
from llmcli.errors import ExitCode

Run = Callable[..., subprocess.CompletedProcess[str]]
x86_linux = pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64", reason="AMX and its guard are x86_64 Linux"
)


@pytest.fixture(scope="module")
def stories_q8(stories: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A q8_0 copy: the type whose repacked (and, where compiled, AMX) kernels crashed on the Intel VM."""
    return quantize(stories, tmp_path_factory.mktemp("q8") / "stories-q8_0.gguf", "q8_0")


@x86_linux
def test_the_probe_sees_a_tile_instruction_fault() -> None:
    # Without the permission request the kernel leaves AMX unarmed: the instruction faults on every
    # CPU, AMX or not, which is what the probe must report as "faults".
    assert probe_amx(request_permission=False) == "faults"
    assert probe_amx() in ("works", "refused", "faults")


@x86_linux
def test_the_guard_denies_the_tile_permission_to_the_whole_process(tmp_path: Path) -> None:
    code = (
        "import ctypes, threading, pathlib\n"
        "from llmcli.engine.hardware import guard_amx\n"
        "seen = []\n"
        "def ask():\n"
        "    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    libc.syscall.restype = ctypes.c_long\n"
        "    seen.append((libc.syscall(158, 0x1023, 18), ctypes.get_errno()))\n"
        "t = threading.Thread(target=lambda: __import__('time').sleep(0.2) or ask())\n"
        "t.start()\n"  # a thread started before the guard is covered too
        f"report = guard_amx(pathlib.Path({str(tmp_path)!r}))\n"
        "t.join()\n"
        "print(report.amx, report.amx_guarded, seen)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env={"LLMCLI_AMX": "off"}, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "off True [(-1, 1)]"  # EPERM from the filter, not the kernel's EINVAL


def test_guarded_runs_keep_the_repacked_kernels_and_the_output(run_cli: Run, stories_q8: Path) -> None:
    args = ("complete", "-m", str(stories_q8), "--greedy", "-n", "24", "Once upon a time")
    plain, guarded = run_cli(*args), run_cli(*args, env={"LLMCLI_AMX": "off"})
    assert plain.returncode == guarded.returncode == 0, guarded.stderr
    assert guarded.stdout == plain.stdout and plain.stdout.startswith(", there was a little girl")
    assert guarded.stderr == ""  # ggml's own "AMX is not ready" line is not the user's business
    info = json.loads(run_cli("info", "--json", env={"LLMCLI_AMX": "off"}).stdout)
    assert info["cpu"]["amx"] == "off"
    assert info["kernels"] == json.loads(run_cli("info", "--json").stdout)["kernels"]
    if sys.platform == "linux" and platform.machine() == "x86_64":
        assert info["cpu"]["amx_guarded"] is True and "repacked" in info["kernels"]


def test_info_names_cpu_features_kernels_and_the_amx_verdict(run_cli: Run) -> None:
    text = run_cli("info").stdout
    for label in ("CPU features", "AMX", "kernels", "threads"):
        assert f"\n{label} " in text
    facts = json.loads(run_cli("info", "--json").stdout)
    assert facts["cpu"]["amx"] in ("absent", "works", "faults", "refused", "untested")
    assert facts["logical_cpus"] == logical_cpus()


def test_a_native_crash_is_one_line_with_its_own_exit_code(
    run_cli: Run, stories: Path, tmp_path: Path
) -> None:
    # A real SIGSEGV inside native code at the first decode (strlen of NULL), not a simulated exit.
    (tmp_path / "sitecustomize.py").write_text(
        "import ctypes, llama_cpp\nllama_cpp.llama_decode = lambda *args: ctypes.string_at(0)\n"
    )
    result = run_cli(
        "complete",
        "-m",
        str(stories),
        "Once upon a time",
        env={"PYTHONPATH": str(tmp_path), "PYTHONFAULTHANDLER": "1"},
    )
    assert result.returncode == ExitCode.CRASHED
    assert result.stdout == ""
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(
        "error: llama.cpp crashed (SIGSEGV, segmentation fault) while running stories260K.gguf"
    )
    assert "Fatal Python error" not in err and "Traceback" not in err


def test_threads_beyond_the_cpus_are_bounded_and_said(run_cli: Run, stories: Path) -> None:
    result = run_cli(
        "complete", "-m", str(stories), "--greedy", "-n", "8", "--threads", "100000", "Once upon a time"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(", there was a little girl")
    n = logical_cpus()
    assert result.stderr.strip() == f"--threads 100000 is more than the {n} CPUs here: using {n}"


def test_a_context_that_cannot_fit_is_refused_with_the_memory_it_needs(run_cli: Run, stories: Path) -> None:
    result = run_cli("complete", "-m", str(stories), "--ctx", "1000000000", "Once upon a time")
    assert result.returncode == ExitCode.USAGE, result.stderr
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("error: --ctx 1,000,000,000 needs ") and "GiB for its KV cache" in err
    assert "try --ctx" in err

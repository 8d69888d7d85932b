"""Shell completion (bash, zsh, fish) through the installed command, as each shell's script asks for it."""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from conftest import LLMCLI

from llmcli.chat.sessions import SessionRecord, SessionStore
from llmcli.cli.app import COMMANDS, build_command

Run = Callable[..., subprocess.CompletedProcess[str]]
SHELLS = ["bash", "zsh", "fish"]

REGISTRY = """
[models."tiny-test"]
repo = "acme/tiny-GGUF"
description = "A tiny test model"
[models."tiny-test".files]
Q8_0 = { file = "tiny-q8_0.gguf", size = "30 MB" }
Q4_K_M = { file = "tiny-q4_k_m.gguf", size = "20 MB" }
"""


def complete(run_cli: Run, shell: str, line: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """Candidates (value -> help; no help in bash) the command prints for `line`, cursor at its end."""
    if shell == "bash":
        words = shlex.split(line) + ([""] if line.endswith(" ") else [])
        asked = {"COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    else:
        asked = {"_TYPER_COMPLETE_ARGS": line, "_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    result = run_cli(env={"_LLMCLI_COMPLETE": f"complete_{shell}", "COLUMNS": "500", **asked, **(env or {})})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout.strip("\n")
    if shell == "bash":
        return dict.fromkeys(out.splitlines(), "") if out else {}
    if shell == "fish":
        return {value: help for value, _, help in (line.partition("\t") for line in out.splitlines())}
    if out == "_files":  # nothing to offer: zsh completes file names
        return {}
    body = re.fullmatch(r"_arguments '\*: :\(\((.*)\)\)'", out, re.S)
    assert body, out
    pairs = re.findall(r'"((?:[^"]|"")*)"(?::"((?:[^"]|"")*)")?', body[1])
    return {value.replace("\\\\:", ":"): " ".join(help.split()) for value, help in pairs}


@pytest.fixture
def models_env(tmp_path: Path, cli_env: dict[str, str]) -> dict[str, str]:
    """A registry with `tiny-test`, and a hub cache holding its Q8_0 file and one unregistered model."""
    registry = tmp_path / "models.toml"
    registry.write_text(REGISTRY)
    hub = Path(cli_env["HF_HUB_CACHE"])
    for repo, name in [("acme/tiny-GGUF", "tiny-q8_0.gguf"), ("someone/other-GGUF", "other-Q5_K_M.gguf")]:
        repo_dir = hub / ("models--" + repo.replace("/", "--"))
        (repo_dir / "refs").mkdir(parents=True)
        (repo_dir / "refs" / "main").write_text("a" * 40)
        snapshot = repo_dir / "snapshots" / ("a" * 40)
        snapshot.mkdir(parents=True)
        (snapshot / name).write_bytes(b"GGUF" + bytes(1000))
    return {"LLMCLI_REGISTRY": str(registry)}


@pytest.mark.parametrize("shell", SHELLS)
def test_command_names(run_cli: Run, shell: str) -> None:
    got = complete(run_cli, shell, "llmcli ")
    assert list(got) == list(COMMANDS)
    if shell != "bash":
        assert got["chat"].startswith("Chat with a model in the terminal")
    assert list(complete(run_cli, shell, "llmcli s")) == ["summarize", "sessions"]


@pytest.mark.parametrize("group", ["models", "sessions", "eval"])
@pytest.mark.parametrize("shell", SHELLS)
def test_subcommand_names(run_cli: Run, shell: str, group: str) -> None:
    importlib.import_module(COMMANDS[group][0])
    subcommands = build_command(group)
    assert isinstance(subcommands, typer.core.TyperGroup)
    assert list(complete(run_cli, shell, f"llmcli {group} ")) == list(subcommands.commands)


@pytest.mark.parametrize("shell", SHELLS)
def test_options(run_cli: Run, shell: str) -> None:
    assert list(complete(run_cli, shell, "llmcli complete --ma")) == ["--max-tokens"]
    root = complete(run_cli, shell, "llmcli --")
    assert {"--version", "--debug", "--install-completion", "--show-completion", "--help"} <= set(root)
    assert list(complete(run_cli, shell, "llmcli chat --flash-attn ")) == ["on", "off", "auto"]
    assert list(complete(run_cli, shell, "llmcli bench -ngl a")) == ["all", "auto"]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    "line",
    [
        "llmcli complete -m ",
        "llmcli chat --model ",
        "llmcli perplexity text.txt -m ",
        "llmcli eval summarize data.jsonl -m x -m ",
        "llmcli translate --draft-model ",
        "llmcli models rm ",
        "llmcli models show ",
    ],
)
def test_model_names(run_cli: Run, models_env: dict[str, str], shell: str, line: str) -> None:
    got = complete(run_cli, shell, line, models_env)
    assert {"tiny-test", "qwen2.5-1.5b", "someone/other-GGUF/other-Q5_K_M.gguf"} <= set(got)
    assert "acme/tiny-GGUF/tiny-q8_0.gguf" not in got  # offered as its alias
    assert not any(":" in name for name in got)
    if shell != "bash":
        assert got["tiny-test"] == "downloaded; A tiny test model"
        assert got["qwen2.5-1.5b"].startswith("Qwen2.5 1.5B Instruct")
        assert got["someone/other-GGUF/other-Q5_K_M.gguf"] == "downloaded, 0.00 GB"


@pytest.mark.parametrize("shell", ["zsh", "fish"])  # bash splits words at ':' before asking
def test_quantizations_after_the_colon(run_cli: Run, models_env: dict[str, str], shell: str) -> None:
    got = complete(run_cli, shell, "llmcli complete -m tiny-test:", models_env)
    assert got == {"tiny-test:Q8_0": "30 MB, downloaded", "tiny-test:Q4_K_M": "20 MB"}
    quant = complete(run_cli, shell, "llmcli complete -m tiny-test:Q4", models_env)
    assert list(quant) == ["tiny-test:Q4_K_M"]


@pytest.mark.parametrize("shell", SHELLS)
def test_a_path_is_left_to_the_shell(run_cli: Run, shell: str) -> None:
    assert complete(run_cli, shell, "llmcli complete -m ./") == {}
    assert complete(run_cli, shell, "llmcli summarize do") == {}


def test_a_broken_registry_still_offers_downloads(run_cli: Run, models_env: dict[str, str]) -> None:
    got = complete(run_cli, "fish", "llmcli complete -m ", {"LLMCLI_REGISTRY": "/nonexistent/models.toml"})
    assert list(got) == ["acme/tiny-GGUF/tiny-q8_0.gguf", "someone/other-GGUF/other-Q5_K_M.gguf"]


@pytest.mark.parametrize("shell", SHELLS)
def test_session_names(run_cli: Run, cli_env: dict[str, str], shell: str) -> None:
    store = SessionStore(Path(cli_env["LLMCLI_HOME"]) / "data" / "sessions")
    store.save(SessionRecord("work", messages=[{"role": "user", "content": "Explain\nmmap in one line"}]))
    store.save(SessionRecord("notes"))
    for line in ("llmcli sessions show ", "llmcli sessions export ", "llmcli chat --session "):
        assert set(complete(run_cli, shell, line)) == {"work", "notes"}
    got = complete(run_cli, shell, "llmcli sessions rm w")
    assert list(got) == ["work"]
    if shell != "bash":
        assert got["work"] == "Explain mmap in one line"


@pytest.mark.parametrize("shell", SHELLS)
def test_show_completion(run_cli: Run, shell: str) -> None:
    result = run_cli("--show-completion", shell, env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert result.returncode == 0, result.stderr
    assert f"_LLMCLI_COMPLETE=complete_{shell}" in result.stdout


def test_install_completion_bash(run_cli: Run, tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    result = run_cli("--install-completion", "bash", env=env)
    assert result.returncode == 0, result.stderr
    script = tmp_path / ".bash_completions" / "llmcli.sh"
    assert "_LLMCLI_COMPLETE=complete_bash" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_in_bash(run_cli: Run, cli_env: dict[str, str]) -> None:
    """The installed script, in a real bash: what Tab would offer after `llmcli models r`."""
    script = run_cli("--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    probe = 'COMP_WORDS=(llmcli models r); COMP_CWORD=2; _llmcli_completion llmcli; echo "${COMPREPLY[@]}"'
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script.stdout + "\n" + probe],
        capture_output=True,
        text=True,
        env={**cli_env, "PATH": f"{LLMCLI.parent}:{cli_env.get('PATH', '')}"},
        timeout=60,
    )
    assert result.stdout.split() == ["rm"], result.stderr

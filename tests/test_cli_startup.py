"""Start-up: `llmcli --help` lists every command without importing one; each loads when it runs."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable

import pytest
import typer

from llmcli.cli.app import COMMANDS, DeferredCommand, app

Run = Callable[..., subprocess.CompletedProcess[str]]

COMMAND_MODULES = sorted({module for module, _ in COMMANDS.values()})
# What a command that loads no model must not pay for either.
HEAVY = {"llmcli.models.registry", "llmcli.models.store", "llmcli.engine", "llmcli.chat.conversation"}


def imported_by(args: list[str], env: dict[str, str]) -> set[str]:
    """The llmcli modules a fresh interpreter has imported once the CLI has run with args."""
    code = (
        "import sys\n"
        "from llmcli.cli.app import run\n"
        "try:\n"
        "    run(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('MODULES', *sorted(m for m in sys.modules if m.startswith('llmcli')), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=60
    )
    line = next(x for x in result.stderr.splitlines() if x.startswith("MODULES"))
    return set(line.split()[1:])


def all_loaded() -> typer.core.TyperGroup:
    """The root group with every command module imported: every command real, none deferred."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return group


def test_help_imports_no_command(cli_env: dict[str, str]) -> None:
    loaded = imported_by(["--help"], cli_env)
    assert "llmcli.cli.app" in loaded
    assert not loaded & (set(COMMAND_MODULES) | HEAVY | {"llmcli.cli.options"})


def test_a_command_imports_only_its_module(cli_env: dict[str, str]) -> None:
    loaded = imported_by(["models", "--help"], cli_env)
    assert loaded & set(COMMAND_MODULES) == {"llmcli.cli.models"}
    assert not loaded & HEAVY


def test_completing_command_names_imports_no_command(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "_LLMCLI_COMPLETE": "complete_bash", "COMP_WORDS": "llmcli ", "COMP_CWORD": "1"}
    assert not imported_by([], env) & (set(COMMAND_MODULES) | HEAVY)


def test_table_matches_the_registrations() -> None:
    """COMMANDS names every command each module registers, in the module that registers it."""
    all_loaded()
    registered = {
        c.name or typer.main.get_command_name(c.callback.__name__): c.callback.__module__
        for c in app.registered_commands
        if c.callback
    }
    for g in app.registered_groups:
        assert g.name and g.typer_instance
        registered[g.name] = g.typer_instance.registered_commands[0].callback.__module__
    assert registered == {name: module for name, (module, _) in COMMANDS.items()}


@pytest.mark.parametrize("limit", [30, 45, 74, 500])
def test_listed_help_is_the_commands_own(limit: int) -> None:
    for name, command in all_loaded().commands.items():
        module, summary = COMMANDS[name]
        assert not isinstance(command, DeferredCommand)
        listed = DeferredCommand(name, module, summary).get_short_help_str(limit)
        assert listed == command.get_short_help_str(limit), name


def test_help_lists_every_command(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    group = all_loaded()
    eager = group.get_help(group.context_class(group, info_name="llmcli", **group.context_settings))
    result = run_cli("--help", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == eager + "\n"
    listing = result.stdout.split("Commands:\n", 1)[1]
    assert [line.split()[0] for line in listing.splitlines()] == list(COMMANDS)
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


def every_command() -> list[list[str]]:
    paths = []
    for name, command in all_loaded().commands.items():
        paths.append([name])
        if isinstance(command, typer.core.TyperGroup):
            paths += [[name, sub] for sub in command.commands]
    return paths


@pytest.mark.parametrize("path", every_command(), ids=" ".join)
def test_every_command_has_help(run_cli: Run, path: list[str]) -> None:
    result = run_cli(*path, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: llmcli {' '.join(path)} ")
    assert result.stderr == ""


def test_unknown_command_suggests_a_name(run_cli: Run) -> None:
    result = run_cli("compelte")
    assert result.returncode == 2
    assert result.stderr == (
        "error: No such command 'compelte'. Did you mean 'complete'? (see `llmcli --help`)\n"
    )


def test_python_dash_m_runs_a_deferred_command(cli_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmcli", "sessions", "list", "--json"],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"

"""The Typer app, its root options, and the entry point that maps every failure to an exit code.

Commands are loaded lazily: `llmcli --help` and shell completion of command names read COMMANDS,
and a command's module is imported (and its click command built) only when that command runs.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from llmcli import __version__
from llmcli.errors import ExitCode, LlmcliError, OutputClosed

if TYPE_CHECKING:
    # Typer vendors click: its classes are named only there.
    from typer._click import Command, Context

    from llmcli.ui.environment import Environment

# Every command and sub-group, in `--help` order: the module that registers it on `app`, and the
# first sentence of its help, which is all the listing and completion show (tests/test_cli_startup.py
# checks both against the registrations).
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": (
        "llmcli.cli.bench",
        "Measure prompt and generation tokens/s (llama-bench's pp and tg), time to first token and "
        "peak memory.",
    ),
    "chat": ("llmcli.cli.chat", "Chat with a model in the terminal; /help lists the commands."),
    "complete": ("llmcli.cli.complete", "Continue a prompt and stream the text to stdout."),
    "info": (
        "llmcli.cli.complete",
        "Show what the installed llama.cpp build can do here: GPU offload, CPU features, kernels, AMX.",
    ),
    "perplexity": (
        "llmcli.cli.evaluate",
        "Perplexity of one or more models on a text file, windowed exactly like llama.cpp's "
        "llama-perplexity.",
    ),
    "summarize": (
        "llmcli.cli.summarize",
        "Summarize documents of any length (map-reduce over chunks when they exceed the context).",
    ),
    "translate": (
        "llmcli.cli.translate",
        "Translate text or documents, keeping paragraphs, line breaks, Markdown and code blocks exactly.",
    ),
    "sessions": ("llmcli.cli.chat", "List, show, export and remove saved chat sessions."),
    "extract": (
        "llmcli.cli.extract",
        "Turn documents into JSON records under a schema, one per document, resumable.",
    ),
    "eval": (
        "llmcli.cli.evaluate",
        "Score models on your own data: ROUGE for summaries, BLEU and chrF for translations.",
    ),
    "models": ("llmcli.cli.models", "List, download, inspect and remove models."),
}

# Shared by `app` and the one-command apps a deferred command is built from, so both render alike.
_TYPER_SETTINGS: dict[str, Any] = {
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,  # plain help: rich rendering would triple `--help` start-up time
}


def build_command(name: str) -> Command:
    """The click command (or group) for name, from what its already imported module registered."""
    single = typer.Typer(add_completion=False, **_TYPER_SETTINGS)
    single.registered_groups = [g for g in app.registered_groups if g.name == name]
    if single.registered_groups:
        return typer.main.get_group(single).commands[name]
    single.registered_commands = [
        c
        for c in app.registered_commands
        if c.callback and (c.name or typer.main.get_command_name(c.callback.__name__)) == name
    ]
    if not single.registered_commands:
        raise LookupError(f"{COMMANDS[name][0]} registers no command {name!r}")
    return typer.main.get_command(single)


class DeferredCommand(TyperCommand):
    """A command known by its name and first sentence of help until it runs (or completes)."""

    def __init__(self, name: str, module: str, summary: str) -> None:
        super().__init__(name=name, help=summary)
        self.module = module
        self._loaded: Command | None = None

    def load(self) -> Command:
        """Import the command's module and build the real command, once."""
        if self._loaded is None:
            importlib.import_module(self.module)
            self._loaded = build_command(self.name or "")
        return self._loaded

    def make_context(
        self, info_name: str | None, args: list[str], parent: Context | None = None, **extra: Any
    ) -> Context:
        # Click runs, shows help for and completes a subcommand through the context made here.
        return self.load().make_context(info_name, args, parent=parent, **extra)


class LazyGroup(TyperGroup):
    """The root group: every command of COMMANDS, deferred unless its module is already imported."""

    def __init__(self, *, commands: Mapping[str, Command] | None = None, **attrs: Any) -> None:
        deferred: dict[str, Command] = {
            name: DeferredCommand(name, module, summary) for name, (module, summary) in COMMANDS.items()
        }
        super().__init__(commands={**deferred, **(commands or {})}, **attrs)


app = typer.Typer(
    name="llmcli",
    help="Run quantized GGUF language models locally: complete, chat, summarize, translate.",
    cls=LazyGroup,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    **_TYPER_SETTINGS,
)


def _version(value: bool) -> None:
    if value:
        print(f"llmcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks on errors. [env: LLMCLI_DEBUG=1]")
    ] = False,
) -> None:
    if debug:
        os.environ["LLMCLI_DEBUG"] = "1"
    if ctx.obj is None:  # given by run, or by a test's CliRunner().invoke(app, ..., obj=env)
        from llmcli.ui.environment import Environment

        ctx.obj = Environment.from_system()


# --- entry point -------------------------------------------------------------------------------


def _quiet_stdout() -> None:
    """After the reader of stdout went away: point stdout at /dev/null so exit does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


_NO_MODEL = {"-h", "--help", "--version"}


def main(argv: list[str] | None = None) -> None:
    """Run the app, turning every failure into one line on stderr and an exit code.

    The installed command (argv None) runs under crash supervision, except for help and version,
    which load no model and must start fast.
    """
    args = sys.argv[1:] if argv is None else argv
    if (
        argv is None
        and args
        and not _NO_MODEL.intersection(args)
        and not os.environ.get("LLMCLI_NO_SUPERVISE")
    ):
        from llmcli.engine.crash import supervise

        supervise()
    sys.exit(run(argv))


def run(argv: list[str] | None, env: Environment | None = None) -> int:
    """The app's exit code; every failure becomes one line on stderr.

    env: the streams and variables every command uses (the process's own when None).
    """
    from llmcli.ui.environment import Environment

    env = env or Environment.from_system()
    # Typer may vendor its own click: find its usage-error class through a public name.
    usage_error: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    debug = bool(env.environ.get("LLMCLI_DEBUG")) or "--debug" in (argv or sys.argv)
    code: int = ExitCode.OK
    try:
        result = app(args=argv, standalone_mode=False, prog_name="llmcli", obj=env)
        code = result if isinstance(result, int) else ExitCode.OK
    except usage_error as exc:
        ctx = getattr(exc, "ctx", None)
        cmd = ctx.command_path if ctx else "llmcli"
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            sys.stdout.write(ctx.get_help() + "\n")  # `llmcli`, `llmcli models`: the help, as asked
        else:
            message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
            env.stderr.write(f"error: {message} (see `{cmd} --help`)\n")
        code = ExitCode.USAGE
    except typer.Abort:
        code = ExitCode.INTERRUPTED
    except OutputClosed as exc:
        _quiet_stdout()
        code = exc.exit_code
    except LlmcliError as exc:
        if debug:
            raise
        from llmcli.ui.render import error_line

        env.stderr.write(error_line(exc) + "\n")
        code = exc.exit_code
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    except OSError as exc:
        if debug:
            raise
        env.stderr.write(
            f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "") + "\n"
        )
        code = ExitCode.ERROR
    return code

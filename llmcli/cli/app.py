"""The Typer app, its root options, and the entry point that maps every failure to an exit code."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from llmcli import __version__
from llmcli.errors import ExitCode, LlmcliError, OutputClosed

app = typer.Typer(
    name="llmcli",
    help="Run quantized GGUF language models locally: complete, chat, summarize, translate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich rendering would triple `--help` start-up time
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"llmcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks on errors. [env: LLMCLI_DEBUG=1]")
    ] = False,
) -> None:
    if debug:
        os.environ["LLMCLI_DEBUG"] = "1"


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
        from llmcli.crash import supervise

        supervise()
    sys.exit(_run(argv))


def _run(argv: list[str] | None) -> int:
    """The app's exit code; every failure becomes one line on stderr."""
    # Typer may vendor its own click: find its usage-error class through a public name.
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    debug = bool(os.environ.get("LLMCLI_DEBUG")) or "--debug" in (argv or sys.argv)
    code: int = ExitCode.OK
    try:
        result = app(args=argv, standalone_mode=False, prog_name="llmcli")
        code = result if isinstance(result, int) else ExitCode.OK
    except usage_error as exc:
        ctx = getattr(exc, "ctx", None)
        cmd = ctx.command_path if ctx else "llmcli"
        message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
        if message:  # empty when help was shown instead (`llmcli` with no command)
            sys.stderr.write(f"error: {message} (see `{cmd} --help`)\n")
        code = ExitCode.USAGE
    except typer.Abort:
        code = ExitCode.INTERRUPTED
    except OutputClosed as exc:
        _quiet_stdout()
        code = exc.exit_code
    except LlmcliError as exc:
        if debug:
            raise
        from llmcli.render import error_line

        sys.stderr.write(error_line(exc) + "\n")
        code = exc.exit_code
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    except OSError as exc:
        if debug:
            raise
        sys.stderr.write(
            f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "") + "\n"
        )
        code = ExitCode.ERROR
    return code

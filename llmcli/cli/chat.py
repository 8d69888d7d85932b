"""`chat` and `llmcli sessions ...`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli.app import app
from llmcli.cli.options import (
    SAMPLING_HELP,
    Files,
    InteractiveLoad,
    ModelOptions,
    Omit,
    RuntimeOptions,
    SamplingOptions,
    StructuredOptions,
    ThinkingOptions,
    Verbose,
    complete_session,
    inject,
)
from llmcli.ui.environment import Environment

if TYPE_CHECKING:
    from llmcli.chat.sessions import SessionStore
    from llmcli.chat.templates import ChatTemplate

sessions_app = typer.Typer(help="List, show, export and remove saved chat sessions.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")

SessionName = Annotated[
    str, typer.Argument(help="Session name.", show_default=False, autocompletion=complete_session)
]


@app.command(epilog=SAMPLING_HELP)
@inject
def chat(
    *,
    env: Environment,
    model: ModelOptions,
    system: Annotated[str | None, typer.Option("--system", help="System prompt.", show_default=False)] = None,
    system_file: Annotated[
        Path | None,
        typer.Option("--system-file", help="Read the system prompt from a file.", show_default=False),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(
            "--session",
            help="Resume (or start) the session NAME.",
            show_default=False,
            autocompletion=complete_session,
        ),
    ] = None,
    file: Files = None,
    runtime: RuntimeOptions,
    sampling: Annotated[SamplingOptions, Omit("ignore_eos")],
    thinking: ThinkingOptions,
    structured: StructuredOptions,
    stats: Annotated[
        bool, typer.Option("--stats/--no-stats", help="A dim footer with tokens and speed.")
    ] = True,
    plain: Annotated[bool, typer.Option("--plain", help="Raw text instead of rendered Markdown.")] = False,
    load: InteractiveLoad,
    verbose: Verbose = False,
) -> None:
    """Chat with a model in the terminal; /help lists the commands.

    Every conversation is saved after each turn (see `llmcli sessions`). With stdin not a
    terminal, all of stdin is one message: the answer goes to stdout and chat exits. -f files
    go before that message (`-f -`: stdin is a file), or before the first one typed in the REPL.
    A thinking model's thinking streams dimmed on stderr above the answer (never on stdout) and is
    saved with it; /think switches it.
    """
    from dataclasses import replace

    from llmcli.chat.conversation import Chat
    from llmcli.chat.sessions import SessionRecord, SessionStore
    from llmcli.config import Paths
    from llmcli.errors import ContextOverflowError, UsageError
    from llmcli.tasks.complete import count_tokens, files_overflow, read_files, read_note, with_files
    from llmcli.ui.render import PlainScreen, PromptMeter, chat_screen, note, thinking_note
    from llmcli.ui.repl import Repl

    config = sampling.config()
    settings = model.settings(runtime, env.environ)
    think = thinking.resolve(env.environ)
    constraint = structured.constraint()
    if system is not None and system_file is not None:
        raise UsageError("give --system or --system-file, not both")
    if system_file is not None:
        try:
            system = system_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the system prompt file {system_file}: {exc}") from None
    names = [str(p) for p in file or ()]
    if "-" in names and env.stdin_isatty:
        raise UsageError("-f - reads stdin, but stdin is the terminal", hint="pipe the file in")
    files = read_files(names, stdin=env.stdin.read)
    piped = None if env.stdin_isatty else "" if "-" in names else env.read_stdin()
    if piped is not None and not piped.strip() and not files:
        raise UsageError(
            "stdin is empty: nothing to say", hint="pipe a message in, or run chat in a terminal"
        )

    paths = Paths.from_env(env.environ)
    store = SessionStore(paths.data_dir / "sessions")
    record = (
        store.load(session)
        if session and store.exists(session)
        else SessionRecord(session or SessionStore.new_name())
    )
    if system is not None:
        record.system = system or None

    loaded = load.load(env, settings, verbose=verbose, meter=PromptMeter(env))
    record.model = loaded.name
    config = replace(config, stop=config.stop + loaded.stop_strings(), constraint=constraint)
    conversation = Chat(
        loaded.engine, loaded.chat_template(), config, system=record.system, messages=record.messages
    )
    conversation.think, conversation.reasoning_budget = think.mode, think.budget
    conversation.lookup = load.lookup()
    thinks = conversation.template.think_format is not None or conversation.engine.takes_messages
    if said := thinking_note(thinking.asked, thinks):
        note(env, said)
    try:
        if piped is not None:
            files = count_tokens(conversation.engine, files)
            for f in files:
                note(env, read_note(f))
            try:
                PlainScreen(env, hide_thinking=thinking.hide_thinking).answer(
                    conversation.ask(with_files(files, piped.strip()))
                )
            except ContextOverflowError as exc:
                if not files:
                    raise
                raise files_overflow(exc, files) from None
            if session:
                record.messages = conversation.messages
                store.save(record)
            return

        def load_other(ref: str) -> tuple[Any, ChatTemplate, str]:
            other = load.load(env, settings.merged(model=ref), verbose=verbose)
            return other.engine, other.chat_template(), other.name

        history = None if env.environ.get("LLMCLI_NO_HISTORY") else paths.data_dir / "history"
        screen = chat_screen(env, plain, hide_thinking=thinking.hide_thinking)
        screen.dim(f"{loaded.name} · session {record.name} · /help for commands, Ctrl-D to leave")
        repl = Repl(
            conversation, screen, store, record, load_model=load_other, history=history, show_stats=stats
        )
        repl.attach(files)
        repl.run()
    finally:
        conversation.engine.close()


def _sessions(env: Environment) -> SessionStore:
    from llmcli.chat.sessions import SessionStore
    from llmcli.config import Paths

    return SessionStore(Paths.from_env(env.environ).data_dir / "sessions")


@sessions_app.command("list")
@inject
def sessions_list(
    *, env: Environment, json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Saved sessions, newest first."""
    import time

    records = _sessions(env).list()
    if json_out:
        env.write(
            json.dumps(
                [
                    {"name": r.name, "model": r.model, "messages": len(r.messages), "updated": r.updated}
                    for r in records
                ],
                ensure_ascii=False,
            )
            + "\n"
        )
        return
    for r in records:
        first = next((m["content"] for m in r.messages if m["role"] == "user"), "")
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.updated))
        env.write(f"{r.name:<24} {when}  {len(r.messages):>3} msgs  {first[:50].replace(chr(10), ' ')}\n")


@sessions_app.command("show")
@inject
def sessions_show(*, env: Environment, name: SessionName) -> None:
    """Print a session as a Markdown transcript."""
    from llmcli.chat.sessions import to_markdown

    env.write(to_markdown(_sessions(env).load(name)))


@sessions_app.command("export")
@inject
def sessions_export(
    *,
    env: Environment,
    name: SessionName,
    format: Annotated[str, typer.Option("--format", help="md or json.")] = "md",
) -> None:
    """Print a session as Markdown or JSON (redirect to a file to keep it)."""
    from dataclasses import asdict

    from llmcli.chat.sessions import to_markdown
    from llmcli.errors import UsageError

    if format not in ("md", "json"):
        raise UsageError(f"--format must be md or json, got {format!r}")
    record = _sessions(env).load(name)
    text = to_markdown(record) if format == "md" else json.dumps(asdict(record), ensure_ascii=False, indent=2)
    env.write(text + "\n")


@sessions_app.command("rm")
@inject
def sessions_rm(*, env: Environment, name: SessionName) -> None:
    """Delete a saved session."""
    from llmcli.ui.render import note

    _sessions(env).remove(name)
    note(env, f"removed session {name}")

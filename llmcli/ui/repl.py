"""The interactive chat loop: prompt-toolkit input, slash commands, streamed answers, autosave."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llmcli.chat.conversation import Chat, with_sampling
from llmcli.chat.sessions import SessionRecord, SessionStore, to_markdown
from llmcli.chat.templates import ChatTemplate
from llmcli.errors import ContextOverflowError, LlmcliError, UsageError
from llmcli.fsutil import atomic_write_text
from llmcli.reasoning import Thinking
from llmcli.tasks.complete import FileText, count_tokens, files_overflow, read_files, read_note, with_files
from llmcli.ui.render import stats_line


class Screen(Protocol):
    """Where the REPL shows things (a rich terminal, or plain text for tests and pipes)."""

    def answer(self, pieces: Any) -> str: ...  # stream an answer; return what was shown

    def info(self, text: str) -> None: ...  # a normal line for the user

    def dim(self, text: str) -> None: ...  # a quiet line (footers, notes)

    def error(self, text: str) -> None: ...


@dataclass(frozen=True)
class SlashCommand:
    """One slash command: drives /help and tab completion."""

    name: str
    usage: str
    help: str


COMMANDS = [
    SlashCommand("/help", "/help", "show this help"),
    SlashCommand("/exit", "/exit", "leave (Ctrl-D does too)"),
    SlashCommand("/clear", "/clear", "start a new conversation"),
    SlashCommand("/system", "/system TEXT", "set the system prompt"),
    SlashCommand(
        "/set",
        "/set NAME VALUE | /set greedy",
        "change sampling: temperature, top-k, top-p, min-p, max-tokens, seed, repeat-penalty, "
        "reasoning-budget (none: no limit)",
    ),
    SlashCommand(
        "/think",
        "/think on|off|auto",
        "a thinking model thinks first, answers at once, or follows its template",
    ),
    SlashCommand("/show", "/show", "model, sampling and context use"),
    SlashCommand("/undo", "/undo", "drop the last exchange"),
    SlashCommand("/retry", "/retry", "answer the last message again"),
    SlashCommand("/save", "/save [NAME]", "save the session (under a new name)"),
    SlashCommand("/load", "/load NAME", "load a saved session"),
    SlashCommand("/export", "/export FILE.md", "write the conversation as Markdown"),
    SlashCommand("/model", "/model REF", "switch model, keep the conversation"),
    SlashCommand("/stats", "/stats", "tokens and speed of the last answer"),
    SlashCommand("/context", "/context", "tokens used and left"),
    SlashCommand(
        "/read", "/read PATH...", "add files (text, Markdown, HTML, PDF; globs) to the next message"
    ),
]

ModelLoader = Callable[[str], tuple[Any, ChatTemplate, str]]  # ref -> (engine, template, model name)


@contextmanager
def _typeahead(source: Any) -> Iterator[None]:
    """Between prompts: typed keys are not echoed into an answer, and go to the next prompts as type-ahead.

    Only when `source` (the prompt's input) is a terminal; otherwise nothing changes. The prompts
    themselves run in prompt_toolkit's raw mode, which restores this one after each.
    """
    try:
        import termios
    except ImportError:  # not POSIX: the terminal keeps its mode
        yield
        return
    try:
        fd = source.fileno()
        saved = termios.tcgetattr(fd) if os.isatty(fd) else None
    except (AttributeError, NotImplementedError, OSError, ValueError, termios.error):
        saved = None
    if saved is None:
        yield
        return
    quiet = termios.tcgetattr(fd)
    # Enter must stay \r (accept) rather than become \n (Ctrl-J adds a line); ISIG stays so Ctrl-C is still
    # SIGINT, and NOFLSH keeps the type-ahead (and the answer's unwritten output) when it comes.
    quiet[0] &= ~(termios.ICRNL | termios.INLCR | termios.IGNCR)
    quiet[3] = (quiet[3] & ~(termios.ECHO | termios.ICANON | termios.IEXTEN)) | termios.NOFLSH
    quiet[6][termios.VMIN], quiet[6][termios.VTIME] = 1, 0
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        try:
            _keep_typed(source, fd)
        finally:
            with suppress(termios.error):  # the terminal is gone: nothing left to restore
                termios.tcsetattr(fd, termios.TCSANOW, saved)


def _keep_typed(source: Any, fd: int) -> None:
    """Read what was typed (without blocking) and queue it for the next prompt_toolkit prompts."""
    import select

    from prompt_toolkit.input.typeahead import store_typeahead
    from prompt_toolkit.keys import Keys

    keys: list[Any] = []
    try:
        while not source.closed and select.select([fd], [], [], 0)[0]:
            keys += source.read_keys()
        keys += source.flush_keys()
    except OSError:
        pass
    # A late cursor-position report belongs to the previous prompt's screen, not to the next one.
    store_typeahead(source, [k for k in keys if k.key != Keys.CPRResponse])


class Repl:
    """Reads messages and commands until /exit or Ctrl-D; saves the session after every turn."""

    def __init__(
        self,
        chat: Chat,
        screen: Screen,
        store: SessionStore,
        record: SessionRecord,
        *,
        load_model: ModelLoader,
        history: Path | None = None,
        show_stats: bool = True,
        input: Any = None,
        output: Any = None,
    ) -> None:
        self.chat, self.screen, self.store, self.record = chat, screen, store, record
        self.load_model = load_model
        self.show_stats = show_stats
        self._files: list[FileText] = []  # /read files waiting for the next message
        self._session = self._prompt_session(history, input, output)

    def _prompt_session(self, history: Path | None, input: Any, output: Any) -> Any:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.completion import WordCompleter
        from prompt_toolkit.history import FileHistory, InMemoryHistory
        from prompt_toolkit.key_binding import KeyBindings

        keys = KeyBindings()

        @keys.add("escape", "enter")
        @keys.add("c-j")
        def _newline(event: Any) -> None:
            event.current_buffer.insert_text("\n")

        if history is not None:
            history.parent.mkdir(parents=True, exist_ok=True)
        return PromptSession(
            history=FileHistory(str(history)) if history else InMemoryHistory(),
            completer=WordCompleter([c.name for c in COMMANDS], sentence=True),
            key_bindings=keys,
            input=input,
            output=output,
        )

    def _read(self) -> str:
        text: str = self._session.prompt(">>> ")
        if text.strip().startswith('"""'):  # a multi-line block, closed by a line ending in """
            lines = [text.strip()[3:]]
            while not (lines[-1].rstrip().endswith('"""') and (len(lines) > 1 or lines[0].strip())):
                lines.append(self._session.prompt("... "))
            text = "\n".join(lines).rstrip()[:-3]
        return text.strip()

    def run(self) -> None:
        """The loop. Ctrl-C at the prompt clears the line; Ctrl-D leaves.

        Between prompts (an answer streaming, a command running, the session being saved) the terminal
        stays quiet, so keys typed then are neither echoed nor changed (Enter kept as Enter) and reach
        the next prompt as typed: restoring it after each answer would leave a gap where they are.
        """
        with _typeahead(self._session.app.input):
            self._loop()

    def _loop(self) -> None:
        while True:
            try:
                text = self._read()
            except KeyboardInterrupt:
                continue
            except EOFError:
                return
            if not text:
                continue
            try:
                if text.startswith("/"):
                    if self._command(text) == "exit":
                        return
                else:
                    self._send(text)
            except LlmcliError as exc:
                self.screen.error(exc.message + (f" ({exc.hint})" if exc.hint else ""))

    def _stream(self, pieces: Any) -> None:
        try:
            self.screen.answer(pieces)
        except KeyboardInterrupt:
            self.screen.dim("(stopped)")
        finally:
            pieces.close()
        turn = self.chat.turn
        if turn is None:
            return
        if turn.dropped:
            self.screen.dim(
                f"(dropped the {turn.dropped} oldest exchange{'s' if turn.dropped > 1 else ''} "
                "to fit the context)"
            )
        if self.show_stats:
            stats = turn.completion.stats
            thinking = f" ({stats.reasoning_tokens} thinking)" if stats.reasoning_tokens else ""
            self.screen.dim(f"{stats.generated_tokens} tokens{thinking} · {stats.decode_tps:.1f} t/s")
        self.save()

    def save(self) -> None:
        """Write the session file (atomically)."""
        self.record.system = self.chat.system
        self.record.messages = list(self.chat.messages)
        self.store.save(self.record)

    # --- slash commands

    def _command(self, line: str) -> str | None:
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        handler = getattr(self, "_cmd_" + name[1:].replace("-", "_"), None)
        if handler is None or name not in {c.name for c in COMMANDS}:
            raise UsageError(f"unknown command {name}", hint="see /help")
        result: str | None = handler(arg)
        return result

    def _cmd_help(self, _arg: str) -> None:
        width = max(len(c.usage) for c in COMMANDS)
        lines = [f"{c.usage:<{width}}  {c.help}" for c in COMMANDS]
        lines.append(
            'Enter sends; Alt-Enter or Ctrl-J adds a line; a """ block spans lines; Ctrl-C stops an '
            "answer; Ctrl-D leaves."
        )
        self.screen.info("\n".join(lines))

    def _cmd_exit(self, _arg: str) -> str:
        return "exit"

    def _cmd_clear(self, _arg: str) -> None:
        self.chat.clear()
        self.record = SessionRecord(SessionStore.new_name(), model=self.record.model, system=self.chat.system)
        self.screen.dim(f"new conversation ({self.record.name})")

    def _cmd_system(self, arg: str) -> None:
        self.chat.system = arg or None
        self.screen.dim("system prompt set" if arg else "system prompt cleared")
        self.save()

    def _cmd_think(self, arg: str) -> None:
        thinking = Thinking.parse(arg, self.chat.reasoning_budget)
        self.chat.think = thinking.mode
        self.screen.dim(f"thinking: {self._thinking()}")

    def _thinking(self) -> str:
        if self.chat.template.think_format is None and not self.chat.engine.capabilities.messages:
            return f"{self.chat.think} (this model's template shows no thinking)"
        budget = self.chat.reasoning_budget
        return self.chat.think + (f", at most {budget:,} tokens" if budget is not None else "")

    def _cmd_set(self, arg: str) -> None:
        parts = arg.split(maxsplit=1)
        if not parts:
            raise UsageError("usage: /set NAME VALUE or /set greedy")
        if parts[0] == "reasoning-budget":
            value = parts[1].strip() if len(parts) > 1 else ""
            if not value.isdigit() and value != "none":
                raise UsageError(f"reasoning-budget needs a whole number or none, got {value!r}")
            self.chat.reasoning_budget = None if value == "none" else int(value)
            self.screen.dim(f"thinking: {self._thinking()}")
            return
        self.chat.sampling = with_sampling(self.chat.sampling, parts[0], parts[1] if len(parts) > 1 else "")
        self.screen.dim(f"sampling: {self.chat.sampling.describe()}")

    def _cmd_show(self, _arg: str) -> None:
        used, total = self.chat.used_tokens(), self.chat.engine.n_ctx
        self.screen.info(
            f"model     {self.record.model}\nsampling  {self.chat.sampling.describe()}\n"
            f"thinking  {self._thinking()}\n"
            f"template  {self.chat.template.label}\ncontext   {used:,} / {total:,} tokens\n"
            f"session   {self.record.name}"
        )

    def _cmd_context(self, _arg: str) -> None:
        used, total = self.chat.used_tokens(), self.chat.engine.n_ctx
        dropped = self.chat.first_kept
        note = f" ({dropped} oldest messages no longer fit)" if dropped else ""
        per_1k = self.chat.engine.kv_cache_bytes(1024)
        kv = f"; KV cache {per_1k / 2**20:,.1f} MiB per 1,024 tokens" if per_1k else ""
        self.screen.info(f"{used:,} tokens used, {total - used:,} left of {total:,}{note}{kv}")

    def _cmd_stats(self, _arg: str) -> None:
        if self.chat.last is None:
            raise UsageError("no answer yet")
        self.screen.info(stats_line(self.chat.last.stats))

    def _cmd_undo(self, _arg: str) -> None:
        if not self.chat.undo():
            raise UsageError("nothing to undo")
        self.screen.dim("dropped the last exchange")
        self.save()

    def _cmd_retry(self, _arg: str) -> None:
        self._stream(self.chat.retry())

    def _cmd_save(self, arg: str) -> None:
        if arg:
            self.store.path(arg)  # validates the name
            self.record.name = arg
        self.save()
        self.screen.dim(f"saved as {self.record.name}")

    def _cmd_load(self, arg: str) -> None:
        if not arg:
            raise UsageError("usage: /load NAME")
        record = self.store.load(arg)
        self.record = record
        self.chat.clear()
        self.chat.system = record.system
        self.chat.messages = list(record.messages)
        self.screen.dim(f"loaded {record.name} ({len(record.messages)} messages)")

    def _cmd_export(self, arg: str) -> None:
        if not arg:
            raise UsageError("usage: /export FILE.md")
        self.save()
        path = Path(shlex.split(arg)[0]).expanduser()
        atomic_write_text(path, to_markdown(self.record))
        self.screen.dim(f"wrote {path}")

    def _cmd_model(self, arg: str) -> None:
        if not arg:
            raise UsageError("usage: /model REF")
        engine, template, name = self.load_model(arg)
        old = self.chat.engine
        self.chat.set_engine(engine, template)
        old.close()
        self.record.model = name
        self.screen.dim(f"switched to {name}")

    def _cmd_read(self, arg: str) -> None:
        try:
            paths = [os.path.expanduser(p) for p in shlex.split(arg)]
        except ValueError as exc:
            raise UsageError(f"/read {arg}: {exc}") from None
        if not paths:
            raise UsageError(
                "usage: /read PATH...", hint="a glob reads each file it matches, e.g. notes/*.md"
            )
        self.attach(read_files(paths))

    # --- files for the next message (/read, chat -f)

    def attach(self, files: list[FileText]) -> None:
        """Add files to the next message (each once), saying what each takes."""
        pending = {f.name for f in self._files}
        new = count_tokens(self.chat.engine, [f for f in files if f.name not in pending])
        for f in new:
            self.screen.dim(read_note(f))
        self._files += new
        if new:
            n, total = len(self._files), sum(f.tokens for f in self._files)
            self.screen.dim(
                f"{n} file{'s' if n > 1 else ''} ({total:,} tokens) will go with your next message"
            )

    def _send(self, text: str) -> None:
        """Send a message, the files read for it first; a message that overflows drops them."""
        files, self._files = self._files, []
        try:
            self._stream(self.chat.ask(with_files(files, text)))
        except ContextOverflowError as exc:
            if not files:
                raise
            raise files_overflow(
                exc, files, hint="the files were dropped: /read fewer or smaller ones"
            ) from None

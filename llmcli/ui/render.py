"""Presentation on stderr: errors, stats footers and notes. Pure text; styled only on a color terminal."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterator
from typing import Any

from llmcli.engine import Completion, Stats
from llmcli.engine.hardware import CpuReport
from llmcli.errors import LlmcliError
from llmcli.reasoning import Thought
from llmcli.ui.environment import Environment

DIM, RED, RESET = "\x1b[2m", "\x1b[31m", "\x1b[0m"


def error_line(err: LlmcliError) -> str:
    """One line: the problem, then what to do about it."""
    return f"error: {err.message}" + (f" ({err.hint})" if err.hint else "")


def stats_line(stats: Stats) -> str:
    """A one-line summary of a generation's speed."""
    evaluated = stats.prompt_tokens - stats.cached_tokens
    prompt = f"prompt {stats.prompt_tokens} tokens"
    if stats.cached_tokens:
        prompt += f" ({stats.cached_tokens} cached)"
    if evaluated and stats.prompt_ms:
        prompt += f", {stats.prompt_tps:.1f} t/s"
    generated = f"generated {stats.generated_tokens} tokens, {stats.decode_tps:.1f} t/s"
    if stats.reasoning_tokens:
        answer = stats.generated_tokens - stats.reasoning_tokens
        generated += f" ({stats.reasoning_tokens} thinking, {answer} answer)"
    first = f"first token {stats.ttft_ms:.0f} ms"
    # A server that reports no usage leaves the prompt uncounted: better unsaid than "0 tokens".
    return " · ".join([prompt, generated, first] if stats.prompt_tokens else [generated, first])


def note(env: Environment, text: str, *, error: bool = False) -> None:
    """A line for the user on stderr (dim, or red for errors, on a color terminal)."""
    if env.color:
        text = f"{RED if error else DIM}{text}{RESET}"
    env.stderr.write(text + "\n")
    env.stderr.flush()


class ThoughtPrinter:
    """A thinking model's thinking on stderr, dimmed, while it streams: only on a terminal, unless hidden.

    Call it with each thought; `end()` closes the block with a blank line before the answer.
    """

    def __init__(self, env: Environment, *, hide: bool = False) -> None:
        self.env = env
        self.shown = not hide and env.stderr_isatty
        self._open = False

    def __call__(self, text: str) -> None:
        if not self.shown or not text:
            return
        self._open = True
        self.env.stderr.write(f"{DIM}{text}{RESET}" if self.env.color else text)
        self.env.stderr.flush()

    def end(self) -> None:
        if self._open:
            self._open = False
            self.env.stderr.write("\n\n")
            self.env.stderr.flush()


class PromptMeter:
    """How a long prompt's evaluation goes, on stderr: tokens done, rate and time left.

    On a terminal one line, redrawn (from a second in), and cleared at the end; elsewhere a line
    every ten seconds, so a log shows that work goes on.
    """

    def __init__(self, env: Environment, *, after: float = 1.0, every: float = 10.0) -> None:
        self.env = env
        self.after, self.every = after, every
        self._start: float | None = None
        self._shown = 0.0  # when a line was last written (0: never)

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._start is None or done <= 0:
            self._start = now
        elapsed = now - self._start
        tty = self.env.stderr_isatty
        if done >= total:
            if tty and self._shown:
                self.env.stderr.write("\r\x1b[K")
                self.env.stderr.flush()
            self._start, self._shown = None, 0.0
            return
        due = elapsed >= self.after if tty else (elapsed >= self.every and now - self._shown >= self.every)
        if not due or elapsed <= 0:
            return
        rate = done / elapsed
        left = (total - done) / rate if rate > 0 else 0.0
        line = f"prompt {done:,} / {total:,} tokens · {rate:,.0f} t/s · {_duration(left)} left"
        if tty:
            self.env.stderr.write(f"\r{DIM}{line}{RESET}\x1b[K" if self.env.color else f"\r{line}\x1b[K")
        else:
            self.env.stderr.write(line + "\n")
        self.env.stderr.flush()
        self._shown = now


def thinking_note(asked: bool, thinks: bool) -> str | None:
    """The note for --think or --reasoning-budget given to a model whose template shows no thinking."""
    if asked and not thinks:
        return "this model's chat template shows no thinking: --think and --reasoning-budget change nothing"
    return None


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02} s"


_AMX_VERDICTS = {
    "absent": "not on this CPU",
    "works": "works here (probed), in use",
    "faults": "advertised but faults here (probed): kept off, repacked kernels stay on",
    "refused": "advertised, but the kernel refuses it: not used",
    "untested": "advertised, but the probe could not run: kept off to be safe",
    "off": "off (LLMCLI_AMX=off)",
    "on": "on without probing (LLMCLI_AMX=on)",
}


def amx_verdict(cpu: CpuReport) -> str:
    """What the AMX probe found and what llmcli does about it."""
    text = _AMX_VERDICTS.get(cpu.amx, cpu.amx)
    if cpu.amx in ("faults", "untested", "off") and not cpu.amx_guarded:
        text += "; the guard could not be set, so all repacked kernels are off (slower)"
    return text


def finish_note(completion: Completion) -> str | None:
    """Why generation ended, when the user may not expect it."""
    if completion.finish_reason == "context":
        return "stopped: the context window is full (raise --ctx for longer output)"
    return None


class DownloadBar:
    """Download progress on stderr: a rich bar (size, speed, ETA) on a terminal, plain lines otherwise."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self._bar: Any = None
        self._task: Any = None
        self._name = ""

    def note(self, text: str) -> None:
        self.finish()
        note(self.env, text)

    def start(self, name: str, total: int, done: int) -> None:
        self.finish()
        self._name = name
        if not self.env.stderr_isatty:
            resumed = f", resuming at {done / 1e6:.0f} MB" if done else ""
            note(self.env, f"downloading {name} ({total / 1e6:.0f} MB{resumed})")
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(file=self.env.stderr, no_color=not self.env.color)
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(name, total=total, completed=done)

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            note(self.env, f"downloaded {self._name}")


class PlainScreen:
    """The chat screen for pipes, NO_COLOR and --plain: answers as raw text on stdout, notes on stderr."""

    def __init__(self, env: Environment, *, hide_thinking: bool = False) -> None:
        self.env = env
        self.thoughts = ThoughtPrinter(env, hide=hide_thinking)

    def answer(self, pieces: Any) -> str:
        """Stream an answer to stdout (a thinking model's thinking dimmed on stderr); return its text."""
        parts = []
        try:
            for piece in self._answer_only(pieces):
                parts.append(piece)
                self.env.write(piece)
        finally:
            if parts and not parts[-1].endswith("\n"):
                self.env.write("\n")
        return "".join(parts)

    def _answer_only(self, pieces: Any) -> Iterator[str]:
        """The answer's pieces; the thinking's go to the thought printer on the way."""
        for piece in pieces:
            if isinstance(piece, Thought):
                self.thoughts(piece)
            else:
                self.thoughts.end()
                yield piece

    def info(self, text: str) -> None:
        self.env.stderr.write(text + "\n")
        self.env.stderr.flush()

    def dim(self, text: str) -> None:
        note(self.env, text)

    def error(self, text: str) -> None:
        note(self.env, f"error: {text}", error=True)


class RichScreen(PlainScreen):
    """The chat screen on a terminal: answers rendered as Markdown while they stream."""

    def __init__(self, env: Environment, *, hide_thinking: bool = False) -> None:
        super().__init__(env, hide_thinking=hide_thinking)
        from rich.console import Console

        self.console = Console(highlight=False)

    def answer(self, pieces: Any) -> str:
        from llmcli.ui.mdstream import MarkdownStream

        with MarkdownStream(self.console) as stream:
            for piece in self._answer_only(pieces):
                stream.feed(piece)
        return stream.close()


def chat_screen(env: Environment, plain: bool, *, hide_thinking: bool = False) -> PlainScreen:
    """Rich Markdown on a color terminal, raw text otherwise."""
    rich_ok = env.stdout_isatty and not plain and not env.environ.get("NO_COLOR")
    return (RichScreen if rich_ok else PlainScreen)(env, hide_thinking=hide_thinking)


class BatchProgress:
    """Files done/total, the current file and ETA on stderr (a bar on a terminal, lines otherwise)."""

    def __init__(self, env: Environment, *, lines: bool = True) -> None:
        self.env = env
        self.lines = lines  # off the terminal: a line per item, or nothing (items too many to list)
        self._bar: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int, current: str) -> None:
        if not self.env.stderr_isatty:
            if current and self.lines:
                note(self.env, f"[{done + 1}/{total}] {current}")
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            console = Console(file=self.env.stderr, no_color=not self.env.color)
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("", total=total)
        self._bar.update(self._task, completed=done, description=current[-40:])

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _width(text: str) -> int:
    """Terminal columns of text: East Asian wide and fullwidth characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def markdown_table(rows: list[dict[str, str]], left: tuple[str, ...] = ("model",)) -> str:
    """A Markdown table laid out like llama-bench's: `left` columns left-aligned, the rest right."""
    heads = list(rows[0])
    widths = {h: max(_width(h), *(_width(r[h]) for r in rows)) for h in heads}

    def line(cells: dict[str, str]) -> str:
        pads = {h: " " * (widths[h] - _width(cells[h])) for h in heads}
        aligned = (cells[h] + pads[h] if h in left else pads[h] + cells[h] for h in heads)
        return "| " + " | ".join(aligned) + " |"

    rule = {h: "-" * widths[h] if h in left else "-" * (widths[h] - 1) + ":" for h in heads}
    return "\n".join([line({h: h for h in heads}), line(rule), *map(line, rows)])

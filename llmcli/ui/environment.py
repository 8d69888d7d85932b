"""The process's I/O environment, injected into commands so tests need not patch sys."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

from llmcli.errors import OutputClosed, UsageError


@dataclass
class Environment:
    """Standard streams, whether they are terminals, and the variables that change rendering."""

    stdin: BinaryIO
    stdout: BinaryIO
    stderr: TextIO
    stdin_isatty: bool
    stdout_isatty: bool
    stderr_isatty: bool
    environ: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_system(cls) -> Environment:
        return cls(
            stdin=sys.stdin.buffer if sys.stdin else open(os.devnull, "rb"),
            stdout=sys.stdout.buffer,
            stderr=sys.stderr,
            stdin_isatty=bool(sys.stdin) and sys.stdin.isatty(),
            stdout_isatty=sys.stdout.isatty(),
            stderr_isatty=sys.stderr.isatty(),
            environ=os.environ,
        )

    @property
    def color(self) -> bool:
        """Color and styles on stderr: only on a terminal, and never with NO_COLOR set."""
        return self.stderr_isatty and not self.environ.get("NO_COLOR") and self.environ.get("TERM") != "dumb"

    def write(self, text: str) -> None:
        """Product text to stdout, flushed at once (UTF-8 whatever the locale)."""
        try:
            self.stdout.write(text.encode("utf-8"))
            self.stdout.flush()
        except BrokenPipeError:
            raise OutputClosed() from None

    def read_stdin(self) -> str | None:
        """All of stdin when it is not a terminal, else None."""
        if self.stdin_isatty:
            return None
        data = self.stdin.read()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"standard input is not UTF-8 text (bad byte at offset {exc.start})") from None

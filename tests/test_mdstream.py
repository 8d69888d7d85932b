"""MarkdownStream: finished blocks printed once, the tail live; replayed on a small emulated terminal."""

from __future__ import annotations

import io
import re
import time

import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.markdown import Markdown

from llmcli.ui import mdstream
from llmcli.ui.mdstream import MarkdownStream, split_finished

WIDTH, HEIGHT = 60, 20
CODE_LINES = [f"value_{i:02d} = {i}" for i in range(30)]  # taller than the terminal
DOC = "\n".join(
    [
        "# Release notes",
        "",
        "The opening paragraph explains what changed in this release and is long enough to wrap.",
        "",
        "## Changes",
        "",
        "- Faster startup",
        "- Smaller downloads",
        "",
        "1. First step",
        "2. Second step",
        "",
        "```python",
        "def greet(name):",
        '    return f"hello {name}"',
        "",
        *CODE_LINES,
        'print(greet("world"))',
        "```",
        "",
        "| Name  | Value |",
        "|-------|-------|",
        "| alpha | 1     |",
        "| beta  | 2     |",
        "",
        "你好，世界。这是一个很长的中文段落，用来检查宽字符在终端中的换行是否正确，不会出现重复的行。",
        "",
        "Closing paragraph with **bold** and `code`.",
        "",
    ]
)
DISTINCT = [
    "Release notes",
    "The opening paragraph explains",
    "Changes",
    "Faster startup",
    "Second step",
    "def greet(name):",
    'return f"hello {name}"',
    'print(greet("world"))',
    "alpha",
    "你好，世界。",
    "Closing paragraph with bold",
    *CODE_LINES,
]
_CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


class Terminal:
    """Just enough of a VT100 with scrollback to replay what rich writes, as a terminal would show it."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.width, self.height = width, height
        self.scrollback: list[list[str]] = []
        self.screen = [self._blank() for _ in range(height)]
        self.row = self.col = 0
        # Moving up past the top row is how Live leaves stale lines behind in the scrollback.
        self.clamped = False

    def _blank(self) -> list[str]:
        return [" "] * self.width

    def write(self, data: str) -> None:
        pos = 0
        for match in _CSI.finditer(data):
            self._text(data[pos : match.start()])
            self._csi(match[1], match[2])
            pos = match.end()
        self._text(data[pos:])

    def _text(self, text: str) -> None:
        for char in text:
            if char == "\n":  # the tty's onlcr: a carriage return too
                self._linefeed()
                self.col = 0
            elif char == "\r":
                self.col = 0
            elif (width := cell_len(char)) > 0:
                if self.col + width > self.width:
                    self._linefeed()
                    self.col = 0
                self.screen[self.row][self.col] = char
                if width == 2:
                    self.screen[self.row][self.col + 1] = ""
                self.col += width

    def _linefeed(self) -> None:
        if self.row == self.height - 1:
            self.scrollback.append(self.screen.pop(0))
            self.screen.append(self._blank())
        else:
            self.row += 1

    def _csi(self, params: str, command: str) -> None:
        count = int(params) if params.isdigit() else 1
        if command == "A":
            self.clamped |= self.row - count < 0
            self.row = max(0, self.row - count)
        elif command == "B":
            self.row = min(self.height - 1, self.row + count)
        elif command == "K":
            start = 0 if params in ("1", "2") else self.col
            end = self.col + 1 if params == "1" else self.width
            self.screen[self.row][start:end] = [" "] * (min(end, self.width) - start)

    def lines(self) -> list[str]:
        lines = ["".join(row).rstrip() for row in self.scrollback + self.screen]
        while lines and not lines[-1]:
            lines.pop()
        return lines


@pytest.fixture(autouse=True)
def _terminal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # rich treats TERM=dumb (common in CI) as unable to move the cursor, which would disable Live.
    monkeypatch.setenv("TERM", "xterm-256color")
    for name in ("TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES"):
        monkeypatch.delenv(name, raising=False)


def always_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redraw the live tail on every piece, to exercise it as much as possible."""
    monkeypatch.setattr(mdstream, "_REFRESH_INTERVAL", 0.0)
    monkeypatch.setattr(mdstream, "_RENDER_SHARE", 1.0)


def tty_console() -> Console:
    return Console(
        file=io.StringIO(),
        force_terminal=True,
        force_interactive=True,
        width=WIDTH,
        height=HEIGHT,
        color_system=None,
    )


def output(console: Console) -> str:
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def replay(console: Console) -> Terminal:
    terminal = Terminal()
    terminal.write(output(console))
    return terminal


def rendered_at_once(text: str) -> list[str]:
    """The same text fed in one piece to a plain (non-terminal) console: no Live involved."""
    console = Console(file=io.StringIO(), width=WIDTH, color_system=None, record=True)
    with MarkdownStream(console) as stream:
        stream.feed(text)
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def stream_pieces(console: Console, pieces: list[str]) -> str:
    with MarkdownStream(console) as stream:
        for piece in pieces:
            stream.feed(piece)
    return stream.close()


def test_split_paragraphs() -> None:
    assert split_finished("a\n\nb") == ("a\n\n", "b")
    assert split_finished("a\n\nb\n\nc\nd") == ("a\n\nb\n\n", "c\nd")
    assert split_finished("a\n   \nb") == ("a\n   \n", "b")
    assert split_finished("a\n\n") == ("a\n\n", "")


def test_split_without_blank_line() -> None:
    assert split_finished("no blank line\njust lines") == ("", "no blank line\njust lines")
    assert split_finished("one line\n") == ("", "one line\n")
    assert split_finished("") == ("", "")


def test_split_never_inside_an_open_fence() -> None:
    text = "intro\n\n```python\nx = 1\n\ny = 2\n\n"
    assert split_finished(text) == ("intro\n\n", "```python\nx = 1\n\ny = 2\n\n")


def test_split_after_a_closed_fence() -> None:
    text = "```\nx\n\ny\n```\n\nafter"
    assert split_finished(text) == ("```\nx\n\ny\n```\n\n", "after")
    # A shorter run does not close a longer fence.
    assert split_finished("````\n```\n\nstill code\n") == ("", "````\n```\n\nstill code\n")


def test_split_tilde_fences() -> None:
    text = "~~~\na\n\n```\n\nb\n"  # backticks do not close a tilde fence
    assert split_finished(text) == ("", text)
    assert split_finished(text + "~~~\n\nc") == (text + "~~~\n\n", "c")


def test_split_inline_backticks_and_indented_fences() -> None:
    assert split_finished("```py``` is inline\n\nnext") == ("```py``` is inline\n\n", "next")
    text = "- item\n\n    ```\n    x\n\n    ```\n\nend"
    assert split_finished(text) == (text[: -len("end")], "end")


def test_live_window_keeps_the_open_fence() -> None:
    tail = "intro\n```python\n" + "".join(f"line{i}\n" for i in range(10)) + "par"
    assert mdstream._window(tail, 3) == "```python\nline8\nline9\npar"
    closed = tail + "\n```\nafter"
    assert mdstream._window(closed, 3) == closed  # not a code block any more: rendered whole
    assert mdstream._window("a\nb", 3) == "a\nb"


def test_char_by_char_has_no_duplicates_and_matches_one_go() -> None:
    console = tty_console()
    text = stream_pieces(console, list(DOC))
    assert text == DOC
    assert "\x1b[2K" in output(console)  # Live really drew (and erased) the tail
    terminal = replay(console)
    assert not terminal.clamped
    lines = terminal.lines()
    screen = "\n".join(lines)
    for needle in DISTINCT:
        assert screen.count(needle) == 1, needle
    stripped = [line.strip() for line in lines]
    for code in CODE_LINES:
        assert code in stripped  # whole, not wrapped
    assert lines == rendered_at_once(DOC)


def whole_markdown(text: str) -> list[str]:
    console = Console(file=io.StringIO(), width=WIDTH, color_system=None, record=True)
    console.print(Markdown(text))
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


@pytest.mark.parametrize("text", [DOC, "para\n\n---\n\nnext\n\n* * *\n\n# Heading\n\ntext", "a\n\n\n\nb"])
def test_blocks_look_like_one_document(text: str) -> None:
    assert rendered_at_once(text) == whole_markdown(text)


def test_split_list_item_keeps_its_content() -> None:
    text = "1. Step one\n\n    Explained at length.\n\n    ```sh\n    make\n\n    make test\n    ```\n"
    lines = rendered_at_once(text)
    assert "Explained at length." in lines  # a paragraph, not an indented code block
    assert not any("```" in line for line in lines)
    assert " make test" in lines


def test_tall_tail_shows_its_latest_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    always_refresh(monkeypatch)
    console = tty_console()
    stream = MarkdownStream(console)
    head = DOC[: DOC.index("value_26")]
    for start in range(0, len(head), 5):
        stream.feed(head[start : start + 5])
    terminal = replay(console)
    assert not terminal.clamped
    screen = "\n".join(terminal.lines())
    assert screen.count("value_25 = 25") == 1
    assert "value_00" not in screen  # cropped from the live region, not yet printed
    stream.close()
    terminal = replay(console)
    assert not terminal.clamped
    assert "\n".join(terminal.lines()).count("value_00 = 0") == 1


def test_live_tail_refreshed_on_every_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    always_refresh(monkeypatch)
    console = tty_console()
    pieces = [DOC[i : i + 7] for i in range(0, len(DOC), 7)]
    stream_pieces(console, pieces)
    terminal = replay(console)
    # The unclosed code block outgrows the terminal while streaming; the live region must not.
    assert not terminal.clamped
    assert terminal.lines() == rendered_at_once(DOC)


def test_blocks_print_as_they_finish() -> None:
    console = Console(file=io.StringIO(), width=WIDTH, color_system=None)
    stream = MarkdownStream(console)
    stream.feed("first paragraph\n\nsecond")
    assert "first paragraph" in output(console)
    assert "second" not in output(console)
    assert stream.close() == "first paragraph\n\nsecond"
    assert "second" in output(console)


def test_keyboard_interrupt_keeps_partial_text() -> None:
    console = tty_console()
    half = DOC[: DOC.index("print(greet")]
    with pytest.raises(KeyboardInterrupt), MarkdownStream(console) as stream:
        for char in half:
            stream.feed(char)
        raise KeyboardInterrupt
    assert stream.close() == half
    terminal = replay(console)
    assert not terminal.clamped
    lines = terminal.lines()
    assert lines == rendered_at_once(half)
    screen = "\n".join(lines)
    assert screen.count("Release notes") == 1
    assert screen.count(CODE_LINES[-1]) == 1  # the unfinished code block, rendered permanently
    assert "alpha" not in screen


def test_interrupt_while_printing_a_block_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    real_print = MarkdownStream._print
    calls = 0

    def interrupted_print(self: MarkdownStream, blocks: list[str]) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:  # as if Ctrl-C came while rich rendered the second block
            raise KeyboardInterrupt
        return real_print(self, blocks)

    monkeypatch.setattr(MarkdownStream, "_print", interrupted_print)
    console = tty_console()
    text = "one\n\ntwo\n\nthree"
    with pytest.raises(KeyboardInterrupt), MarkdownStream(console) as stream:
        for char in text:
            stream.feed(char)
    assert replay(console).lines() == rendered_at_once("one\n\ntwo\n\n") == ["one", "", "two"]


def test_close_is_idempotent() -> None:
    console = tty_console()
    stream = MarkdownStream(console)
    stream.feed("hello **world**")
    assert stream.close() == "hello **world**"
    written = output(console)
    assert stream.close() == "hello **world**"
    assert output(console) == written
    assert replay(console).lines() == ["hello world"]
    with pytest.raises(RuntimeError):
        stream.feed("more")


def test_empty_stream_prints_nothing() -> None:
    console = tty_console()
    with MarkdownStream(console):
        pass
    assert output(console) == ""


def test_many_small_pieces_stay_cheap() -> None:
    pieces: list[str] = []
    for i in range(5000):
        pieces.append(f"word{i} ")
        if i % 40 == 39:
            pieces.append("\n\n")
        if i == 2000:
            pieces.append("\n\n```python\n")
        if 2000 < i < 3500 and i % 8 == 0:
            pieces.append("\n")
        if i == 3500:
            pieces.append("\n```\n\n")
    console = tty_console()
    start = time.perf_counter()
    stream_pieces(console, pieces)
    assert time.perf_counter() - start < 2.0

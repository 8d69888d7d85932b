"""Progressive Markdown rendering of streamed text: finished blocks printed once, the unfinished tail live."""

from __future__ import annotations

import re
import textwrap
import time
from collections.abc import Iterable, Iterator
from types import TracebackType

from rich.console import Console, ConsoleOptions, Group, NewLine, RenderableType, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment

__all__ = ["MarkdownStream", "split_finished"]

_REFRESH_INTERVAL = 1 / 15
_RENDER_SHARE = 0.2  # of the streaming time, at most, spent redrawing the tail
# Indentation is not limited to CommonMark's three spaces: LLMs put fences inside (nested) list items.
_FENCE = re.compile(r"[ \t]*(`{3,}|~{3,})(.*)")
_RULE = re.compile(r"([-*_])[ \t]*(?:\1[ \t]*){2,}")


def _fence_after(line: str, fence: str | None) -> str | None:
    """The fence still open after `line`, given the one open before it (None: outside any fence)."""
    match = _FENCE.match(line)
    if fence is None:
        if match and not (match[1][0] == "`" and "`" in match[2]):
            return match[1]
        return None
    if match and match[1][0] == fence[0] and len(match[1]) >= len(fence) and not match[2].strip():
        return None
    return fence


def _scan(text: str, pos: int, fence: str | None) -> tuple[list[int], int, str | None]:
    """Block ends (just past each blank line outside a fence) among the complete lines of text from pos.

    Returns them with the offset of the first incomplete line and the fence open there.
    """
    ends: list[int] = []
    while (newline := text.find("\n", pos)) != -1:
        line = text[pos:newline]
        if fence is None and not line.strip():
            ends.append(newline + 1)
        else:
            fence = _fence_after(line, fence)
        pos = newline + 1
    return ends, pos, fence


def split_finished(text: str) -> tuple[str, str]:
    """(finished blocks, unfinished tail): the split point is the last blank line outside a code fence."""
    ends, _, _ = _scan(text, 0, None)
    cut = ends[-1] if ends else 0
    return text[:cut], text[cut:]


def _markdown_source(block: str) -> str:
    # A block split off a list item keeps the item's indentation: at four spaces or more it would render
    # as an indented code block (which LLMs hardly ever mean), showing a nested fence's ``` lines too.
    if block.lstrip("\n").startswith(("    ", "\t")):
        return textwrap.dedent(block)
    return block


def _window(tail: str, rows: int) -> str:
    """The end of tail, at least `rows` source lines, with the opening line of a code fence still open."""
    if tail.count("\n") < rows:
        return tail
    lines = tail.splitlines(keepends=True)
    fence: str | None = None
    opened = 0
    for index, line in enumerate(lines):
        before, fence = fence, _fence_after(line, fence)
        if before is None and fence is not None:
            opened = index
    if fence is None or opened >= len(lines) - rows:
        return tail
    return lines[opened] + "".join(lines[-rows:])


def _blocks(text: str, ends: list[int]) -> list[str]:
    return [text[start:end] for start, end in zip([0, *ends], ends, strict=False)]


class _Block:
    """One block's Markdown, without the blank line rich puts before a leading list, table or quote."""

    def __init__(self, source: str, code_theme: str) -> None:
        self.markdown = Markdown(_markdown_source(source), code_theme=code_theme)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        leading = True
        for segment in console.render(self.markdown, options):
            # The separator between blocks is ours to print; this one would double it.
            if leading and segment.text == "\n" and segment.style is None and not segment.control:
                continue
            leading = False
            yield segment


class _TailView:
    """The live region: the unfinished tail's last lines, never taller than the terminal."""

    def __init__(self, stream: MarkdownStream) -> None:
        self.stream = stream

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        tail = self.stream.tail_text()
        if not tail.strip():
            return
        separated = self.stream.gap_due
        if separated:
            yield NewLine()
        # Rendering (and highlighting) a long code block in full on every refresh would be slow; only the end
        # of it is shown anyway. Other tails are rendered whole: cutting a table would lose its header.
        block = _Block(_window(tail, options.size.height), self.stream.code_theme)
        lines = console.render_lines(block, options.update(height=None), pad=False)
        # Live can erase only what is still on screen; anything taller would be left behind, duplicated,
        # in the scrollback. The full tail is printed once, permanently, when it is finished.
        room = max(1, options.size.height - 1 - int(separated))
        visible = lines[-room:]
        for index, line in enumerate(visible):
            yield from line
            if index < len(visible) - 1:
                yield Segment.line()


class MarkdownStream:
    """Progressive Markdown rendering of streamed text on a rich Console."""

    def __init__(self, console: Console, *, code_theme: str = "monokai") -> None:
        self._console = console
        self.code_theme = code_theme
        self._parts: list[str] = []
        # The unprinted text is _tail + "".join(_pending): joining only at line ends and refreshes keeps
        # feeding a long unfinished block linear.
        self._tail = ""
        self._pending: list[str] = []
        self._scanned = 0
        self._fence: str | None = None
        self._gap_due = False
        self._live: Live | None = None
        self._use_live = console.is_terminal and console.is_interactive and not console.is_dumb_terminal
        self._next_refresh = float("-inf")
        self._text: str | None = None

    def feed(self, piece: str) -> None:
        """Add text; print any newly finished blocks; update the live tail."""
        if self._text is not None:
            raise RuntimeError("MarkdownStream.feed() after close()")
        if not piece:
            return
        self._parts.append(piece)
        self._pending.append(piece)
        if "\n" in piece:
            tail = self.tail_text()
            ends, self._scanned, self._fence = _scan(tail, self._scanned, self._fence)
            if ends:
                scanned, gap_due = self._scanned, self._gap_due
                # Out of the tail first: printing through a running Live redraws the tail below the blocks
                # (that is the refresh).
                self._tail, self._scanned = tail[ends[-1] :], scanned - ends[-1]
                self._start_live()
                start = time.perf_counter()
                try:
                    printed = self._print(_blocks(tail, ends))
                except BaseException:
                    # rich writes a print's output once it is all rendered: a KeyboardInterrupt while
                    # rendering leaves these blocks off the screen, and close() must print them.
                    self._tail, self._scanned, self._gap_due = tail, scanned, gap_due
                    raise
                if printed:
                    self._refreshed(start)
                    return
        start = time.perf_counter()
        if self._use_live and start >= self._next_refresh:
            self._start_live()
            assert self._live is not None
            self._live.refresh()
            self._refreshed(start)

    def close(self) -> str:
        """Render the remaining tail permanently, stop the live region, and return the full text."""
        if self._text is None:
            self._text = "".join(self._parts)
            tail = self.tail_text()
            # Live.stop() renders once more, overflow allowed: with no tail left that render is empty.
            self._tail, self._pending = "", []
            try:
                if self._live is not None:
                    self._live.stop()
            finally:
                ends, _, _ = _scan(tail, 0, None)
                self._print(_blocks(tail, [*ends, len(tail)]))
        return self._text

    def __enter__(self) -> MarkdownStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _refreshed(self, start: float) -> None:
        # A tail that is slow to render (a long table, say) is redrawn less often, not at the tokens' cost.
        cost = time.perf_counter() - start
        self._next_refresh = start + max(_REFRESH_INTERVAL, cost / _RENDER_SHARE)

    @property
    def gap_due(self) -> bool:
        """Whether the next block needs a blank line before it."""
        return self._gap_due

    def tail_text(self) -> str:
        """The text fed but not yet printed for good."""
        if self._pending:
            self._tail += "".join(self._pending)
            self._pending.clear()
        return self._tail

    def _start_live(self) -> None:
        if self._use_live and self._live is None:
            self._live = Live(
                _TailView(self),
                console=self._console,
                auto_refresh=False,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    def _print(self, blocks: Iterable[str]) -> bool:
        renderables = list(self._renderables(blocks))
        if renderables:
            self._console.print(Group(*renderables))
        return bool(renderables)

    def _renderables(self, blocks: Iterable[str]) -> Iterator[RenderableType]:
        for block in blocks:
            if block.strip():
                if self._gap_due:
                    yield NewLine()
                # rich ends a rule with its own blank line (as it does inside one Markdown document).
                self._gap_due = not _RULE.fullmatch(block.strip())
                yield _Block(block, self.code_theme)

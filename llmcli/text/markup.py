r"""Split a plain-text or Markdown document into a fixed skeleton and the text segments to translate.

Everything that is structure stays in the skeleton: blank lines, indentation, list markers and task boxes,
heading marks, quote prefixes, table pipes and padding, trailing whitespace and hard-break backslashes,
and whole blocks that hold nothing to translate (code, HTML, front matter, rules, link definitions).
A translation fills the slots of its segment only, so it can never change the document's shape.

Choices where CommonMark/GFM leave room or where a translator needs more than a renderer:

- A block (paragraph, list item, heading, quote paragraph, table cell) with no letters once code spans,
  URLs, e-mail addresses, link targets, HTML tags and entities are left out is kept verbatim as a whole.
  A letterless line inside a paragraph stays in that paragraph's segment, so the paragraph is translated
  in one piece.
- A list item's segment is its first paragraph (marker line plus lazy or indented continuation lines);
  further paragraphs of the item, after a blank line, are segments of kind "paragraph".
- Blockquotes are parsed recursively: the text after the `>` prefixes (and lazy continuation lines) is
  a document of its own, so lists, headings, tables and code inside a quote are handled as at top level.
  Its plain paragraphs have kind "quote"; its items, headings and cells keep their own kinds.
- A line that is only HTML tags (`<br>`, `<div align="center">`, `</p>`) is verbatim and ends a paragraph;
  HTML comments and `<pre>`/`<script>`/`<style>`/`<textarea>` blocks are verbatim to their end.
- Front matter (`---` to `---` or `...`) is recognised at the top, after blank lines only, when its first
  line looks like YAML (`key:` or `#`).
- A translation with as many lines as its source but with a blank line among them is redistributed like
  one of another shape: a blank line inside a paragraph would split it.
- A translated line that starts with a block marker its source line did not start with is disarmed
  with one backslash: `\# `, `\- `, `\* `, `\+ `, `1\. `, `1\) `, `\> `, `` \``` ``, `\---`,
  `\===`, `\<div`, `\[label]:`, and a table delimiter row `\|---|`. The same goes for a table's first
  cell when its row has no leading pipe. A `|` in a translated cell becomes `\|`.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise


@dataclass(frozen=True)
class Segment:
    """One piece of text to translate."""

    text: str  # content lines joined by "\n": no markers, indentation, quote prefixes or trailing spaces
    kind: str  # "paragraph" | "heading" | "item" | "quote" | "cell"


_Slot = tuple[int, int]  # (segment, line of that segment) to put at this place of the skeleton
_Piece = str | _Slot

_FENCE = re.compile(r"(`{3,})[^`]*$|(~{3,})")
_FENCE_CLOSE = re.compile(r"[ \t]*(`{3,}|~{3,})[ \t]*$")
_FENCE_MARK = re.compile(r"`{3,}|~{3,}")
_ATX = re.compile(r"#{1,6}(?:[ \t]+|$)")
_ATX_CLOSE = re.compile(r"(?:^|[ \t])#+$")
_THEMATIC = re.compile(r"(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_SETEXT = re.compile(r"(?:=+|-+)[ \t]*$")
_ITEM = re.compile(r"(?:[-*+]|(?P<num>[0-9]{1,9})[.)])(?P<gap>[ \t]+|$)(?P<task>\[[ xX]\](?:[ \t]+|$))?")
_QUOTE_LINE = re.compile(r"[ \t]*>")
_LINK_DEF = re.compile(r"\[[^\]^][^\]]*\]:[ \t]*\S+(?:[ \t]+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?[ \t]*$")
_LINK_LABEL = re.compile(r"\[[^\]]+\]:")  # a definition's destination may follow on the next line
_YAML_START = re.compile(r"[A-Za-z_][\w.-]*:(?:[ \t]|$)|#|---|\.\.\.")
_TAG_LINE = re.compile(r"(?:</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?>[ \t]*)+$")
_HTML_BLOCK = re.compile(r"<!--|<(?:pre|script|style|textarea)(?:[\s>]|$)", re.I)
_HTML_RAW_END = re.compile(r"</(?:pre|script|style|textarea)>", re.I)
# HTML that starts a block even with text after it on the line (CommonMark HTML block kinds 1-6).
_HTML_STARTER = re.compile(
    r"<!--|<[?!]|</?(?:pre|script|style|textarea|address|article|aside|blockquote|body|caption|center|"
    r"dd|details|dialog|div|dl|dt|fieldset|figcaption|figure|footer|form|h[1-6]|header|hr|html|li|main|"
    r"nav|ol|p|section|summary|table|tbody|td|tfoot|th|thead|tr|ul)(?:[\s/>]|$)",
    re.I,
)
_SPACES = re.compile(r"[ \t]+")
_BLANK_REST = re.compile(r"\s*$")
_PIPE = re.compile(r"\\.|\|")
_SEPARATOR_CELL = re.compile(r"[ \t]*:?-+:?[ \t]*")
_TICKS = re.compile(r"`+")
_MARKUP = re.compile(r"<[^<>]*>|\]\([^()\s]*\)|&#?\w+;")
_BLOCK_CHARS = frozenset("`~#>*-_+<=0123456789")
_MAX_QUOTE_DEPTH = 32  # deeper quotes stay verbatim: keeps recursion bounded on any input

_CJK = "\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003ffff"
_CJK_CHAR = re.compile(f"[{_CJK}]")
# A word, or one CJK character, with the opening brackets before it and the punctuation after it, so that
# no line of redistributed text starts with a closing mark.
_UNIT = re.compile(
    rf"[{re.escape('（「『【〔〈《〖〘〚')}]*(?:[^\s{_CJK}]+|[{_CJK}])"
    rf"[{re.escape('、。，．：；！？）」』】〕〉》〗〙〛ー・…!?.,;:)]}%')}]*"
)


class Layout:
    """A document's fixed skeleton and the segments of text to translate."""

    def __init__(self, pieces: list[_Piece], segments: list[Segment], exposed: set[int]) -> None:
        self.segments = segments
        self._pieces = pieces
        self._exposed = exposed  # cells that start their line, where block markers take effect

    def render(self, translations: Sequence[str]) -> str:
        """The document with segment i replaced by translations[i]; ValueError unless one per segment."""
        if len(translations) != len(self.segments):
            raise ValueError(f"expected {len(self.segments)} translations, got {len(translations)}")
        filled = [
            _fit(s, t, k in self._exposed)
            for k, (s, t) in enumerate(zip(self.segments, translations, strict=True))
        ]
        return "".join(p if isinstance(p, str) else filled[p[0]][p[1]] for p in self._pieces)


def parse(text: str) -> Layout:
    """Split a document into its skeleton and the segments to translate."""
    parser = _Parser(text.split("\n"), 0)
    parser.run()
    return Layout(_flatten(parser.out.lines), parser.out.segments, parser.out.exposed)


def restore_code_spans(source: str, translation: str) -> str:
    """Put the source's inline code spans back, by position, when the translation kept as many spans."""
    wanted = _code_spans(source)
    found = _code_spans(translation)
    if not wanted or len(wanted) != len(found):
        return translation
    parts: list[str] = []
    end = 0
    for (a, b), (c, d) in zip(wanted, found, strict=True):
        parts += [translation[end:c], source[a:b]]
        end = d
    parts.append(translation[end:])
    return "".join(parts)


def _code_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each CommonMark code span: a backtick run closed by the next run of equal length."""
    runs = [(m.start(), m.end()) for m in _TICKS.finditer(text)]
    by_length: dict[int, list[int]] = {}
    for k, (a, b) in enumerate(runs):
        by_length.setdefault(b - a, []).append(k)
    spans: list[tuple[int, int]] = []
    k = 0
    while k < len(runs):
        a, b = runs[k]
        slashes = a
        while slashes and text[slashes - 1] == "\\":
            slashes -= 1
        if (a - slashes) % 2:  # an escaped backtick is literal; the rest of the run may still open
            a += 1
        same = by_length.get(b - a, [])
        after = bisect_right(same, k)
        if a < b and after < len(same):
            spans.append((a, runs[same[after]][1]))
            k = same[after] + 1
        else:
            k += 1
    return spans


def _has_text(text: str) -> bool:
    """Whether text has letters outside code spans, addresses, link targets, tags and entities."""
    if "`" in text:
        kept: list[str] = []
        end = 0
        for a, b in _code_spans(text):
            kept.append(text[end:a])
            end = b
        kept.append(text[end:])
        text = " ".join(kept)
    for word in _MARKUP.sub(" ", text).split():
        if "://" in word or word.startswith("www.") or "." in word.partition("@")[2]:
            continue
        if any(map(str.isalpha, word)):
            return True
    return False


def _text_start(line: str, pos: int = 0) -> int:
    """Index of the first character at or after pos that is not a space or a tab."""
    spaces = _SPACES.match(line, pos)
    return spaces.end() if spaces else pos


def _width(text: str, col: int = 0) -> int:
    """The column reached after text that starts at column col, with tab stops every 4 columns."""
    if "\t" not in text:
        return col + len(text)
    for ch in text:
        col = col + 4 - col % 4 if ch == "\t" else col + 1
    return col


def _split(line: str, start: int) -> tuple[str, str, str]:
    """(prefix, content, suffix) of a text line whose content begins at or after start."""
    if not (line[start].isspace() or line[-1].isspace() or line[-1] == "\\"):
        return line[:start], line[start:], ""
    body = line[start:]
    a = start + len(body) - len(body.lstrip())
    content = line[a:].rstrip()
    # A trailing backslash is a hard line break: structure, like trailing spaces.
    run = len(content) - len(content.rstrip("\\"))
    if run % 2 and content[:-1].rstrip():
        content = content[:-1].rstrip()
    return line[:a], content, line[a + len(content) :]


def _pipes(line: str, start: int) -> list[int]:
    return [m.start() for m in _PIPE.finditer(line, start) if m.group() == "|"]


def _cells(line: str, start: int) -> list[str]:
    """A table row's cells from start, without the empty ends outside a leading or trailing pipe."""
    bounds = [start - 1, *_pipes(line, start), len(line)]
    cells = [line[a + 1 : b] for a, b in pairwise(bounds)]
    if len(cells) > 1 and not cells[0].strip():
        cells.pop(0)
    if len(cells) > 1 and not cells[-1].strip():
        cells.pop()
    return cells


class _Out:
    """Skeleton lines (one per source line) and segments, with the paragraph or item still open."""

    def __init__(self) -> None:
        self.lines: list[list[_Piece]] = []
        self.segments: list[Segment] = []
        self.exposed: set[int] = set()
        self.kind = ""  # kind of the open block; "" when none is open
        self.base = 0  # column of the open block's container
        self.parts: list[tuple[str, str, str]] = []

    def segment(self, text: str, kind: str) -> int:
        self.segments.append(Segment(text, kind))
        return len(self.segments) - 1

    def verbatim(self, line: str) -> None:
        self.close()
        self.lines.append([line])

    def open(self, kind: str, base: int, part: tuple[str, str, str]) -> None:
        self.close()
        self.kind, self.base, self.parts = kind, base, [part]

    def close(self) -> None:
        if not self.kind:
            return
        text = "\n".join(content for _, content, _ in self.parts)
        if _has_text(text):
            index = self.segment(text, self.kind)
            self.lines.extend([p, (index, k), s] for k, (p, _, s) in enumerate(self.parts))
        else:
            self.lines.extend([p + c + s] for p, c, s in self.parts)
        self.kind, self.parts = "", []


class _Parser:
    """Line-by-line block parser; `stack` holds the content columns of the enclosing list items."""

    def __init__(self, lines: list[str], depth: int) -> None:
        self.lines = lines
        self.depth = depth
        self.out = _Out()
        self.stack: list[int] = []

    def run(self) -> None:
        lines = self.lines
        i = self._front_matter() if self.depth == 0 else 0
        while i < len(lines):
            if not lines[i].strip():
                self.out.verbatim(lines[i])
                i += 1
            elif self.out.kind and self._continue(i):
                i += 1
            else:
                self.out.close()
                i = self._start(i)
        self.out.close()

    def _base(self, col: int) -> int:
        """Content column of the innermost list item that a line starting at col belongs to."""
        k = bisect_right(self.stack, col)
        return self.stack[k - 1] if k else 0

    def _front_matter(self) -> int:
        """Lines of YAML front matter (after blank lines only) kept verbatim; the index after them."""
        lines = self.lines
        first = 0
        while first < len(lines) - 1 and not lines[first].strip():
            first += 1
        # The first line must look like YAML, or a rule and a setext heading would be taken for one.
        if lines[first].rstrip() != "---" or not _YAML_START.match(lines[min(first + 1, len(lines) - 1)]):
            return 0
        for j in range(first + 1, len(lines)):
            if lines[j].rstrip() in ("---", "..."):
                for line in lines[: j + 1]:
                    self.out.verbatim(line)
                return j + 1
        return 0

    def _continue(self, i: int) -> bool:
        """Add line i to the open paragraph or item; False when it starts a block of its own instead."""
        line = self.lines[i]
        if line[0] not in _BLOCK_CHARS and line[0] not in " \t" and "|" not in line:
            self.out.parts.append(_split(line, 0))
            return True
        at = _text_start(line)
        col = _width(line[:at])
        if col - self._base(col) < 4:
            if col >= self.out.base and line[at] in "=-" and _SETEXT.match(line, at):
                self.out.kind = "heading"
                self.out.verbatim(line)
                return True
            if self._interrupts(i, at):
                return False
        self.out.parts.append(_split(line, 0))
        return True

    def _interrupts(self, i: int, at: int) -> bool:
        """Whether line i, whose text starts at at, starts a block that can interrupt a paragraph."""
        line = self.lines[i]
        if "|" in line and self._table_header(i, at):
            return True
        ch = line[at]
        if ch not in _BLOCK_CHARS:
            return False
        if ch in "`~":
            return bool(_FENCE.match(line, at))
        if ch == "#":
            return bool(_ATX.match(line, at))
        if ch == ">":
            return True
        if ch == "<":
            return bool(_HTML_STARTER.match(line, at) or _TAG_LINE.match(line, at))
        if ch in "*-_" and _THEMATIC.match(line, at):
            return True
        item = _ITEM.match(line, at)
        if item is None:
            return False
        if self.stack:
            return True
        # Outside a list, only a non-empty item, and for numbers only one starting at 1, starts a list here
        # ("in 1986. we" stays one paragraph).
        number = item.group("num")
        return not _BLANK_REST.match(line, item.end()) and (number is None or int(number) == 1)

    def _table_header(self, i: int, at: int) -> bool:
        lines = self.lines
        if i + 1 >= len(lines) or lines[i + 1].strip(" \t|:-") or not _pipes(lines[i], at):
            return False
        below = lines[i + 1]
        separator = _cells(below, _text_start(below))
        return (
            bool(_pipes(below, 0))
            and all(_SEPARATOR_CELL.fullmatch(cell) for cell in separator)
            and len(separator) == len(_cells(lines[i], at))
        )

    def _start(self, i: int) -> int:
        """Parse the block that starts on line i; return the index of the first line after it."""
        line = self.lines[i]
        pos, pos_col, kind = 0, 0, "paragraph"
        # Computed once per line, so that a line of many list markers is parsed in linear time.
        rule_start = len(line.rstrip(" \t*-_"))
        has_pipe = "|" in line
        while True:  # once more after each list marker, for the block that follows it on the line
            at = _text_start(line, pos)
            col = _width(line[pos:at], pos_col)
            while self.stack and self.stack[-1] > col:
                self.stack.pop()
            base = self.stack[-1] if self.stack else 0
            if col - base >= 4:
                return self._indented_code(i, base)
            ch = line[at]
            if ch in "`~" and (fence := _FENCE.match(line, at)):
                return self._fence(i, fence.group(1) or fence.group(2), base)
            if ch == "#" and (atx := _ATX.match(line, at)):
                self._heading(line, atx.end())
                return i + 1
            if ch in "*-_" and at >= rule_start and _THEMATIC.match(line, at):
                self.out.verbatim(line)
                return i + 1
            if ch == ">":
                return self._quote(i, at)
            if ch == "<" and (html := _HTML_BLOCK.match(line, at)):
                return self._html(i, html.group().startswith("<!--"), html.end())
            if (ch == "<" and _TAG_LINE.match(line, at)) or (ch == "[" and _LINK_DEF.match(line, at)):
                self.out.verbatim(line)
                return i + 1
            if ch in "-*+0123456789" and (item := _ITEM.match(line, at)):
                marker_col = col + item.start("gap") - at
                pos_col = _width(item.group("gap"), marker_col)
                gap = pos_col - marker_col
                self.stack.append(marker_col + (gap if 1 <= gap <= 4 else 1))
                if _BLANK_REST.match(line, item.end()):
                    self.out.verbatim(line)
                    return i + 1
                pos, kind = item.end(), "item"
                if item.group("task"):  # a task's text is text, however far the box pushes it
                    self.out.open(kind, self.stack[-1], _split(line, pos))
                    return i + 1
                continue
            if has_pipe and self._table_header(i, at):
                return self._table(i, pos)
            self.out.open(kind, base, _split(line, pos))
            return i + 1

    def _indented_code(self, i: int, base: int) -> int:
        lines = self.lines
        self.out.verbatim(lines[i])
        j = i + 1
        while j < len(lines) and (
            not lines[j].strip() or _width(lines[j][: _text_start(lines[j])]) >= base + 4
        ):
            self.out.verbatim(lines[j])
            j += 1
        return j

    def _fence(self, i: int, marker: str, base: int) -> int:
        lines = self.lines
        self.out.verbatim(lines[i])
        j = i + 1
        while j < len(lines):
            line = lines[j]
            self.out.verbatim(line)
            j += 1
            close = _FENCE_CLOSE.match(line)
            if (
                close
                and close.group(1)[0] == marker[0]
                and len(close.group(1)) >= len(marker)
                and _width(line[: close.start(1)]) < base + 4
            ):
                break
        return j

    def _html(self, i: int, comment: bool, start: int) -> int:
        lines = self.lines
        j = i
        while j < len(lines):
            line = lines[j]
            self.out.verbatim(line)
            j += 1
            if ("-->" in line[start:]) if comment else _HTML_RAW_END.search(line, start):
                break
            start = 0
        return j

    def _heading(self, line: str, end: int) -> None:
        body = line[end:].rstrip()
        if close := _ATX_CLOSE.search(body):
            body = body[: close.start()]
        content = body.strip()
        if not _has_text(content):
            self.out.verbatim(line)
            return
        a = end + len(body) - len(body.lstrip())
        self.out.lines.append([line[:a], (self.out.segment(content, "heading"), 0), line[a + len(content) :]])

    def _table(self, i: int, pos: int) -> int:
        lines = self.lines
        self.out.lines.append(self._row(lines[i], pos))
        self.out.verbatim(lines[i + 1])
        j = i + 2
        while j < len(lines) and lines[j].strip() and _pipes(lines[j], 0):
            at = _text_start(lines[j])
            if lines[j][at] != "|" and self._interrupts(j, at):
                break
            self.out.lines.append(self._row(lines[j], 0))
            j += 1
        return j

    def _row(self, line: str, start: int) -> list[_Piece]:
        pieces: list[_Piece] = [line[:start]]
        bounds = [start - 1, *_pipes(line, start), len(line)]
        for k, (a, b) in enumerate(pairwise(bounds)):
            if k:
                pieces.append("|")
            cell = line[a + 1 : b]
            content = cell.strip()
            if _has_text(content):
                lead = a + 1 + len(cell) - len(cell.lstrip())
                slot = (self.out.segment(content, "cell"), 0)
                if not k:
                    self.out.exposed.add(slot[0])
                pieces += [line[a + 1 : lead], slot, line[lead + len(content) : b]]
            else:
                pieces.append(cell)
        return pieces

    def _quote(self, i: int, at: int) -> int:
        """A blockquote from line i (its `>` at column at) with its lazy lines, parsed as a document."""
        lines = self.lines
        prefixes: list[str] = []
        inner: list[str] = []
        j = i
        while j < len(lines):
            line = lines[j]
            if j == i:
                mark = at
            elif quoted := _QUOTE_LINE.match(line):
                mark = quoted.end() - 1
            else:
                mark = -1
            if mark >= 0:
                end = mark + 1 + (line[mark + 1 : mark + 2] in (" ", "\t"))
                prefixes.append(line[:end])
                inner.append(line[end:])
            elif inner[-1].strip() and line.strip() and not self._lazy_stop(j):
                prefixes.append("")
                inner.append(line)
            else:
                break
            j += 1
        if self.depth >= _MAX_QUOTE_DEPTH:
            for line in lines[i:j]:
                self.out.verbatim(line)
            return j
        child = _Parser(inner, self.depth + 1)
        child.run()
        offset = len(self.out.segments)
        self.out.exposed |= {k + offset for k in child.out.exposed}
        self.out.segments += [
            Segment(s.text, "quote" if s.kind == "paragraph" else s.kind) for s in child.out.segments
        ]
        for prefix, pieces in zip(prefixes, child.out.lines, strict=True):
            shifted = [p if isinstance(p, str) else (p[0] + offset, p[1]) for p in pieces]
            self.out.lines.append([prefix, *shifted])
        return j

    def _lazy_stop(self, j: int) -> bool:
        """Whether line j, after a quoted text line, starts a block instead of continuing the quote."""
        line = self.lines[j]
        at = _text_start(line)
        col = _width(line[:at])
        return col - self._base(col) < 4 and self._interrupts(j, at)


def _flatten(lines: list[list[_Piece]]) -> list[_Piece]:
    """Skeleton lines as one sequence: the text between slots joined, lines separated by "\\n"."""
    pieces: list[_Piece] = []
    text: list[str] = []
    for k, line in enumerate(lines):
        if k:
            text.append("\n")
        for piece in line:
            if isinstance(piece, str):
                text.append(piece)
            else:
                pieces += ["".join(text), piece]
                text = []
    pieces.append("".join(text))
    return pieces


def _fit(segment: Segment, translation: str, exposed: bool) -> list[str]:
    """The translation as exactly as many safe lines as the segment's source has."""
    text = restore_code_spans(segment.text, translation.replace("\r\n", "\n").replace("\r", "\n")).strip()
    source = segment.text.split("\n")
    lines = [line.strip() for line in text.split("\n")]
    if len(lines) != len(source) or (len(lines) > 1 and not all(lines)):
        lines = _reflow(text, source)
    if segment.kind == "cell":
        cell = _PIPE.sub(lambda m: "\\|" if m.group() == "|" else m.group(), lines[0])
        # A cell that ends in an unpaired backslash would escape the pipe after it.
        if _odd_backslashes(cell) and not _odd_backslashes(segment.text):
            cell += "\\"
        return [_disarm(cell, segment.text) if exposed else cell]
    return [_disarm(line, src) for line, src in zip(lines, source, strict=True)]


def _odd_backslashes(text: str) -> bool:
    return (len(text) - len(text.rstrip("\\"))) % 2 == 1


def _units(text: str) -> list[tuple[str, str]]:
    """(separator before it, unit) for each word or CJK character of text, in order."""
    units: list[tuple[str, str]] = []
    end = 0
    for m in _UNIT.finditer(text):
        gap = text[end : m.start()]
        if not gap or ("\n" in gap and _CJK_CHAR.match(text[end - 1]) and _CJK_CHAR.match(m.group())):
            units.append(("", m.group()))
        else:
            units.append((" ", m.group()))
        end = m.end()
    return units


def is_cjk(char: str) -> bool:
    """True for a Chinese, Japanese or Korean character (or fullwidth form): words need no spaces."""
    return bool(_CJK_CHAR.match(char))


def join_lines(text: str) -> str:
    """Text on one line: a space between words, none between two CJK characters."""
    return _join(_units(text))


def _join(units: list[tuple[str, str]]) -> str:
    return "".join(sep + unit for sep, unit in units).lstrip()


def _reflow(text: str, source: list[str]) -> list[str]:
    """Text spread over len(source) lines, in proportion to the source lines' lengths."""
    units = _units(text)
    n, m = len(source), len(units)
    if n == 1:
        return [_join(units)]
    if m <= n:
        return [unit for _, unit in units] + [""] * (n - m)
    ends = list(accumulate((len(sep) + len(unit) for sep, unit in units), initial=0))
    weights = list(accumulate(max(len(line), 1) for line in source))
    cuts = [0]
    for k in range(1, n):
        target = ends[-1] * weights[k - 1] / weights[-1]
        cut = bisect_left(ends, target)
        if cut and target - ends[cut - 1] <= ends[cut] - target:
            cut -= 1
        cuts.append(min(max(cut, cuts[-1] + 1), m - (n - k)))
    cuts.append(m)
    return [_join(units[a:b]) for a, b in pairwise(cuts)]


_STARTERS = (_THEMATIC, _SETEXT, _FENCE_MARK, _ATX, _QUOTE_LINE, _HTML_STARTER, _TAG_LINE, _LINK_LABEL)


def _starter(line: str) -> tuple[str, int] | None:
    """The block marker that line starts with and where a backslash disarms it; None for plain text."""
    ch = line[:1]
    if ch in ("|", ":", "-") and "|" in line and "-" in line and not line.strip(" \t|:-"):
        return line, 0  # a table delimiter row, which would turn the line above into a table header
    if not ch or (ch not in _BLOCK_CHARS and ch != "["):
        return None
    for pattern in _STARTERS:
        if m := pattern.match(line):
            return m.group(), 0
    if m := _ITEM.match(line):
        return m.group(), m.end("num") if m.group("num") else 0
    return None


def _disarm(line: str, source: str) -> str:
    """Escape a block marker at the start of a translated line that its source line did not start with."""
    found = _starter(line)
    if found is None or ((own := _starter(source)) is not None and own[0] == found[0]):
        return line
    return f"{line[: found[1]]}\\{line[found[1] :]}"

"""Input documents for summarize and translate: which files an argument list names, and their text."""

from __future__ import annotations

import glob
import io
import logging
import os
import re
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from llmcli.errors import LlmcliError, UsageError

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst"})
_HTML_SUFFIXES = frozenset({".html", ".htm"})
_SNIFF_BYTES = 8192
_GLOB_MAGIC = re.compile(r"[*?[]")


class DocumentError(LlmcliError):
    """A single input that cannot be read as text (binary, undecodable, unsupported, missing extra)."""


@dataclass(frozen=True)
class Source:
    """One input document.

    `display` is what the user sees: the argument as given, or the directory argument joined with the
    path found inside it. `relative` is the path to mirror into an output folder: a file argument's
    name, or the path relative to the directory argument (or the literal prefix of a glob pattern).
    """

    path: Path | None
    display: str
    relative: Path

    @classmethod
    def stdin(cls) -> Source:
        """The source for standard input."""
        return cls(None, "<stdin>", Path("stdin.txt"))


def collect_sources(args: list[str]) -> list[Source]:
    """The documents that files, directories and glob patterns name, each once, in argument order.

    Directories are walked recursively in sorted order, skipping hidden files and folders. Glob patterns
    support `**`. An argument that names nothing, or an empty result, is a UsageError.
    """
    sources: list[Source] = []
    seen: set[Path] = set()
    for arg in args:
        for source in _expand(arg):
            assert source.path is not None
            key = source.path.resolve()
            if key not in seen:
                seen.add(key)
                sources.append(source)
    if not sources:
        where = ", ".join(args) if args else "the arguments"
        raise UsageError(f"no input files found in {where}", hint="hidden files and folders are skipped")
    return _distinct(sources)


def _distinct(sources: list[Source]) -> list[Source]:
    """Inputs that would mirror to one output path (`a/x.txt b/x.txt`) keep enough of their own path."""
    groups: dict[Path, list[int]] = {}
    for i, source in enumerate(sources):
        groups.setdefault(source.relative, []).append(i)
    result = list(sources)
    for indices in groups.values():
        if len(indices) == 1:
            continue
        paths = [Path(os.path.abspath(sources[i].display)).parts[1:] for i in indices]
        depth = next(
            (k for k in range(2, max(map(len, paths)) + 1) if len({p[-k:] for p in paths}) == len(paths)),
            max(map(len, paths)),
        )
        for i, parts in zip(indices, paths, strict=True):
            result[i] = Source(sources[i].path, sources[i].display, Path(*parts[-depth:]))
    return result


def _expand(arg: str) -> list[Source]:
    if not arg:
        raise UsageError("an input path is empty")
    path = Path(arg)
    if path.is_dir():
        return _walk(path, arg, Path())
    if path.exists():
        # Not only regular files: `<(cmd)` gives a pipe such as /dev/fd/63.
        return [Source(path, arg, Path(path.name))]
    if path.is_symlink():
        raise UsageError(f"{arg}: broken symbolic link")
    matches = sorted(glob.glob(arg, recursive=True), key=lambda m: Path(m).parts)
    if not matches:
        raise UsageError(f"{arg}: no such file or directory")
    root = _glob_root(arg)
    sources: list[Source] = []
    for match in matches:
        found = Path(match)
        prefix = found.relative_to(root)
        if found.is_dir():
            sources.extend(_walk(found, match, prefix))
        elif found.exists():
            sources.append(Source(found, match, prefix))
    return sources


def _walk(root: Path, arg: str, prefix: Path) -> list[Source]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            full = Path(dirpath, name)
            if not name.startswith(".") and full.is_file():
                found.append(full.relative_to(root))
    found.sort(key=lambda p: p.parts)
    return [Source(root / rel, os.path.normpath(os.path.join(arg, rel)), prefix / rel) for rel in found]


def _glob_root(pattern: str) -> Path:
    """The folder part of a pattern before its first wildcard: matches mirror the tree below it."""
    parts = Path(pattern).parts
    for i, part in enumerate(parts):
        if _GLOB_MAGIC.search(part):
            return Path(*parts[:i]) if i else Path()
    return Path(pattern).parent


def read_document(source: Source, *, stdin: bytes | None = None) -> str:
    """The text of a document: plain text, the visible text of HTML, or the text of a PDF.

    Text is UTF-8 (BOM stripped) or UTF-16/32 with a BOM; line endings become "\\n". Standard input
    (read from `stdin`, or sys.stdin when None) and files without a known suffix are sniffed for PDF
    and HTML. Binary, undecodable, unreadable and empty documents raise DocumentError.
    """
    if source.path is None:
        data = stdin if stdin is not None else sys.stdin.buffer.read()
    else:
        try:
            data = source.path.read_bytes()
        except OSError as exc:
            raise DocumentError(f"cannot read {source.display}: {exc.strerror or exc}") from None
    suffix = source.path.suffix.lower() if source.path is not None else ""
    known = suffix in TEXT_SUFFIXES or suffix in _HTML_SUFFIXES or suffix == ".pdf"
    is_pdf = suffix == ".pdf" or (not known and data.startswith(b"%PDF-"))
    if is_pdf:
        text = _pdf_text(data, source.display)
    else:
        text = _decode(data, source.display)
        if suffix in _HTML_SUFFIXES or (not known and _looks_like_html(text)):
            text = html_to_text(text)
    if not text.strip():
        hint = "a scanned PDF has no text layer: run OCR on it first" if is_pdf else None
        raise DocumentError(f"{source.display} is empty", hint=hint)
    return text


def _decode(data: bytes, display: str) -> str:
    # UTF-32 BOMs first: the UTF-32-LE BOM starts with the UTF-16-LE one.
    for bom, encoding in (
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    ):
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(encoding)
            except UnicodeDecodeError:
                raise DocumentError(f"{display} is not valid {encoding[:6].upper()} text") from None
            return _newlines(text)
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise DocumentError(f"{display} is not a text file (binary data)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"{display} is not UTF-8 text (bad byte at offset {exc.start})",
            hint="convert it to UTF-8 first, e.g. `iconv -f WINDOWS-1252 -t UTF-8`",
        ) from None
    return _newlines(text.removeprefix("\ufeff"))


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _looks_like_html(text: str) -> bool:
    head = text.lstrip()[:15].lower()
    return head.startswith(("<!doctype html", "<html"))


def _pdf_text(data: bytes, display: str) -> str:
    try:
        import pypdf
    except ImportError:
        raise DocumentError("reading PDF needs the pdf extra", hint='pip install "llmcli[pdf]"') from None
    # pypdf logs the damage it works around ("EOF marker not found") to stderr, between our own output.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    # pypdf raises many exception types on damaged or exotic files; any of them means "cannot read".
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(f"{display} is an encrypted PDF", hint="decrypt it first: qpdf --decrypt")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except DocumentError:
        raise
    except Exception as exc:
        raise DocumentError(f"{display} is not a readable PDF ({exc})") from None
    return "\n\n".join(page for page in pages if page)


_SKIP = frozenset({"script", "style", "noscript", "template", "head"})
_LINE = frozenset({"li", "tr", "dt", "dd"})
_PARAGRAPH = frozenset(
    {
        "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer",
        "blockquote", "pre", "ul", "ol", "dl", "table", "hr", "main", "nav", "aside", "figure",
        "figcaption", "address", "details", "summary", "form", "fieldset",
    }
)  # fmt: skip
_CELL = frozenset({"td", "th"})


class _TextExtractor(HTMLParser):
    """Visible text as paragraphs (blank-line separated) of lines, whitespace collapsed outside <pre>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._lines: list[str] = []
        self._line: list[str] = []
        self._prefix = ""
        self._skip: list[str] = []
        self._pre: list[str] | None = None
        self._lists: list[int | None] = []  # None for <ul>, the next number for <ol>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and "head" in self._skip:
            self._skip.remove("head")  # an unclosed <head> ends where <body> starts
        if tag in _SKIP:
            self._skip.append(tag)
        if self._skip:
            return
        if self._pre is not None:
            if tag == "br":
                self._pre.append("\n")
            return
        if tag == "br":
            if self._has_text():
                self._end_line()
            else:
                self._end_paragraph()  # <br><br> separates paragraphs
        elif tag == "pre":
            self._end_paragraph()
            self._pre = []
        elif tag in ("ul", "ol"):
            self._end_list_line()
            self._lists.append(1 if tag == "ol" else None)
        elif tag == "li":
            self._end_line()
            number = self._lists[-1] if self._lists else None
            if number is not None:
                self._lists[-1] = number + 1
            indent = "  " * max(len(self._lists) - 1, 0)
            self._prefix = f"{indent}{number}. " if number is not None else f"{indent}- "
        elif tag in _LINE:
            self._end_line()
        elif tag in _PARAGRAPH:
            self._end_paragraph()
        elif tag in _CELL:
            self._line.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag in self._skip:
                innermost = len(self._skip) - 1 - self._skip[::-1].index(tag)
                del self._skip[innermost:]  # also closes skipped elements left open inside it
            return
        if tag == "pre" and self._pre is not None:
            text = "".join(self._pre).removeprefix("\n").rstrip()
            if text.strip():
                self.paragraphs.append(text)
            self._pre = None
        elif self._pre is not None:
            return
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._end_list_line()
        elif tag in _LINE:
            self._end_line()
            self._prefix = ""  # an empty <li> leaves no bullet behind
        elif tag in _PARAGRAPH:
            self._end_paragraph()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre is not None:
            self._pre.append(data)
        else:
            self._line.append(data)

    def close(self) -> None:
        super().close()
        if self._pre is not None:
            self.handle_endtag("pre")
        self._end_paragraph()

    def _has_text(self) -> bool:
        return any(piece.strip() for piece in self._line)

    def _end_line(self) -> None:
        text = " ".join("".join(self._line).split())
        self._line = []
        if text:
            self._lines.append(self._prefix + text)
            self._prefix = ""  # kept while empty: in <li><p>text</p></li> the bullet belongs to the text

    def _end_list_line(self) -> None:
        if self._lists:
            self._end_line()  # a nested list continues the outer one
        else:
            self._end_paragraph()

    def _end_paragraph(self) -> None:
        self._end_line()
        if self._lines:
            self.paragraphs.append("\n".join(self._lines))
            self._lines = []


def html_to_text(html: str) -> str:
    """The visible text of an HTML document: paragraphs separated by blank lines, <pre> kept verbatim."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return "\n\n".join(parser.paragraphs)

import io
import sys
from pathlib import Path

import pytest

from llmcli.errors import ExitCode, UsageError
from llmcli.text.documents import DocumentError, Source, collect_sources, html_to_text, read_document


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF: one Helvetica text line per page, with exact xref offsets."""
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    write(root / "top.txt", "top")
    write(root / "a" / "b.txt", "b")
    write(root / "a" / "c" / "d.md", "# d")
    write(root / "a-z.txt", "sorted by parts, after a/")
    write(root / ".hidden.txt", "hidden")
    write(root / ".git" / "config", "hidden dir")
    write(root / "a" / ".secret" / "x.txt", "hidden nested dir")
    (root / "empty").mkdir()
    return root


def listing(sources: list[Source]) -> list[tuple[str, str]]:
    return [(s.display, s.relative.as_posix()) for s in sources]


def fields(source: Source) -> tuple[Path | None, str, Path]:
    return source.path, source.display, source.relative


def test_directory_is_walked_sorted_skipping_hidden(tree: Path) -> None:
    assert listing(collect_sources(["root"])) == [
        ("root/a/b.txt", "a/b.txt"),
        ("root/a/c/d.md", "a/c/d.md"),
        ("root/a-z.txt", "a-z.txt"),
        ("root/top.txt", "top.txt"),
    ]
    first = collect_sources(["root/"])[0]
    assert fields(first) == (Path("root/a/b.txt"), "root/a/b.txt", Path("a/b.txt"))


def test_file_argument_keeps_its_spelling_and_mirrors_by_name(tree: Path) -> None:
    [source] = collect_sources(["root/a/b.txt"])
    assert fields(source) == (Path("root/a/b.txt"), "root/a/b.txt", Path("b.txt"))


def test_hidden_file_named_explicitly_is_read(tree: Path) -> None:
    assert listing(collect_sources(["root/.hidden.txt"])) == [("root/.hidden.txt", ".hidden.txt")]


def test_globs_mirror_the_tree_below_their_prefix(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert listing(collect_sources(["root/**/*.md"])) == [("root/a/c/d.md", "a/c/d.md")]
    monkeypatch.chdir(tree)
    assert listing(collect_sources(["**/*.txt"])) == [
        ("a/b.txt", "a/b.txt"),
        ("a-z.txt", "a-z.txt"),
        ("top.txt", "top.txt"),
    ]
    write(tree / "notes.md", "n")
    assert listing(collect_sources(["*.md"])) == [("notes.md", "notes.md")]


def test_glob_matching_a_directory_walks_it(tree: Path) -> None:
    assert listing(collect_sources(["root/a*"])) == [
        ("root/a/b.txt", "a/b.txt"),
        ("root/a/c/d.md", "a/c/d.md"),
        ("root/a-z.txt", "a-z.txt"),
    ]


def test_duplicates_across_arguments_are_dropped_keeping_the_first(tree: Path) -> None:
    args = ["root/top.txt", "root", "./root/a/b.txt", "root/**/*.txt", str(tree / "top.txt")]
    sources = collect_sources(args)
    assert listing(sources) == [
        ("root/top.txt", "top.txt"),
        ("root/a/b.txt", "a/b.txt"),
        ("root/a/c/d.md", "a/c/d.md"),
        ("root/a-z.txt", "a-z.txt"),
    ]


@pytest.mark.parametrize("arg", ["root/missing.txt", "root/*.pdf", "nowhere/**/*.txt"])
def test_a_path_that_names_nothing_is_a_usage_error(tree: Path, arg: str) -> None:
    with pytest.raises(UsageError, match=arg.replace("*", r"\*")) as info:
        collect_sources(["root/top.txt", arg])
    assert info.value.exit_code == ExitCode.USAGE


def test_broken_symlink_is_a_usage_error(tree: Path) -> None:
    (tree / "link.txt").symlink_to(tree / "nothing.txt")
    with pytest.raises(UsageError, match="broken symbolic link"):
        collect_sources(["root/link.txt"])
    assert [s.display for s in collect_sources(["root/*.txt"])] == ["root/a-z.txt", "root/top.txt"]


@pytest.mark.parametrize("args", [["root/empty"], ["root/.git"], [], [""]])
def test_an_empty_result_is_a_usage_error(tree: Path, args: list[str]) -> None:
    write(tree / ".git" / ".inner", "only hidden files")
    (tree / ".git" / "config").unlink()
    with pytest.raises(UsageError):
        collect_sources(args)


def read(path: Path) -> str:
    return read_document(Source(path, path.name, Path(path.name)))


def test_text_files_utf8_with_bom_and_chinese(tmp_path: Path) -> None:
    assert read(write(tmp_path / "a.md", "# Title\n\nBody.\n")) == "# Title\n\nBody.\n"
    assert read(write(tmp_path / "bom.txt", b"\xef\xbb\xbfhello")) == "hello"
    chinese = "机器学习是人工智能的一个分支。"
    assert read(write(tmp_path / "zh.txt", chinese)) == chinese
    assert read(write(tmp_path / "README", b"no suffix\r\nCRLF\rCR")) == "no suffix\nCRLF\nCR"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_bom(tmp_path: Path, encoding: str) -> None:
    data = "Grüße, 世界".encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    assert read(write(tmp_path / "wide.txt", data)) == "Grüße, 世界"


def test_binary_file_is_rejected(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"
    with pytest.raises(DocumentError, match=r"^pic\.png is not a text file \(binary data\)$"):
        read(write(tmp_path / "pic.png", png))


def test_latin1_file_reports_the_bad_byte_offset(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"^old\.txt is not UTF-8 text \(bad byte at offset 3\)$") as info:
        read(write(tmp_path / "old.txt", "Café crème".encode("latin-1")))
    assert info.value.hint


def test_offset_counts_the_bom(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"offset 4\)"):
        read(write(tmp_path / "x.txt", b"\xef\xbb\xbfa\xff"))


@pytest.mark.parametrize("data", [b"", b" \n\t\n", b"<html><head><title>t</title></head><body> </body>"])
def test_empty_documents(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(DocumentError, match=r"^blank\.html is empty$"):
        read(write(tmp_path / "blank.html", data))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"cannot read gone\.txt"):
        read_document(Source(tmp_path / "gone.txt", "gone.txt", Path("gone.txt")))


HTML = """<!DOCTYPE html>
<html><head><title>Not shown</title><style>p { color: red }</style>
<script>if (a < b) { document.write("<p>no</p>") }</script></head>
<body>
<!-- a comment -->
<h1>Fish &amp; Chips</h1>
<p>Served   hot,
   with <b>salt</b>&nbsp;&amp; vinegar &mdash; &#8364;5.</p>
<ul><li>cod</li><li>haddock<ol><li>small</li><li>large</li></ol></li></ul>
<pre>
def fry(fish):
    return  fish &lt;hot&gt;
</pre>
<table><tr><th>Day</th><th>Open</th></tr><tr><td>Mon</td><td>no</td></tr></table>
<div>Line one<br>Line two<br><br>New paragraph</div>
<noscript><p>Enable JavaScript</p></noscript><template><p>hidden</p></template>
</body></html>
"""


def test_html_visible_text(tmp_path: Path) -> None:
    assert read(write(tmp_path / "page.htm", HTML)) == (
        "Fish & Chips\n\n"
        "Served hot, with salt & vinegar — €5.\n\n"
        "- cod\n- haddock\n  1. small\n  2. large\n\n"
        "def fry(fish):\n    return  fish <hot>\n\n"
        "Day Open\nMon no\n\n"
        "Line one\nLine two\n\nNew paragraph"
    )


def test_html_with_unclosed_head_keeps_the_body() -> None:
    assert html_to_text("<head><title>x</title><body><p>kept</p>") == "kept"


def test_stdin_source_reads_given_bytes_and_sniffs_html() -> None:
    source = Source.stdin()
    assert (source.path, source.display) == (None, "<stdin>")
    assert read_document(source, stdin="héllo\n".encode()) == "héllo\n"
    assert read_document(source, stdin=b"<!doctype html><p>a</p><p>b</p>") == "a\n\nb"
    with pytest.raises(DocumentError, match=r"^<stdin> is empty$"):
        read_document(source, stdin=b"\n")


def test_stdin_is_read_when_no_bytes_are_given(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeStdin:
        buffer = io.BytesIO(b"piped text")

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    assert read_document(Source.stdin()) == "piped text"


def test_pdf_pages_are_joined_by_blank_lines(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    pdf = make_pdf(["Hello from page one", "And page two"])
    assert read(write(tmp_path / "doc.pdf", pdf)) == "Hello from page one\n\nAnd page two"
    assert read_document(Source.stdin(), stdin=pdf) == "Hello from page one\n\nAnd page two"


def test_pdf_without_text_and_broken_pdf(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    with pytest.raises(DocumentError, match=r"^scan\.pdf is empty$") as info:
        read(write(tmp_path / "scan.pdf", make_pdf([""])))
    assert "OCR" in (info.value.hint or "")
    with pytest.raises(DocumentError, match=r"^bad\.pdf is not a readable PDF"):
        read(write(tmp_path / "bad.pdf", b"%PDF-1.4\nnot really a pdf"))


def test_pdf_without_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)
    with pytest.raises(DocumentError, match=r"^reading PDF needs the pdf extra$") as info:
        read(write(tmp_path / "doc.pdf", make_pdf(["x"])))
    assert info.value.hint == 'pip install "llmcli[pdf]"'

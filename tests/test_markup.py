"""markup: a document's fixed skeleton, the segments to translate, and safe rendering of any translation."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from llmcli.text.markup import Layout, Segment, parse, restore_code_spans

ROOT = Path(__file__).resolve().parents[1]
FLORES = ROOT.parent / "shared" / "eval" / "flores200_devtest"


def identity(layout: Layout) -> str:
    return layout.render([s.text for s in layout.segments])


def line_count(text: str) -> int:
    return text.count("\n") + 1


def round_trips(text: str) -> bool:
    return identity(parse(text)) == text


# --- random documents -----------------------------------------------------------------------------

WORDS = ["alpha", "beta", "gamma", "delta", "model", "token", "translate", "quick", "brown", "fox", "lazy"]
CJK = "这是一个测试文本用于检查中文分段。日本語のテキストも少し入れます、大丈夫です！"


def words(rng: random.Random, most: int = 8) -> str:
    choices = [*WORDS, *WORDS, "`code`", "``a ` b``", "2024", "https://x.org/y", "**bold**", "[link](u)"]
    return " ".join(rng.choice(choices) for _ in range(rng.randint(1, most)))


def cjk(rng: random.Random) -> str:
    return "".join(rng.sample(CJK, rng.randint(4, 16)))


def paragraph(rng: random.Random) -> str:
    lines: list[str] = []
    for _ in range(rng.randint(1, 4)):
        lead = rng.choice(["", "", "", " ", "   ", "\t"]) if lines else rng.choice(["", "", " "])
        text = cjk(rng) if rng.random() < 0.15 else words(rng)
        lines.append(lead + text + rng.choice(["", "", "", "  ", " ", "\t", "\\"]))
    return "\n".join(lines)


def item_list(rng: random.Random) -> str:
    ordered = rng.random() < 0.4
    lines: list[str] = []
    for n in range(1, rng.randint(2, 6)):
        indent = (" " * (3 if ordered else 2)) * rng.randint(0, 2)
        marker = f"{n}{rng.choice('.)')}" if ordered else rng.choice("-*+")
        lines.append(f"{indent}{marker} {rng.choice(['', '', '[ ] ', '[x] '])}{words(rng)}")
        if rng.random() < 0.3:
            lines.append(f"{indent}  {words(rng)}")
        if rng.random() < 0.1:
            lines.append(words(rng))  # lazy continuation
    return "\n".join(lines)


def table(rng: random.Random) -> str:
    columns = rng.randint(1, 4)
    padded = rng.random() < 0.7

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |" if padded else "|".join(cells)

    rows = [row([words(rng, 3) for _ in range(columns)])]
    rows.append(row([rng.choice(["---", ":--", "--:", ":-:"]) for _ in range(columns)]))
    for _ in range(rng.randint(0, 4)):
        rows.append(row([rng.choice([words(rng, 3), "42 %", "a \\| b", ""]) for _ in range(columns)]))
    return "\n".join(rows)


def quote(rng: random.Random) -> str:
    lines: list[str] = []
    for _ in range(rng.randint(1, 4)):
        prefix = rng.choice(["> ", ">"]) * rng.randint(1, 3)
        lines.append(prefix + rng.choice([words(rng), "", f"- {words(rng)}", f"# {words(rng)}"]))
    return "\n".join(lines)


def fence(rng: random.Random, last: bool) -> str:
    mark = rng.choice(["```", "~~~", "````"])
    indent = rng.choice(["", "", " ", "  "])
    code = ["# not a heading", "- not an item", "x = 1", "", "> no", "| a |", "|---|"]
    body = [rng.choice(code) for _ in range(3)]
    close = [] if last and rng.random() < 0.5 else [indent + mark]  # an unclosed fence runs to the end
    return "\n".join([indent + mark + rng.choice(["", "python", " js"]), *body, *close])


def block(rng: random.Random, last: bool) -> str:
    kind = rng.randrange(17)
    if kind < 3:
        return paragraph(rng)
    return [
        lambda: "#" * rng.randint(1, 6) + " " + words(rng) + rng.choice(["", " #", " ##"]),
        lambda: words(rng) + "\n" + rng.choice(["===", "---", "=========="]),
        lambda: item_list(rng),
        lambda: table(rng),
        lambda: quote(rng),
        lambda: fence(rng, last),
        lambda: "\n".join(rng.choice(["    ", "\t", "     "]) + words(rng) for _ in range(rng.randint(1, 3))),
        lambda: rng.choice(["<!-- note -->", "<!-- a\nlonger\ncomment -->"]),
        lambda: rng.choice(["<br>", '<div align="center">', "</div>", '<img src="x.png"/>']),
        lambda: rng.choice(["---", "***", "___", "- - -", " * * *"]),
        lambda: f"[{rng.choice(WORDS)}]: https://example.com/{rng.choice(WORDS)}",
        lambda: rng.choice(["2024-01-01", "42 %", "3.14", "https://example.com", "1,000"]),
        lambda: cjk(rng),
        lambda: "<!-- unclosed" if last else "<!-- closed -->",
    ][kind - 3]()


def document(rng: random.Random) -> str:
    count = rng.randint(0, 10)
    body = ""
    for k in range(count):
        if k:
            body += rng.choice(["\n\n", "\n\n", "\n\n\n", "\n \n", "\n\t\n"])
        body += block(rng, k == count - 1)
    front = rng.choice(["", "", "\n", "\n\n", " \n"])
    if rng.random() < 0.1:
        front = "---\ntitle: x\n---\n" + front
    return front + body + rng.choice(["", "\n", "\n\n", "\n\n\n", "  ", "\n  \n"])


HOSTILE_STARTS = [
    "", "", "# ", "- ", "+ ", "* ", "1. ", "2) ", "> ", "```", "~~~", "---", "===", "<div>", "<!-- ", "<br>",
    "| ", "    ", "\t", "[a]: ", "|---|---|", "***", "-|-", "#", "-", "1.", "<pre>",
]  # fmt: skip


def hostile(rng: random.Random, lines: int) -> str:
    """A translation of any shape whose lines start with block markers, with blank lines and pipes."""
    out = []
    for _ in range(rng.choice([lines, lines, 1, lines + 2, max(1, lines - 1)])):
        body = [rng.choice(["wort", "|", "`x`", "---", "#", "\\|", "中文", "日本語。"]) for _ in range(3)]
        out.append(rng.choice(HOSTILE_STARTS) + " ".join(["wort", *body, *["ende"] * lines]))
        if rng.random() < 0.2:
            out.append(rng.choice(["", "  "]))
    return "\n".join(out)


def shape(layout: Layout) -> str:
    """The skeleton with every segment line filled by "x": equal for layouts with the same structure."""
    return layout.render(["\n".join(["x"] * line_count(s.text)) for s in layout.segments])


# --- round trip -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["README.md", "bench/README.md"])
def test_round_trip_real_markdown(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8")
    layout = parse(text)
    assert identity(layout) == text
    assert len(layout.segments) > 10
    fenced: set[str] = set()
    inside = False
    for line in text.split("\n"):
        if line.startswith("```"):
            inside = not inside
        elif inside:
            fenced.add(line.strip())
    assert not fenced & {line for s in layout.segments for line in s.text.split("\n")}


@pytest.mark.parametrize("language", ["eng_Latn", "deu_Latn", "fra_Latn", "spa_Latn"])
def test_round_trip_flores_paragraphs(language: str) -> None:
    path = FLORES / f"{language}.devtest"
    if not path.is_file():
        pytest.skip(f"missing {path}")
    sentences = [s for s in path.read_text(encoding="utf-8").split("\n") if s.strip()]
    groups = [sentences[i : i + 5] for i in range(0, len(sentences), 5)]

    joined = "\n\n".join(" ".join(g) for g in groups) + "\n"
    layout = parse(joined)
    assert identity(layout) == joined
    assert [s.text for s in layout.segments] == [" ".join(g).strip() for g in groups]
    assert {s.kind for s in layout.segments} == {"paragraph"}

    wrapped = "\n\n".join("\n".join(g) for g in groups)  # one sentence per line, no final newline
    layout = parse(wrapped)
    assert identity(layout) == wrapped
    assert [s.text for s in layout.segments] == ["\n".join(s.strip() for s in g) for g in groups]


@pytest.mark.parametrize(
    "text",
    [
        "", " ", "\n", "\n\n\n", " \t \n  ", "\t", "no newline", "text\n\n\n\n\n", "\n\n  lead\n",
        "\tTabbed start", "a\tb\t\n\tc", "中文段落。第二句！\n\n日本語の文です。", "一行目\n二行目\n",
        "```", "```\n", "~~~~\n# code", "> ", ">", "- ", "-", "1.", "#", "# ", "#\n", "|", "| a |", "---",
        "---\n", "***", "<!--", "<!-- x", "<br>", "\\", "a\\", "`", "``", "[a]:", "[a]: x", "\u3000全角",
        "   \u00a0\n", "a  \nb\\\nc", "- [ ] ", "- [x] done", "> > > deep", ">" * 200 + " very deep",
        "- " * 50 + "nested", "1) a\n2) b\n10) c", "a | b\n-|-\nc | d", "Title\n===\n\nSub\n---",
    ],
)  # fmt: skip
def test_round_trip_edge_cases(text: str) -> None:
    assert round_trips(text)


def test_round_trip_random_documents() -> None:
    for seed in range(1500):
        text = document(random.Random(seed))
        assert round_trips(text), (seed, text)


def test_round_trip_shuffled_real_lines() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").split("\n")
    for seed in range(200):
        rng = random.Random(seed)
        text = "\n".join(rng.sample(lines, 30))
        assert round_trips(text), (seed, text)


# --- a rich document ------------------------------------------------------------------------------

# Blocks that stay as they are whatever their text: both RICH and its uppercased render hold them.
FRONT_MATTER = [
    "",
    "",
    "---",
    "title: Release notes",
    "tags: [a, b]",
    "---",
    "",
]
CODE_AND_COMMENT = [
    "```python",
    "# not a heading",
    "- not an item",
    "```",
    "",
    "    indented code",
    "    more code",
    "",
    "<!-- a comment",
    "over two lines -->",
]
CLOSING_BLOCKS = [
    "<br>",
    "",
    "***",
    "",
    "[docs]: https://example.com/docs",
    "2024-01-01",
    "",
]

RICH = "\n".join(
    [
        *FRONT_MATTER,
        "# Getting started #",
        "",
        "Welcome to the tool.  ",
        "It runs models locally.\\",
        "   Indented third line.\t",
        "",
        "Second heading",
        "==============",
        "",
        "- [ ] Write the docs",
        "  with a continuation line",
        "- [x] Ship it",
        "    - Nested item",
        "    * Another nested",
        "",
        "1. First step",
        "2) Second step",
        "",
        "| Name | Value |",
        "|:-----|------:|",
        "| speed | 42 % |",
        "| a \\| b | fast |",
        "",
        "> Quoted wisdom",
        "> spans two lines.",
        "> > Nested quote.",
        "",
        *CODE_AND_COMMENT,
        "Use `pip install` then run.",
        *CLOSING_BLOCKS,
        "Last words  ",
    ]
)

RICH_UPPER = "\n".join(
    [
        *FRONT_MATTER,
        "# GETTING STARTED #",
        "",
        "WELCOME TO THE TOOL.  ",
        "IT RUNS MODELS LOCALLY.\\",
        "   INDENTED THIRD LINE.\t",
        "",
        "SECOND HEADING",
        "==============",
        "",
        "- [ ] WRITE THE DOCS",
        "  WITH A CONTINUATION LINE",
        "- [x] SHIP IT",
        "    - NESTED ITEM",
        "    * ANOTHER NESTED",
        "",
        "1. FIRST STEP",
        "2) SECOND STEP",
        "",
        "| NAME | VALUE |",
        "|:-----|------:|",
        "| SPEED | 42 % |",
        "| A \\| B | FAST |",
        "",
        "> QUOTED WISDOM",
        "> SPANS TWO LINES.",
        "> > NESTED QUOTE.",
        "",
        *CODE_AND_COMMENT,
        "USE `pip install` THEN RUN.",
        *CLOSING_BLOCKS,
        "LAST WORDS  ",
    ]
)


def test_rich_document_segments() -> None:
    assert parse(RICH).segments == [
        Segment("Getting started", "heading"),
        Segment("Welcome to the tool.\nIt runs models locally.\nIndented third line.", "paragraph"),
        Segment("Second heading", "heading"),
        Segment("Write the docs\nwith a continuation line", "item"),
        Segment("Ship it", "item"),
        Segment("Nested item", "item"),
        Segment("Another nested", "item"),
        Segment("First step", "item"),
        Segment("Second step", "item"),
        Segment("Name", "cell"),
        Segment("Value", "cell"),
        Segment("speed", "cell"),
        Segment("a \\| b", "cell"),
        Segment("fast", "cell"),
        Segment("Quoted wisdom\nspans two lines.", "quote"),
        Segment("Nested quote.", "quote"),
        Segment("Use `pip install` then run.", "paragraph"),
        Segment("Last words", "paragraph"),
    ]


def test_rich_document_renders_translations_into_the_same_structure() -> None:
    layout = parse(RICH)
    assert identity(layout) == RICH
    # Uppercasing also "translates" the code span; render puts the original back.
    assert layout.render([s.text.upper() for s in layout.segments]) == RICH_UPPER


# --- what is a segment ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "```\n# title\n- item\n```",
        "~~~~ info string\ntext\n~~~\nstill code\n~~~~",
        "   ```\nindented fence\n   ```",
        "```\nunclosed fence runs to the end\n\nstill code",
        "    indented code\n\tand a tab",
        "<!-- comment -->",
        "<!--\nmulti\nline\n-->",
        "<br>",
        '<div align="center">\n<img src="logo.png" alt="">\n</div>',
        "<pre>\nkeep this text\n</pre>",
        "---\ntitle: Front matter\nlang: en\n---",
        "---",
        "***",
        "___",
        "- - -",
        "[id]: https://example.com/page",
        '[id]: https://example.com/page "Title"',
        "2024-01-01",
        "https://example.com",
        "42 %",
        "`code_only()`",
        "![](image.png)",
        "| 1 | 2 |\n|---|:-:|\n| 3 | 4 |",
        "# 2024",
        "- 42",
        "> 3.14",
    ],
)
def test_verbatim_blocks_are_not_segments(text: str) -> None:
    layout = parse(text)
    assert layout.segments == []
    assert layout.render([]) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Title\n=====\n\nSub\n---", [("Title", "heading"), ("Sub", "heading")]),
        ("Multi\nline\n===", [("Multi\nline", "heading")]),
        ("### Closed ###", [("Closed", "heading")]),
        ("#hashtag is text", [("#hashtag is text", "paragraph")]),
        ("- a\n\n  more\n\n      code in item\n- b", [("a", "item"), ("more", "paragraph"), ("b", "item")]),
        ("- a\nlazy line", [("a\nlazy line", "item")]),
        ("- a\n- b\n\n  - nested", [("a", "item"), ("b", "item"), ("nested", "item")]),
        ("- a\n\n    not code in a list", [("a", "item"), ("not code in a list", "paragraph")]),
        ("- ```\n  code\n  ```", []),
        ("- # Heading item", [("Heading item", "heading")]),
        ("We left in\n1986. It was late.", [("We left in\n1986. It was late.", "paragraph")]),
        ("Intro:\n1. one\n2. two", [("Intro:", "paragraph"), ("one", "item"), ("two", "item")]),
        ("> a\nlazy\n\n> b\n>\n> c", [("a\nlazy", "quote"), ("b", "quote"), ("c", "quote")]),
        ("> - item\n> # head\n> ```\n> code\n> ```", [("item", "item"), ("head", "heading")]),
        ("a | b\n--|--\nc | \\|", [("a", "cell"), ("b", "cell"), ("c", "cell")]),
        ("Text | pipe\nmore text", [("Text | pipe\nmore text", "paragraph")]),
        ("Para\n| h |\n| - |\n| c |", [("Para", "paragraph"), ("h", "cell"), ("c", "cell")]),
        ("Date:\n2024-01-01", [("Date:\n2024-01-01", "paragraph")]),
        ("<div>\n\nInside a div.\n\n</div>", [("Inside a div.", "paragraph")]),
        ("Text\n<br>\nmore", [("Text", "paragraph"), ("more", "paragraph")]),
        ("\u3000全角の字下げ。", [("全角の字下げ。", "paragraph")]),
    ],
)  # fmt: skip
def test_segment_kinds(text: str, expected: list[tuple[str, str]]) -> None:
    layout = parse(text)
    assert [(s.text, s.kind) for s in layout.segments] == expected
    assert identity(layout) == text


# --- translations of another shape ----------------------------------------------------------------

THREE = "One two three four five six\nseven eight nine\nten eleven twelve thirteen"


def render_one(source: str, translation: str) -> str:
    layout = parse(source)
    assert len(layout.segments) == 1
    return layout.render([translation])


def test_same_line_count_goes_line_by_line() -> None:
    assert render_one("  a b  \nc d\\\ne f", "  A\nB B B B B\nC  ") == "  A  \nB B B B B\\\nC"


def test_more_lines_are_redistributed_in_proportion() -> None:
    out = render_one(THREE, "Eins zwei\ndrei vier\n\nfünf sechs\nsieben acht\nneun zehn elf zwölf dreizehn")
    assert out == "Eins zwei drei vier fünf sechs\nsieben acht\nneun zehn elf zwölf dreizehn"


def test_fewer_lines_are_redistributed_in_proportion() -> None:
    out = render_one("aaa bbb ccc\nddd\neee fff", "AAA BBB CCC DDD EEE FFF")
    assert out == "AAA BBB CCC\nDDD\nEEE FFF"
    out = render_one(THREE, "Un deux trois quatre cinq six sept huit neuf dix onze douze treize")
    assert out == "Un deux trois quatre cinq\nsix sept huit\nneuf dix onze douze treize"
    assert render_one("a\nb\nc", "x y") == "x\ny\n"  # fewer words than lines: only then a line is empty


def test_cjk_is_redistributed_between_characters() -> None:
    out = render_one("Short line\nA somewhat longer second line", "这是第一句话。这是第二句话，稍微长一些。")
    first, second = out.split("\n")
    assert first + second == "这是第一句话。这是第二句话，稍微长一些。"
    assert 0 < len(first) < len(second)
    assert not second.startswith(("。", "，"))  # closing punctuation stays with the character before it


def test_single_line_source_joins_lines() -> None:
    assert render_one("# Title", "Der\nTitel\n\nhier") == "# Der Titel hier"
    assert render_one("# Title", "中文\n标题 and English\nwords") == "# 中文标题 and English words"
    assert render_one("- item", "  Punkt  \n") == "- Punkt"


def test_translation_shape_never_changes_lines_or_paragraphs() -> None:
    source = "First para line one\nline two\n\n- item one\n  continued\n- item two\n\nLast para."
    layout = parse(source)
    translations = ["A\n\n\nB\n\nC", "\n\nX\n\nY Z\n\n", "one\ntwo\nthree\nfour", "\n  Ende.  \n\n"]
    out = layout.render(translations)
    assert out == "A B\nC\n\n- X Y\n  Z\n- one two three four\n\nEnde."
    assert line_count(out) == line_count(source)
    assert [s.kind for s in parse(out).segments] == [s.kind for s in layout.segments]


def test_carriage_returns_in_a_translation_are_line_breaks() -> None:
    assert render_one("a\nb", "x\r\ny") == "x\ny"


def test_wrong_number_of_translations() -> None:
    layout = parse("a\n\nb")
    with pytest.raises(ValueError, match="expected 2 translations, got 1"):
        layout.render(["x"])


# --- escaping -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("translation", "expected"),
    [
        ("# Titel\n- Punkt", "\\# Titel\n\\- Punkt"),
        ("* Stern\n+ plus", "\\* Stern\n\\+ plus"),
        ("1. erstens\n12) zwölftens", "1\\. erstens\n12\\) zwölftens"),
        ("> Zitat\n```python", "\\> Zitat\n\\```python"),
        ("~~~ Tilde\n---", "\\~~~ Tilde\n\\---"),
        ("Kopf\n===", "Kopf\n\\==="),
        ("<div>Block\n<!-- Kommentar", "\\<div>Block\n\\<!-- Kommentar"),
        ("[a]: Ziel\n|---|---|", "\\[a]: Ziel\n\\|---|---|"),
        ("    eingerückt\n\tTab", "eingerückt\nTab"),  # indentation is the skeleton's, never the model's
        ("#hashtag\n-minus", "#hashtag\n-minus"),  # not markers: left alone
        ("<b>fett</b> Text\n1.5 Liter", "<b>fett</b> Text\n1.5 Liter"),
    ],
)
def test_block_markers_in_translations_are_disarmed(translation: str, expected: str) -> None:
    assert render_one("plain line\nsecond line", translation) == expected


def test_markers_the_source_line_had_stay() -> None:
    assert render_one("In the year\n1986. It was late.", "Im Jahr\n1986. Es war spät.") == (
        "Im Jahr\n1986. Es war spät."
    )
    assert render_one("In the year\n1986. It was late.", "Im Jahr\n1. Es war spät.") == (
        "Im Jahr\n1\\. Es war spät."
    )


def test_disarming_in_items_headings_and_quotes() -> None:
    layout = parse("- item\n  more\n\n## Head\n\n> quoted\n> text")
    out = layout.render(["- Punkt\n> mehr", "# Kopf", "Zitat\n> Text"])
    assert out == "- \\- Punkt\n  \\> mehr\n\n## \\# Kopf\n\n> Zitat\n> \\> Text"


def test_table_cells_escape_pipes_and_disarm_at_line_start() -> None:
    layout = parse("a | b\n--|--\nc | d")
    out = layout.render(["# x|y", "- B", "C\nD", "E\\"])
    assert out == "\\# x\\|y | - B\n--|--\nC D | E\\\\"
    assert [s.kind for s in parse(out).segments] == ["cell"] * 4


# --- code spans -----------------------------------------------------------------------------------


def test_restore_code_spans_with_equal_counts() -> None:
    source = "Run `llmcli translate` with `--to de`."
    assert restore_code_spans(source, "Führe `llmcli übersetzen` mit `--nach de` aus.") == (
        "Führe `llmcli translate` mit `--to de` aus."
    )


def test_restore_code_spans_with_unequal_counts_changes_nothing() -> None:
    source = "Run `a` and `b`."
    assert restore_code_spans(source, "Starte `x`.") == "Starte `x`."
    assert restore_code_spans("no code", "kein `Code`") == "kein `Code`"


def test_restore_double_backtick_spans() -> None:
    source = "Use ``a ` b`` and `c`."
    assert restore_code_spans(source, "Nimm ``x ` y`` und `z`.") == "Nimm ``a ` b`` und `c`."
    # An unmatched run is literal text, an escaped backtick opens nothing, and a run of a different length
    # does not close a span.
    assert restore_code_spans("`a` \\`b", "`x` \\`y") == "`a` \\`y"
    assert restore_code_spans("``a`b``", "``x`y``") == "``a`b``"
    assert restore_code_spans("`a``", "`x``") == "`x``"


def test_render_restores_code_spans_in_every_segment() -> None:
    layout = parse("Call `f(x)` here.\n\n| `cell code` text |\n|---|")
    out = layout.render(["Rufe `F(X)` hier.", "`Zellcode` Text"])
    assert out == "Rufe `f(x)` hier.\n\n| `cell code` Text |\n|---|"


# --- any translation, any document ----------------------------------------------------------------


def test_random_translations_keep_every_line_and_the_structure() -> None:
    for seed in range(1500):
        rng = random.Random(seed)
        source = document(rng)
        layout = parse(source)
        out = layout.render([hostile(rng, line_count(s.text)) for s in layout.segments])
        assert len(out.split("\n")) == len(source.split("\n")), (seed, source, out)
        again = parse(out)
        assert [s.kind for s in again.segments] == [s.kind for s in layout.segments], (seed, source, out)
        assert shape(again) == shape(layout), (seed, source, out)

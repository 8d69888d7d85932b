import json
import random
import zlib
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from llmcli.engine import LocalEngine
from llmcli.text.chunking import Chunk, chunk_text, split_paragraphs, split_sentences

SHARED = Path(__file__).resolve().parents[2] / "shared"
STORIES = SHARED / "models" / "stories260K.gguf"
SUMMEVAL = SHARED / "eval" / "summ" / "summeval_cnndm_gold.jsonl"

Counter = Callable[[str], int]


def words(text: str) -> int:
    return len(text.split())


def chars(text: str) -> int:
    """A character counter, like a tokenizer that gives every CJK character its own token."""
    return sum(not c.isspace() for c in text)


def noisy(text: str) -> int:
    """Word count plus 0-2 tokens of deterministic noise: sums are off in both directions."""
    return len(text.split()) + zlib.crc32(text.encode()) % 3


def superadditive(text: str) -> int:
    """Counts more for a concatenation than for its parts, so sums underestimate whole chunks."""
    n = len(text.split())
    return n + n // 4


class Recorder:
    """A counter that remembers what it was asked to count."""

    def __init__(self, count: Counter) -> None:
        self.count = count
        self.calls: list[str] = []

    def __call__(self, text: str) -> int:
        self.calls.append(text)
        return self.count(text)


def sentence_bounds(text: str) -> list[int]:
    bounds = [0]
    for paragraph in split_paragraphs(text):
        for sentence in split_sentences(paragraph):
            bounds.append(bounds[-1] + len(sentence))
    return bounds


def paragraph_bounds(text: str) -> list[int]:
    bounds = [0]
    for paragraph in split_paragraphs(text):
        bounds.append(bounds[-1] + len(paragraph))
    return bounds


def check_chunks(text: str, chunks: list[Chunk], count: Counter, budget: int, overlap: int) -> None:
    """Every property chunk_text promises, for any text and counter."""
    assert chunks, "non-blank text gives at least one chunk"
    bounds = sentence_bounds(text)
    bound_set = set(bounds)
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.tokens == count(chunk.text) <= budget
    assert chunks[0].start == 0
    assert chunks[-1].end == len(text)
    rebuilt = [chunks[0].text]
    for prev, cur in pairwise(chunks):
        assert prev.start < cur.start <= prev.end < cur.end  # never the whole previous chunk, always new text
        prefix = text[cur.start : prev.end]
        assert prev.text.endswith(prefix) and cur.text.startswith(prefix)
        assert count(prefix) <= overlap if prefix else True
        assert cur.start in bound_set or cur.start == prev.end  # the overlap is whole sentences
        if overlap == 0:
            assert prefix == ""
        rebuilt.append(cur.text[len(prefix) :])
    assert "".join(rebuilt) == text

    sentences = list(pairwise(bounds))
    if all(count(text[a:b]) <= budget for a, b in sentences):
        for chunk in chunks[:-1]:
            assert chunk.end in bound_set, f"chunk ends mid-sentence: {chunk.text[-40:]!r}"
        for a, b in sentences:
            assert any(c.start <= a and b <= c.end for c in chunks), "a sentence is split across chunks"
    paragraphs = paragraph_bounds(text)
    if overlap == 0 and all(count(text[a:b]) <= budget for a, b in pairwise(paragraphs)):
        assert {c.end for c in chunks} <= set(paragraphs)


# --- split_sentences ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Mr. Smith paid $3.14 for it. He left! Did he? Yes.",
            ["Mr. Smith paid $3.14 for it. ", "He left! ", "Did he? ", "Yes."],
        ),
        ("See e.g. Paris, i.e. France. Then stop.", ["See e.g. Paris, i.e. France. ", "Then stop."]),
        (
            "The U.S.A. is big. So e.g.x stays. U.S.A mid-token too.",
            ["The U.S.A. is big. ", "So e.g.x stays. ", "U.S.A mid-token too."],
        ),
        (
            "Version 2.0.1 shipped. It costs 3.50 dollars.",
            ["Version 2.0.1 shipped. ", "It costs 3.50 dollars."],
        ),
        ('"Why?" he asked. "Because." Then silence.', ['"Why?" he asked. ', '"Because." ', "Then silence."]),
        ("(It worked.) Next one.", ["(It worked.) ", "Next one."]),
        ("Wait... Then go.", ["Wait... ", "Then go."]),
        ("Wait… Then go. Well… maybe not.", ["Wait… ", "Then go. ", "Well… maybe not."]),
        ("Really?! Yes.", ["Really?! ", "Yes."]),
    ],
)
def test_split_sentences_english(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_split_sentences_chinese_without_spaces() -> None:
    text = "今天天气很好。我们去公园吧！你去吗？好的"
    assert split_sentences(text) == ["今天天气很好。", "我们去公园吧！", "你去吗？", "好的"]


def test_split_sentences_chinese_quotes_and_ellipsis() -> None:
    text = "他说：“我来了。”然后走了……大家都笑了。"
    assert split_sentences(text) == ["他说：“我来了。”", "然后走了……大家都笑了。"]


def test_split_sentences_japanese_quotes() -> None:
    text = "「おはよう。」「こんにちは！」彼女は笑った。『本当？』"
    assert split_sentences(text) == ["「おはよう。」", "「こんにちは！」", "彼女は笑った。", "『本当？』"]


def test_split_sentences_fullwidth_parenthesis_closes() -> None:
    assert split_sentences("（これは例です。）次です。") == ["（これは例です。）", "次です。"]


def test_split_sentences_mixed_scripts() -> None:
    text = "Hello world. 你好。再见！ OK? Done."
    assert split_sentences(text) == ["Hello world. ", "你好。", "再见！ ", "OK? ", "Done."]


def test_split_sentences_keeps_newlines_inside_and_trailing_whitespace() -> None:
    text = "line one\ncontinues here. Next\nline.  \n"
    assert split_sentences(text) == ["line one\ncontinues here. ", "Next\nline.  \n"]


def test_split_sentences_edge_cases() -> None:
    assert split_sentences("") == []
    assert split_sentences("   ") == ["   "]
    assert split_sentences("no end at all") == ["no end at all"]
    assert split_sentences("  Leading space. Then.") == ["  Leading space. ", "Then."]


def test_split_sentences_round_trip_random() -> None:
    rng = random.Random(1)
    alphabet = [
        "a",
        "B",
        " ",
        "\n",
        ".",
        "!",
        "?",
        "…",
        "。",
        "！",
        "？",
        "」",
        "”",
        ")",
        "3",
        "字",
        "Mr",
        "e.g",
    ]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        parts = split_sentences(text)
        assert "".join(parts) == text
        assert all(parts)


# --- split_paragraphs -----------------------------------------------------------------------------


def test_split_paragraphs() -> None:
    assert split_paragraphs("a\nb\n\nc\n \n\n d\n") == ["a\nb\n\n", "c\n \n\n", " d\n"]


def test_split_paragraphs_edges() -> None:
    assert split_paragraphs("") == []
    assert split_paragraphs(" \n\n ") == [" \n\n "]
    assert split_paragraphs("\n\nfirst\n\n\nsecond\n\n  ") == ["\n\nfirst\n\n\n", "second\n\n  "]
    assert split_paragraphs("one\r\n\r\ntwo") == ["one\r\n\r\n", "two"]
    assert split_paragraphs("single line\nstill one") == ["single line\nstill one"]


def test_split_paragraphs_round_trip_random() -> None:
    rng = random.Random(2)
    alphabet = ["word", " ", "\n", "\n\n", "\t", "\r\n", "."]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 20)))
        parts = split_paragraphs(text)
        assert "".join(parts) == text
        assert all(part.strip() for part in parts) or len(parts) <= 1


# --- chunk_text with fake counters ----------------------------------------------------------------


@pytest.mark.parametrize(("budget", "overlap"), [(0, 0), (-3, 0), (10, 10), (10, 11), (10, -1)])
def test_chunk_text_rejects_bad_budget(budget: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="budget"):
        chunk_text("Some text.", words, budget, overlap)


def test_chunk_text_blank_text() -> None:
    assert chunk_text("", words, 10) == []
    assert chunk_text(" \n\n\t ", words, 10) == []


def test_chunk_text_fits_in_one_chunk() -> None:
    text = "\nOne paragraph. Two sentences.\n\nAnother one.\n"
    assert chunk_text(text, words, 100) == [Chunk(text, 0, len(text), 6)]


def test_chunk_text_packs_whole_paragraphs() -> None:
    paragraphs = [" ".join(["w"] * n) + ".\n\n" for n in (4, 3, 5, 2, 6)]
    text = "".join(paragraphs)
    chunks = chunk_text(text, words, 8)
    assert [c.text for c in chunks] == [
        paragraphs[0] + paragraphs[1],
        paragraphs[2] + paragraphs[3],
        paragraphs[4],
    ]
    check_chunks(text, chunks, words, 8, 0)


def test_chunk_text_packs_sentences_of_a_long_paragraph() -> None:
    text = "Short one.\n\nA b c. D e f. G h i. J k.\n\nEnd here."
    chunks = chunk_text(text, words, 5)
    assert [c.text for c in chunks] == ["Short one.\n\nA b c. ", "D e f. ", "G h i. J k.\n\n", "End here."]
    check_chunks(text, chunks, words, 5, 0)


def test_chunk_text_splits_a_long_sentence_at_whitespace() -> None:
    text = "one two three four five six seven eight nine ten eleven."
    chunks = chunk_text(text, words, 4)
    assert [c.text for c in chunks] == ["one two three four ", "five six seven eight ", "nine ten eleven."]


def test_chunk_text_splits_cjk_without_spaces_at_characters() -> None:
    text = "这是一个没有标点也没有空格的很长很长的句子" * 3 + "。短句。"
    chunks = chunk_text(text, chars, 8)
    assert all(len(c.text) <= 8 for c in chunks)
    check_chunks(text, chunks, chars, 8, 0)
    text = "今天天气很好。我们去公园吧！你去吗？好的。"
    chunks = chunk_text(text, chars, 8)
    assert [c.text for c in chunks] == ["今天天气很好。", "我们去公园吧！", "你去吗？好的。"]


def test_chunk_text_character_too_big_for_the_budget() -> None:
    with pytest.raises(ValueError, match="too small"):
        chunk_text("字字字", lambda t: 3 * len(t), 2)


def test_chunk_text_overlap_carries_last_sentences() -> None:
    text = "A b c. D e. F g h i. J k l. M n."
    chunks = chunk_text(text, words, 7, overlap=3)
    assert [c.text for c in chunks] == ["A b c. D e. ", "D e. F g h i. ", "J k l. M n."]
    check_chunks(text, chunks, words, 7, 3)


def test_chunk_text_overlap_is_never_the_whole_previous_chunk() -> None:
    text = "A b. C d. E f."
    chunks = chunk_text(text, words, 2, overlap=1)
    assert [c.text for c in chunks] == ["A b. ", "C d. ", "E f."]


def test_chunk_text_overlap_shrinks_rather_than_cut_a_sentence() -> None:
    text = "A b c. D e f g h i."
    chunks = chunk_text(text, words, 6, overlap=3)
    assert [c.text for c in chunks] == ["A b c. ", "D e f g h i."]


def test_chunk_text_verifies_chunks_when_sums_underestimate() -> None:
    text = " ".join(f"Word{i} a b." for i in range(40))
    counter = Recorder(superadditive)
    chunks = chunk_text(text, counter, 20)
    check_chunks(text, chunks, superadditive, 20, 0)
    rejected = [t for t in counter.calls if t != text and superadditive(t) > 20]
    assert rejected, "some packed chunk was over the budget and had to give units back"
    assert all(c.tokens >= 15 for c in chunks[:-1])  # still packed well


def test_chunk_text_random_documents_fake_counters() -> None:
    rng = random.Random(3)
    vocab = ["the", "cat", "sat", "Mr.", "3.14", "e.g.", "on", "mat", "長い", "字字字字", "U.S.A"]
    for _ in range(300):
        paragraphs = []
        for _ in range(rng.randrange(1, 6)):
            sentences = []
            for _ in range(rng.randrange(1, 6)):
                n = rng.choice([1, 2, 5, 10, 30])
                end = rng.choice([".", "!", "?", "…", "。", "！"])
                sentences.append(" ".join(rng.choice(vocab) for _ in range(n)) + end)
            paragraphs.append(rng.choice([" ", "\n", "。"]).join(sentences))
        text = rng.choice(["", "\n", "  "]) + "\n\n".join(paragraphs) + rng.choice(["", "\n", " \n\n"])
        for count in (words, chars, superadditive, noisy):
            budget = rng.choice([3, 8, 20, 60])
            overlap = rng.randrange(0, budget)
            check_chunks(text, chunk_text(text, count, budget, overlap), count, budget, overlap)
            check_chunks(text, chunk_text(text, count, budget), count, budget, 0)


# --- chunk_text with a real tokenizer on real news text --------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalEngine]:
    if not STORIES.is_file():
        pytest.skip(f"test model missing: {STORIES}")
    engine = LocalEngine(STORIES)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def count(engine: LocalEngine) -> Counter:
    return lambda t: len(engine.tokenize(t, add_special=False))


@pytest.fixture(scope="module")
def articles() -> list[str]:
    if not SUMMEVAL.is_file():
        pytest.skip(f"eval data missing: {SUMMEVAL}")
    with SUMMEVAL.open(encoding="utf-8") as f:
        return [json.loads(line)["article"] for line in f][:12]


def with_paragraphs(article: str, rng: random.Random) -> str:
    """The article (one line in the data set) regrouped into paragraphs of a few sentences."""
    sentences = split_sentences(article)
    paragraphs, i = [], 0
    while i < len(sentences):
        n = rng.randrange(1, 8)
        paragraphs.append("".join(sentences[i : i + n]).rstrip())
        i += n
    return "\n\n".join(paragraphs) + "\n"


@pytest.mark.parametrize(("budget", "overlap"), [(48, 0), (48, 16), (128, 0), (128, 40), (400, 100)])
def test_chunk_text_real_tokenizer(articles: list[str], count: Counter, budget: int, overlap: int) -> None:
    rng = random.Random(budget * 1000 + overlap)
    for article in articles:
        for text in (article, with_paragraphs(article, rng)):
            check_chunks(text, chunk_text(text, count, budget, overlap), count, budget, overlap)


def test_chunk_text_real_tokenizer_splits_long_sentences(articles: list[str], count: Counter) -> None:
    text = articles[0]
    longest = max(count(s) for s in split_sentences(text))
    budget = longest // 2
    chunks = chunk_text(text, count, budget, overlap=5)
    check_chunks(text, chunks, count, budget, 5)
    assert any(c.end not in set(sentence_bounds(text)) for c in chunks[:-1])


def test_chunk_text_real_tokenizer_counts_each_piece_about_once(articles: list[str], count: Counter) -> None:
    text = "\n\n".join(articles)
    counter = Recorder(count)
    chunks = chunk_text(text, counter, 200, overlap=30)
    check_chunks(text, chunks, count, 200, 30)
    # Each paragraph, each sentence of a paragraph over the budget, each word of a sentence over the
    # budget, the overlaps and one check per chunk: never the remaining text again and again.
    paragraphs = split_paragraphs(text)
    sentences = [s for p in paragraphs for s in split_sentences(p)]
    long_words = sum(len(s.split()) for s in sentences if count(s) > 200)
    assert len(counter.calls) <= len(paragraphs) + len(sentences) + long_words + 4 * len(chunks)
    assert sum(map(len, counter.calls)) < 4 * len(text)
    assert max(map(len, counter.calls)) <= max(map(len, paragraphs))

"""The Translator with the real engine: segments, long paragraphs, repeats, glossary, prefix reuse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tinymodel import SHARED, write_chat_model

from llmcli.chat.templates import pick_template
from llmcli.engine import EngineOptions, LocalEngine
from llmcli.errors import UsageError
from llmcli.sampling import SamplingConfig
from llmcli.tasks.asking import TaskSetup
from llmcli.tasks.translate import TranslateOptions, Translator, glossary_terms, join_parts, load_glossary
from llmcli.text.languages import resolve_language

GREEDY = SamplingConfig(temperature=0.0, max_tokens=16)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    model = write_chat_model(tmp_path_factory.mktemp("translate") / "chat.gguf")
    with LocalEngine(model, EngineOptions(n_ctx=512)) as eng:
        yield eng


def translator(engine: LocalEngine, notes: list[str] | None = None, **options: object) -> Translator:
    bos, eos = engine.special_text()
    template = pick_template(engine.info.chat_template, bos_token=bos, eos_token=eos)
    opts = TranslateOptions(**{"target": resolve_language("de"), **options})  # type: ignore[arg-type]
    notify = notes.append if notes is not None else None
    return Translator(TaskSetup(engine, template, GREEDY, notify=notify), opts)


def test_one_call_per_distinct_segment_and_structure_kept(engine: LocalEngine) -> None:
    text = "Lily had a ball.\n\nTom had a dog.\n\nLily had a ball.\n\n```\ncode stays\n```\n"
    result = translator(engine).translate(text)
    assert result.segments == 3 and result.calls == 2  # the repeated paragraph is translated once
    paragraphs = result.text.split("\n\n")
    assert len(paragraphs) == 4 and paragraphs[0] == paragraphs[2]
    assert result.text.endswith("\n\n```\ncode stays\n```\n")


def test_long_paragraph_is_split_within_budget(engine: LocalEngine) -> None:
    notes: list[str] = []
    t = translator(engine, notes)
    sentences = (SHARED / "eval" / "flores200_devtest" / "eng_Latn.devtest").read_text().splitlines()[:12]
    paragraph = " ".join(sentences)
    assert t.asker.count(paragraph) > t.budget()
    result = t.translate(paragraph + "\n")
    assert result.calls > 1 and "\n\n" not in result.text.strip()
    assert any(n.startswith("plan: 1 segments") for n in notes)


def test_source_language_is_detected_and_same_language_copied(engine: LocalEngine) -> None:
    notes: list[str] = []
    german = "Der Hund spielt im Garten. Die Kinder lachen und die Sonne scheint über dem Haus."
    result = translator(engine, notes).translate(german)
    assert result.text == german and result.calls == 0
    assert result.source is not None and result.source.code == "de"
    assert "source language: German (detected)" in notes


def test_prefix_is_reused_across_segments(engine: LocalEngine) -> None:
    t = translator(engine)
    t.translate("Lily had a ball.\n\nTom had a dog.\n")
    turn = t.asker.chat.turn
    assert turn is not None
    system_tokens = len(engine.tokenize("system:" + (t.asker.chat.system or ""), add_special=True))
    assert turn.completion.stats.cached_tokens >= system_tokens - 2


def test_glossary_terms_reach_the_prompt(engine: LocalEngine, tmp_path: Path) -> None:
    pairs = (("world", "Welt"), ("llmcli", "llmcli"), ("東京", "Tokyo"))
    assert glossary_terms(pairs, "Hello World!") == [("world", "Welt")]
    assert glossary_terms(pairs, "underworld") == []
    assert glossary_terms(pairs, "我住在東京。") == [("東京", "Tokyo")]
    message = translator(engine, glossary=pairs)._message("Hello world")
    assert "world → Welt" in message and "llmcli" not in message


def test_load_glossary(tmp_path: Path) -> None:
    path = tmp_path / "g.tsv"
    path.write_text("\ufeff# comment\n\nworld\tWelt\n  \nTokyo\t東京\n", encoding="utf-8")
    assert load_glossary(path) == (("world", "Welt"), ("Tokyo", "東京"))
    path.write_text("a\tb\tc\n")
    with pytest.raises(UsageError, match=":1: expected"):
        load_glossary(path)
    with pytest.raises(UsageError, match="cannot read the glossary"):
        load_glossary(tmp_path / "missing.tsv")


def test_join_parts() -> None:
    assert join_parts(["Hallo.", "Welt."]) == "Hallo. Welt."
    assert join_parts(["你好。", "世界。"]) == "你好。世界。"
    assert join_parts(["你好。", "World"]) == "你好。 World"

"""Summarize with the real engine: strategies, chunk plans, budgets and prefix reuse."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tinymodel import SHARED, write_chat_model

from llmcli.chat.templates import pick_template
from llmcli.engine import EngineOptions, LocalEngine
from llmcli.errors import ContextOverflowError, UsageError
from llmcli.sampling import SamplingConfig
from llmcli.tasks.asking import TaskSetup
from llmcli.tasks.summarize import Summarizer, SummaryOptions

GREEDY = SamplingConfig(temperature=0.0)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    model = write_chat_model(tmp_path_factory.mktemp("summ") / "chat.gguf")
    with LocalEngine(model, EngineOptions(n_ctx=1024)) as eng:
        yield eng


def article(i: int = 0) -> str:
    lines = (SHARED / "eval" / "summ" / "summeval_cnndm_gold.jsonl").read_text().splitlines()
    return json.loads(lines[i])["article"]


def summarizer(engine: LocalEngine, notes: list[str] | None = None, **options: object) -> Summarizer:
    bos, eos = engine.special_text()
    template = pick_template(engine.info.chat_template, bos_token=bos, eos_token=eos)
    opts = SummaryOptions(**{"words": 20, **options})  # type: ignore[arg-type]
    notify = notes.append if notes is not None else None
    return Summarizer(TaskSetup(engine, template, GREEDY, notify=notify), opts)


def test_short_text_is_stuffed(engine: LocalEngine) -> None:
    result = summarizer(engine).summarize("Lily had a red ball. She played with it in the park every day.")
    assert result.strategy == "stuff" and result.chunks == 1 and result.calls == 1
    assert result.text


def test_long_text_is_map_reduced_within_budget(engine: LocalEngine) -> None:
    notes: list[str] = []
    s = summarizer(engine, notes)
    text = article(0)
    assert s.count(text) > s.budget("summarize")  # several times the room a chunk gets
    result = s.summarize(text)
    assert result.strategy == "map-reduce" and result.chunks > 1
    assert result.calls >= result.chunks + 1  # every chunk, then at least one combine
    plan = notes[0]
    assert plan.startswith(f"plan: map-reduce, {result.chunks} chunks")
    sizes = [int(n) for n in plan.split("(")[1].rstrip(")").split(", ")]
    assert max(sizes) <= s.budget("summarize")


def test_refine_calls_once_per_chunk(engine: LocalEngine) -> None:
    result = summarizer(engine, strategy="refine").summarize(article(1))
    assert result.strategy == "refine" and result.calls == result.chunks > 1


def test_stuff_refuses_to_truncate(engine: LocalEngine) -> None:
    with pytest.raises(ContextOverflowError, match="the document is"):
        summarizer(engine, strategy="stuff").summarize(article(0))


def test_instruction_prefix_is_reused_across_calls(engine: LocalEngine) -> None:
    s = summarizer(engine)
    s.summarize(article(2))
    turn = s.asker.chat.turn
    assert turn is not None
    system_tokens = len(engine.tokenize("system:" + (s.asker.chat.system or ""), add_special=True))
    assert turn.completion.stats.cached_tokens >= system_tokens - 2


def test_options_are_checked() -> None:
    for bad in ({"length": "huge"}, {"style": "poem"}, {"strategy": "magic"}, {"words": 0}):
        with pytest.raises(UsageError):
            SummaryOptions(**bad).validate()  # type: ignore[arg-type]
    fields = SummaryOptions(style="bullets", lang="German", instructions="numbers").fields()
    assert "bullet" in fields["shape"] and "German" in fields["language"] and "numbers" in fields["focus"]

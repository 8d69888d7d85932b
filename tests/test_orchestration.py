"""Orchestration with the scripted engine: what summarize's map-reduce sends, in which order, and what
it makes of the answers. The real-model tests (test_summarize.py) run the same paths end to end."""

from __future__ import annotations

import re

import pytest
from scripted import ScriptedEngine

from llmcli.chat.templates import CHATML, ChatTemplate
from llmcli.errors import ContextOverflowError
from llmcli.sampling import SamplingConfig
from llmcli.tasks.asking import TaskSetup
from llmcli.tasks.summarize import Summarizer, SummaryOptions

GREEDY = SamplingConfig(temperature=0.0)
TEMPLATE = ChatTemplate(CHATML, origin="inferred", family="chatml")
DOCUMENT = "\n\n".join(
    f"Paragraph {i} tells of the {i}th bridge over the river, and who built it." for i in range(40)
)


def summarizer(engine: ScriptedEngine) -> Summarizer:
    return Summarizer(TaskSetup(engine, TEMPLATE, GREEDY), SummaryOptions(words=20))


def paragraphs_in(engine: ScriptedEngine, call: int) -> list[int]:
    return [int(n) for n in re.findall(r"Paragraph (\d+) ", engine.spelled(engine.calls[call].tokens))]


def test_map_reduce_sends_every_chunk_in_order_then_combines_the_partials_in_order() -> None:
    engine = ScriptedEngine(answers=[f"Partial {i}." for i in range(30)], n_ctx=1024)
    result = summarizer(engine).summarize(DOCUMENT)
    assert result.strategy == "map-reduce" and result.chunks > 2 and result.calls == result.chunks + 1
    seen = [paragraphs_in(engine, i) for i in range(result.chunks)]
    firsts = [p[0] for p in seen]
    assert firsts == sorted(firsts) and firsts[0] == 0  # chunk by chunk, from the start
    assert set().union(*map(set, seen)) == set(range(40))  # nothing left out (chunks may overlap)
    combine = engine.spelled(engine.calls[-1].tokens)
    assert re.findall(r"Partial (\d+)\.", combine) == [str(i) for i in range(result.chunks)]
    assert "Paragraph" not in combine  # the combine step sees the partial summaries only
    assert result.text == f"Partial {result.chunks}."


def test_partials_too_long_to_combine_at_once_are_reduced_in_levels() -> None:
    chunks = summarizer(ScriptedEngine(answers=["Short."] * 100, n_ctx=1024)).summarize(DOCUMENT * 2).chunks
    wordy = " ".join(["and then the bridge was painted again"] * 4)
    answers = [f"Partial {i}: {wordy}." for i in range(chunks)] + [f"Group {i}." for i in range(50)]
    engine = ScriptedEngine(answers=answers, n_ctx=1024)
    result = summarizer(engine).summarize(DOCUMENT * 2)
    levels = [engine.spelled(c.tokens) for c in engine.calls[chunks:]]
    assert len(levels) > 1  # groups of partials first, then their summaries combined
    grouped = [re.findall(r"Partial (\d+):", text) for text in levels[:-1]]
    assert [n for group in grouped for n in group] == [str(i) for i in range(chunks)]  # each once, in order
    assert re.findall(r"Group (\d+)\.", levels[-1]) == [str(i) for i in range(len(levels) - 1)]
    assert result.text == f"Group {len(levels) - 1}."


def test_partials_that_never_shrink_stop_with_a_clear_error() -> None:
    endless = " ".join(["the bridge"] * 300)
    engine = ScriptedEngine(answers=[endless] * 200, n_ctx=1024)
    with pytest.raises(ContextOverflowError, match="do not shrink"):
        summarizer(engine).summarize(DOCUMENT)

"""Prompt-lookup speculative decoding: the drafts, the budget, and output equal to plain decoding."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from ties import assert_same_up_to_a_tie
from tinymodel import chain

from llmcli.engine import EngineOptions, LocalEngine
from llmcli.engine.speculative import DraftBudget, NgramIndex
from llmcli.errors import UsageError
from llmcli.sampling import SamplingConfig

STORY = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big dog in the park. Once upon a time, there was a little girl named Lily."
)


def test_ngram_index_drafts_what_followed_the_latest_match() -> None:
    index = NgramIndex([1, 2, 3, 4, 5, 9, 1, 2, 3, 7])
    index.append(1)
    index.append(2)
    assert index.draft(3) == [3, 7, 1]  # the latest earlier "1 2" was followed by 3 7 1
    index.append(3)
    assert index.draft(2) == [7, 1]  # "1 2 3" (longest suffix) last continued with 7
    assert NgramIndex([1, 2, 3]).draft(4) == []
    assert NgramIndex([5, 5]).draft(4) == []  # nothing before the only "5 5"


def test_draft_budget_grows_and_backs_off() -> None:
    budget = DraftBudget(8)
    assert budget.next_size() == 4
    budget.record(4, 4)
    assert budget.next_size() == 8
    budget.record(8, 0)
    assert budget.next_size() == 0  # paused one step after a total miss
    assert budget.next_size() == 4
    budget.record(4, 0)
    assert [budget.next_size() for _ in range(3)] == [0, 0, 2]  # the pause doubles
    budget.record(2, 1)
    assert budget.next_size() == 2 and budget.acceptance == pytest.approx(5 / 18)


@pytest.mark.parametrize(
    "sampling",
    [
        SamplingConfig(temperature=0.0, max_tokens=150),
        SamplingConfig(temperature=0.8, seed=42, max_tokens=150),
        SamplingConfig(temperature=0.0, max_tokens=150, ignore_eos=True),
    ],
    ids=["greedy", "temperature", "ignore-eos"],
)
def test_stories_output_is_identical_with_lookup(
    stories_engine: LocalEngine, sampling: SamplingConfig
) -> None:
    # Sampled output is identical only while a batched decode's logits equal a single-token decode's
    # bit for bit; llama.cpp's CPU kernels for n >= 2 round differently, which can flip a sample at
    # a top-p boundary (the distribution is still the plain one). Greedy output is what we pin.
    stories_engine.reset()
    plain = stories_engine.generate(STORY, sampling).run()
    stories_engine.reset()
    fast = stories_engine.generate(STORY, sampling, lookup=8).run()
    assert fast.tokens == plain.tokens and fast.text == plain.text
    assert fast.finish_reason == plain.finish_reason
    assert fast.stats.accepted_tokens > 0 and fast.stats.drafted_tokens >= fast.stats.accepted_tokens
    assert fast.stats.generated_tokens == plain.stats.generated_tokens


def test_limits_and_stops_hold_mid_draft(stories_engine: LocalEngine) -> None:
    for limit in (1, 2, 5, 17, 40):
        greedy = SamplingConfig(temperature=0.0, max_tokens=limit)
        plain = stories_engine.generate(STORY, greedy).run()
        fast = stories_engine.generate(STORY, greedy, lookup=8).run()
        assert fast.tokens == plain.tokens and len(fast.tokens) == limit
    stop = SamplingConfig(temperature=0.0, max_tokens=100, stop=("park",))
    plain = stories_engine.generate(STORY, stop).run()
    fast = stories_engine.generate(STORY, stop, lookup=8).run()
    assert fast.text == plain.text and fast.finish_reason == "stop" and "park" not in fast.text


def test_kv_cache_matches_after_rejected_drafts(stories_engine: LocalEngine) -> None:
    greedy = SamplingConfig(temperature=0.0, max_tokens=60)
    stories_engine.reset()
    first = stories_engine.generate(STORY, greedy, lookup=8).run()
    prompt = stories_engine.tokenize(STORY)
    # The cache holds exactly the prompt and the generated tokens that were decoded: a follow-up
    # prompt extending them reuses all of it.
    follow = stories_engine.generate(prompt + first.tokens[:-1] + [first.tokens[-1]], greedy)
    follow.run()
    assert follow.stats.cached_tokens == len(prompt) + len(first.tokens) - 1


def test_context_end_with_lookup(program_model: Callable[..., Path]) -> None:
    hello, world = 15043, 3186
    model = program_model({hello: {world: 30.0}, world: {hello: 30.0}}, n_ctx=64)
    with LocalEngine(model, EngineOptions(n_ctx=64)) as engine:
        plain = engine.generate([1, hello, world, hello], SamplingConfig(temperature=0.0)).run()
        fast = engine.generate([1, hello, world, hello], SamplingConfig(temperature=0.0), lookup=8).run()
        n_ctx = engine.n_ctx
    assert fast.finish_reason == plain.finish_reason == "context"
    assert fast.tokens == plain.tokens and len(fast.tokens) == n_ctx - 4 + 1
    assert fast.stats.accepted_tokens > 40


def test_chain_model_copies_with_full_acceptance(program_model: Callable[..., Path]) -> None:
    ids = [15043, 3186, 29901, 450, 4996]
    model = program_model(chain(ids))
    with LocalEngine(model, EngineOptions(n_ctx=128)) as engine:
        fast = engine.generate([1, *ids, 1, ids[0]], SamplingConfig(temperature=0.0), lookup=8).run()
    assert fast.tokens == ids[1:] and fast.finish_reason == "stop"
    assert fast.stats.accepted_tokens == fast.stats.drafted_tokens - 1 > 0  # only EOS was mispredicted


def test_a_draft_model_drafts_and_changes_nothing_but_near_ties(
    stories: Path, stories_engine: LocalEngine
) -> None:
    sampling = SamplingConfig(temperature=0.0, max_tokens=150)
    stories_engine.reset()
    plain = stories_engine.generate(STORY, sampling).run()
    with LocalEngine(stories, EngineOptions(n_ctx=512)) as engine:
        # The same model drafting for itself: nearly every draft is what the main model picks.
        engine.use_draft_model(LocalEngine(stories, EngineOptions(n_ctx=512)))
        fast = engine.generate(STORY, sampling, lookup=6).run()
    assert fast.stats.accepted_tokens >= 0.9 * fast.stats.drafted_tokens > 0
    assert_same_up_to_a_tie(stories_engine, stories_engine.tokenize(STORY), plain.tokens, fast.tokens)


def test_a_draft_model_of_another_vocabulary_is_refused(
    stories: Path, program_model: Callable[..., Path]
) -> None:
    other = LocalEngine(program_model(chain([15043, 3186])), EngineOptions(n_ctx=128))
    with (
        LocalEngine(stories, EngineOptions(n_ctx=128)) as engine,
        pytest.raises(UsageError, match="another vocabulary"),
    ):
        engine.use_draft_model(other)
    assert other.closed  # closed, not leaked

"""Prompt-lookup speculative decoding: the drafts, the budget, and output equal to plain decoding."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from costs import cheap
from ties import assert_same_up_to_a_tie
from tinymodel import chain

from llmcli.engine import EngineOptions, LocalEngine
from llmcli.engine.speculative import DraftBudget, NgramIndex, StepCosts, plan
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
    # A loop: "8 9" last came two tokens back, so the draft goes round "8 9" again and again.
    assert NgramIndex([8, 9, 8, 9]).draft(5) == [8, 9, 8, 9, 8]
    assert NgramIndex([4, 4, 4]).draft(3) == [4, 4, 4]
    assert NgramIndex([5, 5]).draft(4) == []  # nothing before the only "5 5"


def test_ngram_index_evidence_is_the_matched_length() -> None:
    index = NgramIndex([1, 2, 3, 4, 5, 9, 1, 2, 3, 7, 1, 2])
    assert index.evidence() == 2  # "1 2" matched, and "7" before it differs from the "9" back then
    index.append(3)
    assert index.evidence() == 3  # "1 2 3"
    long = NgramIndex([5, 6, 7, 8, 9, 1, 5, 6, 7, 8])
    assert long.evidence() == 4 and long.draft(2) == [9, 1]  # the trigram's match reaches back to 5
    assert NgramIndex([5, 5]).evidence() == 0 and NgramIndex([5, 5]).draft(3) == []


def measured(plain: float, **verifications: list[float]) -> StepCosts:
    """StepCosts that saw eight plain steps of plain seconds, and verifications (by "k<drafts>")."""
    costs = StepCosts()
    for _ in range(StepCosts.WINDOW):
        costs.observe(0, plain)
    for name, times in verifications.items():
        for seconds in times:
            costs.observe(int(name[1:]), seconds)
    return costs


def test_step_costs_are_measured_ratios_and_a_size_tried_once_is_tried_again() -> None:
    assert StepCosts().relative(3) == pytest.approx(1 + 3 * StepCosts.PRIOR_ROW)  # nothing measured yet
    costs = measured(0.02, k1=[0.032, 0.034, 0.06, 0.06, 0.06, 0.06], k3=[0.06], k5=[0.04, 0.05])
    assert costs.relative(1) == pytest.approx(1.7)  # the lower quartile: a busy run's 3.0s do not count
    assert costs.relative(3) == pytest.approx(2.2)  # one slow decode: the prior's price still
    assert costs.relative(5) == pytest.approx(2.0)  # the cheaper of what was seen and the prior
    # Untried counts cost at least what a smaller one was measured to (three times): 2.5, not 2.2.
    assert measured(0.02, k2=[0.05] * 3).relative(3) == pytest.approx(2.5)
    # A descheduled decode counts as at most decoding the rows one by one.
    assert measured(0.02, k2=[5.0, 5.0, 5.0]).relative(2) == pytest.approx(3.0)


def size(budget: DraftBudget, costs: StepCosts, evidence: int, room: int) -> int:
    """What one sequence drafts, as LocalEngine asks."""
    return plan([budget.chances(evidence, room)], costs)[0]


def test_one_sequence_drafts_what_pays_for_itself() -> None:
    cheap = measured(0.02, k1=[0.021] * 3)  # one draft row costs about nothing: a GPU, say
    assert size(DraftBudget(8), cheap, 2, room=1) == 1
    costs = measured(0.02, **{f"k{k}": [0.02 * (1 + 0.6 * k)] * 7 for k in range(1, 9)})
    budget = DraftBudget(8)
    assert size(budget, costs, 0, room=8) == size(budget, costs, 2, room=8) == 0  # an accidental bigram
    assert size(budget, costs, 5, room=8) > 0 and size(budget, costs, 5, room=2) <= 2
    for _ in range(6):
        budget.record(5, 4, 0)
    assert size(budget, costs, 5, room=8) == 0  # long matches that keep failing stop being drafted
    odd = measured(0.02, k1=[0.032] * 7, k2=[0.053] * 7, k3=[0.046] * 7)  # 4 rows cost less than 3
    assert size(DraftBudget(3), odd, 5, room=8) == 3


def test_drafts_not_verified_are_watched_and_teach_the_budget() -> None:
    budget = DraftBudget(4)
    start = budget.chances(5, room=4)
    budget.watch(5, [7, 8, 9, 10])
    budget.watch(5, [1, 2])  # one at a time: the first is still being followed
    for token in (7, 8, 9, 10):
        budget.follow(token)  # the text went on as the draft said, to its end
    assert budget.chances(5, room=4) > start
    budget.watch(2, [3, 4])
    budget.follow(5)  # missed at once
    assert budget.chances(2, room=2)[0] < DraftBudget(4).chances(2, room=2)[0]
    assert budget.chances(5, room=4) > start  # a short match's miss says nothing of long ones
    budget.watch(3, [1, 2, 3])
    budget.follow(1)
    budget.settle()  # drafting for real from here: the one token it matched counts as accepted
    budget.follow(9)
    assert budget.chances(3, room=1)[0] > DraftBudget(4).chances(3, room=1)[0]


def test_sequences_decoded_together_share_the_drafts_that_pay() -> None:
    sure, unsure = [0.9, 0.8, 0.7, 0.6], [0.3, 0.1]
    # Each row costs a tenth of a four-sequence step: worth it for a chance above 0.4 (0.1 x 4 rows).
    costs = StepCosts(rows=4)
    costs.observe(0, 0.1)
    for k in range(1, 13):
        costs.remember({k: [1 + 0.1 * k] * StepCosts.WINDOW})
    assert plan([sure, unsure, [], sure[:2]], costs) == [4, 0, 0, 2]
    assert plan([unsure, unsure, [], []], costs) == [0, 0, 0, 0]
    # Unmeasured, a row is priced at PRIOR_ROW single steps: a quarter of that of a four-row step.
    assert StepCosts(rows=4).relative(2) == pytest.approx(1 + 2 * StepCosts.PRIOR_ROW / 4)


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
    # Output is identical only while a batched decode's logits equal a single-token decode's bit for
    # bit; llama.cpp's CPU kernels for n >= 2 round differently, which can flip a sample at a top-p
    # boundary (the distribution is still the plain one), or greedy output at a near tie (on AVX-512,
    # top two 0.0014 apart at token 88). Greedy output is pinned up to such a tie.
    stories_engine.reset()
    plain = stories_engine.generate(STORY, sampling).run()
    stories_engine.reset()
    fast = cheap(stories_engine).generate(STORY, sampling, lookup=8).run()
    assert fast.stats.accepted_tokens > 0 and fast.stats.drafted_tokens >= fast.stats.accepted_tokens
    if sampling.temperature == 0:
        assert_same_up_to_a_tie(stories_engine, stories_engine.tokenize(STORY), plain.tokens, fast.tokens)
    if fast.tokens == plain.tokens:
        assert fast.text == plain.text and fast.finish_reason == plain.finish_reason
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
    with cheap(LocalEngine(model, EngineOptions(n_ctx=64))) as engine:
        plain = engine.generate([1, hello, world, hello], SamplingConfig(temperature=0.0)).run()
        fast = engine.generate([1, hello, world, hello], SamplingConfig(temperature=0.0), lookup=8).run()
        n_ctx = engine.n_ctx
    assert fast.finish_reason == plain.finish_reason == "context"
    assert fast.tokens == plain.tokens and len(fast.tokens) == n_ctx - 4 + 1
    assert fast.stats.accepted_tokens > 40


def test_chain_model_copies_with_full_acceptance(program_model: Callable[..., Path]) -> None:
    ids = [15043, 3186, 29901, 450, 4996, 338, 263, 1243, 310, 278, 1788, 1230]
    model = program_model(chain(ids))
    with cheap(LocalEngine(model, EngineOptions(n_ctx=128))) as engine:
        fast = engine.generate([1, *ids, 1, ids[0]], SamplingConfig(temperature=0.0), lookup=8).run()
    assert fast.tokens == ids[1:] and fast.finish_reason == "stop"
    # Short matches are decoded plainly; once the match is long, the copy is drafted and accepted
    # to the end, where only the draft past the chain's EOS is rejected.
    stats = fast.stats
    assert stats.accepted_tokens >= len(ids) - 5 and stats.drafted_tokens - stats.accepted_tokens <= 8


def test_a_draft_model_drafts_and_changes_nothing_but_near_ties(
    stories: Path, stories_engine: LocalEngine
) -> None:
    sampling = SamplingConfig(temperature=0.0, max_tokens=150)
    stories_engine.reset()
    plain = stories_engine.generate(STORY, sampling).run()
    with cheap(LocalEngine(stories, EngineOptions(n_ctx=512))) as engine:
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

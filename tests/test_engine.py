"""The engine against real llama.cpp: stories260K and programmed models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from llmcli.engine import Capabilities, EngineOptions, LocalEngine, Unsupported
from llmcli.errors import ContextOverflowError
from llmcli.sampling import SamplingConfig

LILY = ", there was a little girl named Lily"
GREEDY = SamplingConfig(temperature=0.0, max_tokens=40)
BYTE = 3  # llama-spm: token id of byte <0x00>; <0xNN> is BYTE + NN
HELLO, WORLD = 15043, 3186  # "▁Hello", "▁world" in the Llama-2 tokenizer


def test_greedy_story(stories_engine: LocalEngine) -> None:
    result = stories_engine.generate("Once upon a time", GREEDY).run()
    assert result.text.startswith(LILY)
    assert result.finish_reason == "length"
    assert result.stats.generated_tokens == 40 == len(result.tokens)


def test_the_contract_says_what_a_local_engine_does(stories_engine: LocalEngine) -> None:
    assert stories_engine.capabilities == Capabilities(speculation=True, scoring=True)
    assert not stories_engine.takes_messages and stories_engine.kv_cache_bytes(1024)
    with pytest.raises(Unsupported):
        stories_engine.chat([{"role": "user", "content": "Hi"}], GREEDY)
    stats = stories_engine.generate("Once upon a time", GREEDY).run().stats
    assert stats.prompt_ms > 0 and stats.decode_ms > 0 and 0 < stats.ttft_ms <= stats.total_ms


def test_greedy_is_deterministic(stories_engine: LocalEngine) -> None:
    first = stories_engine.generate("The cat", GREEDY).run().text
    assert stories_engine.generate("The cat", GREEDY).run().text == first


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_top_k_1_equals_greedy(stories_engine: LocalEngine, temperature: float) -> None:
    greedy = stories_engine.generate("Once upon a time", GREEDY).run().text
    for seed in range(3):
        config = SamplingConfig.from_options(top_k=1, temperature=temperature, seed=seed, max_tokens=40)
        assert stories_engine.generate("Once upon a time", config).run().text == greedy


def test_same_seed_same_text_and_seeds_differ(stories_engine: LocalEngine) -> None:
    def sample(seed: int) -> str:
        config = SamplingConfig.from_options(temperature=1.5, top_k=0, top_p=1.0, seed=seed, max_tokens=30)
        return stories_engine.generate("Once upon a time", config).run().text

    assert sample(42) == sample(42)
    assert len({sample(s) for s in range(4)}) > 1


def first_tokens(engine: LocalEngine, prompt: list[int], config: SamplingConfig, n: int) -> set[int]:
    seen = set()
    for seed in range(n):
        result = engine.generate(prompt, SamplingConfig(**{**config.__dict__, "seed": seed, "max_tokens": 1}))
        seen.add(result.run().tokens[0])
    return seen


def test_top_k_only_emits_the_k_most_likely(stories_engine: LocalEngine) -> None:
    prompt = stories_engine.tokenize("Once upon a time, there was a")
    logits = stories_engine.next_logits(prompt)
    top5 = set(np.argsort(-logits)[:5].tolist())
    config = SamplingConfig.from_options(top_k=5, temperature=3.0)
    seen = first_tokens(stories_engine, prompt, config, 60)
    assert seen <= top5
    assert len(seen) >= 3  # the flat temperature really samples among them


def test_nucleus_only_emits_tokens_inside_the_nucleus(stories_engine: LocalEngine) -> None:
    prompt = stories_engine.tokenize("Once upon a time, there was a")
    logits = stories_engine.next_logits(prompt).astype(np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs)
    cut = int(np.searchsorted(np.cumsum(probs[order]), 0.6)) + 1  # smallest set with mass >= 0.6
    nucleus = set(order[:cut].tolist())
    config = SamplingConfig.from_options(top_p=0.6, temperature=3.0)
    seen = first_tokens(stories_engine, prompt, config, 60)
    assert seen <= nucleus
    assert len(seen) == len(nucleus) or len(seen) >= 2


def test_programmed_distribution_top_k(program_model: Callable[..., Path]) -> None:
    # After "▁Hello": five candidates with logits 5..1; top-k 2 may only pick the two best.
    nexts = {BYTE + ord(c): 6.0 - i for i, c in enumerate("abcde")}
    with LocalEngine(program_model({HELLO: nexts}), EngineOptions(n_ctx=64)) as engine:
        config = SamplingConfig.from_options(top_k=2, temperature=5.0)
        seen = first_tokens(engine, [1, HELLO], config, 40)
        assert seen == {BYTE + ord("a"), BYTE + ord("b")}


def test_stop_string_split_across_tokens(stories_engine: LocalEngine) -> None:
    full = stories_engine.generate("Once upon a time", GREEDY).run().text
    # "girl na" spans the tokens of "girl" and "named"
    config = SamplingConfig(temperature=0.0, max_tokens=40, stop=("girl na",))
    result = stories_engine.generate("Once upon a time", config).run()
    assert result.text == full[: full.index("girl na")]
    assert result.finish_reason == "stop"


def test_max_tokens(stories_engine: LocalEngine) -> None:
    result = stories_engine.generate("Once upon a time", SamplingConfig(temperature=0.0, max_tokens=3)).run()
    assert result.stats.generated_tokens == 3
    assert result.finish_reason == "length"


def test_end_of_generation_token_ends(program_model: Callable[..., Path]) -> None:
    with LocalEngine(program_model({HELLO: {WORLD: 30.0}}), EngineOptions(n_ctx=64)) as engine:
        result = engine.generate([1, HELLO], GREEDY).run()
    assert (result.text, result.finish_reason, result.tokens) == (" world", "stop", [WORLD])


def test_utf8_split_across_tokens(program_model: Callable[..., Path]) -> None:
    # "你" is E4 BD A0: emitted as three separate byte tokens, it must come out whole.
    program = {HELLO: {BYTE + 0xE4: 30.0}, BYTE + 0xE4: {BYTE + 0xBD: 30.0}, BYTE + 0xBD: {BYTE + 0xA0: 30.0}}
    with LocalEngine(program_model(program), EngineOptions(n_ctx=64)) as engine:
        generation = engine.generate([1, HELLO], GREEDY)
        pieces = list(generation)
    assert pieces == ["你"]
    assert generation.completion().tokens == [BYTE + 0xE4, BYTE + 0xBD, BYTE + 0xA0]


def test_context_full_ends_generation(program_model: Callable[..., Path]) -> None:
    loop = {HELLO: {WORLD: 30.0}, WORLD: {HELLO: 30.0}}
    with LocalEngine(program_model(loop), EngineOptions(n_ctx=32)) as engine:
        result = engine.generate([1, HELLO], SamplingConfig(temperature=0.0)).run()
        n_ctx = engine.n_ctx  # llama.cpp rounds the size up to its padding
    assert result.finish_reason == "context"
    assert result.stats.generated_tokens == n_ctx - 2 + 1


def test_prompt_longer_than_context(stories_engine: LocalEngine) -> None:
    with pytest.raises(ContextOverflowError, match="context holds 512"):
        stories_engine.generate("Once upon a time " * 200, GREEDY)


def test_kv_prefix_is_reused(stories_engine: LocalEngine) -> None:
    first = stories_engine.generate("Once upon a time, there was a dog", GREEDY).run()
    again = stories_engine.generate("Once upon a time, there was a dog named", GREEDY).run()
    assert first.stats.cached_tokens == 0 or first.stats.cached_tokens < first.stats.prompt_tokens
    assert again.stats.cached_tokens == first.stats.prompt_tokens
    stories_engine.reset()  # a cold cache gives the same text
    fresh = stories_engine.generate("Once upon a time, there was a dog named", GREEDY).run()
    assert fresh.stats.cached_tokens == 0 and fresh.text == again.text


def test_interrupted_generation_keeps_text_and_cache_consistent(stories_engine: LocalEngine) -> None:
    generation = stories_engine.generate("Once upon a time", GREEDY)
    pieces = [next(generation) for _ in range(5)]
    generation.close()
    result = generation.completion()
    assert result.finish_reason == "interrupted"
    assert result.text == "".join(pieces)
    assert stories_engine.generate("Once upon a time", GREEDY).run().text.startswith(LILY)


def test_stats_from_llama_counters(stories_engine: LocalEngine) -> None:
    stories_engine.reset()
    stats = stories_engine.generate("Once upon a time", GREEDY).run().stats
    assert stats.prompt_tokens == len(stories_engine.tokenize("Once upon a time"))
    assert stats.prompt_ms > 0 and stats.decode_ms > 0 and stats.ttft_ms > 0
    assert stats.decode_tps > 0 and stats.prompt_tps > 0

"""Sampled tokens are llama.cpp's: the default chain (top-p 0.95, min-p 0.05, temperature, seeded draw),
which llmcli computes with numpy where llama.cpp's top-p would sort the whole vocabulary, gives the
same text for a seed as llama-cpp-python's own sampler chain with the same settings."""

from __future__ import annotations

from pathlib import Path

import llama_cpp

from llmcli.engine import EngineOptions, LocalEngine
from llmcli.sampling import DEFAULT_MIN_P, DEFAULT_TOP_P, SamplingConfig

PROMPT = "Once upon a time"


def same_as_llama_cpp(model: Path, seeds: range, temperatures: tuple[float, ...]) -> None:
    # One prompt batch and then one token per step on both sides, so the logits are the same.
    options = EngineOptions(n_ctx=256, n_threads=2)
    reference = llama_cpp.Llama(model_path=str(model), n_ctx=256, n_threads=2, verbose=False)
    try:
        for seed in seeds:
            for temperature in temperatures:
                config = SamplingConfig.from_options(temperature=temperature, seed=seed, max_tokens=40)
                assert config.describe().startswith("top-p 0.95, min-p 0.05")
                with LocalEngine(model, options) as engine:
                    ours = "".join(engine.generate(PROMPT, config))
                reference.reset()
                completion = reference.create_completion(
                    PROMPT,
                    max_tokens=40,
                    temperature=temperature,
                    top_k=0,
                    top_p=DEFAULT_TOP_P,
                    min_p=DEFAULT_MIN_P,
                    repeat_penalty=1.0,
                    seed=seed,
                )
                assert isinstance(completion, dict)  # not a stream
                theirs = completion["choices"][0]["text"]
                assert ours == theirs, (seed, temperature)
    finally:
        reference.close()


def test_default_chain_samples_as_llama_cpp_on_the_stories_model(stories: Path) -> None:
    same_as_llama_cpp(stories, range(6), (0.8, 1.5))


def test_default_chain_samples_as_llama_cpp_on_gemma(gemma: Path) -> None:
    """Gemma's 262k vocabulary, where the cut of top-p and min-p falls far from the 256 best tokens."""
    same_as_llama_cpp(gemma, range(3), (0.8, 1.5))

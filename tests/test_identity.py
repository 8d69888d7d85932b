"""Greedy output is the same with prompt-lookup speculation and with several sequences in one batch,
on copies of the trained stories model quantized by llama.cpp (its q8_0 and q4_0 CPU kernels)."""

from __future__ import annotations

from pathlib import Path

import pytest
from costs import cheap
from ties import assert_same_up_to_a_tie, generate_together, plain_tokens
from tinymodel import STORIES, quantize

from llmcli.engine import EngineOptions, LocalEngine, ParallelEngine
from llmcli.sampling import SamplingConfig

PROMPTS = ["Once upon a time", "Tim had a red ball", "The cat was sad because", "Anna found a shiny rock"]
GREEDY = SamplingConfig(temperature=0.0, max_tokens=150, ignore_eos=True)


@pytest.fixture(scope="module", params=["q8_0", "q4_0"])
def quantized(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quantize(
        STORIES, tmp_path_factory.mktemp("quant") / f"stories-{request.param}.gguf", request.param
    )


def test_lookup_and_parallel_keep_greedy_output(quantized: Path) -> None:
    with cheap(LocalEngine(quantized, EngineOptions(n_ctx=512))) as plain:
        prompts = [plain.tokenize(p) for p in PROMPTS]
        expected = [plain_tokens(plain, p, GREEDY) for p in prompts]
        drafted = [plain.generate(p, GREEDY, lookup=8).run() for p in prompts]
        assert sum(d.stats.accepted_tokens for d in drafted) > 0
        with ParallelEngine(LocalEngine(quantized, EngineOptions(n_ctx=1024, n_seq_max=4))) as parallel:
            batched = generate_together(parallel, prompts, GREEDY)
        for prompt, want, fast, together in zip(prompts, expected, drafted, batched, strict=True):
            assert len(want) == 150
            assert_same_up_to_a_tie(plain, prompt, want, fast.tokens)
            assert_same_up_to_a_tie(plain, prompt, want, together)

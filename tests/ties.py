"""What "the same greedy output" can promise on llama.cpp's CPU kernels."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from llmcli.engine import LocalEngine, ParallelEngine
from llmcli.sampling import SamplingConfig

# llama.cpp computes a batch of several rows with other CPU kernels than one row; logits of the
# stories model move by up to 0.035 between them (measured), so a closer top two can swap.
TIE = 0.05


def assert_same_up_to_a_tie(
    plain: LocalEngine, prompt: Sequence[int], expected: list[int], got: list[int], tie: float = TIE
) -> None:
    """got equals plain decoding's expected tokens, or first differs where plain's top two were within
    `tie` and got took the runner-up."""
    first = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), None)
    if first is None:
        assert got == expected
        return
    row = plain_row(plain, prompt, expected[:first])
    gap, rank = float(row[expected[first]] - row[got[first]]), int((row > row[got[first]]).sum())
    assert rank <= 1 and gap < tie, f"differs at {first}, not at a tie: rank {rank}, {gap:.3f} below"


def plain_tokens(plain: LocalEngine, prompt: Sequence[int], sampling: SamplingConfig) -> list[int]:
    """What plain decoding generates after prompt from an empty cache (a cached prefix would change
    the prompt's batch, so its rounding), the way `plain_row` recomputes it."""
    plain.reset()
    return plain.generate(prompt, sampling).run().tokens


def plain_row(plain: LocalEngine, prompt: Sequence[int], generated: Sequence[int]) -> Any:
    """The logits plain decoding chose generated's next token from: computed as it computed them (the
    prompt as one batch, then a row a token), since a batch of rows moves logits against one row."""
    plain.reset()
    for end in range(len(generated) + 1):
        row = plain.next_logits([*prompt, *generated[:end]])
    return row


def generate_together(
    parallel: ParallelEngine, prompts: list[list[int]], sampling: SamplingConfig
) -> list[list[int]]:
    """Every prompt's generated tokens, all generating at once (one thread each) in one context."""
    batched: list[list[int]] = [[] for _ in prompts]

    def work(i: int) -> None:
        batched[i] = parallel.generate(prompts[i], sampling).run().tokens

    each_in_a_thread(work, len(prompts))
    return batched


def each_in_a_thread(work: Callable[[int], None], n: int) -> None:
    """work(0) … work(n - 1), each in a thread of its own, all at once; returns when all are done."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

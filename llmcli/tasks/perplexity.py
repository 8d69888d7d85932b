"""Perplexity of a model on a text, windowed exactly as llama.cpp's `llama-perplexity`.

Default: the tokens are cut into non-overlapping windows of `ctx` tokens (the rest is dropped),
each window starts with BOS where the model adds one, and the second half of every window is
scored, so each scored token has at least ctx/2 tokens before it. With a stride S (llama-perplexity
`--ppl-stride`), windows of ctx tokens start every S tokens and their last S tokens are scored.
A window's score is computed here from the logits rows the engine yields a batch at a time
(`Engine.window_logits`), like llama-perplexity: -log softmax, max-shifted, summed in doubles.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmcli.engine import Engine, Unsupported
from llmcli.errors import UsageError

NLL_ROWS = 64  # logits rows per step of nll: bounds its temporaries


@dataclass(frozen=True)
class Windows:
    """Where the scored windows start, and from which position in each window tokens are scored."""

    starts: list[int]
    first: int  # logits at positions first..ctx-2 score the tokens after them
    bos: bool  # replace each window's first token with BOS


def check_sizes(ctx: int, stride: int | None) -> None:
    """UsageError unless ctx and stride describe windows that score something."""
    if ctx < 8:
        raise UsageError(f"--ctx must be at least 8 for perplexity, got {ctx}")
    if stride is not None and not 0 < stride < ctx:
        raise UsageError(f"--stride must be between 1 and --ctx - 1 ({ctx - 1}), got {stride}")


def plan_windows(n_tokens: int, ctx: int, stride: int | None, bos: bool) -> Windows:
    """The windows over n_tokens tokens, or a UsageError that says what would be enough."""
    check_sizes(ctx, stride)
    if stride is None:
        if n_tokens < 2 * ctx:
            raise UsageError(
                f"the text has {n_tokens:,} tokens; perplexity with --ctx {ctx} needs at least {2 * ctx:,}",
                hint=f"use a longer text or --ctx {n_tokens // 2}" if n_tokens >= 16 else "use a longer text",
            )
        return Windows([i * ctx for i in range(n_tokens // ctx)], ctx // 2, bos)
    if n_tokens <= ctx:
        raise UsageError(
            f"the text has {n_tokens:,} tokens; a sliding window of --ctx {ctx} needs more",
            hint="use a longer text or a smaller --ctx",
        )
    count = (n_tokens - ctx + stride - 1) // stride
    # Like llama-perplexity's strided mode: raw slices of the text, no BOS put in front.
    return Windows([i * stride for i in range(count)], ctx - stride - 1, False)


@dataclass(frozen=True)
class PerplexityResult:
    """exp(mean negative log-likelihood) over the scored tokens, with its standard error."""

    ppl: float
    error: float  # ± one standard error of ppl, llama-perplexity's estimate
    text_tokens: int
    windows: int
    scored: int
    evaluated: int  # tokens run through the model
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.evaluated / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "ppl": self.ppl,
            "error": self.error,
            "text_tokens": self.text_tokens,
            "windows": self.windows,
            "scored_tokens": self.scored,
            "evaluated_tokens": self.evaluated,
            "seconds": round(self.seconds, 3),
            "tokens_per_second": round(self.tokens_per_second, 2),
        }


def nll(logits: Any, targets: Sequence[int]) -> Any:
    """-log softmax(row)[target] for each logits row, max-shifted with double sums like llama-perplexity."""
    import numpy as np

    out = np.empty(len(targets))
    for i in range(0, len(targets), NLL_ROWS):
        rows = logits[i : i + NLL_ROWS]
        peak = rows.max(axis=1)
        sums = np.exp(rows - peak[:, None]).sum(axis=1, dtype=np.float64)
        picked = rows[np.arange(len(rows)), targets[i : i + NLL_ROWS]] - peak
        out[i : i + len(rows)] = np.log(sums) - picked
    return out


def window_nll(engine: Engine, tokens: Sequence[int], first: int) -> Any:
    """Negative log-likelihoods (numpy, nats) of tokens[first + 1:], each given all tokens before it,
    with tokens evaluated as one window from an empty cache."""
    import numpy as np

    tokens = list(tokens)
    parts = [
        nll(rows, tokens[position + 1 : position + 1 + len(rows)])
        for position, rows in engine.window_logits(tokens, first)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def perplexity(
    engine: Engine,
    text: str,
    ctx: int,
    stride: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PerplexityResult:
    """The model's perplexity on text; progress(done, total) is called after each window."""
    start = time.perf_counter()
    if not engine.capabilities.scoring:
        raise Unsupported(f"{engine.name} cannot score text", hint="run the model here, without --backend")
    if ctx > engine.n_ctx:
        raise UsageError(f"--ctx {ctx} exceeds the engine's context of {engine.n_ctx:,}")
    tokens = engine.tokenize(text)
    bos = engine.tokenize("")
    plan = plan_windows(len(tokens), ctx, stride, bool(bos))
    total = total_sq = 0.0
    count = 0
    for i, offset in enumerate(plan.starts):
        window = tokens[offset : offset + ctx]
        if plan.bos:
            window[0] = bos[0]
        scores = window_nll(engine, window, plan.first)
        total += float(scores.sum())
        total_sq += float((scores * scores).sum())
        count += len(scores)
        if progress:
            progress(i + 1, len(plan.starts))
    mean = total / count
    ppl = math.exp(mean)
    variance = total_sq / count - mean * mean
    error = ppl * math.sqrt(variance / (count - 1)) if variance > 0 and count > 1 else 0.0
    return PerplexityResult(
        ppl, error, len(tokens), len(plan.starts), count, len(plan.starts) * ctx, time.perf_counter() - start
    )

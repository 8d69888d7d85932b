"""One local generation's sampled tokens turned into text, shared by LocalEngine and ParallelEngine:
counts, time to first token, end-of-generation and stop strings, limits, and with a thinking plan, the
thinking split off and its budget kept (the end marker forced once it is spent).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from llmcli.engine.context import Chooser, Context
from llmcli.engine.contract import Generation
from llmcli.engine.streaming import TextAssembler
from llmcli.reasoning import ThoughtSplitter


class TokenOutput:
    """take(token) returns the pieces the token completes and sets gen.finish_reason at EOG or a stop;
    finished() tells when the generation ends; steer(choose) puts the tokens a budget forces first.

    start: when the generation started (perf_counter), for its time to first token.
    """

    def __init__(self, context: Context, gen: Generation, start: float) -> None:
        self.context, self.gen, self.start = context, gen, start
        vocabulary = context.vocabulary
        self._is_eog, self._token_bytes, self._tokenize = (
            vocabulary.is_eog,
            vocabulary.token_bytes,
            vocabulary.tokenize,
        )
        self.text = TextAssembler(gen.sampling.stop)
        self.eog_ends = not gen.sampling.ignore_eos
        self.plan = plan = gen.sampling.think
        self.split = ThoughtSplitter(plan.format, thinking=plan.open) if plan else None
        self.forced: deque[int] = deque()
        self._budget_spent = False
        self._check_budget()

    def take(self, token: int) -> list[str]:
        gen, stats = self.gen, self.gen.stats
        stats.generated_tokens += 1
        if stats.generated_tokens == 1:
            stats.ttft_ms = (time.perf_counter() - self.start) * 1000
        if self.eog_ends and self._is_eog(token):
            gen.finish_reason = "stop"
            return []
        gen.tokens.append(token)
        split = self.split
        # Thinking markers may be special tokens, which plain rendering leaves out.
        piece, stopped = self.text.feed(self._token_bytes(token, split is not None))
        if stopped:
            gen.finish_reason = "stop"
        if split is None:
            return [piece] if piece else []
        was_thinking = split.thinking
        pieces = split.feed(piece)
        if was_thinking and split.thinking:
            stats.reasoning_tokens += 1
        self._check_budget()
        return pieces

    def finish(self) -> list[str]:
        """The pieces still held when the generation ends."""
        tail = self.text.finish()
        if self.split is None:
            return [tail] if tail else []
        return self.split.feed(tail) + self.split.finish()

    def _check_budget(self) -> None:
        plan, split = self.plan, self.split
        if plan is None or split is None or plan.budget is None or self._budget_spent or not split.thinking:
            return
        if self.gen.stats.reasoning_tokens >= plan.budget:
            self._budget_spent = True
            end = self._tokenize(plan.format.forced_end, add_special=False, parse_special=True)
            self.forced.extend(end)

    def steer(self, choose: Chooser, sampler: Any) -> Chooser:
        """choose, except that forced tokens (a spent thinking budget's end marker) come first."""
        if self.plan is None or self.plan.budget is None:
            return choose
        forced, context = self.forced, self.context

        def steered(row: int) -> int:
            if not forced:
                return choose(row)
            token = forced.popleft()
            if sampler is not None:
                context.accept(sampler, token)  # penalties see it as if it were sampled
            return token

        return steered

    def finished(self, n_past: int, n_ctx: int) -> bool:
        """Whether the generation ends here: EOG or a stop string, -n reached, or the cache full
        (n_past tokens in it, the last sampled one not yet)."""
        gen, limit = self.gen, self.gen.sampling.max_tokens
        if gen.finish_reason is None and limit is not None and gen.stats.generated_tokens >= limit:
            gen.finish_reason = "length"
        if gen.finish_reason is None and n_past >= n_ctx:
            gen.finish_reason = "context"
        return gen.finish_reason is not None

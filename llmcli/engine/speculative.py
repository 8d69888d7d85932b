"""Speculative decoding's drafters and pacing: guesses of the next tokens that the model verifies in
one batched decode, keeping only those it agrees with (so the output is what plain decoding gives).

Prompt lookup (`NgramIndex`): summaries, translations of names and code, and chat answers quoting the
prompt copy long runs of tokens from their context. When the last few tokens occurred before, the
tokens that followed them then are a cheap draft. `ModelDrafter` drafts with a small model of the same
vocabulary instead (`--draft-model`). `DraftBudget` sizes each draft by what it is expected to gain,
from the acceptance seen so far and what verifying costs on this machine (`StepCosts`).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from llmcli.engine.local import LocalEngine

MAX_NGRAM = 3
MIN_NGRAM = 2  # a single repeated token ("the", ",") predicts too little to be worth verifying
MAX_EVIDENCE = 5  # matches of this many tokens or more share one acceptance estimate


class NgramIndex:
    """The tokens so far, and where each recent n-gram last ended, for O(1) draft lookups."""

    def __init__(self, tokens: Iterable[int] = ()) -> None:
        self.tokens: list[int] = []
        self._ends: dict[tuple[int, ...], int] = {}
        self._match = (-1, 0, 0)  # (len(tokens) it was found at, continuation start, length)
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        """Add the next token of the context."""
        tokens = self.tokens
        # Index the n-grams that end just before this token: they now have a continuation.
        end = len(tokens)
        for n in range(MIN_NGRAM, MAX_NGRAM + 1):
            if end >= n:
                self._ends[tuple(tokens[end - n : end])] = end
        tokens.append(token)

    def evidence(self) -> int:
        """How many of the latest tokens occurred before where the draft comes from: the longest
        n-gram's latest occurrence, extended backwards up to MAX_EVIDENCE (0: no n-gram recurs)."""
        return self._matched()[1]

    def draft(self, limit: int) -> list[int]:
        """Up to limit tokens that followed the latest earlier occurrence of the longest matching suffix."""
        start = self._matched()[0]
        return self.tokens[start : start + limit] if start >= 0 else []

    def _matched(self) -> tuple[int, int]:
        tokens = self.tokens
        at, start, length = self._match
        if at == len(tokens):
            return start, length
        start, length = -1, 0
        for n in range(MAX_NGRAM, MIN_NGRAM - 1, -1):
            found = self._ends.get(tuple(tokens[-n:])) if len(tokens) >= n else None
            if found is not None:  # it ends before the latest token, so a continuation follows
                start, length = found, n
                while length < MAX_EVIDENCE and found > length:
                    if tokens[found - length - 1] != tokens[-length - 1]:
                        break
                    length += 1
                break
        self._match = (len(tokens), start, length)
        return start, length


class StepCosts:
    """What verifying a draft costs in plain decoding steps, from the engine's own step times.

    A batch's time is not linear in its rows: each row goes through the output layer (over half a
    step for a 262k vocabulary on a CPU), and the kernels tile rows, so on Gemma 3 270M with two
    cores four rows cost less than three. So it is measured per draft size as the engine decodes,
    each batch against the median of the latest plain steps (a changed thread count moves both). A
    size measured fewer than TRIED times is priced at the least of PRIOR_ROW steps a row (on the
    cheap side) and what it took, so that it gets tried again; after that at the median.
    """

    PRIOR_ROW = 0.4
    WINDOW = 8
    TRIED = 3

    def __init__(self) -> None:
        self._plain: deque[float] = deque(maxlen=self.WINDOW)  # seconds of the latest plain steps
        self._ratios: dict[int, deque[float]] = {}  # draft size -> the latest verifications' costs
        self._prices: dict[int, float] = {}

    def observe(self, drafts: int, seconds: float) -> None:
        """The time of one step that verified drafts tokens: drafting, decoding, sampling its first row."""
        if not drafts:
            self._plain.append(seconds)
            return
        if not self._plain:
            return
        # k + 1 rows cost at least one step and at most k + 1 (decoded one by one; at that price a
        # draft never pays); a descheduled decode, or a draft model's drafting, can take any time.
        ratio = min(max(seconds / statistics.median(self._plain), 1.0), 1.0 + drafts)
        self._ratios.setdefault(drafts, deque(maxlen=self.WINDOW)).append(ratio)
        self._prices.pop(drafts, None)

    def measured(self) -> dict[int, list[float]]:
        """The costs measured so far by draft size, for `remember` in a later run."""
        return {size: list(ratios) for size, ratios in self._ratios.items()}

    def remember(self, measured: Mapping[int, Sequence[float]]) -> None:
        """Start from costs an earlier run measured (the latest WINDOW per size are kept)."""
        for size, ratios in measured.items():
            self._ratios.setdefault(size, deque(maxlen=self.WINDOW)).extend(ratios)
        self._prices.clear()

    def relative(self, drafts: int) -> float:
        """The cost of verifying drafts tokens, in plain steps."""
        price = self._prices.get(drafts)
        if price is None:
            seen = self._ratios.get(drafts, ())
            if len(seen) >= self.TRIED:
                price = statistics.median(seen)
            else:  # one slow first decode must not rule a size out for good
                price = min([1 + self.PRIOR_ROW * drafts, *seen])
            self._prices[drafts] = price
        return price


class DraftBudget:
    """How many tokens to draft: the number with the largest expected gain, or none.

    Verifying k drafts costs StepCosts.relative(k) plain steps and yields the accepted drafts plus
    one sampled token. The first draft token's acceptance is estimated per evidence (the matched
    length: longer matches are surer), each further one's given its predecessor's by one estimate,
    both Beta-smoothed counts from this generation's verifications. On text with no repeats only
    short matches turn up, whose expected gain is below their cost: plain decoding speed is kept.
    """

    # (accepted, rejected) pseudo-counts for the first token, by evidence; they favour long matches
    PRIOR_FIRST: ClassVar[dict[int, tuple[int, int]]] = {2: (1, 4), 3: (1, 2), 4: (2, 2), 5: (4, 1)}
    PRIOR_NEXT = (8, 2)

    def __init__(self, max_tokens: int, costs: StepCosts) -> None:
        self.max_tokens, self.costs = max_tokens, costs
        self._first = {evidence: list(counts) for evidence, counts in self.PRIOR_FIRST.items()}
        self._next = list(self.PRIOR_NEXT)

    def size(self, evidence: int, room: int) -> int:
        """Tokens to draft after a match of evidence tokens, at most room (0: decode plainly)."""
        if evidence < MIN_NGRAM:
            return 0
        hits, misses = self._first[min(evidence, MAX_EVIDENCE)]
        reach, carry = hits / (hits + misses), self._next[0] / sum(self._next)
        best, size, expected = 0.0, 0, 0.0
        for k in range(1, min(self.max_tokens, room) + 1):
            expected += reach  # the chance that draft k is accepted: all before it were
            reach *= carry
            gain = expected + 1 - self.costs.relative(k)
            if gain > best:
                best, size = gain, k
        return size

    def record(self, evidence: int, drafted: int, accepted: int) -> None:
        """The outcome of one verification of drafted tokens after a match of evidence tokens."""
        self._first[min(evidence, MAX_EVIDENCE)][0 if accepted else 1] += 1
        if accepted:
            self._next[0] += accepted - 1
            self._next[1] += int(accepted < drafted)


class ModelDrafter:
    """Drafts by greedy decoding on a small model of the same vocabulary (`--draft-model`).

    The same interface as NgramIndex: the main loop appends every token it emits and asks for up
    to `limit` drafts. The small model's KV cache follows the context: what it drafted and the
    main model rejected is dropped by the prefix reuse of its next call.
    """

    def __init__(self, model: LocalEngine, tokens: Sequence[int]) -> None:
        self.model, self.tokens = model, list(tokens)

    def append(self, token: int) -> None:
        self.tokens.append(token)

    def evidence(self) -> int:
        """A draft model's guess is trusted at first like the longest prompt-lookup match."""
        return MAX_EVIDENCE

    def draft(self, limit: int) -> list[int]:
        context = list(self.tokens)
        drafts: list[int] = []
        for _ in range(min(limit, self.model.n_ctx - len(context) - 1)):
            token = int(self.model.next_logits(context).argmax())
            if self.model.is_eog(token):
                break
            drafts.append(token)
            context.append(token)
        return drafts

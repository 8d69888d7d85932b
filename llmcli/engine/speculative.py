"""Speculative decoding's drafters and pacing: guesses of the next tokens that the model verifies in
one batched decode, keeping only those it agrees with (so the output is what plain decoding gives).

Prompt lookup (`NgramIndex`): summaries, translations of names and code, and chat answers quoting the
prompt copy long runs of tokens from their context. When the last few tokens occurred before, the
tokens that followed them then are a cheap draft. `ModelDrafter` drafts with a small model of the same
vocabulary instead (`--draft-model`). `plan` sizes each draft by what it is expected to gain, from the
acceptance seen so far (`DraftBudget`) and what verifying costs on this machine (`StepCosts`).
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

    free = True  # drafting costs nothing: a draft not worth verifying is still worth watching

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
        """limit tokens that followed the latest earlier occurrence of the longest matching suffix
        (none without one). Where they run into the latest tokens, the text is repeating itself every
        so many tokens, and the draft goes on round that cycle."""
        start = self._matched()[0]
        if start < 0:
            return []
        drafted = self.tokens[start : start + limit]
        period = len(self.tokens) - start
        while len(drafted) < limit:
            drafted.append(drafted[-period])
        return drafted

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
    """What verifying drafts costs in plain decoding steps, from the engine's own step times.

    A batch's time is not linear in its rows: each row goes through the output layer (over half a
    step for a 262k vocabulary on a CPU), and the kernels tile rows, so on Gemma 3 270M with two
    cores four rows cost less than three. So it is measured per draft count as the engine decodes,
    each batch against the median of the latest plain steps (a changed thread count moves both).
    A plain step decodes `rows` tokens (one per sequence decoded together). A count measured fewer
    than TRIED times is priced at the least of PRIOR_ROW single steps a draft (on the cheap side)
    and what it took, so that it gets tried again, but at no less than any smaller count measured;
    after that at the lower quartile of the latest WINDOW (`_typical`).
    """

    PRIOR_ROW = 0.4
    WINDOW = 8
    TRIED = 3

    def __init__(self, rows: int = 1) -> None:
        self.rows = rows
        self._plain: deque[float] = deque(maxlen=self.WINDOW)  # seconds of the latest plain steps
        self._ratios: dict[int, deque[float]] = {}  # drafts -> the latest verifications' costs
        self._prices: dict[int, float] = {}

    def observe(self, drafts: int, seconds: float) -> None:
        """The time of one step that verified drafts tokens: drafting, decoding, sampling its first row."""
        if not drafts:
            self._plain.append(seconds)
            return
        if not self._plain:
            return
        # A step costs at least a plain one, and at most what decoding its drafts one by one would
        # (at that price a draft never pays); a descheduled decode, or a draft model's drafting, can
        # take any time.
        ratio = min(max(seconds / statistics.median(self._plain), 1.0), 1.0 + drafts / self.rows)
        self._ratios.setdefault(drafts, deque(maxlen=self.WINDOW)).append(ratio)
        self._prices = {k: price for k, price in self._prices.items() if k < drafts}

    def measured(self) -> dict[int, list[float]]:
        """The costs measured so far by draft count, for `remember` in a later run."""
        return {size: list(ratios) for size, ratios in self._ratios.items()}

    def remember(self, measured: Mapping[int, Sequence[float]]) -> None:
        """Start from costs an earlier run measured (the latest WINDOW per count are kept)."""
        for size, ratios in measured.items():
            self._ratios.setdefault(size, deque(maxlen=self.WINDOW)).extend(ratios)
        self._prices.clear()

    def relative(self, drafts: int) -> float:
        """The cost of a step verifying drafts tokens, in plain steps."""
        price = self._prices.get(drafts)
        if price is None:
            seen = self._ratios.get(drafts, ())
            if len(seen) >= self.TRIED:
                price = _typical(seen)
            else:
                # One slow first decode must not rule a count out for good; but more drafts cost at
                # least what fewer were measured to, which spares trying every count where rows are dear.
                fewer = [
                    self.relative(k) for k, r in self._ratios.items() if k < drafts and len(r) >= self.TRIED
                ]
                price = max(min([1 + self.PRIOR_ROW * drafts / self.rows, *seen]), *fewer, 1.0)
            self._prices[drafts] = price
        return price


def _typical(ratios: Iterable[float]) -> float:
    """The lower quartile of measured costs: another process on the cores only ever adds time, and
    the costs are kept between runs, so one busy run must not price drafts out of the next ones."""
    ordered = sorted(ratios)
    return ordered[len(ordered) // 4]


def plan(chances: Sequence[Sequence[float]], costs: StepCosts) -> list[int]:
    """Tokens to draft for each of the sequences one step decodes together, given the chance that
    each of their drafts is accepted (non-increasing, as DraftBudget.chances gives them): the total
    with the largest expected gain, in steps saved against decoding the tokens it yields plainly,
    spent on the likeliest drafts. All zero when no total pays for itself."""
    rows = len(chances)
    drafts_by_chance = sorted(
        ((c, place, seq) for seq, ours in enumerate(chances) for place, c in enumerate(ours)),
        key=lambda draft: (-draft[0], draft[1]),
    )
    best, total, expected = 0.0, 0, 0.0
    for drafts, (chance, _, _) in enumerate(drafts_by_chance, 1):
        expected += chance
        gain = 1 + expected / rows - costs.relative(drafts)
        if gain > best:
            best, total = gain, drafts
    sizes = [0] * rows
    for _, _, seq in drafts_by_chance[:total]:
        sizes[seq] += 1
    return sizes


class DraftBudget:
    """The chance that each draft after a match is accepted, learnt from one generation's drafts.

    The first draft token's acceptance, and each further one's given its predecessor's, are estimated
    per evidence (the matched length: longer matches are surer), both Beta-smoothed counts from this
    generation's verifications, and from the drafts it watched: those not expected to pay,
    settled by the tokens that came (else a text that copies its prompt, where drafts would pay,
    would never be drafted to find out). `plan` turns the chances into draft sizes: on text with no
    repeats only short matches turn up, whose expected gain is below their cost, so plain decoding
    speed is kept.
    """

    # (accepted, rejected) pseudo-counts for the first token, by evidence; they favour long matches
    PRIOR_FIRST: ClassVar[dict[int, tuple[int, int]]] = {2: (1, 4), 3: (1, 2), 4: (2, 2), 5: (4, 1)}
    PRIOR_NEXT = (8, 2)

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self._first = {evidence: list(counts) for evidence, counts in self.PRIOR_FIRST.items()}
        # Per evidence too: the short matches code is full of go on for a token or two, which must not
        # make the long ones' copies look short.
        self._next = {evidence: list(self.PRIOR_NEXT) for evidence in self.PRIOR_FIRST}
        self._watched: tuple[int, list[int], int] | None = None  # (evidence, draft, tokens matched)

    def chances(self, evidence: int, room: int) -> list[float]:
        """The chance that each of up to room drafts after a match of evidence tokens is accepted
        (all before it accepted too); none after a match too short to draft from."""
        if evidence < MIN_NGRAM:
            return []
        evidence = min(evidence, MAX_EVIDENCE)
        (hits, misses), (goes_on, ends) = self._first[evidence], self._next[evidence]
        reach, carry = hits / (hits + misses), goes_on / (goes_on + ends)
        chances = []
        for _ in range(min(self.max_tokens, room)):
            chances.append(reach)
            reach *= carry
        return chances

    def record(self, evidence: int, drafted: int, accepted: int) -> None:
        """The outcome of one verification of drafted tokens after a match of evidence tokens."""
        evidence = min(evidence, MAX_EVIDENCE)
        self._first[evidence][0 if accepted else 1] += 1
        if accepted:
            self._next[evidence][0] += accepted - 1
            self._next[evidence][1] += int(accepted < drafted)

    def watch(self, evidence: int, draft: list[int]) -> None:
        """Follow a draft that is not verified, unless one is followed already: the tokens that come
        settle whether it would have been accepted (`follow`)."""
        if self._watched is None and draft:
            self._watched = (evidence, draft, 0)

    def follow(self, token: int) -> None:
        """The next token of the output: a followed draft is recorded at its first miss or its end."""
        if self._watched is None:
            return
        evidence, draft, matched = self._watched
        if token == draft[matched]:
            matched += 1
            if matched < len(draft):
                self._watched = (evidence, draft, matched)
                return
        self._watched = None
        self.record(evidence, len(draft), matched)

    def settle(self) -> None:
        """Record what a followed draft matched so far as accepted, and stop following it (drafts are
        verified from here)."""
        if self._watched is not None:
            evidence, _, matched = self._watched
            self._watched = None
            if matched:
                self.record(evidence, matched, matched)


class ModelDrafter:
    """Drafts by greedy decoding on a small model of the same vocabulary (`--draft-model`).

    The same interface as NgramIndex: the main loop appends every token it emits and asks for up
    to `limit` drafts. The small model's KV cache follows the context: what it drafted and the
    main model rejected is dropped by the prefix reuse of its next call.
    """

    free = False  # each draft runs the small model

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

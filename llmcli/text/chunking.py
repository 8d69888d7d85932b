"""Split a document that is longer than a model's context into token-budgeted chunks.

Cuts fall at paragraph boundaries first, then at sentence boundaries, then at whitespace, and only
as a last resort inside a word. Every paragraph, sentence or piece is counted once and chunks are
packed by the sum of those counts; each finished chunk is then counted once more, so that no chunk
ever exceeds the budget by the real counter.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

_CJK_ENDS = frozenset("。！？")
# A run of sentence-ending marks and the closing quotes/brackets that belong to the same sentence.
_END_RUN = re.compile(r"[.!?…。！？]+[\"'”’)\]」』）》〉】»]*")
_WORD_BEFORE = re.compile(r"[A-Za-z.]+$")
# A "." after these does not end a sentence even before a capital ("Mr. Smith", "e.g. Paris").
_ABBREVIATION = re.compile(
    r"mrs?|ms|dr|prof|st|sr|jr|vs|e\.g|i\.e|cf|gen|col|lt|capt|sgt|gov|sen|rep|mt", re.I
)
_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")
_WORD_START = re.compile(r"(?<=\s)\S")

_PARAGRAPH, _SENTENCE, _WORD, _PIECE = range(4)


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph, keeping their trailing whitespace so "".join(result) == text.

    Ends: . ! ? … and the CJK/fullwidth 。！？ (also followed by closing quotes/brackets like 」』）)"”’).
    Latin ends need following whitespace or end of text (so "3.14", "e.g.x" and "U.S.A" mid-token don't
    split), and do not end a sentence before a lowercase word or after a common abbreviation ("Mr.").
    CJK ends split even with no following space. Newlines inside a paragraph are kept inside sentences.
    """
    cuts = [0]
    for match in _END_RUN.finditer(text):
        after = match.end()
        while after < len(text) and text[after].isspace():
            after += 1
        if after == len(text):
            break
        latin = _CJK_ENDS.isdisjoint(match.group())
        if latin and (after == match.end() or _continues(text, match.start(), match.group(), after)):
            continue
        cuts.append(after)
    cuts.append(len(text))
    return [text[a:b] for a, b in pairwise(cuts) if a < b]


def _continues(text: str, run_start: int, run: str, after: int) -> bool:
    """Whether a Latin end mark followed by whitespace is still inside its sentence."""
    if text[after].islower():
        return True
    if run != ".":
        return False
    word = _WORD_BEFORE.search(text, max(0, run_start - 8), run_start)
    return word is not None and _ABBREVIATION.fullmatch(word.group()) is not None


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs separated by blank lines; "".join(result) == text (separators stay attached to the
    preceding paragraph). Leading blank lines belong to the first paragraph; whitespace-only text is one
    paragraph."""
    parts: list[str] = []
    start = 0
    for match in _BLANK_LINES.finditer(text):
        if text[start : match.end()].strip():
            parts.append(text[start : match.end()])
            start = match.end()
    rest = text[start:]
    if parts and not rest.strip():
        parts[-1] += rest
    elif rest:
        parts.append(rest)
    return parts


@dataclass(frozen=True)
class Chunk:
    """One chunk: text == document[start:end], counted as `tokens` tokens."""

    text: str
    start: int  # offset of text in the original document (characters)
    end: int
    tokens: int  # token count of text by the given counter


def chunk_text(text: str, count_tokens: Callable[[str], int], budget: int, overlap: int = 0) -> list[Chunk]:
    """Split text into chunks of at most `budget` tokens each (by count_tokens), cutting at paragraph
    boundaries first, then sentence boundaries, then (only for a single sentence longer than the budget)
    at whitespace, and as a last resort at characters. `overlap` tokens: each chunk after the first starts
    with the last whole sentences of the previous chunk whose total is <= overlap tokens (never the whole
    previous chunk), so context carries across the cut. Every character of the text is covered by some
    chunk (chunks minus their overlap prefix concatenate to the original text exactly).

    The overlap of a chunk is text[chunk.start:previous.end]. It is shortened (rather than a paragraph or
    sentence cut) where it and the next paragraph or sentence together would not fit the budget.
    Raises ValueError for budget <= 0, overlap outside 0..budget-1, or a single character that alone is
    over the budget.
    """
    if budget <= 0:
        raise ValueError(f"chunk budget must be a positive number of tokens, got {budget}")
    if not 0 <= overlap < budget:
        raise ValueError(
            f"chunk overlap must be at least 0 and less than the budget ({budget}), got {overlap}"
        )
    if not text.strip():
        return []
    return _Chunker(text, count_tokens, budget, overlap).run()


@dataclass
class _Unit:
    start: int
    end: int
    level: int
    tokens: int  # -1 until counted


class _Chunker:
    """Greedy packing of paragraphs, split into smaller units only where they do not fit."""

    def __init__(self, text: str, count_tokens: Callable[[str], int], budget: int, overlap: int) -> None:
        self.text = text
        self.count_tokens = count_tokens
        self.budget = budget
        self.overlap = overlap
        self.counts: dict[tuple[int, int], int] = {}
        self.paragraphs: list[tuple[int, int]] = []
        self.bounds: list[int] = [0]  # every sentence end (paragraph ends included), ascending
        offset = 0
        for paragraph in split_paragraphs(text):
            for sentence in split_sentences(paragraph):
                self.bounds.append(self.bounds[-1] + len(sentence))
            self.paragraphs.append((offset, offset + len(paragraph)))
            offset += len(paragraph)
        # The overlap in front of the chunk being packed: text[prefix[0]:content_start], shrunk by
        # dropping prefix[0]; prefix_tokens is its exact count.
        self.prefix: list[int] = []
        self.prefix_tokens = 0
        self.content_start = 0

    def tokens(self, start: int, end: int) -> int:
        key = (start, end)
        if key not in self.counts:
            self.counts[key] = self.count_tokens(self.text[start:end])
        return self.counts[key]

    def run(self) -> list[Chunk]:
        chunks: list[Chunk] = []
        queue = deque(_Unit(s, e, _PARAGRAPH, -1) for s, e in self.paragraphs)
        units: list[_Unit] = []
        packed = 0
        while queue or units:
            if not queue:
                chunks.append(self._close(units, queue))  # which may put units back
                units, packed = [], 0
                continue
            unit = queue[0]
            if unit.tokens < 0:
                unit.tokens = self.tokens(unit.start, unit.end)
            if self.prefix_tokens + packed + unit.tokens <= self.budget:
                units.append(queue.popleft())
                packed += unit.tokens
            elif unit.tokens > self.budget:
                queue.popleft()
                queue.extendleft(reversed(self._children(unit)))
            elif units:
                chunks.append(self._close(units, queue))
                units, packed = [], 0
            else:
                # Only the overlap keeps this unit out of an empty chunk: shorten the overlap rather than
                # cut a paragraph or sentence that fits a chunk of its own.
                self._shrink_prefix()
        return chunks

    def _children(self, unit: _Unit) -> list[_Unit]:
        if unit.level == _PARAGRAPH:
            inner = self.bounds[bisect_right(self.bounds, unit.start) : bisect_left(self.bounds, unit.end)]
            level = _SENTENCE
        elif unit.level == _SENTENCE:
            inner = [m.start() for m in _WORD_START.finditer(self.text, unit.start + 1, unit.end)]
            level = _WORD
        else:
            inner = self._piece_cuts(unit)
            level = _PIECE
        cuts = [unit.start, *inner, unit.end]
        return [_Unit(a, b, level, -1) for a, b in pairwise(cuts)]

    def _piece_cuts(self, unit: _Unit) -> list[int]:
        """Cut a word that alone is over the budget into the longest pieces that fit (by real counts)."""
        guess = max(1, int(self.budget * (unit.end - unit.start) / unit.tokens * 0.9))
        cuts: list[int] = []
        start = unit.start
        while True:
            end = self._longest_fit(start, unit.end, guess)
            if end == unit.end:
                return cuts
            cuts.append(end)
            start = end

    def _longest_fit(self, start: int, end: int, guess: int) -> int:
        """The largest cut such that text[start:cut] fits the budget, searched from a guess outward."""
        size = end - start
        lo, hi = 0, size + 1  # text[start:start+lo] fits, text[start:start+hi] does not (size+1: unknown)
        probe = min(guess, size)
        step = max(1, probe // 16)
        while hi - lo > 1:
            if self.tokens(start, start + probe) <= self.budget:
                lo = probe
            else:
                hi = probe
            if hi == size + 1:
                probe = min(size, lo + step)
                step *= 2
            elif lo == 0:
                probe = max(1, hi - step)
                step *= 2
            else:
                probe = (lo + hi) // 2
        if lo == 0:
            char = self.text[start]
            raise ValueError(
                f"chunk budget of {self.budget} tokens is too small: the single character {char!r} "
                f"alone is {self.tokens(start, start + 1)} tokens"
            )
        return start + lo

    def _close(self, units: list[_Unit], queue: deque[_Unit]) -> Chunk:
        """Finish a chunk, verified with one count of its whole text; the sum of its units' counts only
        approximates that, so units it cannot hold go back to the queue."""
        while True:
            start = self.prefix[0] if self.prefix else units[0].start
            end = units[-1].end
            actual = self.tokens(start, end)
            if actual <= self.budget:
                break
            if len(units) == 1:
                self._shrink_prefix()  # a lone unit was counted alone, so the overlap is what is over
                continue
            # Move at least one unit, and more in proportion to how far the sum underestimated.
            target = (self.prefix_tokens + sum(u.tokens for u in units)) * self.budget / actual
            queue.appendleft(units.pop())
            while len(units) > 1 and self.prefix_tokens + sum(u.tokens for u in units) > target:
                queue.appendleft(units.pop())
        self._start_prefix(start, end)
        return Chunk(self.text[start:end], start, end, actual)

    def _start_prefix(self, start: int, end: int) -> None:
        """Make the overlap for the next chunk: the last sentences of text[start:end] within the overlap."""
        self.content_start = end
        self.prefix, self.prefix_tokens = [], 0
        if not self.overlap:
            return
        total = 0
        seg_end = end
        for bound in reversed(self.bounds[bisect_right(self.bounds, start) : bisect_left(self.bounds, end)]):
            total += self.tokens(bound, seg_end)
            if total > self.overlap:
                break
            self.prefix.insert(0, bound)
            seg_end = bound
        while self.prefix:
            self.prefix_tokens = self.tokens(self.prefix[0], end)
            if self.prefix_tokens <= self.overlap:
                return
            self.prefix.pop(0)
        self.prefix_tokens = 0

    def _shrink_prefix(self) -> None:
        self.prefix.pop(0)
        self.prefix_tokens = self.tokens(self.prefix[0], self.content_start) if self.prefix else 0

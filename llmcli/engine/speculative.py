"""Speculative decoding's drafters and pacing: guesses of the next tokens that the model verifies in
one batched decode, keeping only those it agrees with (so the output is what plain decoding gives).

Prompt lookup (`NgramIndex`): summaries, translations of names and code, and chat answers quoting the
prompt copy long runs of tokens from their context. When the last few tokens occurred before, the
tokens that followed them then are a cheap draft. `ModelDrafter` drafts with a small model of the same
vocabulary instead (`--draft-model`). `DraftBudget` sizes the drafts and pauses them where they fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmcli.engine.local import LocalEngine

MAX_NGRAM = 3
MIN_NGRAM = 2  # a single repeated token ("the", ",") predicts too little to be worth verifying


class NgramIndex:
    """The tokens so far, and where each recent n-gram last ended, for O(1) draft lookups."""

    def __init__(self, tokens: Iterable[int] = ()) -> None:
        self.tokens: list[int] = []
        self._ends: dict[tuple[int, ...], int] = {}
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

    def draft(self, limit: int) -> list[int]:
        """Up to limit tokens that followed the latest earlier occurrence of the longest matching suffix."""
        tokens = self.tokens
        for n in range(MAX_NGRAM, MIN_NGRAM - 1, -1):
            if len(tokens) < n:
                continue
            start = self._ends.get(tuple(tokens[-n:]))
            if start is not None and start < len(tokens):
                return tokens[start : start + limit]
        return []


class DraftBudget:
    """How many tokens to draft next: grows while drafts are accepted, backs off when they are not.

    A rejected draft costs a little (the batch carried tokens that were thrown away), so after
    failures drafting pauses for a growing number of steps: on text with no repeats it almost
    never runs, and plain decoding speed is kept.
    """

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.size = min(4, max_tokens)
        self._pause = 0
        self._backoff = 1
        self.drafted = self.accepted = 0

    def next_size(self) -> int:
        """Tokens to draft at this step (0: decode plainly)."""
        if self._pause > 0:
            self._pause -= 1
            return 0
        return self.size

    def record(self, drafted: int, accepted: int) -> None:
        """The outcome of one verification."""
        self.drafted += drafted
        self.accepted += accepted
        if accepted == drafted:
            self.size = min(self.max_tokens, self.size * 2)
            self._backoff = 1
        elif accepted == 0:
            self.size = max(1, self.size // 2)
            self._pause = self._backoff
            self._backoff = min(self._backoff * 2, 64)
        else:
            self.size = max(1, accepted + 1)
            self._backoff = 1

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


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

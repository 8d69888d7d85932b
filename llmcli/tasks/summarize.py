"""Summarize one document of any length: stuff it whole, or map-reduce / refine over token-sized chunks."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from llmcli.errors import ContextOverflowError, UsageError
from llmcli.tasks.asking import Asker, TaskSetup
from llmcli.text.chunking import chunk_text
from llmcli.text.prompts import LENGTH_WORDS, PROMPTS, STYLES
from llmcli.text.tidy import tidy_summary

STRATEGIES = ("auto", "stuff", "map-reduce", "refine")
MARGIN = 16  # tokens of slack for template markers around the document
MAX_DEPTH = 8


def room_for_document(
    n_ctx: int, overhead: int, answer: int | None, after: str, hint: str = "raise --ctx"
) -> int:
    """Tokens a context of n_ctx leaves for a document after the prompt's overhead and an answer of
    up to `answer` tokens; ContextOverflowError (`... no room for a document after {after}`) under 64."""
    room = n_ctx - overhead - (answer or 0) - MARGIN
    if room < 64:
        raise ContextOverflowError(
            f"the context ({n_ctx:,} tokens) leaves no room for a document after the {after}", hint=hint
        )
    return room


@dataclass(frozen=True)
class SummaryOptions:
    """What kind of summary to write."""

    length: str = "medium"
    words: int | None = None
    style: str = "paragraph"
    lang: str | None = None
    instructions: str | None = None
    strategy: str = "auto"

    def validate(self) -> None:
        if self.length not in LENGTH_WORDS:
            raise UsageError(f"--length must be one of {', '.join(LENGTH_WORDS)}, got {self.length!r}")
        if self.style not in STYLES:
            raise UsageError(f"--style must be one of {', '.join(STYLES)}, got {self.style!r}")
        if self.strategy not in STRATEGIES:
            raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.words is not None and self.words <= 0:
            raise UsageError(f"--words must be > 0, got {self.words}")

    @property
    def target_words(self) -> int:
        return self.words or LENGTH_WORDS[self.length]

    def fields(self) -> dict[str, str]:
        """The values the prompt templates are filled with."""
        return {
            "focus": f", focusing on: {self.instructions}" if self.instructions else "",
            "shape": STYLES[self.style].format(words=self.target_words),
            "language": f" Write the summary in {self.lang}." if self.lang else "",
        }


@dataclass
class SummaryResult:
    """A finished summary and what it took."""

    text: str
    strategy: str
    chunks: int
    calls: int
    prompt_tokens: int
    generated_tokens: int
    seconds: float


class Summarizer:
    """Summarizes documents with one engine; the instruction prefix stays in the KV cache across calls."""

    def __init__(
        self, setup: TaskSetup, options: SummaryOptions, prompts: dict[str, str] | None = None
    ) -> None:
        options.validate()
        self.engine, self.options = setup.engine, options
        self.prompts = prompts or PROMPTS
        self.notify = setup.note
        sampling, words = setup.sampling, options.target_words
        self.sampling = replace(sampling, max_tokens=sampling.max_tokens or int(words * 2.5) + 64)
        self.asker = Asker(replace(setup, sampling=self.sampling), self.prompts["summarize_system"])

    def count(self, text: str) -> int:
        return self.asker.count(text)

    def budget(self, key: str = "summarize", **extra: str) -> int:
        """Tokens left for the document in prompt `key` (after instructions, template and the answer)."""
        empty = self.prompts[key].format(document="", **extra, **self.options.fields())
        limit = self.sampling.max_tokens
        after = f"instructions and a {limit}-token summary"
        return room_for_document(self.engine.n_ctx, self.asker.overhead(empty), limit, after)

    def settings(self) -> list[Any]:
        """What, besides the model, decides a summary."""
        return [asdict(self.options), repr(self.sampling), self.prompts]

    def process(self, text: str) -> tuple[str, int]:
        """The summary of text as a batch writes it (one final newline), and the tokens it took."""
        result = self.summarize(text)
        return result.text.rstrip() + "\n", result.prompt_tokens + result.generated_tokens

    def _ask(self, key: str, **fields: str) -> str:
        completion = self.asker.ask(self.prompts[key].format(**fields, **self.options.fields()))
        return tidy_summary(completion.text)

    def _ask_all(self, key: str, documents: list[str]) -> list[str]:
        """_ask for each document, at once on a parallel engine."""
        fields = self.options.fields()
        requests = [(self.prompts[key].format(document=d, **fields), None) for d in documents]
        return [tidy_summary(c.text) for c in self.asker.ask_all(requests)]

    def summarize(self, text: str) -> SummaryResult:
        """The summary of text, never silently truncated."""
        start = time.perf_counter()
        self.asker.reset_counts()
        strategy, budget = self.options.strategy, self.budget("summarize")
        size = self.count(text)
        if strategy == "auto":
            strategy = "stuff" if size <= budget else "map-reduce"
        if strategy == "stuff":
            if size > budget:
                raise ContextOverflowError(
                    f"the document is {size:,} tokens; with the instructions, {budget:,} fit",
                    hint="use --strategy auto or map-reduce, or raise --ctx",
                )
            self.notify(f"plan: stuff, 1 chunk of {size:,} tokens")
            summary, chunks = self._ask("summarize", document=text), 1
        elif strategy == "map-reduce":
            summary, chunks = self._map_reduce(text, budget)
        else:
            summary, chunks = self._refine(text)
        return SummaryResult(
            summary,
            strategy,
            chunks,
            self.asker.calls,
            self.asker.prompt_tokens,
            self.asker.generated_tokens,
            time.perf_counter() - start,
        )

    def _map_reduce(self, text: str, budget: int) -> tuple[str, int]:
        parts = chunk_text(text, self.count, budget, overlap=min(64, budget // 10))
        self.notify(
            f"plan: map-reduce, {len(parts)} chunks of at most {budget:,} tokens "
            f"({', '.join(str(c.tokens) for c in parts)})"
        )
        partials = self._ask_all("summarize", [c.text for c in parts])
        combine_budget = self.budget("combine")
        for depth in range(MAX_DEPTH):
            if len(partials) == 1:
                return partials[0], len(parts)
            joined = "\n\n".join(partials)
            if self.count(joined) <= combine_budget:
                return self._ask("combine", document=joined), len(parts)
            groups = chunk_text(joined, self.count, combine_budget)
            self.notify(
                f"reduce level {depth + 1}: {len(partials)} partial summaries in {len(groups)} groups"
            )
            if len(groups) >= len(partials):
                raise ContextOverflowError(
                    "the partial summaries do not shrink enough to combine",
                    hint="use a shorter --length or raise --ctx",
                )
            partials = self._ask_all("combine", [g.text for g in groups])
        raise ContextOverflowError("the document needs more reduce levels than allowed", hint="raise --ctx")

    def _refine(self, text: str) -> tuple[str, int]:
        reserve = self.sampling.max_tokens or 0  # the running summary goes into every later prompt
        budget = self.budget("refine", summary="") - reserve
        parts = chunk_text(text, self.count, budget, overlap=min(64, budget // 10))
        self.notify(f"plan: refine, {len(parts)} chunks of at most {budget:,} tokens")
        summary = self._ask("summarize", document=parts[0].text)
        for part in parts[1:]:
            summary = self._ask("refine", summary=summary, document=part.text)
        return summary, len(parts)

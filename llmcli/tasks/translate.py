"""Translate one document segment by segment, keeping its structure exactly.

The document is split into a fixed skeleton (blank lines, Markdown markers, code blocks, table
pipes) and the text segments between them (`markup.py`). Each segment is translated on its own
under one system prompt whose KV stays cached; a segment longer than the budget is split at
sentence boundaries first. The answers are cleaned of chatter (`tidy.py`) and put back into the
skeleton, so the output has exactly the input's paragraphs, lines and code.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmcli.errors import ContextOverflowError, UsageError
from llmcli.fsutil import read_utf8
from llmcli.tasks.asking import Asker, TaskSetup
from llmcli.text.chunking import chunk_text
from llmcli.text.languages import Language, detect_language
from llmcli.text.markup import is_cjk, join_lines, parse
from llmcli.text.prompts import PROMPTS
from llmcli.text.tidy import tidy_translation

MAX_SEGMENT_TOKENS = 384  # small models translate long passages worse than several short ones
MARGIN = 16


@dataclass(frozen=True)
class TranslateOptions:
    """Into which language, from which (detected when None), with which fixed term translations."""

    target: Language
    source: Language | None = None
    glossary: tuple[tuple[str, str], ...] = ()


@dataclass
class TranslationResult:
    """A finished translation and what it took."""

    text: str
    source: Language | None
    segments: int
    calls: int
    prompt_tokens: int
    generated_tokens: int
    seconds: float


def load_glossary(path: Path) -> tuple[tuple[str, str], ...]:
    """Term pairs from a TSV file (`term<TAB>translation`; blank lines and `#` comments skipped)."""
    text = read_utf8(path, "the glossary ")
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in line.split("\t")]
        if len(cells) != 2 or not all(cells):
            raise UsageError(
                f"{path}:{number}: expected `term<TAB>translation`, got {line!r}",
                hint="one pair per line, separated by a tab character",
            )
        pairs.append((cells[0], cells[1]))
    return tuple(pairs)


def glossary_terms(glossary: tuple[tuple[str, str], ...], text: str) -> list[tuple[str, str]]:
    """The glossary pairs whose term occurs in text (whole words, case-insensitive)."""
    found = []
    for term, translation in glossary:
        edge = r"\b" if re.match(r"\w", term[0]) and not is_cjk(term[0]) else ""
        end = r"\b" if re.match(r"\w", term[-1]) and not is_cjk(term[-1]) else ""
        if re.search(edge + re.escape(term) + end, text, re.IGNORECASE):
            found.append((term, translation))
    return found


def join_parts(parts: list[str]) -> str:
    """Translated pieces of one segment, joined by a space except between CJK characters."""
    return join_lines("\n".join(parts))


class Translator:
    """Translates documents with one engine; the instruction prefix stays in the KV cache."""

    def __init__(
        self,
        setup: TaskSetup,
        options: TranslateOptions,
        prompts: dict[str, str] | None = None,
        *,
        ends_line: bool = False,
    ) -> None:
        """ends_line: `process` ends its output with a newline (a text argument's translation)."""
        self.engine, self.options, self.sampling = setup.engine, options, setup.sampling
        self.ends_line = ends_line
        self.prompts = prompts or PROMPTS
        self.notify = setup.note
        self.asker = Asker(setup, self.prompts["translate_system"].format(target=options.target.name))
        self._source: Language | None = None

    def _message(self, text: str) -> str:
        source = self._source
        terms = glossary_terms(self.options.glossary, text)
        glossary = (
            " Translate these terms exactly as given: "
            + "; ".join(f"{term} → {translation}" for term, translation in terms)
            + "."
            if terms
            else ""
        )
        return self.prompts["translate"].format(
            document=text,
            target=self.options.target.name,
            source=f" from {source.name}" if source else "",
            glossary=glossary,
        )

    def budget(self) -> int:
        """Tokens a source piece may have so that it, the instructions and its translation fit."""
        overhead = self.asker.overhead(self._message(""))
        # The answer may take up to twice the source's tokens (scripts differ in tokens per word).
        room = (self.engine.n_ctx - overhead - MARGIN - 32) // 3
        if room < 16:
            raise ContextOverflowError(
                f"the context ({self.engine.n_ctx:,} tokens) leaves no room to translate after the "
                "instructions",
                hint="raise --ctx",
            )
        return min(room, MAX_SEGMENT_TOKENS)

    def settings(self) -> list[Any]:
        """What, besides the model, decides a translation."""
        return [asdict(self.options), repr(self.sampling), self.prompts]

    def process(self, text: str) -> tuple[str, int]:
        """The translation of text as a batch writes it, and the tokens it took."""
        result = self.translate(text)
        ending = "\n" if self.ends_line and not result.text.endswith("\n") else ""
        return result.text + ending, result.prompt_tokens + result.generated_tokens

    def _request(self, text: str) -> tuple[str, int]:
        """The message that asks for text's translation, and the most tokens its answer may take."""
        limit = 2 * self.asker.count(text) + 32
        if self.sampling.max_tokens:
            limit = min(limit, self.sampling.max_tokens)
        return self._message(text), limit

    def _translate_pieces(self, pieces: list[str]) -> list[str]:
        requests = [self._request(p) for p in pieces]
        answers = []
        for piece, (_, limit), completion in zip(pieces, requests, self.asker.ask_all(requests), strict=True):
            if completion.finish_reason in ("length", "context"):
                self.notify(f"a segment's translation hit the {limit}-token limit; it may be cut short")
            answers.append(tidy_translation(completion.text, piece))
        return answers

    def translate(self, text: str) -> TranslationResult:
        """The translation of text with its structure kept."""
        start = time.perf_counter()
        self.asker.reset_counts()
        target = self.options.target
        self._source = self.options.source or detect_language(text)
        if self.options.source is None:
            found = f"{self._source.name} (detected)" if self._source else "unknown (not detected)"
            self.notify(f"source language: {found}")
        layout = parse(text)
        if self._source is not None and self._source.code == target.code:
            self.notify(f"the text is already in {target.name}: copied unchanged")
            return TranslationResult(text, self._source, len(layout.segments), 0, 0, 0, 0.0)
        budget = self.budget()
        self.notify(f"plan: {len(layout.segments)} segments, pieces of at most {budget:,} tokens")
        parts: dict[str, list[str]] = {}  # each distinct segment's pieces, translated once
        for segment in layout.segments:
            if segment.text not in parts:
                parts[segment.text] = [segment.text]
                if self.asker.count(segment.text) > budget:
                    chunks = chunk_text(segment.text, self.asker.count, budget)
                    parts[segment.text] = [c.text.strip() for c in chunks]
        answers = iter(self._translate_pieces([p for pieces in parts.values() for p in pieces]))
        done = {text: join_parts([next(answers) for _ in pieces]) for text, pieces in parts.items()}
        return TranslationResult(
            layout.render([done[segment.text] for segment in layout.segments]),
            self._source,
            len(layout.segments),
            self.asker.calls,
            self.asker.prompt_tokens,
            self.asker.generated_tokens,
            time.perf_counter() - start,
        )

"""`extract`: one JSON record per document, under a schema, enforced by a grammar while it is generated.

A document that fits is asked for in one go; a longer one is cut into chunks, each gives a partial
record, and the model merges those (under the same grammar) into one. Every record, its strings
stripped of surrounding whitespace, is validated against the schema before it counts: a record cut
short by -n fails its file, never half-written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from llmcli.errors import ContextOverflowError
from llmcli.reasoning import Thinking
from llmcli.structured import Schema
from llmcli.tasks.asking import Asker, TaskSetup
from llmcli.tasks.summarize import room_for_document
from llmcli.text.chunking import chunk_text

SYSTEM = (
    "You extract structured data from documents. Answer with one JSON object that follows the JSON "
    "Schema you are given, with values taken from the document. Where the document does not say, use "
    "an empty string, an empty list, 0 or false, as the field's type needs."
)
EXTRACT = "JSON Schema:\n{schema}\n\nDocument:\n{document}"
MERGE = (
    "JSON Schema:\n{schema}\n\nThese records were extracted from consecutive parts of one document, in "
    "order. Merge them into one record for the whole document:\n{document}"
)
DEFAULT_MAX_TOKENS = 512
MAX_DEPTH = 4


@dataclass(frozen=True)
class Extracted:
    """A document's record and what it cost."""

    record: Any
    chunks: int
    prompt_tokens: int
    generated_tokens: int


class Extractor:
    """Turns documents into records under one schema; the instructions stay in the KV cache."""

    def __init__(self, setup: TaskSetup, schema: Schema) -> None:
        self.engine, self.schema = setup.engine, schema
        self.notify = setup.note
        sampling = setup.sampling
        self.sampling = replace(
            sampling, constraint=schema, max_tokens=sampling.max_tokens or DEFAULT_MAX_TOKENS
        )
        # Thinking cannot be written under a JSON grammar: the model answers at once.
        self.asker = Asker(replace(setup, sampling=self.sampling, thinking=Thinking("off")), SYSTEM)
        self._schema_text = json.dumps(schema.schema, ensure_ascii=False)

    def budget(self, prompt: str = EXTRACT) -> int:
        """Tokens left for the document (after instructions, schema, template and the record)."""
        empty = prompt.format(schema=self._schema_text, document="")
        limit = self.sampling.max_tokens or 0
        after = f"schema and a {limit:,}-token record"
        return room_for_document(
            self.engine.n_ctx, self.asker.overhead(empty), limit, after, hint="raise --ctx, or lower -n"
        )

    def settings(self) -> list[Any]:
        """What, besides the model, decides a record."""
        return [self.schema.schema, repr(self.sampling)]

    def process(self, text: str) -> tuple[str, int]:
        """The record for text as one line of JSON, and the tokens it took."""
        result = self.extract(text)
        return json.dumps(result.record, ensure_ascii=False), result.prompt_tokens + result.generated_tokens

    def extract(self, text: str) -> Extracted:
        """The record for text (validated against the schema)."""
        self.asker.reset_counts()
        budget = self.budget()
        if self.asker.count(text) <= budget:
            records, chunks = self._ask_all(EXTRACT, [text]), 1
        else:
            parts = chunk_text(text, self.asker.count, budget, overlap=min(64, budget // 10))
            self.notify(f"plan: {len(parts)} chunks of at most {budget:,} tokens, then a merge")
            records, chunks = self._ask_all(EXTRACT, [c.text for c in parts]), len(parts)
            records = [self._merge(records)]
        return Extracted(records[0], chunks, self.asker.prompt_tokens, self.asker.generated_tokens)

    def _merge(self, records: list[Any]) -> Any:
        merge_budget = self.budget(MERGE)
        for _ in range(MAX_DEPTH):
            if len(records) == 1:
                return records[0]
            lines = "\n".join(json.dumps(r, ensure_ascii=False) for r in records)
            groups = [lines] if self.asker.count(lines) <= merge_budget else None
            if groups is None:
                groups = [c.text for c in chunk_text(lines, self.asker.count, merge_budget)]
                if len(groups) >= len(records):
                    raise ContextOverflowError(
                        "the partial records do not fit together to merge", hint="raise --ctx"
                    )
            records = self._ask_all(MERGE, groups)
        raise ContextOverflowError("the document needs more merge levels than allowed", hint="raise --ctx")

    def _ask_all(self, prompt: str, documents: list[str]) -> list[Any]:
        requests = [(prompt.format(schema=self._schema_text, document=d), None) for d in documents]
        return [self.schema.check(c.text, tidy=True) for c in self.asker.ask_all(requests)]

"""Run a task over many documents: resumable, atomic, and a failed file never stops the batch.

With `--out-dir`, each input's output mirrors the input tree (`a/b.txt` -> `DIR/a/b.summary.md`)
and a manifest in DIR records each input's content-and-settings hash, so a rerun skips what is
done and unchanged. With `--jsonl FILE`, one record per input, the file its own manifest.
Otherwise the outputs go to stdout, each under a header naming its file.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmcli.documents import TEXT_SUFFIXES, DocumentError, Source, read_document
from llmcli.errors import LlmcliError
from llmcli.fsutil import atomic_write_text

MANIFEST = ".llmcli-manifest.json"


@dataclass
class ItemResult:
    """What happened to one input."""

    path: str
    status: str  # done | skipped | failed
    output: str | None = None
    text: str | None = None
    error: str | None = None
    tokens: int = 0
    seconds: float = 0.0
    key: str = ""


@dataclass(frozen=True)
class Output:
    """Where results go: a folder, a JSONL file, one file (a single input), or stdout (emit).

    In a folder, `a/b.txt` becomes `a/b<suffix>`; with `text_suffix`, `a/b<suffix>.txt`, keeping a
    text input's own extension (`notes.md` -> `notes.de.md`) and `.txt` for HTML and PDF.
    """

    out_dir: Path | None = None
    jsonl: Path | None = None
    out_file: Path | None = None
    suffix: str = ".summary.md"
    text_suffix: bool = False

    def target(self, relative: Path) -> Path | None:
        """The output file for an input that mirrors to `relative`; None when output is not to files."""
        if self.out_file is not None:
            return self.out_file
        if self.out_dir is None:
            return None
        ext = ""
        if self.text_suffix:
            ext = relative.suffix if relative.suffix.lower() in TEXT_SUFFIXES else ".txt"
        return self.out_dir / relative.with_name(relative.stem + self.suffix + ext)


class Ledger:
    """Which inputs are done, by key (hash of content and settings); saved atomically after each one."""

    def __init__(self, output: Output) -> None:
        self.output = output
        self.records: dict[str, dict[str, Any]] = {}
        path = self.path
        if path is not None and path.is_file():
            try:
                if output.jsonl is not None:
                    lines = path.read_text(encoding="utf-8").splitlines()
                    self.records = {r["path"]: r for r in map(json.loads, filter(None, lines))}
                else:
                    self.records = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, KeyError, TypeError):
                self.records = {}  # a damaged manifest means redoing work, never failing

    @property
    def path(self) -> Path | None:
        if self.output.jsonl is not None:
            return self.output.jsonl
        return self.output.out_dir / MANIFEST if self.output.out_dir is not None else None

    def done(self, name: str, key: str) -> dict[str, Any] | None:
        record = self.records.get(name)
        if not record or record.get("key") != key or record.get("status") != "done":
            return None
        if self.output.jsonl is None and not Path(record.get("output") or "").is_file():
            return None
        return record

    def record(self, result: ItemResult) -> None:
        self.records[result.path] = {
            k: v for k, v in asdict(result).items() if self.output.jsonl is not None or k != "text"
        }
        path = self.path
        if path is None:
            return
        if self.output.jsonl is not None:
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records.values())
        else:
            text = json.dumps(self.records, ensure_ascii=False, indent=1)
        atomic_write_text(path, text)


def content_key(settings: str, text: str) -> str:
    return hashlib.sha256((settings + "\0" + text).encode("utf-8")).hexdigest()


def run_batch(
    sources: list[Source],
    process: Callable[[str], tuple[str, int]],
    output: Output,
    *,
    settings: str,
    force: bool = False,
    stdin: bytes | None = None,
    emit: Callable[[str], None] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[ItemResult]:
    """Process each source (text -> (result text, tokens)); KeyboardInterrupt stops after cleaning up.

    Results are written exactly as `process` returns them.
    """
    ledger = Ledger(output)
    results: list[ItemResult] = []
    headers = len(sources) > 1
    for i, source in enumerate(sources):
        name = str(source.relative) if source.path is not None else source.display
        if progress:
            progress(i, len(sources), source.display)
        start = time.perf_counter()
        try:
            text = read_document(source, stdin=stdin)
        except (DocumentError, LlmcliError) as exc:
            results.append(ItemResult(source.display, "failed", error=exc.message))
            continue
        key = content_key(settings, text)
        previous = None if force else ledger.done(name, key)
        if previous is not None:
            results.append(ItemResult(source.display, "skipped", output=previous.get("output"), key=key))
            continue
        try:
            produced, tokens = process(text)
        except LlmcliError as exc:
            result = ItemResult(source.display, "failed", error=exc.message, key=key)
            results.append(result)
            continue
        result = ItemResult(
            name, "done", text=produced, tokens=tokens, seconds=round(time.perf_counter() - start, 3), key=key
        )
        target = output.target(source.relative)
        if target is not None:
            atomic_write_text(target, produced)
            result.output = str(target)
        elif output.jsonl is None and emit is not None:
            if headers:
                ending = "\n" if produced.endswith("\n") else "\n\n"
                emit(f"==> {source.display} <==\n{produced}{ending if i < len(sources) - 1 else ending[1:]}")
            else:
                emit(produced)
        ledger.record(result)
        result.path = source.display
        results.append(result)
    if progress:
        progress(len(sources), len(sources), "")
    return results

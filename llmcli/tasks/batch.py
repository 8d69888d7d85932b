"""Run a task over many documents: resumable, atomic, and a failed file never stops the batch.

With `--out-dir`, each input's output mirrors the input tree (`a/b.txt` -> `DIR/a/b.summary.md`)
and a manifest in DIR records each input's content-and-settings hash, so a rerun skips what is
done and unchanged. With `--jsonl FILE`, one record per input, the file its own manifest.
Otherwise the outputs go to stdout, each under a header naming its file.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from llmcli.errors import LlmcliError
from llmcli.fsutil import atomic_write_text
from llmcli.text.documents import TEXT_SUFFIXES, DocumentError, Source, read_document

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
    # Outputs are JSON values: a JSONL line holds one as "record", stdout a line per input.
    records: bool = False

    @property
    def to_files(self) -> bool:
        """Whether outputs go to a folder or a JSONL file (kept and resumable), not to stdout."""
        return self.out_dir is not None or self.jsonl is not None

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
        entry = {k: v for k, v in asdict(result).items() if self.output.jsonl is not None or k != "text"}
        if self.output.records and "text" in entry:
            entry["record"] = json.loads(entry.pop("text"))
        self.records[result.path] = entry
        path = self.path
        if path is None:
            return
        if self.output.jsonl is not None:
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records.values())
        else:
            text = json.dumps(self.records, ensure_ascii=False, indent=1)
        atomic_write_text(path, text)


class DocumentWorker(Protocol):
    """A task bound to a model, for one document (one each, so several can run on a parallel engine)."""

    def budget(self) -> int:
        """Tokens a document or chunk may take; ContextOverflowError when the context leaves none."""
        ...

    def settings(self) -> list[Any]:
        """What, besides the model, decides the output (JSON-able): part of each input's key."""
        ...

    def process(self, text: str) -> tuple[str, int]:
        """The output for text as the batch writes it, and the tokens that took."""
        ...


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
    workers: int = 1,
) -> list[ItemResult]:
    """Process each source (text -> (result text, tokens)); KeyboardInterrupt stops after cleaning up.

    A failing input is recorded and the batch goes on, unless its error says every later input
    would fail too (`stops_batch`, e.g. the server is gone): then that error is raised, with all
    finished outputs already written and recorded.

    Results are written exactly as `process` returns them. With workers > 1, that many sources are
    processed at once (process must be thread-safe); each output is written and recorded as soon
    as it is done, and stdout still gets them in input order.
    """
    ledger = Ledger(output)
    results: dict[int, ItemResult] = {}
    total = len(sources)
    to_stdout = output.out_file is None and output.out_dir is None and output.jsonl is None
    shown = 0  # stdout gets outputs in input order: those of sources[:shown] are out

    def settle(i: int, result: ItemResult) -> None:
        nonlocal shown
        results[i] = result
        while shown in results:
            done = results[shown]
            if to_stdout and emit is not None and done.status == "done":
                if output.records:  # one JSON line per input, naming it
                    line = {"path": sources[shown].display, "record": json.loads(done.text or "null")}
                    emit(json.dumps(line, ensure_ascii=False) + "\n")
                else:
                    emit(_shown(done.text or "", sources[shown].display, total > 1, shown == total - 1))
            shown += 1

    def finish(i: int, name: str, key: str, started: float, outcome: Callable[[], tuple[str, int]]) -> None:
        """Write and record what processing sources[i] produced, or record why it failed."""
        try:
            produced, tokens = outcome()
        except LlmcliError as exc:
            if exc.stops_batch:
                raise
            failed(i, exc, key)
            return
        seconds = round(time.perf_counter() - started, 3)
        result = ItemResult(name, "done", text=produced, tokens=tokens, seconds=seconds, key=key)
        target = output.target(sources[i].relative)
        with _interrupt_deferred():  # an output and its record: both or neither
            if target is not None:
                atomic_write_text(target, produced)
                result.output = str(target)
            ledger.record(result)
        result.path = sources[i].display
        settle(i, result)

    def failed(i: int, exc: LlmcliError | DocumentError, key: str = "") -> None:
        settle(i, ItemResult(sources[i].display, "failed", error=exc.message, key=key))

    pool = ThreadPoolExecutor(workers, thread_name_prefix="llmcli-doc") if workers > 1 else None
    running: dict[Future[tuple[str, int]], tuple[int, str, str, float]] = {}

    def collect() -> None:
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            i, name, key, started = running.pop(future)
            finish(i, name, key, started, future.result)
            if progress:  # as "[done/total] name": the item just finished
                progress(len(results) - 1, total, sources[i].display)

    try:
        for i, source in enumerate(sources):
            name = str(source.relative) if source.path is not None else source.display
            if progress and pool is None:
                progress(i, total, source.display)
            started = time.perf_counter()
            try:
                text = read_document(source, stdin=stdin)
            except (DocumentError, LlmcliError) as exc:
                failed(i, exc)
                continue
            key = content_key(settings, text)
            previous = None if force else ledger.done(name, key)
            if previous is not None:
                settle(i, ItemResult(source.display, "skipped", output=previous.get("output"), key=key))
            elif pool is not None:
                while len(running) >= workers:
                    collect()
                running[pool.submit(process, text)] = (i, name, key, started)
            else:
                finish(i, name, key, started, partial(process, text))
        while running:
            collect()
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    if progress:
        progress(total, total, "")
    return [results[i] for i in range(total)]


@contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """Hold a Ctrl-C that arrives inside the block back until its end (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


def _shown(produced: str, display: str, headers: bool, last: bool) -> str:
    """An output as stdout shows it: under a `==> name <==` header when there are several."""
    if not headers:
        return produced
    ending = "\n" if produced.endswith("\n") else "\n\n"
    return f"==> {display} <==\n{produced}{ending if not last else ending[1:]}"

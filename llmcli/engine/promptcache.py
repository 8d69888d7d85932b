"""A disk cache of KV states for long prompt prefixes, so the next run need not recompute them.

Each entry is llama.cpp's saved state of sequence 0 after a prompt, keyed by the model file and
the exact tokens. A later prompt that starts with an entry's tokens loads it instead of
evaluating them. Entries are listed in an index (written atomically); the total size is bounded
and the least recently used entries go first. A missing, stale or corrupt file is skipped and
removed, never fatal: the prompt is then simply evaluated.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from array import array
from dataclasses import asdict, dataclass
from pathlib import Path

from llmcli.fsutil import atomic_write_text

MIN_TOKENS = 256  # shorter prompts evaluate faster than a state file loads
DEFAULT_MAX_BYTES = 4 << 30


@dataclass
class Entry:
    """One saved state."""

    file: str
    model: str
    n_tokens: int
    digest: str  # sha256 of the tokens
    size: int
    used: float


def tokens_digest(tokens: list[int]) -> str:
    return hashlib.sha256(array("i", tokens).tobytes()).hexdigest()


def model_key(path: Path) -> str:
    """The model's identity: its resolved path, size and modification time."""
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


class PromptCache:
    """Saved KV states in one folder, at most max_bytes in all."""

    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.entries: dict[str, Entry] = {}
        try:
            raw = json.loads((folder / "index.json").read_text(encoding="utf-8"))
            self.entries = {k: Entry(**v) for k, v in raw.items()}
        except (OSError, ValueError, TypeError):
            self.entries = {}  # no index or a damaged one: start empty, files get overwritten

    def _save_index(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {k: asdict(v) for k, v in self.entries.items()}
        atomic_write_text(self.folder / "index.json", json.dumps(data, indent=1))

    def lookup(self, model: str, tokens: list[int]) -> Entry | None:
        """The longest saved prefix of tokens for this model (its file exists), or None."""
        best = None
        for entry in self.entries.values():
            if entry.model != model or entry.n_tokens > len(tokens):
                continue
            if best is not None and entry.n_tokens <= best.n_tokens:
                continue
            if tokens_digest(tokens[: entry.n_tokens]) == entry.digest:
                best = entry
        if best is not None and not (self.folder / best.file).is_file():
            self.forget(best)
            return self.lookup(model, tokens)
        return best

    def path_for(self, model: str, tokens: list[int]) -> tuple[str, Path]:
        """The key and a fresh temporary path to save the state of tokens to."""
        key = hashlib.sha256(f"{model}\0{tokens_digest(tokens)}".encode()).hexdigest()[:32]
        self.folder.mkdir(parents=True, exist_ok=True)
        return key, self.folder / f".{key}.{os.getpid()}.tmp"

    def add(self, key: str, temp: Path, model: str, tokens: list[int]) -> None:
        """Register a saved state (moved into place atomically), then evict down to the size bound."""
        final = self.folder / f"{key}.kv"
        os.replace(temp, final)
        self.entries[key] = Entry(
            final.name, model, len(tokens), tokens_digest(tokens), final.stat().st_size, time.time()
        )
        self._evict()
        self._save_index()

    def touch(self, entry: Entry) -> None:
        entry.used = time.time()
        self._save_index()

    def has(self, model: str, tokens: list[int]) -> bool:
        digest = tokens_digest(tokens)
        return any(e.model == model and e.digest == digest for e in self.entries.values())

    def forget(self, entry: Entry) -> None:
        """Drop an entry that could not be used, and its file."""
        self.entries = {k: v for k, v in self.entries.items() if v is not entry}
        (self.folder / entry.file).unlink(missing_ok=True)
        self._save_index()

    def _evict(self) -> None:
        total = sum(e.size for e in self.entries.values())
        for key, entry in sorted(self.entries.items(), key=lambda kv: kv[1].used):
            if total <= self.max_bytes:
                break
            (self.folder / entry.file).unlink(missing_ok=True)
            del self.entries[key]
            total -= entry.size

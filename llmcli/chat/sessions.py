"""Saved chat sessions: one JSON file a conversation, written atomically after every turn."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmcli.errors import UsageError
from llmcli.fsutil import atomic_write_text

_NAME = re.compile(r"^[\w.+-]{1,100}$")


@dataclass
class SessionRecord:
    """A saved conversation."""

    name: str
    model: str = ""
    system: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)


class SessionStore:
    """Conversations as JSON files in the data folder, each written atomically after every turn."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise UsageError(f"bad session name {name!r}", hint="use letters, digits, '.', '_', '+' or '-'")
        return self.folder / f"{name}.json"

    def save(self, record: SessionRecord) -> None:
        record.updated = time.time()
        # Conversations are private, as a shell's history is.
        text = json.dumps(asdict(record), ensure_ascii=False, indent=1)
        atomic_write_text(self.path(record.name), text, mode=0o600)

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def load(self, name: str) -> SessionRecord:
        path = self.path(name)
        if not path.is_file():
            raise UsageError(f"no session named {name!r}", hint="see `llmcli sessions list`")
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            record = SessionRecord(**data)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"session file {path} is damaged: {exc}") from None
        return record

    def list(self) -> list[SessionRecord]:
        records = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                records.append(self.load(path.stem))
            except UsageError:
                continue
        return sorted(records, key=lambda r: r.updated, reverse=True)

    def remove(self, name: str) -> None:
        path = self.path(name)
        if not path.is_file():
            raise UsageError(f"no session named {name!r}", hint="see `llmcli sessions list`")
        path.unlink()

    @staticmethod
    def new_name() -> str:
        return time.strftime("%Y-%m-%d-%H%M%S")


def to_markdown(record: SessionRecord) -> str:
    """A readable transcript."""
    lines = [f"# {record.name}", "", f"*model: {record.model}*", ""]
    if record.system:
        lines += ["**System:**", "", record.system, ""]
    for message in record.messages:
        lines += [f"**{message['role'].capitalize()}:**", ""]
        if thinking := message.get("reasoning_content"):
            quoted = "\n".join(f"> {line}".rstrip() for line in thinking.splitlines())
            lines += ["<details><summary>Thinking</summary>", "", quoted, "", "</details>", ""]
        lines += [message["content"], ""]
    return "\n".join(lines)

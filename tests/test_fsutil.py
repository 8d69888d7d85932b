"""Atomic writes: all or nothing, with the permissions a plain write would give."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from llmcli.fsutil import atomic_write_text


def test_a_new_file_gets_the_umask_mode_and_a_replaced_one_keeps_its_own(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    new = tmp_path / "out" / "a.summary.md"
    atomic_write_text(new, "first")
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~mask  # as open() would make it, not mkstemp's 0600
    private = tmp_path / "private.md"
    private.write_text("old")
    os.chmod(private, 0o600)
    atomic_write_text(private, "new")
    assert private.read_text() == "new" and stat.S_IMODE(private.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []


def test_sessions_stay_private(tmp_path: Path) -> None:
    from llmcli.chat.sessions import SessionRecord, SessionStore

    store = SessionStore(tmp_path)
    store.save(SessionRecord("work", messages=[{"role": "user", "content": "hi"}]))
    assert stat.S_IMODE(store.path("work").stat().st_mode) == 0o600

"""Reading text files with one-line errors, and writes that never leave half a file behind."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from pathlib import Path

from llmcli.errors import UsageError


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write data to path via a temp file in the same folder and a rename (all or nothing).

    mode: the file's permissions; by default a replaced file keeps its own, a new one gets open()'s.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except OSError:
            mode = _new_file_mode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp makes it 0600, which a plain open() would not
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@functools.cache
def _new_file_mode() -> int:
    """What open() gives a new file here: 0666 less the umask (read once; Python has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    """atomic_write_bytes for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def read_utf8(path: Path, what: str = "") -> str:
    """A UTF-8 text file (BOM dropped), or a one-line UsageError; `what` names it ("the glossary ")."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"cannot read {what}{path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what}{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what}{path} is not UTF-8 text (bad byte at offset {exc.start})") from None

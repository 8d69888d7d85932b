"""Model references: where `-m` points. The one place a reference becomes a file."""

from __future__ import annotations

from pathlib import Path

from llmcli.errors import ModelNotFoundError, UsageError


def resolve_model(ref: str | None) -> Path:
    """The GGUF file a model reference names (today: a local path)."""
    if not ref:
        raise UsageError("no model given", hint="pass -m PATH/TO/MODEL.gguf or set LLMCLI_MODEL")
    path = Path(ref).expanduser()
    if not path.exists():
        raise ModelNotFoundError(f"model file not found: {ref}", hint="check the path")
    return path

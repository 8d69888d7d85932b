"""The model registry (models.toml) and model references: the one place `-m` becomes a model.

A reference is one of: a registry alias (`qwen2.5-1.5b`, `qwen2.5-1.5b:Q8_0`), a hub file
(`owner/repo/path/file.gguf`), a hub repo with a quantization (`owner/repo:Q4_K_M`; the file is
picked from the repo listing), `hf://` / `hf.co/` / `huggingface.co/` forms of those, or a local path.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from llmcli.config import Paths
from llmcli.errors import ModelNotFoundError, UsageError

DEFAULT_QUANT = "Q4_K_M"
HUB_PREFIXES = ("hf://", "https://huggingface.co/", "huggingface.co/", "hf.co/")
_REPO = re.compile(r"^[\w.-]+/[\w.-]+$")


class RegistryError(UsageError):
    """A models.toml that cannot be used: names the file, the table and the field."""


@dataclass(frozen=True)
class RegistryEntry:
    """One curated (or user-imported) model."""

    alias: str
    description: str = ""
    repo: str | None = None  # hub repository; None for a local import
    path: Path | None = None  # a local GGUF registered with `models import`
    files: Mapping[str, str] = field(default_factory=dict)  # quant -> file in repo
    sizes: Mapping[str, str] = field(default_factory=dict)  # quant -> approximate size
    default_quant: str = DEFAULT_QUANT
    params: str = ""
    context: int | None = None
    license: str = ""
    default: bool = False
    tiny: bool = False
    gated: bool = False
    reasoning: bool = False  # a thinking model: writes <think>...</think> before its answer
    chat_template: str | None = None
    stop: tuple[str, ...] = ()
    source: Path | None = None


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: a local file, a hub file, or a hub repo whose file is chosen by quant."""

    text: str  # what the user wrote
    path: Path | None = None
    repo: str | None = None
    filename: str | None = None
    quant: str | None = None
    revision: str = "main"
    entry: RegistryEntry | None = None

    @property
    def is_local(self) -> bool:
        return self.path is not None

    @property
    def pull_hint(self) -> str:
        return f"run `llmcli models pull {self.text}`"


class Registry:
    """Registry entries by alias, built-in first, then the user's additions and overrides."""

    def __init__(self, entries: dict[str, RegistryEntry]) -> None:
        self.entries = entries

    def __contains__(self, alias: str) -> bool:
        return alias in self.entries

    def get(self, alias: str) -> RegistryEntry:
        if alias in self.entries:
            return self.entries[alias]
        close = difflib.get_close_matches(alias, self.entries, n=3, cutoff=0.5)
        suggestion = f"did you mean {', '.join(close)}? " if close else ""
        raise ModelNotFoundError(f"unknown model {alias!r}", hint=f"{suggestion}see `llmcli models list`")

    @property
    def default(self) -> RegistryEntry | None:
        return next((e for e in self.entries.values() if e.default), None)

    def parse(self, ref: str) -> ModelRef:
        """Turn what the user wrote into a ModelRef (no network)."""
        text = ref.strip()
        path = Path(text).expanduser()
        if path.exists():
            return ModelRef(text, path=path)
        for prefix in HUB_PREFIXES:
            if text.startswith(prefix):
                return _hub_ref(text, text[len(prefix) :])
        name, _, quant = text.partition(":")
        if name in self.entries:
            return self._alias_ref(text, self.entries[name], quant.upper() or None)
        if (text.lower().endswith(".gguf") and text.count("/") < 2) or text.startswith((".", "/", "~")):
            raise ModelNotFoundError(f"model file not found: {text}", hint="check the path")
        if "/" in name:
            return _hub_ref(text, text)
        self.get(name)  # raises with suggestions
        raise AssertionError("unreachable")

    def _alias_ref(self, text: str, entry: RegistryEntry, quant: str | None) -> ModelRef:
        if entry.path is not None:
            return ModelRef(text, path=entry.path, entry=entry)
        quant = quant or entry.default_quant
        if quant not in entry.files:
            raise ModelNotFoundError(
                f"{entry.alias} has no {quant} file", hint=f"available: {', '.join(entry.files)}"
            )
        return ModelRef(text, repo=entry.repo, filename=entry.files[quant], quant=quant, entry=entry)


def _hub_ref(text: str, spec: str) -> ModelRef:
    spec, _, quant = spec.partition(":")
    spec = spec.strip("/")
    revision = "main"
    parts = spec.split("/")
    # huggingface.co/owner/repo/resolve/REV/path or /blob/REV/path (a pasted URL)
    if len(parts) > 4 and parts[2] in ("resolve", "blob"):
        revision, parts = parts[3], parts[:2] + parts[4:]
    repo = "/".join(parts[:2])
    if not _REPO.match(repo):
        raise UsageError(
            f"not a model reference: {text!r}",
            hint="use an alias, owner/repo:QUANT, owner/repo/file.gguf or a path",
        )
    if len(parts) > 2:
        filename = "/".join(parts[2:])
        if not filename.lower().endswith(".gguf"):
            raise UsageError(f"{text!r} does not name a .gguf file")
        return ModelRef(text, repo=repo, filename=filename, revision=revision)
    return ModelRef(text, repo=repo, quant=(quant or DEFAULT_QUANT).upper(), revision=revision)


# --- loading models.toml -----------------------------------------------------------------------


def builtin_registry_text() -> str:
    return resources.files("llmcli").joinpath("models.toml").read_text(encoding="utf-8")


def load_registry(paths: Paths | None = None, environ: Mapping[str, str] | None = None) -> Registry:
    """The built-in registry, then the user's models.toml, then LLMCLI_REGISTRY (each overrides)."""
    env = os.environ if environ is None else environ
    paths = paths or Paths.from_env(env)
    entries = _parse(builtin_registry_text(), Path("<built-in models.toml>"))
    for extra in (
        paths.config_dir / "models.toml",
        Path(env["LLMCLI_REGISTRY"]) if env.get("LLMCLI_REGISTRY") else None,
    ):
        if extra is None:
            continue
        if extra.is_file():
            entries.update(_parse(extra.read_text(encoding="utf-8"), extra))
        elif extra == Path(env.get("LLMCLI_REGISTRY", "")):
            raise RegistryError(f"LLMCLI_REGISTRY names {extra}, which does not exist")
    return Registry(entries)


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "repo": str,
    "path": str,
    "description": str,
    "params": str,
    "context": int,
    "license": str,
    "default_quant": str,
    "default": bool,
    "tiny": bool,
    "gated": bool,
    "reasoning": bool,
    "chat_template": str,
    "stop": list,
    "files": dict,
}


def _parse(text: str, source: Path) -> dict[str, RegistryEntry]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{source}: not valid TOML: {exc}") from None
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise RegistryError(f"{source}: [models] must be a table of models")
    return {alias: _entry(alias, table, source) for alias, table in models.items()}


def _entry(alias: str, table: Any, source: Path) -> RegistryEntry:
    where = f'{source}: [models."{alias}"]'
    if not isinstance(table, dict):
        raise RegistryError(f"{where} must be a table")
    for key, value in table.items():
        if key not in _FIELDS:
            raise RegistryError(f"{where}: unknown field {key!r}", hint=f"known: {', '.join(_FIELDS)}")
        if not isinstance(value, _FIELDS[key]) or (_FIELDS[key] is int and isinstance(value, bool)):
            raise RegistryError(f"{where}: field {key!r} must be a {_FIELDS[key].__name__}")  # type: ignore[union-attr]
    if ("repo" in table) == ("path" in table):
        raise RegistryError(f"{where}: needs exactly one of 'repo' or 'path'")
    files: dict[str, str] = {}
    sizes: dict[str, str] = {}
    for quant, spec in table.get("files", {}).items():
        file = spec.get("file") if isinstance(spec, dict) else spec
        if not isinstance(file, str) or not file.endswith(".gguf"):
            raise RegistryError(f"{where}: files.{quant} must give a .gguf 'file'")
        files[quant.upper()] = file
        if isinstance(spec, dict) and isinstance(spec.get("size"), str):
            sizes[quant.upper()] = spec["size"]
    if "repo" in table and not files:
        raise RegistryError(f"{where}: field 'files' must list at least one quantization")
    default_quant = table.get(
        "default_quant", DEFAULT_QUANT if DEFAULT_QUANT in files else next(iter(files), "")
    )
    if files and default_quant.upper() not in files:
        raise RegistryError(f"{where}: default_quant {default_quant!r} is not one of its files")
    return RegistryEntry(
        alias=alias,
        description=table.get("description", ""),
        repo=table.get("repo"),
        path=Path(table["path"]).expanduser() if "path" in table else None,
        files=files,
        sizes=sizes,
        default_quant=default_quant.upper(),
        params=table.get("params", ""),
        context=table.get("context"),
        license=table.get("license", ""),
        default=table.get("default", False),
        tiny=table.get("tiny", False),
        gated=table.get("gated", False),
        reasoning=table.get("reasoning", False),
        chat_template=table.get("chat_template"),
        stop=tuple(table.get("stop", ())),
        source=source,
    )


def import_local(file: Path, alias: str, paths: Paths) -> Path:
    """Add `alias` for a local GGUF to the user's models.toml (atomically); return that file."""
    import json

    from llmcli.fsutil import atomic_write_text
    from llmcli.models.ggufinfo import read_gguf

    if not re.fullmatch(r"[\w.+-]+", alias):
        raise UsageError(f"alias {alias!r} may use letters, digits, '.', '_', '+' and '-' only")
    info = read_gguf(file)  # refuse anything that is not a sound GGUF
    target = paths.config_dir / "models.toml"
    existing = target.read_text(encoding="utf-8") if target.is_file() else ""
    if alias in (_parse(existing, target) if existing else {}):
        raise UsageError(f"{alias} is already in {target}", hint="pick another alias or edit the file")
    name = str(info.metadata.get("general.name", file.stem))
    block = (
        f'\n[models."{alias}"]\npath = {json.dumps(str(file.resolve()))}\n'
        f"description = {json.dumps(f'{name} (imported)')}\n"
    )
    atomic_write_text(target, existing + block)
    return target

"""Paths and settings. Precedence: defaults < config file < LLMCLI_* environment < command-line flags."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from llmcli.errors import UsageError


@dataclass(frozen=True)
class Paths:
    """Where llmcli keeps its files. LLMCLI_HOME puts everything under one folder."""

    config_dir: Path
    data_dir: Path
    cache_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        if home := env.get("LLMCLI_HOME"):
            root = Path(home).expanduser()
            return cls(root / "config", root / "data", root / "cache")
        user = Path.home()

        def xdg(var: str, default: Path) -> Path:
            return Path(env[var]).expanduser() / "llmcli" if env.get(var) else default / "llmcli"

        return cls(
            xdg("XDG_CONFIG_HOME", user / ".config"),
            xdg("XDG_DATA_HOME", user / ".local/share"),
            xdg("XDG_CACHE_HOME", user / ".cache"),
        )


@dataclass(frozen=True)
class Settings:
    """User-level defaults for every command (each can be set in config.toml or as LLMCLI_<NAME>)."""

    model: str | None = None
    ctx: int | None = None
    threads: int | None = None
    gpu_layers: str = "auto"
    flash_attn: str = "auto"
    cache_type_k: str = "f16"  # the KV cache's element types (f16, q8_0, q4_0)
    cache_type_v: str = "f16"
    backend: str | None = None  # an OpenAI-compatible server's URL: generate there instead of locally
    api_key: str | None = field(default=None, repr=False)  # sent to the backend as a bearer token
    prompt_cache_mb: int = 4096  # --prompt-cache keeps at most this much on disk
    timeout: int = 600  # seconds to wait on the backend for a response to start or a piece to arrive
    think: str | None = None  # on | off | auto for thinking models (None: each command's default)
    reasoning_budget: int | None = None  # thinking tokens per answer (None: no limit)

    def merged(self, **flags: Any) -> Settings:
        """These settings overridden by the flags that were given (None means not given)."""
        return replace(self, **{k: v for k, v in flags.items() if v is not None})


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if "int" in str(kind):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise UsageError(f"{source}: {name} must be a whole number, got {value!r}") from None
    return str(value)


def load_settings(paths: Paths | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the config file, then LLMCLI_* variables."""
    env = os.environ if environ is None else environ
    paths = paths or Paths.from_env(env)
    names = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    cfg = paths.config_file
    if cfg.is_file():
        try:
            data = tomllib.loads(cfg.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{cfg} is not valid TOML: {exc}") from None
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in names:
                raise UsageError(f"{cfg}: unknown setting {key!r}", hint=f"known: {', '.join(sorted(names))}")
            values[name] = _coerce(name, value, str(cfg))
    for name in names:
        var = f"LLMCLI_{name.upper()}"
        if env.get(var):
            values[name] = _coerce(name, env[var], var)
    return Settings(**values)


def parse_flash_attn(value: str | None) -> bool | None:
    """`on`, `off` or `auto`/None (on with GPU offload, off on the CPU)."""
    choices = {None: None, "auto": None, "on": True, "off": False}
    if value not in choices:
        raise UsageError(f"--flash-attn must be on, off or auto, got {value!r}")
    return choices[value]


def parse_gpu_layers(value: str | int | None) -> int | None:
    """`N`, `all` (-1) or `auto`/None (decided at load time from the build)."""
    if value is None or value == "auto":
        return None
    if value == "all":
        return -1
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"--gpu-layers must be a number, 'all' or 'auto', got {value!r}") from None
    if n < 0:
        raise UsageError(f"--gpu-layers must be >= 0 (or 'all'), got {n}")
    return n

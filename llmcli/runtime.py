"""From settings and a model reference to a ready engine."""

from __future__ import annotations

from pathlib import Path

from llmcli.config import Settings
from llmcli.engine import EngineOptions, LocalEngine, parse_gpu_layers
from llmcli.errors import UsageError
from llmcli.registry import ModelRef, Registry, load_registry
from llmcli.store import Progress, Store


def model_ref(settings: Settings, registry: Registry | None = None) -> ModelRef:
    """The reference to use: -m, else LLMCLI_MODEL / config, else the registry's default."""
    registry = registry or load_registry()
    text = settings.model
    if not text:
        default = registry.default
        if default is None:
            raise UsageError("no model given and the registry has no default", hint="pass -m MODEL")
        text = default.alias
    return registry.parse(text)


def resolve_model_path(
    settings: Settings, *, offline: bool = False, progress: Progress | None = None
) -> Path:
    """The GGUF file for the settings' model, downloading it first if needed."""
    return Store(offline=offline).resolve(model_ref(settings), progress)


def open_engine(
    settings: Settings, *, verbose: bool = False, offline: bool = False, progress: Progress | None = None
) -> LocalEngine:
    """Resolve (and if needed download) the model, then load it with the user's settings."""
    options = EngineOptions(
        n_ctx=settings.ctx,
        n_threads=settings.threads,
        gpu_layers=parse_gpu_layers(settings.gpu_layers),
        verbose=verbose,
    )
    options.validate()
    return LocalEngine(resolve_model_path(settings, offline=offline, progress=progress), options)

"""From settings and a model reference to a ready engine."""

from __future__ import annotations

from llmcli.config import Settings
from llmcli.engine import EngineOptions, LocalEngine, parse_gpu_layers
from llmcli.registry import resolve_model


def open_engine(settings: Settings, *, verbose: bool = False) -> LocalEngine:
    """Resolve the model and load it with the user's context, threads and GPU settings."""
    options = EngineOptions(
        n_ctx=settings.ctx,
        n_threads=settings.threads,
        gpu_layers=parse_gpu_layers(settings.gpu_layers),
        verbose=verbose,
    )
    options.validate()
    return LocalEngine(resolve_model(settings.model), options)

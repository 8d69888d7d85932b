"""From settings and a model reference to a ready engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, replace

from llmcli.chat.templates import ChatTemplate, pick_template
from llmcli.config import Paths, Settings, parse_flash_attn, parse_gpu_layers
from llmcli.engine import (
    Engine,
    EngineOptions,
    LocalEngine,
    ParallelEngine,
    default_ctx,
)
from llmcli.engine.hardware import logical_cpus
from llmcli.engine.promptcache import PromptCache
from llmcli.errors import LlmcliError, UsageError
from llmcli.models.ggufinfo import read_gguf
from llmcli.models.registry import ModelRef, Registry, load_registry
from llmcli.models.store import Progress, Store

MIN_SEQUENCE_CTX = 1024  # automatic --parallel keeps at least this much context per sequence


def model_ref(
    settings: Settings, registry: Registry | None = None, *, environ: Mapping[str, str] | None = None
) -> ModelRef:
    """The reference to use: -m, else LLMCLI_MODEL / config, else the registry's default.

    environ: the variables that locate the registry when none is given (None: os.environ).
    """
    registry = registry or load_registry(environ=environ)
    text = settings.model
    if not text:
        default = registry.default
        if default is None:
            raise UsageError("no model given and the registry has no default", hint="pass -m MODEL")
        text = default.alias
    return registry.parse(text)


@dataclass
class LoadedModel:
    """An engine with what the registry says about its model (ref is None for a server's model).

    engine is the model's engine (a server's, or the model itself: then `model` too), parallel the engine
    that runs several sequences in its context, when there is one.
    """

    engine: Engine
    ref: ModelRef | None
    parallel: ParallelEngine | None = None  # set when several sequences share the context
    model: LocalEngine | None = None  # the model, when it runs here (None: on a server)

    @property
    def runner(self) -> Engine:
        """What tasks generate with: the parallel engine when there is one."""
        return self.parallel or self.engine

    @property
    def name(self) -> str:
        return self.ref.text if self.ref else self.engine.name

    @property
    def display_name(self) -> str:
        """How tables show the model: a local file by its name, anything else by its reference."""
        if self.model is not None and self.ref and self.ref.is_local:
            return self.model.model_path.name
        return self.name

    @property
    def n_parallel(self) -> int:
        """Generations at once: sequences in the context, or requests in flight to a server."""
        return self.runner.capabilities.parallel

    def local(self) -> LocalEngine:
        """The engine of a model that runs here (commands with no --backend option load no other)."""
        if self.model is None:
            raise UsageError(f"{self.name} runs on a server: this command needs the model itself")
        return self.model

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        (self.parallel or self.engine).close()

    def chat_template(self) -> ChatTemplate:
        """The registry's override, else the GGUF's template, else one inferred from the model's
        special tokens, else a plain one.

        A server applies its own template; this one then only estimates how many tokens a
        conversation takes.
        """
        model = self.model
        if model is None:
            return pick_template(None)
        bos, eos = model.special_text()
        override = self.ref.entry.chat_template if self.ref and self.ref.entry else None
        return pick_template(
            model.info.chat_template,
            override,
            bos_token=bos,
            eos_token=eos,
            tokenizer=model,
            architecture=model.info.architecture,
        )

    def stop_strings(self) -> tuple[str, ...]:
        return self.ref.entry.stop if self.ref and self.ref.entry else ()


def load_model(
    settings: Settings,
    *,
    verbose: bool = False,
    offline: bool = False,
    progress: Progress | None = None,
    prompt_cache: bool = False,
    parallel: int = 1,
    auto_parallel: bool = False,
    draft_model: str | None = None,
    prompt_meter: Callable[[int, int], None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> LoadedModel:
    """Resolve (downloading it first if needed) and load the settings' model.

    prompt_cache: save and restore the KV state of long prompts on disk (`--prompt-cache`).
    parallel: sequences decoded together; the context (--ctx) is split evenly between them. With
    auto_parallel, fewer when a share would drop below MIN_SEQUENCE_CTX tokens.
    draft_model: a small model of the same vocabulary that drafts for speculative decoding (one
    sequence at a time only: with several, drafts are not used, so it is not loaded).
    prompt_meter: told (evaluated, total) while a long prompt is evaluated (one sequence at a time).
    environ: the variables that locate the registry, hub cache and llmcli's folders (None: os.environ).
    """
    if parallel < 1:
        raise UsageError(f"--parallel must be >= 1, got {parallel}")
    if prompt_cache and settings.prompt_cache_mb <= 0:
        raise UsageError(f"prompt_cache_mb must be > 0, got {settings.prompt_cache_mb}")
    if settings.backend:
        if draft_model:
            raise UsageError("--draft-model drafts for a local model, not for --backend")
        return _load_remote(settings, parallel, environ)
    ref = model_ref(settings, environ=environ)
    path = Store(offline=offline, environ=environ).resolve(ref, progress)
    if settings.threads and settings.threads > (cpus := logical_cpus()) and progress:
        progress.note(f"--threads {settings.threads} is more than the {cpus} CPUs here: using {cpus}")
    options = EngineOptions(
        n_ctx=settings.ctx,
        n_threads=settings.threads,
        gpu_layers=parse_gpu_layers(settings.gpu_layers),
        flash_attn=parse_flash_attn(settings.flash_attn),
        verbose=verbose,
        cache_type_k=settings.cache_type_k,
        cache_type_v=settings.cache_type_v,
    )
    options.validate()
    if auto_parallel and parallel > 1:  # the context the engine will get, to split
        total = settings.ctx or default_ctx(read_gguf(path), settings.cache_type_k, settings.cache_type_v)[0]
        parallel = max(1, min(parallel, total // MIN_SEQUENCE_CTX))
    options = replace(options, n_seq_max=parallel)
    engine = LocalEngine(path, options)
    engine.prompt_meter = prompt_meter
    if engine.ctx_capped and progress:
        progress.note(
            f"context {engine.n_ctx:,} tokens: the model was trained on {engine.n_ctx_train:,}, but a longer "
            "KV cache would not fit in memory (--ctx sets it; --cache-type-k/-v q8_0 halves the cache)"
        )
    if settings.ctx and engine.n_ctx != settings.ctx and progress:
        shared = f", {engine.n_ctx // parallel:,} for each of {parallel} sequences" if parallel > 1 else ""
        progress.note(
            f"context {engine.n_ctx:,} tokens{shared}, not the {settings.ctx:,} of --ctx: llama.cpp "
            "sizes each sequence's cache in steps of 256 tokens"
        )
    if draft_model and parallel == 1:
        try:
            draft_ref = load_registry(environ=environ).parse(draft_model)
            draft_path = Store(offline=offline, environ=environ).resolve(draft_ref, progress)
            engine.use_draft_model(LocalEngine(draft_path, replace(options, n_ctx=engine.n_ctx)))
        except BaseException:
            engine.close()
            raise
    if prompt_cache:
        folder = Paths.from_env(environ).cache_dir / "prompt-cache"
        engine.use_prompt_cache(PromptCache(folder, settings.prompt_cache_mb << 20))
    several = ParallelEngine(engine) if parallel > 1 else None
    # What verifying drafts costs here, measured by earlier runs.
    (several or engine).use_cost_file(Paths.from_env(environ).cache_dir / "step-costs.json")
    return LoadedModel(engine, ref, several, model=engine)


def _load_remote(settings: Settings, parallel: int, environ: Mapping[str, str] | None = None) -> LoadedModel:
    """The settings' server as an engine; -m names its model, and lends a tokenizer if it is local."""
    from llmcli.engine.remote import BackendOptions, RemoteEngine

    local_copy = None
    if settings.model:
        with suppress(LlmcliError):  # else a name only the server knows
            ref = load_registry(environ=environ).parse(settings.model)
            local_copy = Store(offline=True, environ=environ).resolve(ref)
    options = BackendOptions(
        settings.backend or "",
        api_key=settings.api_key,
        model=settings.model,
        timeout=settings.timeout,
        n_ctx=settings.ctx,
        parallel=parallel,
    )
    return LoadedModel(RemoteEngine(options, local_copy), None)

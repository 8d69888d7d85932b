"""How a local model is loaded: `EngineOptions`, the KV cache's element types, and the default context
(the trained length, as far as the memory beside the weights allows).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmcli.engine import hardware
from llmcli.errors import UsageError
from llmcli.models.ggufinfo import GGUFInfo

MAX_DEFAULT_CTX = 8192  # the default context where the KV cache's size cannot be known
# KV cache element types: ggml type id and bytes per value (a q8_0 block holds 32 values in 34 bytes)
CACHE_TYPES = {"f16": (1, 2.0), "q8_0": (8, 34 / 32), "q4_0": (2, 18 / 32)}
DEFAULT_BATCH = 2048
DEFAULT_UBATCH = 512


def default_ctx(info: GGUFInfo, cache_type_k: str = "f16", cache_type_v: str = "f16") -> tuple[int, bool]:
    """The context when --ctx is not given, and whether memory capped it: the trained length, or the
    most (in steps of 1,024) whose KV cache takes at most half the memory left beside the weights."""
    trained = info.context_length or MAX_DEFAULT_CTX
    per_1k = info.kv_cache_bytes(1024, CACHE_TYPES[cache_type_k][1], CACHE_TYPES[cache_type_v][1])
    free = hardware.available_memory()
    if not per_1k or free is None:
        return min(trained, MAX_DEFAULT_CTX), False
    fits = int(max(free - info.file_size, 0) / 2 / per_1k) * 1024
    return (trained, False) if fits >= trained else (max(fits, 1024), True)


def kv_cache_bytes(info: GGUFInfo, n_ctx: int, cache_types: tuple[str, str]) -> int | None:
    """Memory the KV cache of n_ctx tokens takes with these (key, value) cache types (None: unknown)."""
    return info.kv_cache_bytes(n_ctx, *(CACHE_TYPES[t][1] for t in cache_types))


@dataclass(frozen=True)
class EngineOptions:
    """How to load a model. None means the engine's default."""

    n_ctx: int | None = None  # default: default_ctx (the trained length, as far as memory allows)
    n_threads: int | None = None  # default: physical cores
    gpu_layers: int | None = None  # default: all when the build can offload, else 0
    # None: on when layers are offloaded to a GPU; off on the CPU, where llama.cpp's flash attention
    # gains 10-30% early in a context but at depth 1024 loses 24-45% of decode speed and 24-74% on
    # short prompts (bench/README.md, two builds), which is what chat and long answers spend time on.
    flash_attn: bool | None = None
    n_seq_max: int = 1
    verbose: bool = False
    cache_type_k: str = "f16"  # the KV cache's element types: f16, q8_0 (half the memory) or q4_0
    cache_type_v: str = "f16"

    def validate(self) -> None:
        if self.n_ctx is not None and self.n_ctx <= 0:
            raise UsageError(f"--ctx must be > 0, got {self.n_ctx}")
        for flag, value in (("--cache-type-k", self.cache_type_k), ("--cache-type-v", self.cache_type_v)):
            if value not in CACHE_TYPES:
                raise UsageError(f"{flag} must be one of {', '.join(CACHE_TYPES)}, got {value!r}")
        if self.cache_type_v != "f16" and self.flash_attn is False:
            raise UsageError("a quantized --cache-type-v needs flash attention: drop --flash-attn off")
        if self.n_threads is not None and self.n_threads <= 0:
            raise UsageError(f"--threads must be > 0, got {self.n_threads}")

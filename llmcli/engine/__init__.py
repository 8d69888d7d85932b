"""The only owner of llama_cpp: load a model, tokenize, and stream generated text.

Generation runs its own decode loop on llama.cpp's low-level API and native sampler chain, so
text is detokenized once per token (never the whole output again) and the KV cache is ours to
manage: a new prompt that shares a prefix with what the cache holds evaluates only the rest.
`llama_cpp` is imported lazily so that commands which do not generate start fast.
"""

from __future__ import annotations

import ctypes
import os
import queue
import re
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from llmcli.config import Paths
from llmcli.engine import crash, hardware
from llmcli.engine.lookup import DraftBudget, NgramIndex
from llmcli.engine.promptcache import MIN_TOKENS as PROMPT_CACHE_MIN_TOKENS
from llmcli.engine.promptcache import PromptCache, model_key
from llmcli.engine.streaming import TextAssembler
from llmcli.engine.threads import ThreadTuner
from llmcli.errors import ContextOverflowError, GenerationError, ModelLoadError, UsageError
from llmcli.models.ggufinfo import GGUFInfo, read_gguf
from llmcli.reasoning import Thought, ThoughtSplitter
from llmcli.sampling import SamplingConfig, Step

MAX_DEFAULT_CTX = 8192  # the default context where the KV cache's size cannot be known
# KV cache element types: ggml type id and bytes per value (a q8_0 block holds 32 values in 34 bytes)
CACHE_TYPES = {"f16": (1, 2.0), "q8_0": (8, 34 / 32), "q4_0": (2, 18 / 32)}
DEFAULT_BATCH = 2048
DEFAULT_UBATCH = 512


@dataclass
class Stats:
    """Token counts and timings of one generation (times from llama.cpp's counters, TTFT wall-clock)."""

    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens reused from the KV cache, not evaluated again
    generated_tokens: int = 0
    prompt_ms: float = 0.0
    decode_ms: float = 0.0
    ttft_ms: float = 0.0
    total_ms: float = 0.0
    drafted_tokens: int = 0  # prompt-lookup drafts verified, and those the model agreed with
    accepted_tokens: int = 0
    reasoning_tokens: int = 0  # of generated_tokens, those that were thinking (markers excluded)

    @property
    def prompt_tps(self) -> float:
        evaluated = self.prompt_tokens - self.cached_tokens
        return evaluated / self.prompt_ms * 1000 if self.prompt_ms > 0 else 0.0

    @property
    def decode_tps(self) -> float:
        # The first generated token comes from the prompt's logits; each later one costs a decode.
        decoded = max(self.generated_tokens - 1, 0)
        return decoded / self.decode_ms * 1000 if self.decode_ms > 0 else 0.0

    def to_dict(self) -> dict[str, float | int]:
        data: dict[str, float | int] = {
            k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()
        }
        data["prompt_tps"] = round(self.prompt_tps, 2)
        data["decode_tps"] = round(self.decode_tps, 2)
        return data


@dataclass
class Completion:
    """The outcome of a generation. finish_reason: stop | length | context | interrupted."""

    text: str
    finish_reason: str
    stats: Stats
    seed: int | None = None
    tokens: list[int] = field(default_factory=list)  # generated tokens, end-of-generation excluded
    reasoning: str = ""  # the model's thinking, apart from the answer in text


@dataclass
class Generation:
    """A running generation: iterate for text pieces, then read `completion()`.

    With a thinking plan (`sampling.think`) the pieces of thinking are `Thought`s; the others are the answer.
    """

    _pieces: Iterator[str]
    sampling: SamplingConfig
    stats: Stats = field(default_factory=Stats)
    finish_reason: str | None = None
    tokens: list[int] = field(default_factory=list)
    _parts: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        piece = next(self._pieces)
        self._parts.append(piece)
        return piece

    def close(self) -> None:
        """Stop generating (the text so far is kept)."""
        self._pieces.close()  # type: ignore[attr-defined]

    def completion(self) -> Completion:
        """What was generated so far; an unfinished generation counts as interrupted."""
        return Completion(
            "".join(p for p in self._parts if not isinstance(p, Thought)),
            self.finish_reason or "interrupted",
            self.stats,
            self.sampling.seed,
            list(self.tokens),
            "".join(p for p in self._parts if isinstance(p, Thought)).strip(),
        )

    def run(self) -> Completion:
        """Generate to the end and return the result."""
        for _ in self:
            pass
        return self.completion()


class Engine(Protocol):
    """What commands need from a model backend (local llama.cpp today, remote servers later)."""

    name: str  # what the model is called: its GGUF's path, or the server's name for it
    n_ctx: int  # tokens one generation can hold, prompt included
    takes_messages: bool  # True: Chat sends messages (the server's template), not rendered tokens

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]: ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def token_bytes(self, token: int, special: bool = False) -> bytes: ...

    def generate(
        self, prompt: str | Sequence[int], sampling: SamplingConfig, *, lookup: int = 0
    ) -> Generation: ...

    def close(self) -> None: ...


# --- llama_cpp loading and logging ------------------------------------------------------------

_lib: ModuleType | None = None
_lib_lock = threading.Lock()
_log_state: dict[str, Any] = {"verbose": False, "recent": deque(maxlen=20), "callback": None, "buffers": []}
_BUFFER_LINE = re.compile(r"(\S+) model buffer size")
_cpu: dict[str, hardware.CpuReport] = {}
_cpu_kernels: list[str] = []  # the CPU backend's extra buffer types: CPU_REPACK, AMX, ...


@contextmanager
def _stderr_silenced(silence: bool) -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for a moment (native code prints there directly)."""
    if not silence:
        yield
        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _extra_buffer_types(lib: ModuleType) -> list[str]:
    """Names of the CPU backend's extra buffer types (the repacked weight kernels), via ggml's registry."""
    folder = Path(lib.__file__ or "").parent / "lib"
    found = [p for name in ("libggml.so", "libggml.dylib", "ggml.dll") if (p := folder / name).exists()]
    if not found:
        return []
    ggml = ctypes.CDLL(str(found[0]))  # already loaded by llama_cpp: this only finds its symbols
    ptr = ctypes.c_void_p
    ggml.ggml_backend_dev_by_type.restype = ptr
    ggml.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
    ggml.ggml_backend_dev_backend_reg.restype = ptr
    ggml.ggml_backend_dev_backend_reg.argtypes = [ptr]
    ggml.ggml_backend_reg_get_proc_address.restype = ptr
    ggml.ggml_backend_reg_get_proc_address.argtypes = [ptr, ctypes.c_char_p]
    ggml.ggml_backend_buft_name.restype = ctypes.c_char_p
    ggml.ggml_backend_buft_name.argtypes = [ptr]
    cpu = ggml.ggml_backend_dev_by_type(0)  # GGML_BACKEND_DEVICE_TYPE_CPU
    address = cpu and ggml.ggml_backend_reg_get_proc_address(
        ggml.ggml_backend_dev_backend_reg(cpu), b"ggml_backend_dev_get_extra_bufts"
    )
    if not address:
        return []
    bufts = ctypes.CFUNCTYPE(ctypes.POINTER(ptr), ptr)(address)(cpu)
    names: list[str] = []
    while bufts and bufts[len(names)]:
        names.append(ggml.ggml_backend_buft_name(bufts[len(names)]).decode())
    return names


def _llama() -> ModuleType:
    """Import llama_cpp once (after keeping it off AMX where AMX faults), route its logs through our
    callback, and initialize the backend."""
    global _lib
    with _lib_lock:
        if _lib is None:
            _cpu["report"] = hardware.guard_amx(Paths.from_env().cache_dir)
            import llama_cpp

            @llama_cpp.llama_log_callback  # type: ignore[misc]
            def _log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
                line = text.decode("utf-8", errors="replace")
                if found := _BUFFER_LINE.search(line):  # which kernels hold the weights
                    _log_state["buffers"].append(found.group(1))
                if _log_state["verbose"]:
                    os.write(2, text)
                elif level in (2, 3) and line.strip():  # WARN, ERROR: kept to explain failures
                    _log_state["recent"].append(line.strip())

            _log_state["callback"] = _log  # keep a reference: C holds only a pointer
            llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            # Settled here, once: with the guard on, ggml prints "AMX is not ready" to stderr as it does.
            with _stderr_silenced(_cpu["report"].amx_guarded):
                _cpu_kernels.extend(_extra_buffer_types(llama_cpp))
            _lib = llama_cpp
    return _lib


def cpu_report() -> hardware.CpuReport:
    """The CPU as llama.cpp sees it in this process, AMX verdict and guard included."""
    _llama()
    return _cpu["report"]


def _amx_unsafe() -> bool:
    """AMX faults here and the guard could not be installed: extra buffer types must stay off."""
    report = cpu_report()
    return report.amx in ("faults", "untested", "off") and not report.amx_guarded


def set_verbose(verbose: bool) -> None:
    """Show llama.cpp's own log lines on stderr (off by default)."""
    _log_state["verbose"] = verbose


def _recent_log() -> str:
    lines = list(_log_state["recent"])
    _log_state["recent"].clear()
    return lines[-1] if lines else ""


@dataclass(frozen=True)
class BuildInfo:
    """What the installed llama.cpp build can do on this CPU."""

    llama_cpp_python: str
    gpu_offload: bool
    mmap: bool
    system_info: str
    physical_cores: int
    logical_cpus: int
    cpu: hardware.CpuReport
    kernels: tuple[str, ...]  # the CPU weight kernels in use: repacked, AMX, or plain


def build_info() -> BuildInfo:
    """Capabilities of the llama.cpp build (GPU offload, CPU features and kernels, AMX verdict)."""
    lib = _llama()
    system = lib.llama_print_system_info().decode("utf-8", errors="replace").strip()
    cpu = cpu_report()
    names = {"AMX": "AMX", "CPU_REPACK": "repacked"}
    kernels = [] if _amx_unsafe() else [names.get(k, k) for k in _cpu_kernels]
    return BuildInfo(
        llama_cpp_python=lib.__version__,
        gpu_offload=bool(lib.llama_supports_gpu_offload()),
        mmap=bool(lib.llama_supports_mmap()),
        system_info=system,
        physical_cores=hardware.physical_cores(),
        logical_cpus=hardware.logical_cpus(),
        cpu=cpu,
        kernels=tuple(kernels) or ("plain",),
    )


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


def _nll(logits: Any, targets: Sequence[int]) -> Any:
    """-log softmax(row)[target] for each logits row, max-shifted with double sums like llama-perplexity."""
    import numpy as np

    out = np.empty(len(targets))
    for i in range(0, len(targets), 64):  # 64 rows at a time bounds the temporaries
        rows = logits[i : i + 64]
        peak = rows.max(axis=1)
        sums = np.exp(rows - peak[:, None]).sum(axis=1, dtype=np.float64)
        picked = rows[np.arange(len(rows)), targets[i : i + 64]] - peak
        out[i : i + len(rows)] = np.log(sums) - picked
    return out


class _Output:
    """One generation's sampled tokens turned into text: counts, end-of-generation and stop strings,
    and with a thinking plan, the thinking split off and its budget kept.

    take(token) returns the pieces the token completes and sets gen.finish_reason at EOG or a stop.
    steer(choose) wraps a sampling function so that the tokens a budget forces come first.
    """

    def __init__(self, engine: LocalEngine, gen: Generation, start: float) -> None:
        self.engine, self.gen, self.start = engine, gen, start
        self.text = TextAssembler(gen.sampling.stop)
        self.eog_ends = not gen.sampling.ignore_eos
        self.plan = plan = gen.sampling.think
        self.split = ThoughtSplitter(plan.format, thinking=plan.open) if plan else None
        self.forced: deque[int] = deque()
        self._budget_spent = False
        self._check_budget()

    def take(self, token: int) -> list[str]:
        gen, stats = self.gen, self.gen.stats
        stats.generated_tokens += 1
        if stats.generated_tokens == 1:
            stats.ttft_ms = (time.perf_counter() - self.start) * 1000
        if self.eog_ends and self.engine.is_eog(token):
            gen.finish_reason = "stop"
            return []
        gen.tokens.append(token)
        split = self.split
        # Thinking markers may be special tokens, which plain rendering leaves out.
        piece, stopped = self.text.feed(self.engine.token_bytes(token, special=split is not None))
        if stopped:
            gen.finish_reason = "stop"
        if split is None:
            return [piece] if piece else []
        was_thinking = split.thinking
        pieces = split.feed(piece)
        if was_thinking and split.thinking:
            stats.reasoning_tokens += 1
        self._check_budget()
        return pieces

    def finish(self) -> list[str]:
        """The pieces still held when the generation ends."""
        tail = self.text.finish()
        if self.split is None:
            return [tail] if tail else []
        return self.split.feed(tail) + self.split.finish()

    def _check_budget(self) -> None:
        plan, split = self.plan, self.split
        if plan is None or split is None or plan.budget is None or self._budget_spent or not split.thinking:
            return
        if self.gen.stats.reasoning_tokens >= plan.budget:
            self._budget_spent = True
            end = self.engine.tokenize(plan.format.forced_end, add_special=False, parse_special=True)
            self.forced.extend(end)

    def steer(self, choose: Callable[[int], int], sampler: Any) -> Callable[[int], int]:
        """choose, except that forced tokens (a spent thinking budget's end marker) come first."""
        if self.plan is None or self.plan.budget is None:
            return choose
        forced, lib = self.forced, self.engine._lib

        def steered(row: int) -> int:
            if not forced:
                return choose(row)
            token = forced.popleft()
            if sampler is not None:
                lib.llama_sampler_accept(sampler, token)  # penalties see it as if it were sampled
            return token

        return steered

    def finished(self, n_past: int, n_ctx: int) -> bool:
        """Whether the generation ends here: EOG or a stop string, -n reached, or the cache full
        (n_past tokens in it, the last sampled one not yet)."""
        gen, limit = self.gen, self.gen.sampling.max_tokens
        if gen.finish_reason is None and limit is not None and gen.stats.generated_tokens >= limit:
            gen.finish_reason = "length"
        if gen.finish_reason is None and n_past >= n_ctx:
            gen.finish_reason = "context"
        return gen.finish_reason is not None


def _prompt_tokens(engine: Engine, prompt: str | Sequence[int], holds: str, hint: str) -> list[int]:
    """The prompt's tokens (text gets BOS), or an error when it is empty or leaves no room to answer."""
    tokens = engine.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
    if not tokens:
        raise UsageError("the prompt is empty")
    if len(tokens) >= engine.n_ctx:
        raise ContextOverflowError(
            f"the prompt is {len(tokens):,} tokens but {holds} {engine.n_ctx:,}", hint=hint
        )
    return tokens


# --- vocabularies ------------------------------------------------------------------------------


class Vocabulary:
    """A model's tokenizer: text to tokens and back, through llama.cpp."""

    def __init__(self, lib: ModuleType, vocab: Any, model: Any = None) -> None:
        self._lib, self._vocab = lib, vocab
        self._model = model  # owned (and freed by close) when the vocabulary was loaded on its own
        self._pieces: dict[int, bytes] = {}
        self._special_pieces: dict[int, bytes] = {}

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Only the vocabulary of a GGUF (no weights): a tokenizer for a model that runs elsewhere."""
        lib = _llama()
        params = lib.llama_model_default_params()
        params.vocab_only = True
        model = lib.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise ModelLoadError(f"llama.cpp could not read the vocabulary of {path}: {_recent_log()}")
        return cls(lib, lib.llama_model_get_vocab(model), model)

    def close(self) -> None:
        if self._model:
            self._lib.llama_model_free(self._model)
            self._model = None

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Tokens of text; add_special adds BOS where the model wants it."""
        raw = text.encode("utf-8")
        n_max = len(raw) + 8
        buf = (self._lib.llama_token * n_max)()
        n = self._lib.llama_tokenize(self._vocab, raw, len(raw), buf, n_max, add_special, parse_special)
        if n < 0:
            n_max = -n
            buf = (self._lib.llama_token * n_max)()
            n = self._lib.llama_tokenize(self._vocab, raw, len(raw), buf, n_max, add_special, parse_special)
        return list(buf[:n])

    def token_bytes(self, token: int, special: bool = False) -> bytes:
        """The bytes one token stands for; control tokens render as nothing unless special."""
        cache = self._special_pieces if special else self._pieces
        piece = cache.get(token)
        if piece is None:
            buf = ctypes.create_string_buffer(256)  # per call: threads may ask at the same time
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, 256, 0, special)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._lib.llama_token_to_piece(self._vocab, token, buf, -n, 0, special)
            piece = cache[token] = buf.raw[:n]
        return piece

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of tokens, concatenated piece by piece."""
        return b"".join(self.token_bytes(t) for t in tokens).decode("utf-8", errors="replace")

    def special_text(self) -> tuple[str, str]:
        """The text of the BOS and EOS tokens (for chat templates), "" where the model has none."""
        bos, eos = self._lib.llama_vocab_bos(self._vocab), self._lib.llama_vocab_eos(self._vocab)
        return tuple(  # type: ignore[return-value]
            self.token_bytes(t, special=True).decode("utf-8", errors="replace") if t >= 0 else ""
            for t in (bos, eos)
        )

    def is_eog(self, token: int) -> bool:
        """True for end-of-generation tokens (EOS, EOT, ...)."""
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))


# --- the local engine -------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineOptions:
    """How to load a model. None means the engine's default."""

    n_ctx: int | None = None  # default: default_ctx (the trained length, as far as memory allows)
    n_threads: int | None = None  # default: physical cores
    gpu_layers: int | None = None  # default: all when the build can offload, else 0
    # None: on when layers are offloaded to a GPU; off on the CPU, where llama.cpp's flash attention
    # gains 9-15% on long prompts but loses 45% of decode speed and 74% on short prompts at depth 1024
    # (bench/README.md), which is what chat and long answers spend their time on.
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


class LocalEngine:
    """A GGUF model in llama.cpp, with one KV cache whose contents we track token by token."""

    takes_messages = False

    def __init__(self, model_path: Path | str, options: EngineOptions | None = None) -> None:
        options = options or EngineOptions()
        options.validate()
        self.model_path = Path(model_path)
        self.name = str(self.model_path)
        self.info: GGUFInfo = read_gguf(self.model_path)
        set_verbose(options.verbose)
        lib = self._lib = _llama()
        self._model = self._ctx = None
        self._batch: Any = None
        self._active: Generation | None = None  # one generation at a time owns the context
        # Told (evaluated, total) after each batch of a prompt longer than one batch (a renderer shows it).
        self.prompt_meter: Callable[[int, int], None] | None = None
        self._draft_model: LocalEngine | None = None
        label = f"{self.model_path.name} ({self.info.quantization})"
        crash.note(f"loading {label}")

        mparams = lib.llama_model_default_params()
        ngl = options.gpu_layers
        mparams.n_gpu_layers = (-1 if lib.llama_supports_gpu_offload() else 0) if ngl is None else ngl
        mparams.use_mmap = True
        mparams.use_extra_bufts = not _amx_unsafe()
        _log_state["buffers"].clear()
        model = lib.llama_model_load_from_file(str(self.model_path).encode(), mparams)
        if not model:
            raise ModelLoadError(
                f"llama.cpp could not load {self.model_path}: "
                f"{_recent_log() or 'unsupported or damaged model'}",
                hint="run with --verbose to see llama.cpp's log",
            )
        self._model = model
        self.buffer_types = tuple(dict.fromkeys(_log_state["buffers"]))  # CPU_REPACK, AMX, CUDA0, ...
        self._vocab = lib.llama_model_get_vocab(model)
        self.vocabulary = Vocabulary(lib, self._vocab)
        self.n_ctx_train = int(lib.llama_model_n_ctx_train(model))
        self.n_vocab = int(lib.llama_vocab_n_tokens(self._vocab))
        self.n_swa = int(lib.llama_model_n_swa(model))  # sliding-window size; 0: full attention only
        # Recurrent state cannot be rolled back past rejected drafts.
        self.can_speculate = not (lib.llama_model_is_recurrent(model) or lib.llama_model_is_hybrid(model))

        self.cache_types = (options.cache_type_k, options.cache_type_v)
        n_ctx, self.ctx_capped = (
            (options.n_ctx, False) if options.n_ctx else default_ctx(self.info, *self.cache_types)
        )
        self._check_memory(n_ctx)
        # More threads than CPUs only wait on each other; far more crash ggml's thread pool.
        threads = min(options.n_threads or hardware.physical_cores(), hardware.logical_cpus())
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = min(n_ctx, DEFAULT_BATCH)
        cparams.n_ubatch = min(cparams.n_batch, DEFAULT_UBATCH)
        cparams.n_seq_max = options.n_seq_max
        # A window-sized cache overwrites cells that left the window, so cutting it back (a new chat
        # turn, rejected drafts, a restored prompt) would leave the window short: keep them all.
        cparams.swa_full = True
        cparams.n_threads = cparams.n_threads_batch = threads
        flash = options.flash_attn if options.flash_attn is not None else mparams.n_gpu_layers != 0
        # llama.cpp stores a quantized V cache only with flash attention.
        flash = flash or options.cache_type_v != "f16"
        cparams.type_k, cparams.type_v = (CACHE_TYPES[t][0] for t in self.cache_types)
        cparams.flash_attn_type = (
            lib.LLAMA_FLASH_ATTN_TYPE_AUTO if flash else lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        cparams.no_perf = False
        ctx = lib.llama_init_from_model(model, cparams)
        if not ctx:
            self.close()
            raise ModelLoadError(
                f"llama.cpp could not create a context of {n_ctx} tokens: "
                f"{_recent_log() or 'out of memory?'}",
                hint="try a smaller --ctx"
                if self.cache_types == ("f16", "f16")
                else "try --cache-type-k/-v f16: not every model's attention heads can be stored quantized",
            )
        crash.note(f"running {label} on {', '.join(self.buffer_types) or 'the CPU'} kernels")
        self._ctx = ctx
        self._mem = lib.llama_get_memory(ctx)
        self.n_ctx = int(lib.llama_n_ctx(ctx))
        self.n_batch = int(lib.llama_n_batch(ctx))
        self.n_seq_max = options.n_seq_max
        self.n_threads = threads
        # With the default thread count, steps that slow down (other processes on the cores) make
        # the tuner try fewer threads; a count the user gave is kept as given.
        self._tuner = ThreadTuner(threads) if options.n_threads is None and threads > 1 else None
        self.gpu_layers = int(mparams.n_gpu_layers)
        self._batch = lib.llama_batch_init(self.n_batch, 0, 1)
        for i in range(self.n_batch):
            self._batch.n_seq_id[i] = 1
            self._batch.seq_id[i][0] = 0
        self._kv: list[int] = []  # tokens whose K/V are in the cache for sequence 0, in order
        self._eog: list[int] | None = None
        self._prompt_cache: PromptCache | None = None
        if options.n_seq_max == 1:
            # Several sequences are decoded by ParallelEngine's own thread, which warms up there:
            # llama.cpp's CPU backend runs on OpenMP, and once another thread has its own OpenMP
            # team the decoding thread's runs 60% slower (bench/README.md).
            self._warm_up()

    def kv_cache_bytes(self, n_ctx: int) -> int | None:
        """Memory the KV cache of n_ctx tokens takes with this engine's cache types (None: unknown)."""
        return self.info.kv_cache_bytes(n_ctx, *(CACHE_TYPES[t][1] for t in self.cache_types))

    def _check_memory(self, n_ctx: int) -> None:
        """Refuse a context whose KV cache cannot fit in memory, before llama.cpp tries to allocate it."""
        need, free = self.kv_cache_bytes(n_ctx), hardware.available_memory()
        if need is None or free is None or need <= free:
            return
        fits = default_ctx(self.info, *self.cache_types)[0]  # what the default would have been
        self.close()
        raise UsageError(
            f"--ctx {n_ctx:,} needs {need / 2**30:,.1f} GiB for its KV cache, "
            f"but {free / 2**30:,.1f} GiB of memory is available",
            hint=f"try --ctx {fits:,} or less; the model was trained on {self.n_ctx_train:,}",
        )

    def reset(self) -> None:
        """Forget the KV cache: the next prompt is evaluated from scratch."""
        if self._active is not None:
            self._active.close()
        self._lib.llama_memory_clear(self._mem, True)
        self._kv.clear()

    def _warm_up(self) -> None:
        """One throwaway decode, so the first real token does not pay for graph setup."""
        bos = self._lib.llama_vocab_bos(self._vocab)
        self._decode([bos if bos >= 0 else 0], 0)
        self._lib.llama_synchronize(self._ctx)
        self.reset()

    # -- lifecycle

    def close(self) -> None:
        """Free llama.cpp's memory (safe to call twice)."""
        lib = self._lib
        if self._active is not None:
            self._active.close()  # its cleanup needs the context, so it must run first
            self._active = None
        if self._draft_model is not None:
            self._draft_model.close()
            self._draft_model = None
        if self._batch is not None:
            lib.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            lib.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            lib.llama_model_free(self._model)
            self._model = None

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- text <-> tokens

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Tokens of text; add_special adds BOS where the model wants it."""
        return self.vocabulary.tokenize(text, add_special=add_special, parse_special=parse_special)

    def token_bytes(self, token: int, special: bool = False) -> bytes:
        """The bytes one token stands for; control tokens render as nothing unless special."""
        return self.vocabulary.token_bytes(token, special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of tokens, concatenated piece by piece."""
        return self.vocabulary.detokenize(tokens)

    def special_text(self) -> tuple[str, str]:
        """The text of the BOS and EOS tokens (for chat templates), "" where the model has none."""
        return self.vocabulary.special_text()

    def is_eog(self, token: int) -> bool:
        """True for end-of-generation tokens (EOS, EOT, ...)."""
        return self.vocabulary.is_eog(token)

    def metadata(self, key: str) -> str | None:
        """A GGUF metadata value as llama.cpp reports it."""
        buf = ctypes.create_string_buffer(4096)
        n = self._lib.llama_model_meta_val_str(self._model, key.encode(), buf, 4096)
        return buf.value.decode("utf-8", errors="replace") if n >= 0 else None

    # -- generation

    def generate(
        self, prompt: str | Sequence[int], sampling: SamplingConfig, *, lookup: int = 0
    ) -> Generation:
        """Start generating after prompt (text is tokenized with BOS). Checks the context up front.

        lookup > 0 turns on prompt-lookup speculative decoding with drafts of up to that many
        tokens. The output is the same as without it: each verified position is sampled exactly as
        plain decoding would sample it, and a draft token is kept only where it equals that sample.
        """
        tokens = _prompt_tokens(
            self,
            prompt,
            "the context holds",
            f"raise --ctx (the model was trained on {self.n_ctx_train:,}) or shorten the input",
        )
        if self._active is not None:
            self._active.close()
        sampling = sampling.resolved()
        gen = Generation(iter(()), sampling)
        gen._pieces = self._run(tokens, sampling, gen, lookup if self.can_speculate else 0)
        self._active = gen
        return gen

    def _run(
        self, tokens: list[int], sampling: SamplingConfig, gen: Generation, lookup: int
    ) -> Iterator[str]:
        lib, ctx, stats = self._lib, self._ctx, gen.stats
        start = time.perf_counter()
        stats.prompt_tokens = len(tokens)
        sampler = None
        try:
            lib.llama_perf_context_reset(ctx)
            stats.cached_tokens = self._reuse_prefix(tokens)
            if self._prompt_cache is not None:
                stats.cached_tokens = self._restore(tokens, stats.cached_tokens)
            self._decode(tokens[stats.cached_tokens :], stats.cached_tokens)
            lib.llama_synchronize(ctx)  # llama.cpp books timings at synchronization
            if self._prompt_cache is not None:
                self._store(tokens)
            after_prompt = lib.llama_perf_context(ctx)
            stats.prompt_ms = after_prompt.t_p_eval_ms + after_prompt.t_eval_ms

            choose, sampler = self._chooser(sampling, tokens)
            out = _Output(self, gen, start)
            choose = out.steer(choose, sampler)
            limit = sampling.max_tokens
            index: NgramIndex | ModelDrafter | None = None
            if lookup > 0:
                index = ModelDrafter(self._draft_model, tokens) if self._draft_model else NgramIndex(tokens)
            budget = DraftBudget(lookup)
            n_past = len(tokens)
            token = choose(-1)
            take = out.take

            while True:
                # `token` was sampled from the logits after n_past tokens and is not in the cache yet.
                yield from take(token)
                if out.finished(n_past, self.n_ctx):
                    break
                drafts: list[int] = []
                if index is not None:
                    index.append(token)
                    # Room for the drafts and the token sampled after them, within context and -n.
                    room = min(self.n_ctx - n_past, (limit or self.n_ctx) - stats.generated_tokens) - 1
                    size = min(budget.next_size(), room, self.n_batch - 1)
                    drafts = index.draft(size) if size > 0 else []
                if not drafts:
                    self._decode_one(token, n_past)
                    n_past += 1
                    token = choose(-1)
                    continue
                self._decode_rows([token, *drafts], n_past)
                n_past += 1
                accepted = 0
                token = choose(0)
                while accepted < len(drafts) and token == drafts[accepted]:
                    # The model agrees with the draft here; emit it like any sampled token.
                    accepted += 1
                    yield from take(token)
                    if gen.finish_reason is not None:
                        break
                    index.append(token)  # type: ignore[union-attr]
                    n_past += 1
                    token = choose(accepted)
                budget.record(len(drafts), accepted)
                stats.drafted_tokens += len(drafts)
                stats.accepted_tokens += accepted
                self._drop_after(n_past)
                if gen.finish_reason is not None:
                    break
            yield from out.finish()
        finally:
            if gen.finish_reason is None:
                # Interrupted: drop anything a decode may have added that we did not record.
                lib.llama_memory_seq_rm(self._mem, 0, len(self._kv), -1)
            if sampler is not None:
                lib.llama_sampler_free(sampler)
            perf = lib.llama_perf_context(ctx)
            stats.decode_ms = perf.t_p_eval_ms + perf.t_eval_ms - stats.prompt_ms
            stats.total_ms = (time.perf_counter() - start) * 1000

    def next_logits(self, tokens: Sequence[int]) -> Any:
        """The model's logits (a numpy row over the vocabulary) for the token after tokens."""
        import numpy as np

        tokens = list(tokens)
        cached = self._reuse_prefix(tokens)
        self._decode(tokens[cached:], cached)
        return np.ctypeslib.as_array(self._lib.llama_get_logits(self._ctx), shape=(self.n_vocab,)).copy()

    def score(self, tokens: Sequence[int], first: int) -> Any:
        """Negative log-likelihoods (numpy, nats) of tokens[first + 1:], each given all tokens before it.

        The tokens are evaluated from an empty cache at positions 0.., as one window; logits are
        requested only for positions first..len-2, so memory stays at a batch of rows.
        """
        import numpy as np

        tokens = list(tokens)
        if len(tokens) > self.n_ctx:
            raise ContextOverflowError(
                f"a window of {len(tokens):,} tokens does not fit the context of {self.n_ctx:,}",
                hint="raise --ctx",
            )
        if self._active is not None:
            self._active.close()
        self._lib.llama_memory_clear(self._mem, True)
        self._kv.clear()
        parts = []
        for offset in range(0, len(tokens), self.n_batch):
            chunk = tokens[offset : offset + self.n_batch]
            lo, hi = max(first - offset, 0), min(len(chunk), len(tokens) - 1 - offset)
            self._submit(chunk, offset, lo, hi)
            if hi > lo:
                logits = self._lib.llama_get_logits(self._ctx)
                rows = np.ctypeslib.as_array(logits, shape=(hi - lo, self.n_vocab))
                parts.append(_nll(rows, tokens[offset + lo + 1 : offset + hi + 1]))
        return np.concatenate(parts) if parts else np.zeros(0)

    def _chooser(self, sampling: SamplingConfig, history: list[int]) -> tuple[Callable[[int], int], Any]:
        """choose(row): the token sampled from the logits of batch row `row` (-1: the last), and the
        llama.cpp sampler behind it (None for greedy; the caller frees it)."""
        lib, ctx = self._lib, self._ctx
        steps = sampling.steps()
        banned = self._eog_tokens() if sampling.ignore_eos else []
        if sampling.constraint is not None:
            return self._grammar_chooser(sampling.constraint.grammar, steps, history, banned)
        if steps == [Step("greedy")]:
            import numpy as np  # argmax over the logits row beats building llama.cpp's candidate array

            def argmax(row: int) -> int:
                logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx, row), shape=(self.n_vocab,))
                logits[banned] = -np.inf
                return int(logits.argmax())

            return argmax, None
        sampler = self._make_sampler(steps, history, banned)
        return lambda row: int(lib.llama_sampler_sample(sampler, ctx, row)), sampler

    def _eog_tokens(self) -> list[int]:
        if self._eog is None:
            self._eog = [t for t in range(self.n_vocab) if self.is_eog(t)]
        return self._eog

    def _grammar_chooser(
        self, grammar: str, steps: list[Step], history: list[int], banned: list[int]
    ) -> tuple[Callable[[int], int], Any]:
        """choose(row) under a GBNF grammar, as llama.cpp's own tools do it: the token the other samplers
        pick is checked against the grammar alone, and only when the grammar rejects it are all the
        vocabulary's logits constrained and the pick made again. Checking one token is cheap; constraining
        152k is not, and a model that follows its instructions mostly picks valid tokens anyway."""
        import numpy as np

        lib, ctx, n_vocab = self._lib, self._ctx, self.n_vocab
        constraint = lib.llama_sampler_init_grammar(self._vocab, grammar.encode("utf-8"), b"root")
        if not constraint:
            raise UsageError(
                "llama.cpp cannot parse the grammar", hint="check it with llama.cpp's GBNF guide"
            )
        greedy = steps == [Step("greedy")]
        chain = self._make_sampler([] if greedy else steps, history, banned, first=constraint)
        rest = [lib.llama_sampler_chain_get(chain, i) for i in range(1, lib.llama_sampler_chain_n(chain))]
        # One candidate array for the whole vocabulary, laid out as llama_token_data (id, logit, p).
        cand = np.zeros(n_vocab, dtype=[("id", np.int32), ("logit", np.float32), ("p", np.float32)])
        ids = np.arange(n_vocab, dtype=np.int32)
        data = cand.ctypes.data_as(ctypes.POINTER(lib.llama_token_data))
        whole = lib.llama_token_data_array(data, n_vocab, -1, False)
        single = (lib.llama_token_data * 1)()
        one = lib.llama_token_data_array(single, 1, -1, False)

        def pick(row: int, constrained: bool) -> int:
            logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx, row), shape=(n_vocab,))
            if greedy and not constrained:  # the common case: an argmax over the logits as they are
                if banned:
                    logits[banned] = -np.inf
                return int(logits.argmax())
            cand["id"], cand["logit"], cand["p"] = ids, logits, 0.0
            whole.data, whole.size, whole.selected, whole.sorted = data, n_vocab, -1, False
            if constrained:
                lib.llama_sampler_apply(constraint, ctypes.byref(whole))
            if greedy:
                if banned:
                    cand["logit"][banned] = -np.inf
                return int(cand["logit"].argmax())
            for sampler in rest:
                lib.llama_sampler_apply(sampler, ctypes.byref(whole))
            return int(cand["id"][whole.selected])

        def allowed(token: int) -> bool:
            single[0].id, single[0].logit, single[0].p = token, 0.0, 0.0
            one.size, one.selected, one.sorted = 1, -1, False
            lib.llama_sampler_apply(constraint, ctypes.byref(one))
            return bool(np.isfinite(single[0].logit))

        def choose(row: int) -> int:
            token = pick(row, False)
            if not allowed(token):
                token = pick(row, True)
            lib.llama_sampler_accept(chain, token)  # the grammar moves on; penalties see it
            return token

        return choose, chain

    def _make_sampler(
        self, steps: list[Step], history: list[int], banned: list[int], first: Any = None
    ) -> Any:
        """llama.cpp's sampler chain for steps (after `first`, a sampler of its own, when given)."""
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if first is not None:
            lib.llama_sampler_chain_add(chain, first)
        if banned:
            biases = (lib.llama_logit_bias * len(banned))(*[(t, float("-inf")) for t in banned])
            lib.llama_sampler_chain_add(
                chain, lib.llama_sampler_init_logit_bias(self.n_vocab, len(banned), biases)
            )
        for step in steps:
            init = getattr(lib, f"llama_sampler_init_{step.kind}")
            args = step.args
            if step.kind == "penalties" and len(init.argtypes) == len(args) + 1:
                args = (self.n_vocab, *args)  # this llama.cpp's penalties sampler takes n_vocab first
            lib.llama_sampler_chain_add(chain, init(*args))
        # The repeat penalty looks back over the prompt too, as llama.cpp's own tools do.
        if steps and steps[0].kind == "penalties":
            penalties = lib.llama_sampler_chain_get(chain, lib.llama_sampler_chain_n(chain) - len(steps))
            for token in history[-int(steps[0].args[0]) :]:
                lib.llama_sampler_accept(penalties, token)
        return chain

    # -- KV cache

    def use_draft_model(self, model: LocalEngine) -> None:
        """Draft with a small model of the same vocabulary instead of prompt lookup (this engine
        closes it). Speculation stays exact: every draft is verified as prompt-lookup drafts are."""
        probe = range(0, self.n_vocab, max(1, self.n_vocab // 2000))
        if model.n_vocab != self.n_vocab or any(
            model.token_bytes(t, special=True) != self.token_bytes(t, special=True) for t in probe
        ):
            model.close()
            raise UsageError(
                f"the draft model {model.model_path.name} has another vocabulary than {self.model_path.name}",
                hint="pick a smaller model of the same family (same tokenizer)",
            )
        self._draft_model = model

    def use_prompt_cache(self, cache: PromptCache) -> None:
        """Restore long prompt prefixes from cache, and save long prompts to it."""
        self._prompt_cache = cache
        self._model_key = model_key(self.model_path)

    def _restore(self, tokens: list[int], have: int) -> int:
        """Load the longest saved prefix of tokens when it beats the `have` tokens in the cache."""
        cache = self._prompt_cache
        assert cache is not None
        entry = cache.lookup(self._model_key, tokens)
        # The last prompt token is always evaluated again: its logits start the answer.
        if entry is None or min(entry.n_tokens, len(tokens) - 1) <= have:
            return have
        lib = self._lib
        lib.llama_memory_clear(self._mem, True)
        self._kv.clear()
        buf = (lib.llama_token * entry.n_tokens)()
        n_out = ctypes.c_size_t(0)
        loaded = lib.llama_state_seq_load_file(
            self._ctx, str(cache.folder / entry.file).encode(), 0, buf, entry.n_tokens, ctypes.byref(n_out)
        )
        if not loaded or n_out.value != entry.n_tokens or list(buf) != tokens[: entry.n_tokens]:
            lib.llama_memory_clear(self._mem, True)
            cache.forget(entry)  # stale or corrupt: evaluate the prompt instead
            return 0
        cache.touch(entry)
        self._kv.extend(tokens[: entry.n_tokens])
        self._drop_after(len(tokens) - 1)
        return len(self._kv)

    def _store(self, tokens: list[int]) -> None:
        """Save the state after a long prompt (best effort: a failure only costs the saving)."""
        cache = self._prompt_cache
        assert cache is not None
        if len(tokens) < PROMPT_CACHE_MIN_TOKENS or cache.has(self._model_key, tokens):
            return
        try:
            key, temp = cache.path_for(self._model_key, tokens)
        except OSError:
            return
        buf = (self._lib.llama_token * len(tokens))(*tokens)
        try:
            if self._lib.llama_state_seq_save_file(self._ctx, str(temp).encode(), 0, buf, len(tokens)):
                cache.add(key, temp, self._model_key, tokens)
            else:
                temp.unlink(missing_ok=True)
        except OSError:
            temp.unlink(missing_ok=True)

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Keep the longest cached prefix of tokens (at least one token is left to evaluate)."""
        common = 0
        limit = min(len(self._kv), len(tokens) - 1)
        while common < limit and self._kv[common] == tokens[common]:
            common += 1
        if common < len(self._kv):
            if not self._lib.llama_memory_seq_rm(self._mem, 0, common, -1):
                # Some caches (recurrent models) cannot drop a suffix: start over.
                self._lib.llama_memory_clear(self._mem, True)
                common = 0
            del self._kv[common:]
        return common

    def _decode(self, tokens: Sequence[int], start: int) -> None:
        """Evaluate tokens at positions start.. in batches; logits only for the last one.

        A prompt of several batches reports (evaluated, total) to `prompt_meter` after each; Ctrl-C
        between batches leaves the cache holding exactly the batches done.
        """
        meter = self.prompt_meter if len(tokens) > self.n_batch else None
        for offset in range(0, len(tokens), self.n_batch):
            chunk = tokens[offset : offset + self.n_batch]
            last = offset + len(chunk) == len(tokens)
            self._submit(chunk, start + offset, len(chunk) - last, len(chunk))
            if meter is not None:
                meter(offset + len(chunk), len(tokens))

    def _decode_rows(self, tokens: list[int], start: int) -> None:
        """Evaluate a few tokens (fewer than a batch) at positions start.., with logits for each."""
        self._submit(tokens, start, 0, len(tokens))

    def _submit(self, tokens: Sequence[int], start: int, lo: int, hi: int) -> None:
        """One llama_decode of at most n_batch tokens at positions start..; logits for rows lo..hi-1."""
        batch, n = self._batch, len(tokens)
        ctypes.memmove(batch.token, array("i", tokens).tobytes(), 4 * n)
        ctypes.memmove(batch.pos, array("i", range(start, start + n)).tobytes(), 4 * n)
        ctypes.memset(batch.logits, 0, n)
        if hi > lo:
            ctypes.memset(ctypes.addressof(batch.logits.contents) + lo, 1, hi - lo)
        batch.n_tokens = n
        self._check(self._lib.llama_decode(self._ctx, batch))
        self._kv.extend(tokens)

    def _drop_after(self, length: int) -> None:
        """Remove the cache entries from position length on (rejected drafts, a restored prompt)."""
        if length < len(self._kv):
            kept = self._kv[:length]
            del self._kv[length:]
            if not self._lib.llama_memory_seq_rm(self._mem, 0, length, -1):
                # Recurrent state cannot drop a suffix: rebuild it from the kept tokens.
                self._lib.llama_memory_clear(self._mem, True)
                self._kv.clear()
                self._decode(kept, 0)

    def _decode_one(self, token: int, pos: int) -> None:
        batch = self._batch
        batch.token[0] = token
        batch.pos[0] = pos
        batch.logits[0] = 1
        batch.n_tokens = 1
        if self._tuner is None:
            self._check(self._lib.llama_decode(self._ctx, batch))
        else:
            start = time.perf_counter()
            self._check(self._lib.llama_decode(self._ctx, batch))
            if (threads := self._tuner.observe(time.perf_counter() - start)) is not None:
                self._lib.llama_set_n_threads(self._ctx, threads, threads)
        self._kv.append(token)

    def _check(self, status: int) -> None:
        if status == 1:
            raise ContextOverflowError("the KV cache is full", hint="raise --ctx")
        if status != 0:
            raise GenerationError(f"llama.cpp failed to evaluate tokens (status {status}): {_recent_log()}")


class ModelDrafter:
    """Drafts by greedy decoding on a small model of the same vocabulary (`--draft-model`).

    The same interface as NgramIndex: the main loop appends every token it emits and asks for up
    to `limit` drafts. The small model's KV cache follows the context: what it drafted and the
    main model rejected is dropped by the prefix reuse of its next call.
    """

    def __init__(self, model: LocalEngine, tokens: Sequence[int]) -> None:
        self.model, self.tokens = model, list(tokens)

    def append(self, token: int) -> None:
        self.tokens.append(token)

    def draft(self, limit: int) -> list[int]:
        context = list(self.tokens)
        drafts: list[int] = []
        for _ in range(min(limit, self.model.n_ctx - len(context) - 1)):
            token = int(self.model.next_logits(context).argmax())
            if self.model.is_eog(token):
                break
            drafts.append(token)
            context.append(token)
        return drafts


# --- several sequences in one context ---------------------------------------------------------


@dataclass
class _Request:
    """One generate() call waiting for, or holding, a sequence of the parallel engine."""

    tokens: list[int]
    gen: Generation
    pieces: queue.SimpleQueue[str | BaseException | None] = field(default_factory=queue.SimpleQueue)
    cancelled: bool = False


@dataclass
class _Live:
    """A request in a sequence slot: its prompt is evaluated chunk by chunk, then one token per step."""

    request: _Request
    seq: int
    choose: Callable[[int], int]
    sampler: Any
    out: _Output
    fed: int = 0  # tokens in the cache
    token: int | None = None  # sampled, not yet in the cache


class ParallelEngine:
    """Up to n_seq_max generations at once in one llama.cpp context: continuous batching.

    Each generate() call becomes a sequence with its own sampler, stop strings and limits. One
    thread owns the context: every step it decodes one batch holding the next token of every live
    sequence, filled up with prompt chunks of new ones, so the weights read once per step serve
    them all. A finished sequence's cells are freed and the slot takes the next waiting prompt.
    Callers generate from their own threads; pieces stream back to each as they are sampled.
    """

    takes_messages = False

    def __init__(self, engine: LocalEngine) -> None:
        self.engine = engine
        self.name = engine.name
        self.n_parallel = engine.n_seq_max
        self.n_ctx = engine.n_ctx // engine.n_seq_max  # what each sequence can hold
        self._inbox: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        # Prompt tokens whose cells each slot holds: kept after a sequence ends, so a prompt that
        # starts the same way (the instructions every chunk and file shares) is evaluated once.
        self._held: list[list[int]] = [[] for _ in range(self.n_parallel)]
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="llmcli-decode", daemon=True)
        self._thread.start()

    # The vocabulary is read from callers' threads: under the lock, so close() never frees it in use.

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        with self._open():
            return self.engine.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        with self._open():
            return self.engine.detokenize(tokens)

    def token_bytes(self, token: int, special: bool = False) -> bytes:
        with self._open():
            return self.engine.token_bytes(token, special)

    def special_text(self) -> tuple[str, str]:
        with self._open():
            return self.engine.special_text()

    @contextmanager
    def _open(self) -> Iterator[None]:
        with self._lock:
            if self._closed or self._failure is not None:
                raise GenerationError(f"the engine is closed{f': {self._failure}' if self._failure else ''}")
            yield

    def generate(
        self, prompt: str | Sequence[int], sampling: SamplingConfig, *, lookup: int = 0
    ) -> Generation:
        """Queue a generation. lookup is ignored: with several sequences a step's batch is already
        full, and drafts verified in it made summarize and translate slower (bench/README.md)."""
        tokens = _prompt_tokens(
            self,
            prompt,
            f"each of the {self.n_parallel} parallel sequences holds",
            "raise --ctx or lower --parallel",
        )
        gen = Generation(iter(()), sampling.resolved())
        request = _Request(tokens, gen)
        gen._pieces = self._stream(request)
        with self._open():  # after close() nothing would ever answer the request
            self._inbox.put(request)
        return gen

    def _stream(self, request: _Request) -> Iterator[str]:
        try:
            while (piece := request.pieces.get()) is not None:
                if isinstance(piece, BaseException):
                    raise piece
                yield piece
        finally:
            request.cancelled = True  # the decoding thread frees the sequence at its next step

    def close(self) -> None:
        """Stop the decoding thread (waiting generations fail) and close the engine."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._inbox.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join()
        self.engine.close()

    def __enter__(self) -> ParallelEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the decoding thread

    def _serve(self) -> None:
        engine = self.engine
        free = list(range(self.n_parallel))
        live: dict[int, _Live] = {}
        waiting: deque[_Request] = deque()
        try:
            engine._warm_up()
            while True:
                try:
                    item = self._inbox.get(block=not live and not waiting)
                    while item is not None:
                        waiting.append(item)
                        item = self._inbox.get_nowait()
                    return  # None: closing
                except queue.Empty:
                    pass
                while waiting and free:
                    request = waiting.popleft()
                    if request.cancelled:
                        continue
                    seq, reused = self._place(request.tokens, free, live)
                    choose, sampler = engine._chooser(request.gen.sampling, request.tokens)
                    out = _Output(engine, request.gen, time.perf_counter())
                    choose = out.steer(choose, sampler)
                    request.gen.stats.prompt_tokens = len(request.tokens)
                    request.gen.stats.cached_tokens = reused
                    live[seq] = _Live(request, seq, choose, sampler, out, fed=reused)
                for seq in [s for s, one in live.items() if one.request.cancelled]:
                    self._release(live.pop(seq), free, None)
                if live:
                    self._step(live, free)
        except Exception as exc:  # every caller must hear of it, not hang on its queue
            self._failure = exc
            for one in live.values():
                self._release(one, free, exc)
            live.clear()
            for request in waiting:
                request.pieces.put(exc)
            waiting.clear()
        finally:
            stopped = GenerationError("the engine was closed")
            for one in list(live.values()):
                self._release(one, free, stopped)
            while True:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item.pieces.put(stopped)
            for request in waiting:
                request.pieces.put(stopped)

    def _place(self, tokens: list[int], free: list[int], live: dict[int, _Live]) -> tuple[int, int]:
        """A free slot for a prompt, holding the longest prefix of it any slot has: (slot, tokens reused)."""
        lib, mem = self.engine._lib, self.engine._mem

        def shared(seq: int) -> int:
            held = live[seq].request.tokens[: live[seq].fed] if seq in live else self._held[seq]
            n = 0
            for a, b in zip(held, tokens[:-1], strict=False):  # the last token is evaluated, for logits
                if a != b:
                    break
                n += 1
            return n

        common = [shared(slot) for slot in range(self.n_parallel)]
        seq = max(sorted(free), key=common.__getitem__)  # ties: the lowest id (see _step)
        source = max(range(self.n_parallel), key=common.__getitem__)
        reused = common[seq]
        if reused < common[source]:
            # Another slot holds more of it. Each sequence has its own KV buffer, which llama.cpp
            # copies whole (milliseconds, where evaluating the tokens again takes a second).
            lib.llama_memory_seq_cp(mem, source, seq, -1, -1)
            reused = common[source]
        lib.llama_memory_seq_rm(mem, seq, reused, -1)
        free.remove(seq)
        self._held[seq] = []
        return seq, reused

    def _step(self, live: dict[int, _Live], free: list[int]) -> None:
        """One llama_decode: every decoding sequence's next token, then prompt chunks; then sample."""
        engine = self.engine
        batch, capacity = engine._batch, engine.n_batch
        rows: list[tuple[_Live, int]] = []
        n = 0

        def add(token: int, pos: int, seq: int, logits: bool) -> None:
            nonlocal n
            batch.token[n], batch.pos[n], batch.seq_id[n][0], batch.logits[n] = token, pos, seq, logits
            n += 1

        # By sequence id: llama.cpp splits a batch over per-sequence KV buffers into ubatches of
        # consecutive ids with equal token counts, so any other order costs a graph run per gap.
        ordered = sorted(live.values(), key=lambda one: one.seq)
        for one in ordered:
            if one.token is not None:
                rows.append((one, n))
                add(one.token, one.fed, one.seq, True)
        for one in ordered:
            tokens = one.request.tokens
            if one.token is None and one.fed < len(tokens) and n < capacity:
                take = min(capacity - n, len(tokens) - one.fed)
                for i in range(one.fed, one.fed + take):
                    add(tokens[i], i, one.seq, i == len(tokens) - 1)
                one.fed += take
                if one.fed == len(tokens):
                    rows.append((one, n - 1))
        batch.n_tokens = n
        engine._check(engine._lib.llama_decode(engine._ctx, batch))
        for one, row in rows:
            if one.token is not None:
                one.fed += 1  # the token decoded this step is in the cache now
            token = one.choose(row)
            for piece in one.out.take(token):
                one.request.pieces.put(piece)
            if not one.out.finished(one.fed, self.n_ctx):
                one.token = token
                continue
            for piece in one.out.finish():
                one.request.pieces.put(piece)
            del live[one.seq]
            self._release(one, free, None)

    def _release(self, one: _Live, free: list[int], error: BaseException | None) -> None:
        """Free a sequence's sampler and slot (its prompt's cells stay for reuse) and end its stream."""
        prompt = one.request.tokens
        kept = len(prompt) if error is None and one.fed >= len(prompt) else 0
        self.engine._lib.llama_memory_seq_rm(self.engine._mem, one.seq, kept, -1)
        self._held[one.seq] = prompt[:kept]
        if one.sampler is not None:
            self.engine._lib.llama_sampler_free(one.sampler)
            one.sampler = None
        stats = one.request.gen.stats
        stats.total_ms = (time.perf_counter() - one.out.start) * 1000
        if one.seq not in free:
            free.append(one.seq)
        one.request.pieces.put(error)

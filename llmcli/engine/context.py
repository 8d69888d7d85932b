"""The layer LocalEngine and ParallelEngine share: a model loaded in llama.cpp with one context.

`Context` owns every llama.cpp handle of a local model (weights, context, KV memory, the batch) and
offers what the engines do with them as public methods: decode a batch of one sequence or of several,
read logits, drop or copy a sequence's cells, read the evaluation counters, save and load a sequence's
state, and build the samplers that choose tokens (`chooser`). It keeps no record of which tokens the
cache holds: that is each engine's own bookkeeping.
"""

from __future__ import annotations

import ctypes
import time
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llmcli.engine import binding, crash, hardware
from llmcli.engine.options import CACHE_TYPES, DEFAULT_BATCH, DEFAULT_UBATCH, EngineOptions, default_ctx
from llmcli.engine.options import kv_cache_bytes as kv_bytes
from llmcli.engine.threads import ThreadTuner
from llmcli.engine.vocabulary import Vocabulary
from llmcli.errors import ContextOverflowError, GenerationError, ModelLoadError, UsageError
from llmcli.models.ggufinfo import GGUFInfo
from llmcli.sampling import SamplingConfig, Step

Chooser = Callable[[int], int]  # choose(row): the token sampled from batch row `row`'s logits (-1: the last)


class Context:
    """A GGUF model in llama.cpp with one context of options.n_seq_max sequences and one batch."""

    def __init__(self, path: Path, info: GGUFInfo, options: EngineOptions) -> None:
        binding.set_verbose(options.verbose)
        lib = self._lib = binding.llama()
        self._model = self._ctx = None
        self._batch: Any = None
        label = f"{path.name} ({info.quantization})"
        crash.note(f"loading {label}")

        mparams = lib.llama_model_default_params()
        ngl = options.gpu_layers
        mparams.n_gpu_layers = (-1 if lib.llama_supports_gpu_offload() else 0) if ngl is None else ngl
        mparams.use_mmap = True
        mparams.use_extra_bufts = not binding.amx_unsafe()
        binding.clear_buffers()
        model = lib.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            raise ModelLoadError(
                f"llama.cpp could not load {path}: {binding.recent_log() or 'unsupported or damaged model'}",
                hint="run with --verbose to see llama.cpp's log",
            )
        self._model = model
        self.buffer_types = binding.buffers()  # CPU_REPACK, AMX, CUDA0, ...
        self.vocabulary = Vocabulary(lib, lib.llama_model_get_vocab(model))
        self.n_ctx_train = int(lib.llama_model_n_ctx_train(model))
        self.n_vocab = self.vocabulary.n_tokens
        self.n_swa = int(lib.llama_model_n_swa(model))  # sliding-window size; 0: full attention only
        # Recurrent state cannot be rolled back past rejected drafts.
        self.can_speculate = not (lib.llama_model_is_recurrent(model) or lib.llama_model_is_hybrid(model))

        self.cache_types = (options.cache_type_k, options.cache_type_v)
        n_ctx, self.ctx_capped = (
            (options.n_ctx, False) if options.n_ctx else default_ctx(info, *self.cache_types)
        )
        self._check_memory(info, n_ctx)
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
                f"{binding.recent_log() or 'out of memory?'}",
                hint="try a smaller --ctx"
                if self.cache_types == ("f16", "f16")
                else "try --cache-type-k/-v f16: not every model's attention heads can be stored quantized",
            )
        crash.note(f"running {label} on {', '.join(self.buffer_types) or 'the CPU'} kernels")
        self._ctx = ctx
        self._mem = lib.llama_get_memory(ctx)
        self.n_ctx = int(lib.llama_n_ctx(ctx))
        self.n_batch = int(lib.llama_n_batch(ctx))
        self.n_ubatch = int(lib.llama_n_ubatch(ctx))  # what llama.cpp computes at once
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
        self._mixed = False  # decode_sequences left other sequence ids than 0 in the batch
        self._eog: list[int] | None = None

    def _check_memory(self, info: GGUFInfo, n_ctx: int) -> None:
        """Refuse a context whose KV cache cannot fit in memory, before llama.cpp tries to allocate it."""
        need, free = kv_bytes(info, n_ctx, self.cache_types), hardware.available_memory()
        if need is None or free is None or need <= free:
            return
        fits = default_ctx(info, *self.cache_types)[0]  # what the default would have been
        self.close()
        raise UsageError(
            f"--ctx {n_ctx:,} needs {need / 2**30:,.1f} GiB for its KV cache, "
            f"but {free / 2**30:,.1f} GiB of memory is available",
            hint=f"try --ctx {fits:,} or less; the model was trained on {self.n_ctx_train:,}",
        )

    @property
    def closed(self) -> bool:
        return self._ctx is None

    def close(self) -> None:
        """Free llama.cpp's memory (safe to call twice)."""
        lib = self._lib
        if self._batch is not None:
            lib.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            lib.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            lib.llama_model_free(self._model)
            self._model = None

    def metadata(self, key: str) -> str | None:
        """A GGUF metadata value as llama.cpp reports it."""
        buf = ctypes.create_string_buffer(4096)
        n = self._lib.llama_model_meta_val_str(self._model, key.encode(), buf, 4096)
        return buf.value.decode("utf-8", errors="replace") if n >= 0 else None

    # -- decoding

    def decode(
        self,
        tokens: Sequence[int],
        start: int,
        lo: int,
        hi: int,
        *,
        kind: int | None = None,
        work: float = 1.0,
    ) -> None:
        """One llama_decode of at most n_batch tokens of sequence 0 at positions start..; logits for
        rows lo..hi-1. With a kind, the thread tuner watches the step, as `work` plain steps of it."""
        batch, n = self._batch, len(tokens)
        if self._mixed:
            self._single_sequence()
        ctypes.memmove(batch.token, array("i", tokens).tobytes(), 4 * n)
        ctypes.memmove(batch.pos, array("i", range(start, start + n)).tobytes(), 4 * n)
        ctypes.memset(batch.logits, 0, n)
        if hi > lo:
            ctypes.memset(ctypes.addressof(batch.logits.contents) + lo, 1, hi - lo)
        batch.n_tokens = n
        self._evaluate(kind, work)

    def decode_one(self, token: int, pos: int) -> None:
        """Evaluate one token of sequence 0 at pos, with its logits: the decode loop's step, whose time
        the thread tuner watches. (Row 0 is sequence 0's: every generation decodes its prompt first.)"""
        batch = self._batch
        batch.token[0] = token
        batch.pos[0] = pos
        batch.logits[0] = 1
        batch.n_tokens = 1
        self._evaluate(0)

    def _evaluate(self, kind: int | None, work: float = 1.0) -> None:
        """llama_decode of the batch as it is set; with a kind, the thread tuner watches the step."""
        if kind is None or self._tuner is None:
            self.check(self._lib.llama_decode(self._ctx, self._batch))
            return
        start, cpu = time.perf_counter(), time.process_time()
        self.check(self._lib.llama_decode(self._ctx, self._batch))
        seconds = time.perf_counter() - start
        if (threads := self._tuner.observe(seconds, time.process_time() - cpu, kind, work)) is not None:
            self._lib.llama_set_n_threads(self._ctx, threads, threads)

    def decode_sequences(
        self,
        tokens: Sequence[int],
        positions: Sequence[int],
        seqs: Sequence[int],
        logits: Sequence[int],
        *,
        kind: int | None = None,
        work: float = 1.0,
    ) -> float:
        """One llama_decode of at most n_batch tokens of several sequences: tokens[i] at positions[i] of
        sequence seqs[i], logits for the rows where logits[i] is 1. Returns its seconds (synchronized).
        With a kind (steps of one kind take alike times), the thread tuner watches the step, as `work`
        plain steps of that kind."""
        batch, n = self._batch, len(tokens)
        ctypes.memmove(batch.token, array("i", tokens).tobytes(), 4 * n)
        ctypes.memmove(batch.pos, array("i", positions).tobytes(), 4 * n)
        ctypes.memmove(batch.logits, bytes(logits), n)
        seq_id = batch.seq_id
        for i, seq in enumerate(seqs):
            seq_id[i][0] = seq
        self._mixed = True
        batch.n_tokens = n
        start = time.perf_counter()
        self._evaluate(kind, work)
        self._lib.llama_synchronize(self._ctx)
        return time.perf_counter() - start

    def _single_sequence(self) -> None:
        seq_id = self._batch.seq_id
        for i in range(self.n_batch):
            seq_id[i][0] = 0
        self._mixed = False

    def synchronize(self) -> None:
        """Wait for the decodes queued so far (llama.cpp books their timings then)."""
        self._lib.llama_synchronize(self._ctx)

    def output_logits(self, rows: int) -> Any:
        """The logits rows the last decode asked for, in order (numpy, rows x n_vocab): a view of
        llama.cpp's buffer, valid until the next decode."""
        import numpy as np

        return np.ctypeslib.as_array(self._lib.llama_get_logits(self._ctx), shape=(rows, self.n_vocab))

    def check(self, status: int) -> None:
        """Raise for a failed llama_decode status."""
        if status == 1:
            raise ContextOverflowError("the KV cache is full", hint="raise --ctx")
        if status != 0:
            raise GenerationError(
                f"llama.cpp failed to evaluate tokens (status {status}): {binding.recent_log()}"
            )

    def warm_up(self) -> None:
        """One throwaway decode, so the first real token does not pay for graph setup; the cache is
        left empty."""
        bos = self.vocabulary.bos()
        self.decode([bos if bos >= 0 else 0], 0, 0, 1)
        self.synchronize()
        self.clear()

    # -- the KV memory

    def clear(self) -> None:
        """Empty the KV cache of every sequence."""
        self._lib.llama_memory_clear(self._mem, True)

    def drop(self, seq: int, start: int) -> bool:
        """Remove sequence seq's cells from position start on; False where the cache cannot drop a
        suffix (recurrent state)."""
        return bool(self._lib.llama_memory_seq_rm(self._mem, seq, start, -1))

    def copy_sequence(self, source: int, dest: int) -> None:
        """Give sequence dest all of source's cells (llama.cpp copies per-sequence buffers whole)."""
        self._lib.llama_memory_seq_cp(self._mem, source, dest, -1, -1)

    def save_state(self, path: Path, tokens: Sequence[int]) -> bool:
        """Save sequence 0's state after tokens to a file; False if llama.cpp could not."""
        buf = (self._lib.llama_token * len(tokens))(*tokens)
        return bool(self._lib.llama_state_seq_save_file(self._ctx, str(path).encode(), 0, buf, len(tokens)))

    def load_state(self, path: Path, n_tokens: int) -> list[int] | None:
        """Load a state file of n_tokens tokens into sequence 0: the tokens it holds, None if it failed."""
        buf = (self._lib.llama_token * n_tokens)()
        n_out = ctypes.c_size_t(0)
        if not self._lib.llama_state_seq_load_file(
            self._ctx, str(path).encode(), 0, buf, n_tokens, ctypes.byref(n_out)
        ):
            return None
        return list(buf[: n_out.value])

    # -- evaluation counters

    def reset_timings(self) -> None:
        self._lib.llama_perf_context_reset(self._ctx)

    def eval_ms(self) -> float:
        """Milliseconds llama.cpp spent evaluating since reset_timings (booked at synchronization)."""
        perf = self._lib.llama_perf_context(self._ctx)
        return float(perf.t_p_eval_ms + perf.t_eval_ms)

    # -- sampling

    def chooser(self, sampling: SamplingConfig, history: list[int]) -> tuple[Chooser, Any]:
        """choose(row): the token sampled from the logits of batch row `row` (-1: the last), and the
        llama.cpp sampler behind it (None for greedy; the caller frees it with free_sampler)."""
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
        if [s.kind for s in steps] == ["top_p", "min_p", "temp", "dist"]:
            return self._nucleus_chooser(steps[0].args[0], steps[1].args[0], steps[2:], banned)
        sampler = self._make_sampler(steps, history, banned)
        return lambda row: int(lib.llama_sampler_sample(sampler, ctx, row)), sampler

    def accept(self, sampler: Any, token: int) -> None:
        """Tell a sampler chain that token was chosen (penalties and grammars move on)."""
        self._lib.llama_sampler_accept(sampler, token)

    def free_sampler(self, sampler: Any) -> None:
        self._lib.llama_sampler_free(sampler)

    def _eog_tokens(self) -> list[int]:
        if self._eog is None:
            self._eog = [t for t in range(self.n_vocab) if self.vocabulary.is_eog(t)]
        return self._eog

    def _nucleus_chooser(
        self, top_p: float, min_p: float, tail: list[Step], banned: list[int]
    ) -> tuple[Chooser, Any]:
        """choose(row) for the default chain, top-p then min-p then temperature and the seeded draw, with
        llama.cpp's result. Top-p keeps the most likely tokens up to p of the mass and min-p those within
        min_p of the best, both a prefix of the sorted vocabulary, so only min-p's candidates need sorting.
        llama.cpp's top-p sorts the whole vocabulary whenever its first 256 tokens hold less than p: 12 ms
        a token on Gemma's 262k, more than half a decode step. Temperature and the draw stay llama.cpp's."""
        import numpy as np

        lib, ctx, n_vocab = self._lib, self._ctx, self.n_vocab
        chain = self._make_sampler(tail, [], [])
        cand = np.zeros(n_vocab, dtype=[("id", np.int32), ("logit", np.float32), ("p", np.float32)])
        data = cand.ctypes.data_as(ctypes.POINTER(lib.llama_token_data))
        kept_p = lib.llama_token_data_array(data, 0, -1, True)
        below_best = np.log(np.float32(min_p))  # min-p's bound on logits, as llama.cpp's logf(p)
        nucleus = np.float32(top_p)

        def choose(row: int) -> int:
            logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx, row), shape=(n_vocab,))
            if banned:
                logits[banned] = -np.inf
            best = logits.max()
            kept = np.flatnonzero(logits >= best + below_best)
            kept = kept[np.argsort(-logits[kept], kind="stable")]
            mass = np.exp(logits[kept] - best).cumsum() / np.exp(logits - best).sum()
            size = min(int(np.searchsorted(mass, nucleus)) + 1, len(kept))
            cand["id"][:size], cand["logit"][:size], cand["p"][:size] = kept[:size], logits[kept[:size]], 0.0
            kept_p.data, kept_p.size, kept_p.selected, kept_p.sorted = data, size, -1, True
            lib.llama_sampler_apply(chain, ctypes.byref(kept_p))
            return int(cand["id"][kept_p.selected])

        return choose, chain

    def _grammar_chooser(
        self, grammar: str, steps: list[Step], history: list[int], banned: list[int]
    ) -> tuple[Chooser, Any]:
        """choose(row) under a GBNF grammar, as llama.cpp's own tools do it: the token the other samplers
        pick is checked against the grammar alone, and only when the grammar rejects it are all the
        vocabulary's logits constrained and the pick made again. Checking one token is cheap; constraining
        152k is not, and a model that follows its instructions mostly picks valid tokens anyway."""
        import numpy as np

        lib, ctx, n_vocab = self._lib, self._ctx, self.n_vocab
        constraint = self.vocabulary.grammar_sampler(grammar)
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

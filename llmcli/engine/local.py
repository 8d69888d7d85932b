"""LocalEngine: a GGUF model run here, one generation at a time, on llama.cpp's low-level API.

Generation runs its own decode loop with llama.cpp's native sampler chain, so text is detokenized once
per token (never the whole output again) and the KV cache is ours to manage: the engine records which
tokens sequence 0 holds, and a new prompt that shares a prefix with them evaluates only the rest. Long
prompts can be restored from and saved to a disk cache; with `lookup`, drafts (prompt lookup or a draft
model) are verified in batches, exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from llmcli.engine.context import Context
from llmcli.engine.contract import Capabilities, Generation, Pieces, Unsupported, prompt_tokens
from llmcli.engine.costfile import load_costs, save_costs
from llmcli.engine.options import EngineOptions, kv_cache_bytes
from llmcli.engine.output import TokenOutput
from llmcli.engine.promptcache import MIN_TOKENS as PROMPT_CACHE_MIN_TOKENS
from llmcli.engine.promptcache import PromptCache, model_key
from llmcli.engine.speculative import DraftBudget, ModelDrafter, NgramIndex, StepCosts, plan
from llmcli.engine.threads import PROMPT, PROMPT_ROWS
from llmcli.errors import ContextOverflowError, UsageError
from llmcli.models.ggufinfo import GGUFInfo, read_gguf
from llmcli.sampling import SamplingConfig


class LocalEngine:
    """A GGUF model in llama.cpp, with one KV cache whose contents we track token by token."""

    def __init__(self, model_path: Path | str, options: EngineOptions | None = None) -> None:
        options = options or EngineOptions()
        options.validate()
        self.model_path = Path(model_path)
        self.name = str(self.model_path)
        self.info: GGUFInfo = read_gguf(self.model_path)
        self._active: Generation | None = None  # one generation at a time owns the context
        # Told (evaluated, total) after each batch of a prompt longer than one batch (a renderer shows it).
        self.prompt_meter: Callable[[int, int], None] | None = None
        self._draft_model: LocalEngine | None = None
        self.prompt_cache: PromptCache | None = None
        self._model_key = ""
        self.context = context = Context(self.model_path, self.info, options)
        self.vocabulary = context.vocabulary
        self.buffer_types = context.buffer_types
        self.n_ctx_train, self.n_vocab, self.n_swa = context.n_ctx_train, context.n_vocab, context.n_swa
        self.can_speculate = context.can_speculate
        self.cache_types, self.ctx_capped = context.cache_types, context.ctx_capped
        self.n_ctx, self.n_batch, self.n_seq_max = context.n_ctx, context.n_batch, context.n_seq_max
        self.n_threads, self.gpu_layers = context.n_threads, context.gpu_layers
        self.capabilities = Capabilities(speculation=self.can_speculate, scoring=True)
        self._kv: list[int] = []  # tokens whose K/V are in the cache for sequence 0, in order
        self._step_costs = StepCosts()  # this machine's, so it outlives each generation
        self._cost_file: tuple[Path, str] | None = None
        if options.n_seq_max == 1:
            # Several sequences are decoded by ParallelEngine's own thread, which warms up there:
            # llama.cpp's CPU backend runs on OpenMP, and once another thread has its own OpenMP
            # team the decoding thread's runs 60% slower (bench/README.md).
            context.warm_up()

    @property
    def step_costs(self) -> StepCosts:
        """What verifying drafts costs here, as this engine measured it (or was told: `remember`)."""
        return self._step_costs

    @property
    def takes_messages(self) -> bool:
        return self.capabilities.messages

    @property
    def closed(self) -> bool:
        return self.context.closed

    def kv_cache_bytes(self, n_ctx: int) -> int | None:
        """Memory the KV cache of n_ctx tokens takes with this engine's cache types (None: unknown)."""
        return kv_cache_bytes(self.info, n_ctx, self.cache_types)

    def reset(self) -> None:
        """Forget the KV cache: the next prompt is evaluated from scratch."""
        if self._active is not None:
            self._active.close()
        self.context.clear()
        self._kv.clear()

    # -- lifecycle

    def close(self) -> None:
        """Free llama.cpp's memory (safe to call twice)."""
        if self._active is not None:
            self._active.close()  # its cleanup needs the context, so it must run first
            self._active = None
        if self._draft_model is not None:
            self._draft_model.close()
            self._draft_model = None
        if self._cost_file is not None:
            save_costs(*self._cost_file, self._step_costs.measured())
            self._cost_file = None
        self.context.close()

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
        return self.context.metadata(key)

    # -- generation

    def generate(
        self, prompt: str | Sequence[int], sampling: SamplingConfig, *, lookup: int = 0
    ) -> Generation:
        """Start generating after prompt (text is tokenized with BOS). Checks the context up front.

        lookup > 0 turns on speculative decoding with drafts of up to that many tokens (prompt lookup,
        or the draft model): where the model allows it (capabilities.speculation), else it decodes
        plainly. The output is the same either way: each verified position is sampled exactly as
        plain decoding would sample it, and a draft token is kept only where it equals that sample.
        """
        tokens = prompt_tokens(
            self,
            prompt,
            "the context holds",
            f"raise --ctx (the model was trained on {self.n_ctx_train:,}) or shorten the input",
        )
        if self._active is not None:
            self._active.close()
        lookup = lookup if self.capabilities.speculation else 0
        gen = Generation(sampling.resolved(), lambda gen: self._run(tokens, gen, lookup))
        self._active = gen
        return gen

    def chat(self, messages: list[dict[str, str]], sampling: SamplingConfig) -> Generation:
        """Unsupported: a local model's conversations are rendered by the caller's chat template and
        sent to generate (capabilities.messages is False)."""
        raise Unsupported("a local model takes rendered prompts, not messages: render them and generate")

    def _run(self, tokens: list[int], gen: Generation, lookup: int) -> Pieces:
        context, stats, sampling = self.context, gen.stats, gen.sampling
        start = time.perf_counter()
        stats.prompt_tokens = len(tokens)
        sampler = None
        try:
            context.reset_timings()
            stats.cached_tokens = self._reuse_prefix(tokens)
            if self.prompt_cache is not None:
                stats.cached_tokens = self._restore(tokens, stats.cached_tokens)
            self._decode(tokens[stats.cached_tokens :], stats.cached_tokens)
            context.synchronize()  # llama.cpp books timings at synchronization
            if self.prompt_cache is not None:
                self._store(tokens)
            stats.prompt_ms = context.eval_ms()

            choose, sampler = context.chooser(sampling, tokens)
            out = TokenOutput(context, gen, start)
            choose = out.steer(choose, sampler)
            limit, n_ctx, n_batch = sampling.max_tokens, self.n_ctx, self.n_batch
            index: NgramIndex | ModelDrafter | None = None
            if lookup > 0:
                index = ModelDrafter(self._draft_model, tokens) if self._draft_model else NgramIndex(tokens)
            budget, costs = DraftBudget(lookup), self._step_costs
            n_past = len(tokens)
            token = choose(-1)
            take, finished = out.take, out.finished
            decode_one, cached, timed = context.decode_one, self._kv.append, costs.observe
            clock = time.perf_counter

            while True:
                # `token` was sampled from the logits after n_past tokens and is not in the cache yet.
                yield from take(token)
                if finished(n_past, n_ctx):
                    break
                began = clock()  # a draft model's drafting is part of what a verification costs
                drafts: list[int] = []
                if index is not None:
                    budget.follow(token)
                    index.append(token)
                    # Room for the drafts and the token sampled after them, within context and -n.
                    room = min(n_ctx - n_past, (limit or n_ctx) - stats.generated_tokens, n_batch) - 1
                    evidence = index.evidence()
                    chances = budget.chances(evidence, room)
                    size = plan([chances], costs)[0] if chances else 0
                    if size:
                        budget.settle()
                        drafts = index.draft(size)
                    elif chances and index.free:
                        budget.watch(evidence, index.draft(len(chances)))
                if not drafts:
                    decode_one(token, n_past)
                    cached(token)
                    n_past += 1
                    token = choose(-1)
                    timed(0, clock() - began)
                    continue
                self._submit(
                    [token, *drafts], n_past, 0, len(drafts) + 1, kind=0, work=costs.relative(len(drafts))
                )
                n_past += 1
                accepted = 0
                token = choose(0)
                timed(len(drafts), clock() - began)
                while accepted < len(drafts) and token == drafts[accepted]:
                    # The model agrees with the draft here; emit it like any sampled token.
                    accepted += 1
                    yield from take(token)
                    if gen.finish_reason is not None:
                        break
                    index.append(token)  # type: ignore[union-attr]
                    n_past += 1
                    token = choose(accepted)
                budget.record(evidence, len(drafts), accepted)
                stats.drafted_tokens += len(drafts)
                stats.accepted_tokens += accepted
                self._drop_after(n_past)
                if gen.finish_reason is not None:
                    break
            yield from out.finish()
        finally:
            if gen.finish_reason is None:
                # Interrupted: drop anything a decode may have added that we did not record.
                context.drop(0, len(self._kv))
            if sampler is not None:
                context.free_sampler(sampler)
            stats.decode_ms = context.eval_ms() - stats.prompt_ms
            stats.total_ms = (time.perf_counter() - start) * 1000

    # -- logits

    def next_logits(self, tokens: Sequence[int]) -> Any:
        """The model's logits (a numpy row over the vocabulary) for the token after tokens."""
        tokens = list(tokens)
        cached = self._reuse_prefix(tokens)
        self._decode(tokens[cached:], cached)
        return self.context.output_logits(1)[0].copy()

    def window_logits(self, tokens: Sequence[int], first: int) -> Iterator[tuple[int, Any]]:
        """Evaluate tokens from an empty cache at positions 0.., as one window, and yield (position,
        rows): the logits of positions position.. within first..len-2, one batch at a time, each a view
        valid until the next is asked for, so memory stays at a batch of rows."""
        tokens = list(tokens)
        if len(tokens) > self.n_ctx:
            raise ContextOverflowError(
                f"a window of {len(tokens):,} tokens does not fit the context of {self.n_ctx:,}",
                hint="raise --ctx",
            )
        if self._active is not None:
            self._active.close()
        self.context.clear()
        self._kv.clear()
        return self._window_rows(tokens, first)

    def _window_rows(self, tokens: list[int], first: int) -> Iterator[tuple[int, Any]]:
        for offset in range(0, len(tokens), self.n_batch):
            chunk = tokens[offset : offset + self.n_batch]
            lo, hi = max(first - offset, 0), min(len(chunk), len(tokens) - 1 - offset)
            self._submit(chunk, offset, lo, hi)
            if hi > lo:
                yield offset + lo, self.context.output_logits(hi - lo)

    # -- drafts and the prompt cache

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

    @property
    def cost_key(self) -> str:
        """What verification costs are kept under (`use_cost_file`): the model file, threads, offload."""
        return f"{model_key(self.model_path)}|threads={self.n_threads}|gpu={self.gpu_layers}"

    def use_cost_file(self, path: Path) -> None:
        """Start from the verification costs that earlier runs of this model, with these threads and
        offload, measured and kept in path; keep this run's there when the engine closes."""
        self._step_costs.remember(load_costs(path, self.cost_key))
        self._cost_file = (path, self.cost_key)

    def use_prompt_cache(self, cache: PromptCache) -> None:
        """Restore long prompt prefixes from cache, and save long prompts to it."""
        self.prompt_cache = cache
        self._model_key = model_key(self.model_path)

    def _restore(self, tokens: list[int], have: int) -> int:
        """Load the longest saved prefix of tokens when it beats the `have` tokens in the cache."""
        cache = self.prompt_cache
        assert cache is not None
        entry = cache.lookup(self._model_key, tokens)
        # The last prompt token is always evaluated again: its logits start the answer.
        if entry is None or min(entry.n_tokens, len(tokens) - 1) <= have:
            return have
        self.context.clear()
        self._kv.clear()
        loaded = self.context.load_state(cache.folder / entry.file, entry.n_tokens)
        if loaded is None or len(loaded) != entry.n_tokens or loaded != tokens[: entry.n_tokens]:
            self.context.clear()
            cache.forget(entry)  # stale or corrupt: evaluate the prompt instead
            return 0
        cache.touch(entry)
        self._kv.extend(tokens[: entry.n_tokens])
        self._drop_after(len(tokens) - 1)
        return len(self._kv)

    def _store(self, tokens: list[int]) -> None:
        """Save the state after a long prompt (best effort: a failure only costs the saving)."""
        cache = self.prompt_cache
        assert cache is not None
        if len(tokens) < PROMPT_CACHE_MIN_TOKENS or cache.has(self._model_key, tokens):
            return
        try:
            key, temp = cache.path_for(self._model_key, tokens)
        except OSError:
            return
        try:
            if self.context.save_state(temp, tokens):
                cache.add(key, temp, self._model_key, tokens)
            else:
                temp.unlink(missing_ok=True)
        except OSError:
            temp.unlink(missing_ok=True)

    # -- the KV cache of sequence 0

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Keep the longest cached prefix of tokens (at least one token is left to evaluate)."""
        common = 0
        limit = min(len(self._kv), len(tokens) - 1)
        while common < limit and self._kv[common] == tokens[common]:
            common += 1
        if common < len(self._kv):
            if not self.context.drop(0, common):
                # Some caches (recurrent models) cannot drop a suffix: start over.
                self.context.clear()
                common = 0
            del self._kv[common:]
        return common

    def _decode(self, tokens: Sequence[int], start: int) -> None:
        """Evaluate tokens at positions start.. in batches; logits only for the last one.

        Batches are what llama.cpp computes at once (n_ubatch), so that the thread tuner can act
        between them. A prompt longer than n_batch reports (evaluated, total) to `prompt_meter` after
        each; Ctrl-C between batches leaves the cache holding exactly the batches done.
        """
        meter = self.prompt_meter if len(tokens) > self.n_batch else None
        size = self.context.n_ubatch
        for offset in range(0, len(tokens), size):
            chunk = tokens[offset : offset + size]
            last = offset + len(chunk) == len(tokens)
            watched = PROMPT if len(chunk) >= PROMPT_ROWS else None
            self._submit(
                chunk,
                start + offset,
                len(chunk) - last,
                len(chunk),
                kind=watched,
                work=len(chunk) / PROMPT_ROWS,
            )
            if meter is not None:
                meter(offset + len(chunk), len(tokens))

    def _submit(
        self,
        tokens: Sequence[int],
        start: int,
        lo: int,
        hi: int,
        *,
        kind: int | None = None,
        work: float = 1.0,
    ) -> None:
        """One decode of at most n_batch tokens at positions start..; logits for rows lo..hi-1. A kind
        and its work (in plain steps) are for the thread tuner."""
        self.context.decode(tokens, start, lo, hi, kind=kind, work=work)
        self._kv.extend(tokens)

    def _drop_after(self, length: int) -> None:
        """Remove the cache entries from position length on (rejected drafts, a restored prompt)."""
        if length < len(self._kv):
            kept = self._kv[:length]
            del self._kv[length:]
            if not self.context.drop(0, length):
                # Recurrent state cannot drop a suffix: rebuild it from the kept tokens.
                self.context.clear()
                self._kv.clear()
                self._decode(kept, 0)

"""ParallelEngine: up to n_seq_max generations at once in one llama.cpp context (continuous batching).

It drives a LocalEngine's `Context` through its public methods only: one thread owns the context and
every step decodes one batch of several sequences, with their prompt-lookup drafts; prompts reuse
the cells any slot holds of them.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcli.engine.context import Chooser
from llmcli.engine.contract import Capabilities, Generation, Pieces, Unsupported, prompt_tokens
from llmcli.engine.costfile import load_costs, save_costs
from llmcli.engine.local import LocalEngine
from llmcli.engine.output import TokenOutput
from llmcli.engine.speculative import DraftBudget, NgramIndex, StepCosts, plan
from llmcli.engine.threads import PROMPT, PROMPT_ROWS
from llmcli.errors import GenerationError
from llmcli.sampling import SamplingConfig


@dataclass
class _Request:
    """One generate() call waiting for, or holding, a sequence of the parallel engine."""

    tokens: list[int]
    lookup: int  # most tokens drafted per step (0: decode plainly)
    pieces: queue.SimpleQueue[str | BaseException | None] = field(default_factory=queue.SimpleQueue)
    cancelled: bool = False
    gen: Generation = field(init=False)

    def attach(self, gen: Generation) -> Pieces:
        """The pieces of gen, the generation this request runs, as the decoding thread sends them."""
        self.gen = gen
        return self._stream()

    def _stream(self) -> Pieces:
        try:
            while (piece := self.pieces.get()) is not None:
                if isinstance(piece, BaseException):
                    raise piece
                yield piece
        finally:
            self.cancelled = True  # the decoding thread frees the sequence at its next step


@dataclass
class _Lookup:
    """A sequence's prompt lookup: its tokens so far, what its drafts earned, the coming step's drafts."""

    index: NgramIndex
    budget: DraftBudget
    drafts: list[int] = field(default_factory=list)  # verified in the coming step, after the token
    evidence: int = 0  # the match they came from


@dataclass
class _Live:
    """A request in a sequence slot: its prompt is evaluated chunk by chunk, then one token per step."""

    request: _Request
    seq: int
    choose: Chooser
    sampler: Any
    out: TokenOutput
    fed: int = 0  # tokens in the cache
    token: int | None = None  # sampled, not yet in the cache
    mark: float = 0.0  # the step clock when the slot was taken, then when the prompt was done
    decoding: bool = False  # the prompt is done: tokens are sampled and decoded
    lookup: _Lookup | None = None


class ParallelEngine:
    """Up to n_seq_max generations at once in one llama.cpp context: continuous batching.

    Each generate() call becomes a sequence with its own sampler, stop strings and limits. One
    thread owns the context: every step it decodes one batch holding the next token of every live
    sequence, filled up with prompt chunks of new ones, so the weights read once per step serve
    them all. With lookup, a step without prompt chunks also verifies the sequences' drafts, as
    many as `plan` finds worth their rows for that many sequences (costs measured per count). A
    finished sequence's cells are freed and the slot takes the next waiting prompt; with none
    waiting, the last sequences move down into free slots, so that every step stays one graph.
    The thread tuner (threads.py) watches every step, by how many sequences it decodes or, with prompt
    chunks, by its tokens.
    Callers generate from their own threads; pieces stream back to each as they are sampled.

    Stats: a sequence's prompt_ms is the decode time of the steps from taking its slot to finishing
    its prompt, and decode_ms that of the steps after, each of which decoded one of its tokens (a step
    serves every live sequence, so each is charged the whole step); ttft_ms and total_ms are wall clock
    from taking the slot.
    """

    def __init__(self, engine: LocalEngine) -> None:
        self.engine = engine
        self.context = engine.context
        self.name = engine.name
        self.n_parallel = engine.n_seq_max
        self.n_ctx = engine.n_ctx // engine.n_seq_max  # what each sequence can hold
        self.capabilities = Capabilities(parallel=self.n_parallel, speculation=engine.can_speculate)
        # What drafts cost, by the number of sequences a step decodes: a step's rows are shared.
        self._costs = {n: StepCosts(rows=n) for n in range(1, self.n_parallel + 1)}
        self._cost_file: tuple[Path, dict[int, str]] | None = None  # and the key of each table
        self._inbox: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        # Prompt tokens whose cells each slot holds: kept after a sequence ends, so a prompt that
        # starts the same way (the instructions every chunk and file shares) is evaluated once.
        self._held: list[list[int]] = [[] for _ in range(self.n_parallel)]
        self._clock = 0.0  # seconds of decode steps so far (the decoding thread's)
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="llmcli-decode", daemon=True)
        self._thread.start()

    @property
    def step_costs(self) -> Mapping[int, StepCosts]:
        """What verifying drafts costs here, by the number of sequences a step decodes together."""
        return self._costs

    def use_cost_file(self, path: Path) -> None:
        """Start from the verification costs earlier runs measured and kept in path, by the model,
        threads, offload and sequences decoded together; keep this run's there when it closes."""
        keys = {n: f"{self.engine.cost_key}|seqs={n}" for n in self._costs}
        for n, costs in self._costs.items():
            costs.remember(load_costs(path, keys[n]))
        self._cost_file = (path, keys)

    @property
    def takes_messages(self) -> bool:
        return self.capabilities.messages

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

    def kv_cache_bytes(self, n_ctx: int) -> int | None:
        """Memory a KV cache of n_ctx tokens takes with the engine's cache types."""
        return self.engine.kv_cache_bytes(n_ctx)

    @contextmanager
    def _open(self) -> Iterator[None]:
        with self._lock:
            if self._closed or self._failure is not None:
                raise GenerationError(f"the engine is closed{f': {self._failure}' if self._failure else ''}")
            yield

    def generate(
        self, prompt: str | Sequence[int], sampling: SamplingConfig, *, lookup: int = 0
    ) -> Generation:
        """Queue a generation. lookup > 0 drafts up to that many tokens a step by prompt lookup, where
        they are expected to pay (capabilities.speculation); the output is the same either way."""
        tokens = prompt_tokens(
            self,
            prompt,
            f"each of the {self.n_parallel} parallel sequences holds",
            "raise --ctx or lower --parallel",
        )
        request = _Request(tokens, lookup if self.capabilities.speculation else 0)
        gen = Generation(sampling.resolved(), request.attach)
        with self._open():  # after close() nothing would ever answer the request
            self._inbox.put(request)
        return gen

    def chat(self, messages: list[dict[str, str]], sampling: SamplingConfig) -> Generation:
        """Unsupported: conversations are rendered by the caller and sent to generate."""
        raise Unsupported("a local model takes rendered prompts, not messages: render them and generate")

    def window_logits(self, tokens: Sequence[int], first: int) -> Iterator[tuple[int, Any]]:
        """Unsupported: the decoding thread owns the context (score on a LocalEngine)."""
        raise Unsupported("a parallel engine does not score windows: use a single-sequence engine")

    def close(self) -> None:
        """Stop the decoding thread (waiting generations fail) and close the engine."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._inbox.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join()
        if self._cost_file is not None:
            path, keys = self._cost_file
            for n, costs in self._costs.items():
                save_costs(path, keys[n], costs.measured())
            self._cost_file = None
        self.engine.close()

    def __enter__(self) -> ParallelEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the decoding thread

    def _serve(self) -> None:
        context = self.context
        free = list(range(self.n_parallel))
        live: dict[int, _Live] = {}
        waiting: deque[_Request] = deque()
        try:
            context.warm_up()
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
                    choose, sampler = context.chooser(request.gen.sampling, request.tokens)
                    out = TokenOutput(context, request.gen, time.perf_counter())
                    choose = out.steer(choose, sampler)
                    request.gen.stats.prompt_tokens = len(request.tokens)
                    request.gen.stats.cached_tokens = reused
                    lookup = (
                        _Lookup(NgramIndex(request.tokens), DraftBudget(request.lookup))
                        if request.lookup
                        else None
                    )
                    live[seq] = _Live(
                        request, seq, choose, sampler, out, fed=reused, mark=self._clock, lookup=lookup
                    )
                for seq in [s for s, one in live.items() if one.request.cancelled]:
                    self._release(live.pop(seq), free, None)
                if live:
                    self._pack(live, free)
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
            self.context.copy_sequence(source, seq)
            reused = common[source]
        self.context.drop(seq, reused)
        free.remove(seq)
        self._held[seq] = []
        return seq, reused

    def _pack(self, live: dict[int, _Live], free: list[int]) -> None:
        """Move the last sequences into free slots below them until the live ones hold consecutive ids.
        llama.cpp decodes a step as one graph per run of consecutive ids, so the gap a finished sequence
        leaves (nothing waiting for its slot) would make every later step read the weights twice. A
        move copies one sequence's KV buffer, usually smaller than the weights a gap reads again."""
        while max(live) - min(live) >= len(live):
            source, dest = max(live), min(f for f in free if f > min(live))
            one = live.pop(source)
            self.context.copy_sequence(source, dest)
            free.remove(dest)
            self._keep_prompt(source, one.request.tokens, one.fed)
            free.append(source)
            one.seq, live[dest] = dest, one

    def _keep_prompt(self, seq: int, prompt: list[int], fed: int) -> None:
        """Keep slot seq's cells of the prompt, if it was evaluated whole, for the next prompt that
        starts the same way; drop the rest."""
        kept = len(prompt) if fed >= len(prompt) else 0
        self.context.drop(seq, kept)
        self._held[seq] = prompt[:kept]

    def _step(self, live: dict[int, _Live], free: list[int]) -> None:
        """One decode: every decoding sequence's next token and drafts, then prompt chunks; then sample
        and verify."""
        capacity = self.context.n_batch
        rows: list[tuple[_Live, int]] = []
        tokens: list[int] = []
        positions: list[int] = []
        seqs: list[int] = []
        logits: list[int] = []
        # By sequence id: llama.cpp splits a batch over per-sequence KV buffers into ubatches of
        # consecutive ids with equal token counts, so any other order costs a graph run per gap.
        ordered = sorted(live.values(), key=lambda one: one.seq)
        decoding: list[tuple[_Live, int]] = [(one, one.token) for one in ordered if one.token is not None]
        for one, pending in decoding:
            if one.lookup is not None:
                one.lookup.budget.follow(pending)
                one.lookup.index.append(pending)
        # Prompt chunks make a step compute-bound, where extra rows cost what they do in a prompt.
        prompting = len(decoding) < len(ordered)
        drafted = self._draft([one for one, _ in decoding], capacity) if decoding and not prompting else 0
        for one, pending in decoding:
            verified = [pending, *(one.lookup.drafts if one.lookup else [])]
            rows.append((one, len(tokens)))
            tokens.extend(verified)
            positions.extend(range(one.fed, one.fed + len(verified)))
            seqs.extend([one.seq] * len(verified))
            logits.extend([1] * len(verified))
        # Prompt chunks up to what llama.cpp computes at once, so that the thread tuner can act between.
        room = min(capacity, max(self.context.n_ubatch, len(tokens) + 1))
        for one in ordered:
            prompt = one.request.tokens
            if one.token is None and one.fed < len(prompt) and len(tokens) < room:
                take = min(room - len(tokens), len(prompt) - one.fed)
                tokens.extend(prompt[one.fed : one.fed + take])
                positions.extend(range(one.fed, one.fed + take))
                seqs.extend([one.seq] * take)
                one.fed += take
                done = one.fed == len(prompt)
                logits.extend([0] * (take - done) + [1] * done)
                if done:
                    rows.append((one, len(tokens) - 1))
        # The thread tuner compares steps by their count of sequences, a verification as what its drafts
        # were measured to cost; steps with prompt chunks by their tokens.
        if prompting:
            kind, work = (PROMPT if len(tokens) >= PROMPT_ROWS else None), len(tokens) / PROMPT_ROWS
        else:
            kind, work = len(decoding), self._costs[len(decoding)].relative(drafted) if drafted else 1.0
        seconds = self.context.decode_sequences(tokens, positions, seqs, logits, kind=kind, work=work)
        clock = self._clock = self._clock + seconds
        if not prompting:
            self._costs[len(decoding)].observe(drafted, seconds)
        for one, row in rows:
            if one.token is None:
                one.out.gen.stats.prompt_ms = (clock - one.mark) * 1000
                one.mark, one.decoding = clock, True
                token = self._emit(one, one.choose(row))
            else:
                token = self._verify(one, row)
            if token is not None:
                one.token = token
                continue
            for piece in one.out.finish():
                one.request.pieces.put(piece)
            del live[one.seq]
            self._release(one, free, None)

    def _draft(self, decoding: list[_Live], capacity: int) -> int:
        """Set each decoding sequence's drafts for the coming step (the sizes `plan` finds best for
        them together, within capacity rows); returns how many there are in all."""
        chances: list[list[float]] = []
        for one in decoding:
            if (lookup := one.lookup) is None:
                chances.append([])
                continue
            stats, limit = one.out.gen.stats, one.out.gen.sampling.max_tokens
            room = min(self.n_ctx - one.fed, (limit or self.n_ctx) - stats.generated_tokens) - 1
            lookup.evidence = lookup.index.evidence()
            chances.append(lookup.budget.chances(lookup.evidence, min(room, capacity // len(decoding) - 1)))
        if not any(chances):
            return 0
        drafted = 0
        for one, size, its in zip(decoding, plan(chances, self._costs[len(decoding)]), chances, strict=True):
            if (lookup := one.lookup) is None:
                continue
            if size:
                lookup.budget.settle()
                lookup.drafts = lookup.index.draft(size)
                drafted += len(lookup.drafts)
            elif its:
                lookup.budget.watch(lookup.evidence, lookup.index.draft(len(its)))
        return drafted

    def _verify(self, one: _Live, row: int) -> int | None:
        """Sample the rows of a decoding sequence's token and drafts from `row` on, keeping the drafts
        that equal the samples: the next token, or None when the generation has ended."""
        one.fed += 1  # the token decoded this step is in the cache now
        token = one.choose(row)
        lookup = one.lookup
        if lookup is None or not lookup.drafts:
            return self._emit(one, token)
        drafts, accepted = lookup.drafts, 0
        while accepted < len(drafts) and token == drafts[accepted]:
            accepted += 1
            if self._emit(one, token) is None:
                break
            lookup.index.append(token)
            one.fed += 1
            token = one.choose(row + accepted)
        lookup.budget.record(lookup.evidence, len(drafts), accepted)
        stats = one.out.gen.stats
        stats.drafted_tokens += len(drafts)
        stats.accepted_tokens += accepted
        self.context.drop(one.seq, one.fed)  # the rejected drafts' cells
        lookup.drafts = []
        return None if one.out.gen.finish_reason is not None else self._emit(one, token)

    def _emit(self, one: _Live, token: int) -> int | None:
        """Send the pieces token completes: token, or None when the generation ends with it."""
        for piece in one.out.take(token):
            one.request.pieces.put(piece)
        return None if one.out.finished(one.fed, self.n_ctx) else token

    def _release(self, one: _Live, free: list[int], error: BaseException | None) -> None:
        """Free a sequence's sampler and slot (its prompt's cells stay for reuse) and end its stream."""
        self._keep_prompt(one.seq, one.request.tokens, one.fed if error is None else 0)
        if one.sampler is not None:
            self.context.free_sampler(one.sampler)
            one.sampler = None
        stats = one.request.gen.stats
        if one.decoding:
            stats.decode_ms = (self._clock - one.mark) * 1000
        else:
            stats.prompt_ms = (self._clock - one.mark) * 1000
        stats.total_ms = (time.perf_counter() - one.out.start) * 1000
        if one.seq not in free:
            free.append(one.seq)
        one.request.pieces.put(error)

"""The engine contract: what every engine (local, parallel, remote) does, and what it hands back.

`Engine` is the protocol commands program against: tokens, `generate`, `chat`, `window_logits`, and
`capabilities`, which says honestly which of those an engine really does. A `Generation` streams text
pieces and fills its `Stats` as it goes; `Completion` is the result. No caller needs to know which
engine it holds: where an engine cannot do something, its capability says so and the method either
fails with `Unsupported` (chat, window_logits) or, for speculation, which never changes the output,
decodes plainly.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from llmcli.errors import ContextOverflowError, GenerationError, UsageError
from llmcli.reasoning import Thought
from llmcli.sampling import SamplingConfig


class Unsupported(GenerationError):
    """An engine was asked for something its capabilities say it does not do."""


@dataclass(frozen=True)
class Capabilities:
    """What an engine does beyond generating from a prompt.

    messages: conversations go to `chat(messages)` (a server applies its model's own chat template);
      otherwise a caller renders them and calls `generate`, and `chat` raises Unsupported.
    parallel: generations that make progress at once when called from that many threads (sequences in
      one context, or requests in flight to a server); 1: one at a time.
    speculation: `generate(lookup=N)` drafts tokens (by prompt lookup or a draft model) and verifies
      them in batches. Speculation never changes the output, so an engine without it decodes plainly.
    scoring: `window_logits` gives the model's logits over a window of tokens (perplexity); otherwise
      it raises Unsupported.
    """

    messages: bool = False
    parallel: int = 1
    speculation: bool = False
    scoring: bool = False


@dataclass
class Stats:
    """Token counts and timings of one generation, as every engine fills them.

    prompt_ms and decode_ms are the model's evaluation time for the prompt and for the tokens after
    the first (llama.cpp's counters; for parallel sequences, the decode steps each one took part in;
    for a server, time to first token and the streaming time after it). ttft_ms and total_ms are wall
    clock from the start of the generation.
    """

    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens reused from the KV cache, not evaluated again
    generated_tokens: int = 0
    prompt_ms: float = 0.0
    decode_ms: float = 0.0
    ttft_ms: float = 0.0
    total_ms: float = 0.0
    drafted_tokens: int = 0  # speculative drafts verified, and those the model agreed with
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


Pieces = Generator[str, None, None]


class Generation:
    """A running generation: iterate for text pieces, then read `completion()`.

    The engine passes `produce`, which gets this generation and returns the generator of its pieces; the
    generator fills `stats`, `tokens` and `finish_reason` as it runs. With a thinking plan
    (`sampling.think`) the pieces of thinking are `Thought`s; the others are the answer.
    """

    def __init__(self, sampling: SamplingConfig, produce: Callable[[Generation], Pieces]) -> None:
        self.sampling = sampling
        self.stats = Stats()
        self.finish_reason: str | None = None
        self.tokens: list[int] = []
        self._parts: list[str] = []
        self._pieces = produce(self)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        piece = next(self._pieces)
        self._parts.append(piece)
        return piece

    def close(self) -> None:
        """Stop generating (the text so far is kept)."""
        self._pieces.close()

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
    """What commands need from a model backend: every engine implements all of it (see Capabilities)."""

    name: str  # what the model is called: its GGUF's path, or the server's name for it
    n_ctx: int  # tokens one generation can hold, prompt included

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def takes_messages(self) -> bool:
        """capabilities.messages, for callers that ask only that."""
        ...

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]: ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def token_bytes(self, token: int, special: bool = False) -> bytes: ...

    def kv_cache_bytes(self, n_ctx: int) -> int | None:
        """Memory a KV cache of n_ctx tokens takes here (None: unknown, e.g. on a server)."""
        ...

    def generate(
        self, prompt: str | Sequence[int], sampling: SamplingConfig, *, lookup: int = 0
    ) -> Generation:
        """Continue prompt (text is tokenized with BOS). lookup > 0 asks for speculative drafts of up
        to that many tokens, where capabilities.speculation allows; the output is the same either way."""
        ...

    def chat(self, messages: list[dict[str, str]], sampling: SamplingConfig) -> Generation:
        """Answer a conversation under the engine's own chat template (capabilities.messages only)."""
        ...

    def window_logits(self, tokens: Sequence[int], first: int) -> Iterator[tuple[int, Any]]:
        """Evaluate tokens as one window from an empty cache; yield (position, rows): numpy logits rows
        for positions position.. (from first to len(tokens) - 2), a batch at a time, each valid until
        the next is asked for (capabilities.scoring only)."""
        ...

    def close(self) -> None: ...


def prompt_tokens(engine: Engine, prompt: str | Sequence[int], holds: str, hint: str) -> list[int]:
    """The prompt's tokens (text gets BOS), or an error when it is empty or leaves no room to answer."""
    tokens = engine.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
    if not tokens:
        raise UsageError("the prompt is empty")
    if len(tokens) >= engine.n_ctx:
        raise ContextOverflowError(
            f"the prompt is {len(tokens):,} tokens but {holds} {engine.n_ctx:,}", hint=hint
        )
    return tokens

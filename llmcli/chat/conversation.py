"""Conversations: messages, context fitting, exact KV reuse across turns.

KV reuse: the engine keeps whatever prefix of a new prompt its cache already holds. For that to
cover whole conversations, the tokens of earlier turns must be the very tokens that were
evaluated (an answer re-tokenized from its text may split differently). So the chat keeps a
ledger of checkpoints (text, exact tokens) and tokenizes only the text a new prompt adds after
the longest checkpoint it extends. `/undo` and `/retry` fall back to an earlier checkpoint, and
the engine rewinds its cache to match.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from llmcli.chat.templates import ChatTemplate
from llmcli.engine import Completion, Engine, Generation
from llmcli.errors import ContextOverflowError, UsageError
from llmcli.reasoning import THINK, ThinkMode, ThinkPlan, plan_for
from llmcli.sampling import SamplingConfig

MAX_CHECKPOINTS = 64
DEFAULT_ANSWER_RESERVE = 1024


@dataclass
class Turn:
    """The outcome of one answer."""

    completion: Completion
    dropped: int  # exchanges dropped from the front so the prompt fits


class Chat:
    """A conversation bound to an engine and a chat template."""

    def __init__(
        self,
        engine: Engine,
        template: ChatTemplate,
        sampling: SamplingConfig,
        *,
        system: str | None = None,
        messages: list[dict[str, str]] | None = None,
    ) -> None:
        self.engine = engine
        self.template = template
        self.sampling = sampling
        self.system = system
        self.messages: list[dict[str, str]] = list(messages or [])
        self.first_kept = 0  # messages before this index no longer fit the context
        self.last: Completion | None = None
        self.turn: Turn | None = None
        self.lookup = 0  # prompt-lookup draft tokens per step (0: plain decoding)
        self.think: ThinkMode = "auto"  # a thinking model's switch: on, off, or the template's default
        self.reasoning_budget: int | None = None  # thinking tokens per answer (None: no limit)
        self._ledger: list[tuple[str, list[int]]] = []

    # --- the conversation

    def visible(self) -> list[dict[str, str]]:
        """The messages the model sees: the system prompt, then what still fits."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.messages[self.first_kept :]

    def clear(self) -> None:
        """Start a new conversation (the system prompt stays)."""
        self.messages.clear()
        self.first_kept = 0
        self.last = None

    def undo(self) -> bool:
        """Drop the last exchange; False when there is none."""
        if not self.messages:
            return False
        if self.messages[-1]["role"] == "assistant":
            self.messages.pop()
        if self.messages and self.messages[-1]["role"] == "user":
            self.messages.pop()
        self.first_kept = min(self.first_kept, len(self.messages))
        return True

    def set_engine(self, engine: Engine, template: ChatTemplate) -> None:
        """Switch models, keeping the conversation (its tokens must be computed anew)."""
        self.engine, self.template = engine, template
        self._ledger.clear()
        self.first_kept = 0

    # --- tokens and context

    def _tokenize(self, text: str) -> list[int]:
        bos = self.template.bos_token
        starts_with_bos = bool(bos) and text.startswith(bos)
        return self.engine.tokenize(text, add_special=not starts_with_bos, parse_special=True)

    def _boundaries(self, tokens: list[int], text: bytes) -> dict[int, int]:
        """Byte offset in text where each token ends -> number of tokens up to there (while they match)."""
        ends: dict[int, int] = {}
        pos = 0
        after_special = True
        for i, token in enumerate(tokens):
            piece = self.engine.token_bytes(token, special=True)
            if text.startswith(piece, pos):
                pos += len(piece)
            elif after_special and piece.startswith(b" ") and text.startswith(piece[1:], pos):
                pos += len(piece) - 1  # the space SentencePiece puts before text that follows a special token
            elif i == 0:
                pass  # a BOS the tokenizer added that the text does not spell out
            else:
                break
            after_special = not self.engine.token_bytes(token)  # control tokens render as nothing
            ends[pos] = i + 1
        return ends

    def encode(self, text: str) -> list[int]:
        """Tokens for a rendered prompt: the exact tokens of an earlier turn where they still apply."""
        full = self._tokenize(text)
        if self.engine.capabilities.messages:
            return full  # only counted: the server renders and evaluates the conversation itself
        raw = text.encode("utf-8")
        new_ends: dict[int, int] | None = None
        for known_text, known_tokens in reversed(self._ledger):
            known_raw = known_text.encode("utf-8")
            common = _common_prefix(raw, known_raw)
            if common == 0:
                continue
            new_ends = new_ends if new_ends is not None else self._boundaries(full, raw)
            old_ends = self._boundaries(known_tokens, known_raw)
            shared = [b for b in new_ends if b in old_ends and b <= common]
            if shared:
                cut = max(shared)
                return known_tokens[: old_ends[cut]] + full[new_ends[cut] :]
        return full

    def _remember(self, text: str, tokens: list[int]) -> None:
        self._ledger = [*[c for c in self._ledger if c[0] != text][-(MAX_CHECKPOINTS - 1) :], (text, tokens)]

    def used_tokens(self) -> int:
        """Tokens the visible conversation takes (without the next answer's opener)."""
        if not self.visible():
            return 0
        return len(self.encode(self.template.render(self.visible(), add_generation_prompt=False)))

    def reserve(self) -> int:
        """Room kept free for the answer."""
        return min(self.sampling.max_tokens or DEFAULT_ANSWER_RESERVE, self.engine.n_ctx // 4)

    def _fit(self) -> tuple[str, list[int], int, ThinkPlan | None]:
        """Render the prompt, dropping the oldest exchanges until it fits with room to answer."""
        dropped = 0
        while True:
            # Thinking cannot be written under a grammar: constrained answers come at once.
            think = "off" if self.sampling.constraint is not None else self.think
            text = self.template.render(self.visible(), add_generation_prompt=True, think=think)
            text, plan = plan_for(text, self.template.think_format, think, self.reasoning_budget)
            tokens = self.encode(text)
            if len(tokens) + self.reserve() <= self.engine.n_ctx:
                return text, tokens, dropped, plan
            if len(self.messages) - self.first_kept <= 1:
                raise ContextOverflowError(
                    f"this message needs {len(tokens):,} tokens (plus {self.reserve():,} for the answer) but "
                    f"the context holds {self.engine.n_ctx:,}",
                    hint="shorten it, raise --ctx, or shorten the system prompt",
                )
            self.first_kept += 2 if self.messages[self.first_kept]["role"] == "user" else 1
            dropped += 1

    # --- answering

    def _sampling(self) -> SamplingConfig:
        """The sampling settings plus the stop strings the template's format needs."""
        extra = tuple(s for s in self.template.stop if s not in self.sampling.stop)
        return replace(self.sampling, stop=self.sampling.stop + extra) if extra else self.sampling

    def ask(self, text: str) -> Iterator[str]:
        """Add a user message and stream the answer; then read `turn`. Ctrl-C keeps the partial answer."""
        self.messages.append({"role": "user", "content": text})
        return self._answer()

    def retry(self) -> Iterator[str]:
        """Answer the last user message again."""
        if not self.messages:
            raise UsageError("nothing to retry yet")
        if self.messages[-1]["role"] == "assistant":
            self.messages.pop()
        return self._answer()

    def _answer(self) -> Iterator[str]:
        try:
            text, tokens, dropped, plan = self._fit()
        except ContextOverflowError:
            self.messages.pop()
            raise
        generation: Generation
        if self.engine.capabilities.messages:
            # The server renders the conversation: it gets the switch, and splits the thinking off itself.
            plan = ThinkPlan(THINK, budget=self.reasoning_budget, mode=self.think)
            sampling = replace(self.sampling, think=plan)
            generation = self.engine.chat(self.visible(), sampling)
        else:
            self._remember(text, tokens)
            generation = self.engine.generate(
                tokens, replace(self._sampling(), think=plan), lookup=self.lookup
            )
        try:
            yield from generation
        finally:
            generation.close()
            completion = generation.completion()
            answer = {"role": "assistant", "content": completion.text}
            if completion.reasoning:
                # Under the name templates read it by: each decides whether earlier thinking goes back in.
                answer["reasoning_content"] = completion.reasoning
            self.messages.append(answer)
            if completion.tokens:
                # The answer's exact tokens now sit in the cache after the prompt (thinking and all, spelled
                # with its markers); unless a stop string cut the text short of them.
                spelled = b"".join(self.engine.token_bytes(t, special=True) for t in completion.tokens)
                said = spelled.decode("utf-8", errors="replace")
                if said == completion.text or (plan is not None and said.endswith(completion.text)):
                    self._remember(text + said, tokens + completion.tokens)
            self.last = completion
            self.turn = Turn(completion, dropped)


def _common_prefix(a: bytes, b: bytes) -> int:
    """How many leading bytes a and b share."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo] and a[:hi] != b[:hi]: halve the gap with slice compares in C
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def with_sampling(config: SamplingConfig, name: str, value: str) -> SamplingConfig:
    """config with one setting changed from `/set NAME VALUE` (validated)."""
    fields = {
        "temperature": float,
        "top-k": int,
        "top-p": float,
        "min-p": float,
        "max-tokens": int,
        "seed": int,
        "repeat-penalty": float,
    }
    if name == "greedy":
        return replace(config, temperature=0.0)
    if name not in fields:
        raise UsageError(f"unknown setting {name!r}", hint=f"one of: greedy, {', '.join(fields)}")
    try:
        parsed = fields[name](value)
    except ValueError:
        raise UsageError(f"{name} needs a {fields[name].__name__}, got {value!r}") from None
    updated = replace(config, **{name.replace("-", "_"): parsed})
    updated.validate()
    return updated

"""A scripted engine for orchestration tests: queued answers, recorded calls, a toy tokenizer.

It implements the whole `Engine` contract: generate, and with takes_messages chat (the messages are
recorded; the answer comes from the queue); it neither speculates nor scores. Its tokenizer is greedy
longest-match over single bytes plus a few multi-byte pieces, while answers are emitted one byte per
token: so an answer re-tokenized from its text comes out as different tokens than were generated,
the case the chat's token ledger exists for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmcli.engine import Capabilities, Generation, Unsupported
from llmcli.engine.contract import Pieces
from llmcli.sampling import SamplingConfig

SPECIAL = ("<|im_start|>", "<|im_end|>")  # control tokens: only parsed with parse_special
PIECES = ("Paris", "France", "capital", "the ", "of ")  # what the tokenizer merges; answers never do


@dataclass
class Call:
    """One generate() or chat() call: the prompt's tokens (or the messages) and the sampling it ran with."""

    tokens: list[int]
    sampling: SamplingConfig
    messages: list[dict[str, str]] | None = None


@dataclass
class ScriptedEngine:
    """Answers from a queue, one byte-token at a time; every generate() and chat() call is recorded."""

    answers: list[str] = field(default_factory=list)
    n_ctx: int = 4096
    name: str = "scripted"
    takes_messages: bool = False
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._vocab: list[bytes] = [bytes([b]) for b in range(256)]
        self._vocab += [p.encode() for p in PIECES] + [s.encode() for s in SPECIAL]
        self._special = {s.encode(): 256 + len(PIECES) + i for i, s in enumerate(SPECIAL)}

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(messages=self.takes_messages)

    def kv_cache_bytes(self, n_ctx: int) -> int | None:
        return None

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        raw, pos = text.encode("utf-8"), 0
        tokens: list[int] = []
        pieces = sorted(range(256, 256 + len(PIECES)), key=lambda t: -len(self._vocab[t]))
        while pos < len(raw):
            token = next(
                (t for s, t in self._special.items() if parse_special and raw.startswith(s, pos)), None
            )
            if token is None:
                token = next((t for t in pieces if raw.startswith(self._vocab[t], pos)), raw[pos])
            tokens.append(token)
            pos += len(self._vocab[token])
        return tokens

    def token_bytes(self, token: int, special: bool = False) -> bytes:
        if token in self._special.values() and not special:
            return b""
        return self._vocab[token]

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.token_bytes(t) for t in tokens).decode("utf-8", errors="replace")

    def spelled(self, tokens: Sequence[int]) -> str:
        """The text tokens stand for, special tokens included (what a prompt said)."""
        return b"".join(self.token_bytes(t, special=True) for t in tokens).decode("utf-8")

    def generate(
        self, prompt: str | Sequence[int], sampling: SamplingConfig, *, lookup: int = 0
    ) -> Generation:
        tokens = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        self.calls.append(Call(tokens, sampling))
        answer = self.answers.pop(0)
        return Generation(sampling, lambda gen: self._emit(gen, answer, len(tokens)))

    def chat(self, messages: list[dict[str, str]], sampling: SamplingConfig) -> Generation:
        if not self.takes_messages:
            raise Unsupported("this scripted engine takes rendered prompts")
        self.calls.append(Call([], sampling, [dict(m) for m in messages]))
        answer = self.answers.pop(0)
        return Generation(sampling, lambda gen: self._emit(gen, answer, 0))

    def window_logits(self, tokens: Sequence[int], first: int) -> Iterator[tuple[int, Any]]:
        raise Unsupported("a scripted engine has no logits")

    def _emit(self, gen: Generation, answer: str, n_prompt: int) -> Pieces:
        gen.stats.prompt_tokens = n_prompt
        for byte in answer.encode("ascii"):  # one token per character
            gen.tokens.append(byte)
            gen.stats.generated_tokens += 1
            yield chr(byte)
        gen.finish_reason = "stop"

    def close(self) -> None:
        pass

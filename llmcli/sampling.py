"""Sampling settings and their exact mapping onto llama.cpp's sampler chain.

The rule users can rely on: a truncation flag given alone means exactly that method.
`--top-p 0.9` is nucleus sampling plus temperature and nothing else. Only when none of
`--top-k`, `--top-p`, `--min-p` is given do the defaults (top-p 0.95, min-p 0.05) apply.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from llmcli.errors import UsageError
from llmcli.reasoning import ThinkPlan
from llmcli.structured import Schema

DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.95
DEFAULT_MIN_P = 0.05
DEFAULT_REPEAT_LAST_N = 64
MAX_SEED = 0xFFFFFFFE  # llama.cpp reserves 0xFFFFFFFF for "pick a random seed"


@dataclass(frozen=True)
class Step:
    """One sampler of the chain, in the order llama.cpp applies them."""

    kind: str  # penalties | greedy | top_k | top_p | min_p | temp | dist
    args: tuple[float | int, ...] = ()


@dataclass(frozen=True)
class SamplingConfig:
    """What to sample and when to stop. `temperature == 0` means greedy (argmax)."""

    temperature: float = DEFAULT_TEMPERATURE
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    min_p: float = 0.0  # 0.0: off
    repeat_penalty: float = 1.0  # 1.0: off
    repeat_last_n: int = DEFAULT_REPEAT_LAST_N
    seed: int | None = None  # None: fresh randomness on every run
    max_tokens: int | None = None  # None: until end of generation or a full context
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False  # keep going past end-of-generation tokens (benchmarks)
    think: ThinkPlan | None = None  # for a thinking model: split its thinking off, within a budget
    constraint: Schema | None = None  # a grammar (and schema) the output must follow

    @classmethod
    def from_options(
        cls,
        *,
        greedy: bool = False,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        repeat_penalty: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
        stop: tuple[str, ...] | list[str] = (),
        ignore_eos: bool = False,
    ) -> SamplingConfig:
        """Build a validated config from user options, where None means "not given"."""
        none_given = top_k is None and top_p is None and min_p is None
        config = cls(
            temperature=0.0 if greedy else (DEFAULT_TEMPERATURE if temperature is None else temperature),
            top_k=top_k or 0,
            top_p=DEFAULT_TOP_P if none_given else (1.0 if top_p is None else top_p),
            min_p=DEFAULT_MIN_P if none_given else (min_p or 0.0),
            repeat_penalty=1.0 if repeat_penalty is None else repeat_penalty,
            seed=seed,
            max_tokens=max_tokens,
            stop=tuple(stop),
            ignore_eos=ignore_eos,
        )
        config.validate()
        return config

    @property
    def greedy(self) -> bool:
        """True when the chain reduces to argmax."""
        return self.temperature == 0.0

    def validate(self) -> None:
        """Raise UsageError for values llama.cpp would misinterpret."""
        checks = [
            (self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}"),
            (self.top_k >= 0, f"top-k must be >= 0 (0 turns it off), got {self.top_k}"),
            (0 < self.top_p <= 1, f"top-p must be in (0, 1], got {self.top_p}"),
            (0 <= self.min_p <= 1, f"min-p must be in [0, 1], got {self.min_p}"),
            (self.repeat_penalty > 0, f"repeat-penalty must be > 0, got {self.repeat_penalty}"),
            (self.repeat_last_n >= 0, f"repeat-last-n must be >= 0, got {self.repeat_last_n}"),
            (
                self.max_tokens is None or self.max_tokens > 0,
                f"max-tokens must be > 0, got {self.max_tokens}",
            ),
            (
                self.seed is None or 0 <= self.seed <= MAX_SEED,
                f"seed must be between 0 and {MAX_SEED}, got {self.seed}",
            ),
            (all(self.stop), "stop strings must not be empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def resolved(self) -> SamplingConfig:
        """This config with a concrete seed, drawn fresh when none was given."""
        if self.seed is not None:
            return self
        return replace(self, seed=secrets.randbelow(MAX_SEED + 1))

    def steps(self) -> list[Step]:
        """The llama.cpp sampler chain for this config, in application order."""
        chain: list[Step] = []
        if self.repeat_penalty != 1.0 and self.repeat_last_n != 0:
            # (last_n, repeat, frequency, presence): only the classic repeat penalty is exposed.
            chain.append(Step("penalties", (self.repeat_last_n, self.repeat_penalty, 0.0, 0.0)))
        if self.greedy:
            chain.append(Step("greedy"))
            return chain
        if self.top_k > 0:
            chain.append(Step("top_k", (self.top_k,)))
        if self.top_p < 1.0:
            chain.append(Step("top_p", (self.top_p, 1)))
        if self.min_p > 0.0:
            chain.append(Step("min_p", (self.min_p, 1)))
        chain.append(Step("temp", (self.temperature,)))
        seed = self.resolved().seed
        assert seed is not None
        chain.append(Step("dist", (seed,)))
        return chain

    def describe(self) -> str:
        """A short human summary, e.g. 'top-p 0.9, temperature 0.7, seed 42'."""
        parts = [
            {
                "penalties": f"repeat-penalty {self.repeat_penalty} (last {self.repeat_last_n})",
                "greedy": "greedy",
                "top_k": f"top-k {self.top_k}",
                "top_p": f"top-p {self.top_p}",
                "min_p": f"min-p {self.min_p}",
                "temp": f"temperature {self.temperature}",
                "dist": f"seed {self.seed if self.seed is not None else 'random'}",
            }[s.kind]
            for s in self.steps()
        ]
        return ", ".join(parts)

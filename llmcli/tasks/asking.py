"""One-shot requests under a fixed system prompt, the way summarize and translate talk to a model.

Every request starts a fresh conversation with the same system message, so the engine's KV
cache keeps that prefix: it is evaluated once per run, not once per chunk or file.
"""

from __future__ import annotations

from dataclasses import replace

from llmcli.chat import Chat
from llmcli.engine import Completion, Engine
from llmcli.sampling import SamplingConfig
from llmcli.templates import ChatTemplate


class Asker:
    """Sends single user messages under one system prompt and counts what they cost."""

    def __init__(
        self, engine: Engine, template: ChatTemplate, sampling: SamplingConfig, system: str, lookup: int = 0
    ) -> None:
        self.engine = engine
        self.sampling = sampling
        self.chat = Chat(engine, template, sampling, system=system)
        self.chat.lookup = lookup
        self.calls = self.prompt_tokens = self.generated_tokens = 0

    def count(self, text: str) -> int:
        """Tokens of text on its own (no BOS)."""
        return len(self.engine.tokenize(text, add_special=False))

    def overhead(self, message: str) -> int:
        """Tokens a prompt takes around `message`: the system prompt, the template's markers and message."""
        rendered = self.chat.template.render(
            [{"role": "system", "content": self.chat.system or ""}, {"role": "user", "content": message}],
            add_generation_prompt=True,
        )
        return self.count(rendered)

    def reset_counts(self) -> None:
        self.calls = self.prompt_tokens = self.generated_tokens = 0

    def ask(self, message: str, *, max_tokens: int | None = None) -> Completion:
        """The model's answer to message alone; Ctrl-C during generation raises KeyboardInterrupt."""
        self.chat.clear()
        self.chat.sampling = replace(self.sampling, max_tokens=max_tokens or self.sampling.max_tokens)
        for _ in self.chat.ask(message):
            pass
        turn = self.chat.turn
        assert turn is not None
        completion = turn.completion
        if completion.finish_reason == "interrupted":
            raise KeyboardInterrupt
        self.calls += 1
        self.prompt_tokens += completion.stats.prompt_tokens
        self.generated_tokens += completion.stats.generated_tokens
        return completion

"""One-shot requests under a fixed system prompt, the way summarize and translate talk to a model.

Every request starts a fresh conversation with the same system message, so the engine's KV
cache keeps that prefix: it is evaluated once per run, not once per chunk or file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from llmcli.chat.conversation import Chat
from llmcli.chat.templates import ChatTemplate
from llmcli.engine import Completion, Engine
from llmcli.errors import GenerationError
from llmcli.reasoning import Thinking
from llmcli.sampling import SamplingConfig


@dataclass(frozen=True)
class TaskSetup:
    """The model a task asks, and how: engine, chat template, sampling, prompt lookup, thinking, notes."""

    engine: Engine
    template: ChatTemplate
    sampling: SamplingConfig
    lookup: int = 0
    thinking: Thinking | None = None
    notify: Callable[[str], None] | None = None
    # Told (done, total) as the requests of one ask_all finish, when there are several (a renderer shows it).
    meter: Callable[[int, int], None] | None = None

    def note(self, message: str) -> None:
        """Tell message to notify, if any (a task's plan, shown with --verbose)."""
        if self.notify is not None:
            self.notify(message)


class Asker:
    """Sends single user messages under one system prompt and counts what they cost."""

    def __init__(self, setup: TaskSetup, system: str) -> None:
        self.engine = setup.engine
        self.sampling = setup.sampling
        self.thinking = setup.thinking or Thinking("off")
        self.chat = self._new_chat(setup.template, system)
        self.chat.lookup = setup.lookup
        self.meter = setup.meter
        self.calls = self.prompt_tokens = self.generated_tokens = 0

    def _new_chat(self, template: ChatTemplate, system: str | None) -> Chat:
        chat = Chat(self.engine, template, self.sampling, system=system)
        chat.think, chat.reasoning_budget = self.thinking.mode, self.thinking.budget
        return chat

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
        return self._count(self._ask_in(self.chat, message, max_tokens))

    def ask_all(self, requests: Sequence[tuple[str, int | None]]) -> list[Completion]:
        """Answers to (message, max_tokens) requests, in order; at once on a parallel engine. The meter
        hears how many are done as they finish."""
        meter = self.meter if len(requests) > 1 else None
        if meter is not None:
            meter(0, len(requests))
        parallel = min(self.engine.capabilities.parallel, len(requests))
        if parallel <= 1:
            answers = []
            for message, limit in requests:
                answers.append(self.ask(message, max_tokens=limit))
                if meter is not None:
                    meter(len(answers), len(requests))
            return answers
        from concurrent.futures import ThreadPoolExecutor, as_completed

        def one(request: tuple[str, int | None]) -> Completion:
            chat = self._new_chat(self.chat.template, self.chat.system)
            return self._ask_in(chat, *request)

        with ThreadPoolExecutor(parallel, thread_name_prefix="llmcli-ask") as pool:
            futures = [pool.submit(one, r) for r in requests]
            try:
                for done, _ in enumerate(as_completed(futures), 1):
                    if meter is not None:
                        meter(done, len(requests))
                return [self._count(f.result()) for f in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def _ask_in(self, chat: Chat, message: str, max_tokens: int | None) -> Completion:
        chat.clear()
        chat.sampling = replace(self.sampling, max_tokens=max_tokens or self.sampling.max_tokens)
        chat.lookup = self.chat.lookup
        for _ in chat.ask(message):
            pass
        turn = chat.turn
        assert turn is not None
        completion = turn.completion
        if completion.finish_reason == "interrupted":
            raise KeyboardInterrupt
        if completion.reasoning and not completion.text.strip():
            # A half-thought is no summary or translation: the file fails, and a rerun can redo it.
            still = (
                "still thinking"
                if completion.finish_reason == "length"
                else "done thinking but gave no answer"
            )
            raise GenerationError(
                f"the model was {still} after {completion.stats.reasoning_tokens:,} thinking tokens",
                hint="use --think off, or a --reasoning-budget well below the answer's token limit (-n)",
            )
        return completion

    def _count(self, completion: Completion) -> Completion:
        self.calls += 1
        self.prompt_tokens += completion.stats.prompt_tokens
        self.generated_tokens += completion.stats.generated_tokens
        return completion

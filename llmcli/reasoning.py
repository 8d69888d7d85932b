"""Thinking models: how their thinking is marked, switched off or budgeted, and split from the answer.

Reasoning models write their thinking between markers (`<think>…</think>`; gpt-oss's harmony
channels; Gemma 4's thought channel) before the answer. Their chat templates take a switch
(`enable_thinking`, `reasoning_effort`). Here: the marker formats, the prompt-side switch (the
template's own where it has one, else a closed, empty thinking block appended to the prompt), and
a streaming splitter that turns generated text into `Thought` pieces and answer pieces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from llmcli.errors import UsageError

ThinkMode = Literal["on", "off", "auto"]
MODES: tuple[ThinkMode, ...] = ("on", "off", "auto")


class Thought(str):
    """A piece of the model's thinking (a plain `str` piece is answer text)."""

    __slots__ = ()


@dataclass(frozen=True)
class ThinkFormat:
    """How a model family marks its thinking."""

    name: str
    start: str  # opens the thinking
    end: str  # closes it
    answer: str = ""  # opens the answer after the end (harmony's final channel); "" where it just follows
    gap: str = ""  # what the format puts between the thinking block and the answer

    @property
    def forced_end(self) -> str:
        """What a budget that ran out appends: the end marker, and the answer's opener where there is one."""
        return self.end + self.answer

    @property
    def closed(self) -> str:
        """An empty thinking block, as the templates' own switches write it."""
        return self.start + "\n" + ("\n" if self.gap else "") + self.end + self.answer + self.gap


THINK = ThinkFormat("think", "<think>", "</think>", gap="\n\n")
HARMONY = ThinkFormat(
    "harmony",
    "<|channel|>analysis<|message|>",
    "<|end|>",
    answer="<|start|>assistant<|channel|>final<|message|>",
)
GEMMA4 = ThinkFormat("gemma4", "<|channel>thought", "<channel|>")
FORMATS = (HARMONY, GEMMA4, THINK)  # in detection order: a harmony template may mention <think> too


def detect_format(template_source: str) -> ThinkFormat | None:
    """The thinking format a chat template uses, or None for a model that does not think."""
    if "<|channel|>analysis" in template_source:
        return HARMONY
    if "<|channel>" in template_source and "<channel|>" in template_source:
        return GEMMA4
    if "</think>" in template_source:
        return THINK
    return None


def switch_kwargs(template_source: str, mode: ThinkMode) -> dict[str, object]:
    """What to pass the template for a mode: nothing for auto (the template's default)."""
    if mode == "auto":
        return {}
    kwargs: dict[str, object] = {}
    if "enable_thinking" in template_source:
        kwargs["enable_thinking"] = mode == "on"
    if "reasoning_effort" in template_source and mode == "off":
        kwargs["reasoning_effort"] = "low"  # gpt-oss has no "off": the least, then an empty block below
    return kwargs


def ends_open(prompt: str, fmt: ThinkFormat) -> bool:
    """Whether the prompt ends inside a thinking block (the template opened it for the model)."""
    start = prompt.rfind(fmt.start)
    return start >= 0 and prompt.find(fmt.end, start + len(fmt.start)) < 0


def switch_off(prompt: str, fmt: ThinkFormat) -> str:
    """The prompt with thinking closed at once: an open block ended, else an empty block added (unless the
    template's own switch already wrote one)."""
    if ends_open(prompt, fmt):
        return prompt + fmt.end + fmt.answer + fmt.gap
    if prompt.rstrip().endswith(fmt.end + fmt.answer):
        return prompt
    return prompt + fmt.closed


@dataclass(frozen=True)
class ThinkPlan:
    """What a generation does with thinking: where it starts, and how many thinking tokens it may take.

    budget None: unlimited; 0: thinking is closed as soon as it opens.
    """

    format: ThinkFormat
    open: bool = False  # the prompt ends inside a thinking block
    budget: int | None = None
    mode: ThinkMode = "auto"  # what was asked for (a server applies it itself)


def plan_for(
    prompt: str, fmt: ThinkFormat | None, mode: ThinkMode, budget: int | None
) -> tuple[str, ThinkPlan | None]:
    """The prompt to send and the plan for it. `off` closes thinking in the prompt (a template that has its
    own switch was already rendered with it) and budgets 0 tokens in case the model opens it anyway."""
    if fmt is None:
        return prompt, None
    if mode == "off":
        prompt, budget = switch_off(prompt, fmt), 0
    return prompt, ThinkPlan(fmt, ends_open(prompt, fmt), budget, mode)


@dataclass(frozen=True)
class Thinking:
    """What the user asked of a thinking model: --think and --reasoning-budget (None: no limit)."""

    mode: ThinkMode = "auto"
    budget: int | None = None

    @classmethod
    def parse(cls, mode: str, budget: int | None) -> Thinking:
        """Validated settings from option values."""
        if mode not in MODES:
            raise UsageError(f"think must be on, off or auto, got {mode!r}")
        if budget is not None and budget < 0:
            raise UsageError(f"reasoning-budget must be >= 0 (0 skips thinking), got {budget}")
        return cls(mode, budget)  # type: ignore[arg-type]


_BLANK = re.compile(r"\s*")


class ThoughtSplitter:
    """Streamed model text in, `Thought` and answer pieces out; markers never come out.

    A marker split across pieces is held back until it is complete or cannot be one. Whitespace
    around the thinking (and before the answer) is dropped.
    """

    def __init__(self, fmt: ThinkFormat, *, thinking: bool = False) -> None:
        self.fmt = fmt
        self.state: Literal["before", "thinking", "after", "answer"] = "thinking" if thinking else "before"
        self._buf = ""
        self._thought_started = False
        self._answer_started = False

    @property
    def thinking(self) -> bool:
        """Whether the text now being generated is thinking."""
        return self.state == "thinking"

    def feed(self, text: str) -> list[str]:
        """Add text; return the pieces it completes (Thought or str)."""
        self._buf += text
        out: list[str] = []
        while self._buf:
            before = (self.state, len(self._buf))
            self._step(out)
            if (self.state, len(self._buf)) == before:
                break  # waiting for more text
        return [p for p in out if p]

    def finish(self) -> list[str]:
        """Release what is held at the end of generation."""
        held, self._buf = self._buf, ""
        if not held:
            return []
        if self.state == "thinking":
            return [p for p in [self._thought(held)] if p]
        if self.state == "after":
            return []  # an answer opener cut short: no answer text in it
        return [p for p in [self._answer(held.lstrip() if self.state == "before" else held)] if p]

    def _step(self, out: list[str]) -> None:
        fmt, buf, final = self.fmt, self._buf, _final(self.fmt)
        if self.state == "before":
            lead = _BLANK.match(buf).end()  # type: ignore[union-attr]
            rest = buf[lead:]
            if rest.startswith(fmt.start):
                self._buf, self.state = rest[len(fmt.start) :], "thinking"
            elif final and rest.startswith(final):
                self._buf, self.state = rest[len(final) :], "answer"
            elif rest and not fmt.start.startswith(rest) and not (final and final.startswith(rest)):
                self.state = "answer"
        elif self.state == "thinking":
            end = buf.find(fmt.end)
            if end >= 0:
                out.append(self._thought(buf[:end]))
                self._buf, self.state = buf[end + len(fmt.end) :], "after"
            else:
                keep = _partial(buf, fmt.end)
                out.append(self._thought(buf[: len(buf) - keep]))
                self._buf = buf[len(buf) - keep :]
        elif self.state == "after":
            if not fmt.answer:
                self.state = "answer"
                return
            for opener in (fmt.answer, final):
                at = buf.find(opener)
                if at >= 0:
                    self._buf, self.state = buf[at + len(opener) :], "answer"
                    return
            # Anything before the answer's opener (another channel's header) is not the answer.
            keep = max(_partial(buf, fmt.answer), _partial(buf, final))
            self._buf = buf[len(buf) - keep :]
        else:
            self._buf = ""
            out.append(self._answer(buf))

    def _thought(self, text: str) -> str:
        if not self._thought_started:
            text = text.lstrip()
            self._thought_started = bool(text)
        return Thought(text) if text else ""

    def _answer(self, text: str) -> str:
        if not self._answer_started:
            text = text.lstrip()
            self._answer_started = bool(text)
        return text


def _final(fmt: ThinkFormat) -> str:
    """The answer opener without its `<|start|>assistant` head (harmony lets the model write either)."""
    return fmt.answer[fmt.answer.find("<|channel|>") :] if "<|channel|>" in fmt.answer else fmt.answer


def _partial(buf: str, marker: str) -> int:
    """Length of the longest suffix of buf that is a proper prefix of marker."""
    for k in range(min(len(marker) - 1, len(buf)), 0, -1):
        if marker.startswith(buf[-k:]):
            return k
    return 0

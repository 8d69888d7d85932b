"""Chat templates: render a conversation into the prompt text a model expects, safely.

Templates are the Jinja strings Hugging Face transformers uses (`tokenizer.chat_template` in a GGUF).
They come from downloaded files, so they run in Jinja's immutable sandbox with the same settings,
globals and filters transformers gives them, and every failure becomes one `TemplateError` line.

A model file without a template gets one inferred from the special tokens its vocabulary has (as
llama.cpp infers a format from a template's markers), else a plain template with no markers at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NoReturn, Protocol

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from llmcli.errors import UsageError
from llmcli.reasoning import ThinkFormat, ThinkMode, detect_format, switch_kwargs

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# The fallback for a vocabulary with no known chat markers: text a base model has seen plenty of.
PLAIN = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] | trim + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] | trim + '\n\n' }}"
    "{% else %}{{ 'Assistant: ' + message['content'] | trim + '\n\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
PLAIN_STOP = ("\nUser:",)  # a base model goes on to write the user's next turn

_WHAT = {
    "gguf": "the model's chat template",
    "registry": "the chat_template override in models.toml",
    "fallback": "the built-in plain template",
}
_HINT = "pass a template override in models.toml (chat_template = ...) or use a model with a working template"
_PROBE = "llmcli-system-probe-7f3a"


class TemplateError(UsageError):
    """A chat template that cannot be compiled or rendered."""


class _Raised(jinja2.TemplateError):
    """The template called raise_exception(): it rejected the conversation on purpose."""


def _raise_exception(message: str) -> NoReturn:
    raise _Raised(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Jinja's own tojson HTML-escapes and sorts keys; templates expect transformers' plain json.dumps.
    return json.dumps(
        value,
        ensure_ascii=ensure_ascii,
        indent=indent,
        separators=separators,
        sort_keys=sort_keys,
        default=_json_default,
    )


class _GenerationTag(Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant spans for transformers; render the body."""

    tags = {"generation"}  # noqa: RUF012 - the type Jinja declares

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body).set_lineno(lineno)


class _Sandbox(ImmutableSandboxedEnvironment):
    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        # The default is an Undefined that prints as "", which would hide a probe for internals.
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


class _NoneIterable:
    """`tools` and `documents` when there are none: None to tests, comparisons and tojson, as
    transformers passes them, but an empty loop where a template iterates them unconditionally
    (tool_use variants do), as llama.cpp renders them: both its Jinja engines loop over a missing
    `tools` zero times, where Jinja raises "'NoneType' object is not iterable"."""

    __slots__ = ()

    def __iter__(self) -> Any:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, _NoneIterable)

    def __hash__(self) -> int:
        return hash(None)

    def __str__(self) -> str:
        return "None"


_NONE = _NoneIterable()


def _is_none(value: Any) -> bool:
    return value is None or isinstance(value, _NoneIterable)


def _json_default(value: Any) -> None:
    if isinstance(value, _NoneIterable):
        return None
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_ENV = _Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, _GenerationTag])
_ENV.filters["tojson"] = _tojson
_ENV.tests["none"] = _is_none
_ENV.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)


@lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template, the special tokens it may print, and where it came from."""

    source: str  # the Jinja text
    bos_token: str = ""
    eos_token: str = ""
    origin: str = "gguf"  # "gguf" | "registry" | "inferred" | "fallback"
    family: str = ""  # for an inferred template: the format it follows ("gemma", "chatml", ...)
    stop: tuple[str, ...] = ()  # stop strings the format needs (a plain template has no end marker)

    @property
    def think_format(self) -> ThinkFormat | None:
        """How this template's model marks its thinking (None: it does not think)."""
        return detect_format(self.source)

    @property
    def label(self) -> str:
        """Where the template came from, for /show and `models show`: "gguf", "inferred (gemma)", ..."""
        return f"{self.origin} ({self.family})" if self.family else self.origin

    def describe(self) -> str:
        """The template in words, for a note: "the inferred gemma template", ..."""
        if self.origin == "inferred":
            return f"the {self.family} template, inferred from its special tokens"
        if self.origin == "fallback":
            return "a plain 'User:'/'Assistant:' template (its vocabulary has no known chat markers)"
        return _WHAT.get(self.origin, "the chat template")

    def render(
        self, messages: list[dict[str, str]], *, add_generation_prompt: bool = True, think: ThinkMode = "auto"
    ) -> str:
        """The prompt text for `messages` (dicts with `role` and `content`).

        `think` sets the template's own thinking switch where it has one (auto: its default).
        A template that rejects or silently drops the system role gets the system prompt folded
        into the first user message instead. Raises TemplateError on any template failure.
        """
        switches = switch_kwargs(self.source, think)
        has_system = any(m["role"] == "system" for m in messages)
        if has_system and _drops_system(self.source):
            messages = _fold_system(messages)
            has_system = False
        try:
            return self._render(messages, add_generation_prompt, switches)
        except _Raised as exc:
            if not has_system:
                raise self._error(exc) from None
        try:
            return self._render(_fold_system(messages), add_generation_prompt, switches)
        except _Raised as exc:
            raise self._error(exc) from None

    def _render(
        self, messages: list[dict[str, str]], add_generation_prompt: bool, switches: dict[str, object]
    ) -> str:
        """Render once; raise_exception() propagates as _Raised, anything else as TemplateError."""
        try:
            template = _compile(self.source)
        except jinja2.TemplateSyntaxError as exc:
            raise self._error(exc, f"syntax error on line {exc.lineno}: {exc.message}") from None
        try:
            return template.render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                tools=_NONE,
                documents=_NONE,
                # Firefunction v2 concatenates these; llama.cpp passes them as here when there are no tools.
                functions="",
                datetime=datetime.now().strftime("%b %d %Y %H:%M:%S GMT"),
                **switches,
            )
        except _Raised:
            raise
        except Exception as exc:  # a template is foreign code: whatever it raises is its failure
            raise self._error(exc) from None

    def _error(self, exc: Exception, reason: str | None = None) -> TemplateError:
        reason = " ".join((reason or str(exc) or type(exc).__name__).split())
        hint = "fix or remove chat_template in models.toml" if self.origin == "registry" else _HINT
        what = f"the inferred {self.family} template" if self.origin == "inferred" else None
        return TemplateError(
            f"{what or _WHAT.get(self.origin, 'the chat template')} failed: {reason}", hint=hint
        )


@lru_cache(maxsize=32)
def _drops_system(source: str) -> bool:
    """Whether the template renders a system message without its text (Phi-3's GGUF template does)."""
    probe = [{"role": "system", "content": _PROBE}, {"role": "user", "content": "hi"}]
    try:
        text = ChatTemplate(source)._render(probe, True, {})
    except Exception:  # rejecting the system role is handled after the real render fails
        return False
    return _PROBE not in text


def _fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The conversation with its system text moved to the start of the first user message."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system" and m["content"])
    rest = [m for m in messages if m["role"] != "system"]
    if not system:
        return rest
    for i, message in enumerate(rest):
        if message["role"] == "user":
            rest[i] = {**message, "content": f"{system}\n\n{message['content']}"}
            return rest
    return [{"role": "user", "content": system}, *rest]


# --- templates inferred from a vocabulary ----------------------------------------------------------


class Tokenizer(Protocol):
    """The part of an engine or vocabulary that tells which special tokens a model has."""

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]: ...

    def token_bytes(self, token: int, special: bool = False) -> bytes: ...


def is_special_token(tokenizer: Tokenizer, text: str) -> bool:
    """Whether text is one token of the vocabulary that renders back as exactly that text."""
    tokens = tokenizer.tokenize(text, add_special=False, parse_special=True)
    return len(tokens) == 1 and tokenizer.token_bytes(tokens[0], special=True) == text.encode("utf-8")


@dataclass(frozen=True)
class Family:
    """A chat format llama.cpp knows: the special tokens that identify it, and a template for it."""

    name: str
    markers: tuple[str, ...]  # every one must be a special token of the vocabulary
    source: str  # Jinja, equivalent to the family's real templates
    architectures: tuple[str, ...] = ()  # GGUF architectures whose models usually speak it


# Real templates skip or reject the system role where the format has none (Gemma, Mistral before v7):
# these skip it, and ChatTemplate.render folds it into the first user message. The formats follow
# the real templates (../shared/templates) and llama.cpp's built-in ones (src/llama-chat.cpp).
_GPT_OSS_SYSTEM = (
    "You are ChatGPT, a large language model trained by OpenAI.\\nKnowledge cutoff: 2024-06\\n"
    "Current date: ' + strftime_now('%Y-%m-%d') + '\\n\\nReasoning: medium\\n\\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message."
)
FAMILIES: tuple[Family, ...] = (
    Family(
        "gpt-oss",
        ("<|start|>", "<|message|>", "<|channel|>", "<|end|>"),
        "{{ '<|start|>system<|message|>" + _GPT_OSS_SYSTEM + "<|end|>' }}"
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}"
        "{{ '<|start|>developer<|message|># Instructions\\n\\n' + message['content'] + '\\n\\n<|end|>' }}"
        "{% elif message['role'] == 'user' %}"
        "{{ '<|start|>user<|message|>' + message['content'] + '<|end|>' }}"
        "{% elif message['role'] == 'assistant' %}"
        "{{ '<|start|>assistant<|channel|>final<|message|>' + message['content'] + '<|end|>' }}"
        "{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start|>assistant' }}{% endif %}",
        ("gpt-oss",),
    ),
    Family(
        "phi-4",
        ("<|im_start|>", "<|im_sep|>", "<|im_end|>"),
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + '<|im_end|>' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}",
        ("phi3",),
    ),
    Family("chatml", ("<|im_start|>", "<|im_end|>"), CHATML, ("qwen2", "qwen3", "qwen2moe", "qwen3moe")),
    Family(
        "gemma",
        ("<start_of_turn>", "<end_of_turn>"),
        "{{ bos_token }}{% for message in messages %}"
        "{% if message['role'] == 'user' or message['role'] == 'assistant' %}"
        "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else 'user') + '\\n'"
        " + message['content'] | trim + '<end_of_turn>\\n' }}"
        "{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}",
        ("gemma", "gemma2", "gemma3", "gemma3n"),
    ),
    Family(
        "llama3",
        ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        "{{ bos_token }}{% for message in messages %}"
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
        " + message['content'] | trim + '<|eot_id|>' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
        ("llama",),
    ),
    Family(
        "phi-3",
        ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
        "{% for message in messages %}{% if message['content'] %}"
        "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
        "{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
        ("phi3",),
    ),
    Family(
        "deepseek",
        ("<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"),
        "{{ bos_token }}{% for message in messages %}"
        "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
        "{% elif message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
        "{% elif message['role'] == 'assistant' %}"
        "{{ '<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>' }}"
        "{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<｜Assistant｜>' }}{% endif %}",
        ("deepseek2",),
    ),
    Family(  # the model answers right after [/INST]: there is no generation prompt
        "mistral-v7",
        ("[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[INST]", "[/INST]"),
        "{{ bos_token }}{% for message in messages %}"
        "{% if message['role'] == 'system' %}"
        "{{ '[SYSTEM_PROMPT]' + message['content'] + '[/SYSTEM_PROMPT]' }}"
        "{% elif message['role'] == 'user' %}{{ '[INST]' + message['content'] + '[/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
        "{% endif %}{% endfor %}",
        ("llama", "mistral3"),
    ),
    Family(
        "mistral",
        ("[INST]", "[/INST]"),
        "{{ bos_token }}{% for message in messages %}"
        "{% if message['role'] == 'user' %}{{ '[INST]' + message['content'] + '[/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
        "{% endif %}{% endfor %}",
        ("llama",),
    ),
    Family(
        "command-r",
        (
            "<|START_OF_TURN_TOKEN|>",
            "<|END_OF_TURN_TOKEN|>",
            "<|SYSTEM_TOKEN|>",
            "<|USER_TOKEN|>",
            "<|CHATBOT_TOKEN|>",
        ),
        "{{ bos_token }}{% set roles = {'system': 'SYSTEM', 'user': 'USER', 'assistant': 'CHATBOT'} %}"
        "{% for message in messages %}{% if message['role'] in roles %}"
        "{{ '<|START_OF_TURN_TOKEN|><|' + roles[message['role']] + '_TOKEN|>' + message['content'] | trim"
        " + '<|END_OF_TURN_TOKEN|>' }}"
        "{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' }}{% endif %}",
        ("command-r", "cohere2"),
    ),
    Family(
        "granite",
        ("<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>"),
        "{% for message in messages %}"
        "{{ '<|start_of_role|>' + message['role'] + '<|end_of_role|>'"
        " + message['content'] + '<|end_of_text|>\\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_of_role|>assistant<|end_of_role|>' }}{% endif %}",
        ("granite", "granitemoe", "granitehybrid"),
    ),
)


def infer_family(tokenizer: Tokenizer, architecture: str | None = None) -> Family | None:
    """The chat format whose markers are all special tokens of the vocabulary, None if none is.

    Formats usual for the architecture are tried first; among the rest, the order above (the most
    specific marker sets first). A marker the model does not know would reach it as plain text.
    """
    known: dict[str, bool] = {}

    def has(marker: str) -> bool:
        if marker not in known:
            known[marker] = is_special_token(tokenizer, marker)
        return known[marker]

    ordered = sorted(FAMILIES, key=lambda f: architecture not in f.architectures)
    return next((f for f in ordered if all(has(m) for m in f.markers)), None)


def pick_template(
    gguf_template: str | None,
    override: str | None = None,
    *,
    bos_token: str = "",
    eos_token: str = "",
    tokenizer: Tokenizer | None = None,
    architecture: str | None = None,
) -> ChatTemplate:
    """Registry override first, then the GGUF's template, then one inferred from the vocabulary,
    then the plain fallback.

    An explicit `chat_template` in models.toml is a curator's or user's decision to replace the
    template the model ships with, so it wins. Without a tokenizer nothing can be inferred.
    """
    if override and override.strip():
        return ChatTemplate(override, bos_token, eos_token, origin="registry")
    if gguf_template and gguf_template.strip():
        return ChatTemplate(gguf_template, bos_token, eos_token, origin="gguf")
    family = infer_family(tokenizer, architecture) if tokenizer is not None else None
    if family is not None:
        return ChatTemplate(family.source, bos_token, eos_token, origin="inferred", family=family.name)
    return ChatTemplate(PLAIN, bos_token, eos_token, origin="fallback", stop=PLAIN_STOP)

"""Chat templates: render a conversation into the prompt text a model expects, safely.

Templates are the Jinja strings Hugging Face transformers uses (`tokenizer.chat_template` in a GGUF).
They come from downloaded files, so they run in Jinja's immutable sandbox with the same settings,
globals and filters transformers gives them, and every failure becomes one `TemplateError` line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NoReturn

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from llmcli.errors import UsageError

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_WHAT = {
    "gguf": "the model's chat template",
    "registry": "the chat_template override in models.toml",
    "chatml": "the built-in ChatML template",
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
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
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


_ENV = _Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, _GenerationTag])
_ENV.filters["tojson"] = _tojson
_ENV.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)


@lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template and the special tokens it may print."""

    source: str  # the Jinja text
    bos_token: str = ""
    eos_token: str = ""
    origin: str = "gguf"  # "gguf" | "registry" | "chatml": where it came from, for /show

    def render(self, messages: list[dict[str, str]], *, add_generation_prompt: bool = True) -> str:
        """The prompt text for `messages` (dicts with `role` and `content`).

        A template that rejects or silently drops the system role gets the system prompt folded
        into the first user message instead. Raises TemplateError on any template failure.
        """
        has_system = any(m["role"] == "system" for m in messages)
        if has_system and _drops_system(self.source):
            messages = _fold_system(messages)
            has_system = False
        try:
            return self._render(messages, add_generation_prompt)
        except _Raised as exc:
            if not has_system:
                raise self._error(exc) from None
        try:
            return self._render(_fold_system(messages), add_generation_prompt)
        except _Raised as exc:
            raise self._error(exc) from None

    def _render(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
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
                tools=None,
                documents=None,
            )
        except _Raised:
            raise
        except Exception as exc:  # a template is foreign code: whatever it raises is its failure
            raise self._error(exc) from None

    def _error(self, exc: Exception, reason: str | None = None) -> TemplateError:
        reason = " ".join((reason or str(exc) or type(exc).__name__).split())
        hint = "fix or remove chat_template in models.toml" if self.origin == "registry" else _HINT
        return TemplateError(f"{_WHAT.get(self.origin, 'the chat template')} failed: {reason}", hint=hint)


@lru_cache(maxsize=32)
def _drops_system(source: str) -> bool:
    """Whether the template renders a system message without its text (Phi-3's GGUF template does)."""
    probe = [{"role": "system", "content": _PROBE}, {"role": "user", "content": "hi"}]
    try:
        text = ChatTemplate(source)._render(probe, True)
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


def pick_template(
    gguf_template: str | None, override: str | None = None, *, bos_token: str = "", eos_token: str = ""
) -> ChatTemplate:
    """Registry override first, then the GGUF's template, then ChatML.

    An explicit `chat_template` in models.toml is a curator's or user's decision to replace the
    template the model ships with, so it wins; a model without a template gets ChatML.
    """
    if override and override.strip():
        return ChatTemplate(override, bos_token, eos_token, origin="registry")
    if gguf_template and gguf_template.strip():
        return ChatTemplate(gguf_template, bos_token, eos_token, origin="gguf")
    return ChatTemplate(CHATML, bos_token, eos_token, origin="chatml")

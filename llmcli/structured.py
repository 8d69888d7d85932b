"""Structured output: JSON Schemas (from a file, inline JSON or a short field list), GBNF grammar files, and
validation of what the model wrote (engine/grammar.py turns a schema into its grammar).

The grammar makes output valid by construction (llama.cpp's grammar sampler enforces it token by
token); the schema is checked again after generation with `jsonschema`, since a cut-short answer
(-n, the context) is not valid JSON at all. llama.cpp's JSON-Schema converter ignores keywords it
cannot express, so those are refused up front, by name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcli.errors import LlmcliError, UsageError

_DSL_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "list": {"type": "array", "items": {"type": "string"}},
}
_FIELD = re.compile(r"^([A-Za-z_][\w-]*)\s*(?::\s*(.+))?$")
_LIST_OF = re.compile(r"^list\s*\[\s*(\w+)\s*\]$")
ANY_OBJECT: dict[str, Any] = {"type": "object"}


class SchemaError(UsageError):
    """A schema that cannot be read, or that llama.cpp's grammar cannot express."""


@dataclass(frozen=True)
class Schema:
    """A GBNF grammar the output must follow, and the JSON Schema it enforces (None for a bare --grammar)."""

    schema: dict[str, Any] | None
    grammar: str

    def check(self, text: str, *, tidy: bool = False) -> Any:
        """The value text holds, validated against the schema; a one-line OutputError otherwise.

        tidy: strip the whitespace around every string in it first (a model's stray space before a
        closing quote is no part of a record's value).
        """
        import jsonschema

        if self.schema is None:
            return text
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OutputError(f"the output is not valid JSON ({exc.msg} at character {exc.pos})") from None
        if tidy:
            value = _stripped(value)
        try:
            jsonschema.validate(value, self.schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
            raise OutputError(f"the output does not match the schema at {where}: {exc.message}") from None
        return value


def _stripped(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return [_stripped(v) for v in value]
    if isinstance(value, dict):
        return {k: _stripped(v) for k, v in value.items()}
    return value


class OutputError(LlmcliError):
    """Generated text that is not valid under the schema (cut short by -n or the context, say)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="raise -n (or --ctx) so the whole record fits")


def parse_fields(text: str) -> dict[str, Any]:
    """The shell's short form: `title, date: date, people: list, amount: number` -> an object schema.

    Each field is `name` (a string) or `name: type`, type one of str, int, number, bool, date, list
    (of strings) or list[TYPE]. Every field is required.
    """
    properties: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",")):
        match = _FIELD.match(part)
        if not part or match is None:
            raise SchemaError(
                f"cannot read the field {part!r}",
                hint="write fields as 'name' or 'name: type', comma-separated",
            )
        name, kind = match[1], (match[2] or "str").strip().lower()
        if inner := _LIST_OF.match(kind):
            if inner[1] not in _DSL_TYPES or inner[1] == "list":
                raise SchemaError(f"unknown type {inner[1]!r} in the field {name!r}", hint=_types_hint())
            properties[name] = {"type": "array", "items": _DSL_TYPES[inner[1]]}
        elif kind in _DSL_TYPES:
            properties[name] = dict(_DSL_TYPES[kind])
        else:
            raise SchemaError(f"unknown type {kind!r} in the field {name!r}", hint=_types_hint())
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _types_hint() -> str:
    return f"types: {', '.join(sorted(_DSL_TYPES))}, list[TYPE]"


def load_schema(arg: str) -> dict[str, Any]:
    """A schema from --schema: a JSON file's path, inline JSON, or the short field list."""
    text = arg.strip()
    if not text.startswith("{"):
        path = Path(arg).expanduser()
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SchemaError(f"cannot read the schema file {arg}: {exc}") from None
        elif text.endswith(".json"):
            raise SchemaError(f"the schema file {arg} does not exist")
        else:
            return parse_fields(text)
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"the schema is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(schema, dict):
        raise SchemaError("the schema must be a JSON object")
    return schema


def read_grammar(path: Path) -> str:
    """A GBNF grammar file's text (checked when the sampler is made)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the grammar file {path}: {exc}") from None
    if not re.search(r"^\s*root\s*::=", text, re.MULTILINE):
        raise UsageError(
            f"the grammar {path} has no `root ::=` rule", hint="GBNF starts from the rule named root"
        )
    return text

"""Grammars for JSON Schemas: llama.cpp's converter, with the keywords it would ignore refused by name.

llama.cpp's JSON-Schema-to-GBNF converter ignores keywords it cannot express, which would loosen the
output without a word, so those are refused up front.
"""

from __future__ import annotations

import json
from typing import Any

from llmcli.engine.binding import json_schema_to_gbnf
from llmcli.structured import Schema, SchemaError

# What llama.cpp's JSON-Schema-to-GBNF converter enforces (or may ignore without loosening the output).
_SUPPORTED = {
    "type", "properties", "required", "items", "prefixItems", "enum", "const", "additionalProperties",
    "minItems", "maxItems", "minLength", "maxLength", "pattern", "format", "anyOf", "oneOf", "allOf",
    "$ref", "$defs", "definitions", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "description", "title", "default", "examples", "$schema", "$id", "$comment", "deprecated",
    "readOnly", "writeOnly",
}  # fmt: skip
_UNDER_NAMES = ("properties", "$defs", "definitions")  # their keys are names, not keywords

_LOOSE_CHAR = 'char ::= [^"\\\\]'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F]'


def _unsupported(schema: Any, path: str = "") -> list[str]:
    """Keywords the grammar cannot express, as 'keyword (at path)'."""
    found: list[str] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key not in _SUPPORTED:
                found.append(f"{key} (at {path or '/'})")
            elif key in _UNDER_NAMES and isinstance(value, dict):
                for name, sub in value.items():
                    found += _unsupported(sub, f"{path}/{key}/{name}")
            elif key in ("items", "additionalProperties", "prefixItems", "anyOf", "oneOf", "allOf"):
                subs = value if isinstance(value, list) else [value]
                for i, sub in enumerate(subs):
                    found += _unsupported(sub, f"{path}/{key}" + (f"/{i}" if isinstance(value, list) else ""))
    return found


def compile_schema(schema: dict[str, Any]) -> Schema:
    """The grammar for a schema; SchemaError naming any keyword llama.cpp cannot express."""
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise SchemaError(f"the schema is not a valid JSON Schema: {exc.message}") from None
    if missing := _unsupported(schema):
        raise SchemaError(
            f"the schema uses {', '.join(missing)}, which llama.cpp's grammars cannot express",
            hint="drop or rewrite those keywords",
        )
    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter's own refusals (unknown formats, bad $refs, ...)
        raise SchemaError(f"llama.cpp cannot turn the schema into a grammar: {exc}") from None
    # This converter lets control characters (a raw newline) into strings, which JSON forbids; llama.cpp's
    # own converter excludes them, as here.
    return Schema(schema, grammar.replace(_LOOSE_CHAR, _STRICT_CHAR))

"""--schema and --grammar with --backend: the constraint travels in the request, end to end against a real
llama_cpp.server (directly, or through a proxy that refuses or drops the constraint's fields).

llama_cpp.server reads `grammar` on both endpoints and refuses a `response_format` of type json_schema
(a 500 naming the field): a conversation's schema goes to it as a grammar instead. Its tiny model writes
prose inside any JSON string, so the schemas here bound their strings (maxLength): records then finish
well within -n, and only their validity matters, not what they say.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from backend_proxy import Proxy
from test_remote import WITH_KEY, proxy, server
from test_structured import PEOPLE_SCHEMA

Run = Callable[..., subprocess.CompletedProcess[str]]
SCHEMA = PEOPLE_SCHEMA  # bounded strings and lists (test_structured's)
PROMPT = "Paris is the capital of France. As JSON:"
__all__ = ["proxy", "server"]  # the fixtures, shared with test_remote (a server of their own per module)


def complete_under(
    run_cli: Run, proxy: Proxy, schema_file: str, tokens: int
) -> subprocess.CompletedProcess[str]:
    """`llmcli complete PROMPT --schema FILE` greedily through the proxy."""
    args = [
        "complete",
        PROMPT,
        "--backend",
        proxy.url,
        "--greedy",
        "-n",
        str(tokens),
        "--schema",
        schema_file,
    ]
    return run_cli(*args, env=WITH_KEY)


@pytest.fixture
def schema_file(tmp_path: Path) -> str:
    path = tmp_path / "record.json"
    path.write_text(json.dumps(SCHEMA))
    return str(path)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, text in enumerate(["Lily and Tom went to Paris.", "Ben saw a big dog in the park."]):
        (folder / f"doc{i}.txt").write_text(text + "\n")
    return folder


def test_complete_sends_the_schema_and_its_grammar_and_the_record_validates(
    run_cli: Run, proxy: Proxy, schema_file: str
) -> None:
    result = complete_under(run_cli, proxy, schema_file, 120)
    assert result.returncode == 0, result.stderr
    jsonschema.validate(json.loads(result.stdout), SCHEMA)
    [sent] = proxy.bodies
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "record", "schema": SCHEMA, "strict": True},
    }
    assert "root ::=" in sent["grammar"]  # for llama.cpp's servers, which do not read response_format here


def test_extract_on_a_server_without_json_schema_response_formats_falls_back_to_its_grammar(
    run_cli: Run, proxy: Proxy, docs: Path, schema_file: str
) -> None:
    result = run_cli(
        "extract",
        str(docs),
        "--backend",
        proxy.url,
        "--schema",
        schema_file,
        "--greedy",
        "--ctx",
        "1024",
        "--parallel",
        "1",
        env=WITH_KEY,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(docs / "doc0.txt"), str(docs / "doc1.txt")]
    for line in lines:
        jsonschema.validate(line["record"], SCHEMA)
    # Refused once (not retried as a passing 500), then the grammar, for this document and the next.
    assert len(proxy.bodies) == 3
    first, *rest = proxy.bodies
    assert first["response_format"]["json_schema"]["schema"] == SCHEMA and "grammar" not in first
    assert all("grammar" in body and "response_format" not in body for body in rest)


def test_chat_with_a_bare_grammar(run_cli: Run, proxy: Proxy, tmp_path: Path) -> None:
    grammar = tmp_path / "yes-no.gbnf"
    grammar.write_text('root ::= "yes" | "no"\n')
    args = ["chat", "--backend", proxy.url, "--greedy", "-n", "10", "--grammar", str(grammar)]
    result = run_cli(*args, input="Is the sky blue?\n", env=WITH_KEY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("yes", "no")
    [sent] = proxy.bodies
    assert sent["grammar"] == grammar.read_text()
    assert sent["structured_outputs"] == {"grammar": grammar.read_text()}  # vLLM's field
    assert "response_format" not in sent


@pytest.mark.parametrize(
    ("command", "refused", "what"),
    [
        ("extract", ("response_format", "grammar"), "JSON schemas"),
        ("complete", ("top_k", "grammar"), "JSON schemas"),  # the extension goes; the constraint may not
        ("grammar", ("grammar",), "GBNF grammars"),
    ],
)
def test_a_server_that_refuses_the_constraint_fails_clearly(
    run_cli: Run,
    proxy: Proxy,
    docs: Path,
    tmp_path: Path,
    schema_file: str,
    command: str,
    refused: tuple[str, ...],
    what: str,
) -> None:
    proxy.reject = refused
    backend = ["--backend", proxy.url, "--greedy", "-n", "60"]
    if command == "extract":
        args = ["extract", str(docs), "--schema", schema_file, "--parallel", "1", "--ctx", "1024"]
    elif command == "complete":
        args = ["complete", PROMPT, "--schema", schema_file]
    else:
        (tmp_path / "g.gbnf").write_text('root ::= "yes" | "no"\n')
        args = ["complete", PROMPT, "--grammar", str(tmp_path / "g.gbnf")]
    result = run_cli(*args, *backend, env=WITH_KEY)
    assert result.returncode == 2, result.stderr
    assert not result.stdout  # no unconstrained output
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"the server at {proxy.url} does not take {what}" in error
    assert "llama-server or vLLM" in error
    # never sent again without it, and a batch stops at the first document
    assert all(any(name in body for name in ("grammar", "response_format")) for body in proxy.bodies)
    assert len(proxy.bodies) == (2 if command == "extract" else 1)


def test_a_server_that_ignores_the_constraint_is_caught_by_the_check(
    run_cli: Run, proxy: Proxy, schema_file: str
) -> None:
    proxy.ignore = ("response_format", "grammar", "structured_outputs")
    result = complete_under(run_cli, proxy, schema_file, 30)
    assert result.returncode != 0
    assert "the output is not valid JSON" in result.stderr and "Traceback" not in result.stderr

"""Structured output: schemas and grammars enforced while generating, checked after; `extract` over files."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from ties import generate_together
from tinymodel import PLAIN_TEMPLATE, VOCABS, chain

from llmcli.chat.templates import ChatTemplate
from llmcli.engine import EngineOptions, LocalEngine, ParallelEngine, Vocabulary
from llmcli.engine.grammar import compile_schema
from llmcli.errors import UsageError
from llmcli.sampling import SamplingConfig
from llmcli.structured import OutputError, SchemaError, load_schema, parse_fields

Run = Callable[..., subprocess.CompletedProcess[str]]
RECORD = ['{"', "city", '":', ' "', "Par", "is", '"}']  # {"city": "Paris"}, each token once
# Bounded strings and lists: stories260K would otherwise go on telling its story inside one.
PEOPLE_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer"},
        "friends": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3},
    },
    "required": ["name", "age", "friends"],
}
PEOPLE = compile_schema(PEOPLE_SCHEMA)

# --- schemas ----------------------------------------------------------------------------------------


def test_the_field_list_reads_types_and_requires_every_field() -> None:
    schema = parse_fields("title, date: date, people: list, amount: number, ok: bool, ids: list[int]")
    assert schema["required"] == ["title", "date", "people", "amount", "ok", "ids"]
    assert schema["properties"]["people"] == {"type": "array", "items": {"type": "string"}}
    assert schema["properties"]["ids"] == {"type": "array", "items": {"type": "integer"}}
    assert schema["properties"]["date"] == {"type": "string", "format": "date"}
    for bad, message in [("a: colour", "unknown type 'colour'"), ("a,,b", "cannot read the field ''"),
                         ("x: list[list]", "unknown type 'list'")]:  # fmt: skip
        with pytest.raises(SchemaError, match=message):
            parse_fields(bad)


def test_schemas_from_files_inline_json_and_their_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"type": "object", "properties": {"a": {"type": "integer"}}}')
    assert load_schema(str(path))["properties"] == {"a": {"type": "integer"}}
    assert load_schema('{"type": "array"}') == {"type": "array"}
    with pytest.raises(SchemaError, match="does not exist"):
        load_schema(str(tmp_path / "missing.json"))
    with pytest.raises(SchemaError, match="not valid JSON"):
        load_schema("{nope")
    with pytest.raises(SchemaError, match="not a valid JSON Schema"):
        compile_schema({"type": "colour"})
    with pytest.raises(SchemaError, match=r"uses uniqueItems \(at /properties/a\), not \(at /\)|uses not"):
        compile_schema({"not": {}, "properties": {"a": {"type": "array", "uniqueItems": True}}})


def test_a_record_is_validated_after_it_is_generated() -> None:
    assert PEOPLE.check('{"name": "Ann", "age": 3, "friends": []}') == {
        "name": "Ann",
        "age": 3,
        "friends": [],
    }
    with pytest.raises(OutputError, match="not valid JSON"):
        PEOPLE.check('{"name": "Ann", "ag')
    assert PEOPLE.check('{"name": " Ann ", "age": 3, "friends": ["Bo "]}', tidy=True)["friends"] == ["Bo"]
    with pytest.raises(OutputError, match="at age: 'x' is not of type 'integer'"):
        PEOPLE.check('{"name": "Ann", "age": "x", "friends": []}')


# --- the engine: grammar sampling, with speculation and in parallel ---------------------------------


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_constrained_output_is_valid_and_speculation_keeps_it_the_same(
    stories_engine: LocalEngine, temperature: float
) -> None:
    sampling = SamplingConfig(temperature=temperature, seed=7, max_tokens=400, constraint=PEOPLE)
    outputs = []
    for lookup in (0, 6):
        completion = stories_engine.generate("Once upon a time", sampling, lookup=lookup).run()
        assert completion.finish_reason == "stop", completion.text
        PEOPLE.check(completion.text)
        outputs.append(completion.tokens)
    assert outputs[0] == outputs[1]


def test_a_grammar_per_sequence_in_parallel(stories: Path) -> None:
    """Each sequence's grammar follows its own tokens (a shared one would reject the others'); identical
    records in parallel are checked on a program model below (stories' batched logits differ a little)."""
    prompts = ["Once upon a time", "The cat", "Tom and Lily", "One day"]
    sampling = SamplingConfig(temperature=0.8, seed=11, max_tokens=300, constraint=PEOPLE)
    flag = compile_schema(parse_fields("ok: bool"))
    with ParallelEngine(LocalEngine(stories, EngineOptions(n_ctx=2048, n_seq_max=4))) as parallel:
        tokens = generate_together(parallel, [parallel.tokenize(p) for p in prompts], sampling)
        texts = [parallel.detokenize(t) for t in tokens]
        mixed = parallel.generate(prompts[0], replace(sampling, constraint=flag)).run()
    for text in texts:
        PEOPLE.check(text)
    assert len(set(texts)) > 1 and isinstance(flag.check(mixed.text)["ok"], bool)


def test_a_grammar_llama_cpp_cannot_parse_is_a_clear_error(stories_engine: LocalEngine) -> None:
    from llmcli.structured import Schema

    with pytest.raises(UsageError, match="cannot parse the grammar"):
        stories_engine.generate("x", SamplingConfig(constraint=Schema(None, "root ::= ("))).run()


# --- the installed command ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def record_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A program model that answers any chat with {"city": "Paris"}."""
    from tinymodel import write_program_model

    vocab = Vocabulary.load(VOCABS / "ggml-vocab-llama-spm.gguf")
    try:
        exact: dict[str, int] = {}
        for token in range(32000):
            exact.setdefault(vocab.token_bytes(token).decode("utf-8", "replace"), token)
        prompt = ChatTemplate(PLAIN_TEMPLATE).render([{"role": "user", "content": "x"}])
        last = vocab.tokenize(prompt, parse_special=True)[-1]
    finally:
        vocab.close()
    program = chain([last, *(exact[p] for p in RECORD)])
    return write_program_model(
        tmp_path_factory.mktemp("record") / "record.gguf", program, chat_template=PLAIN_TEMPLATE
    )


def test_complete_and_chat_with_a_schema_or_a_grammar(run_cli: Run, stories: Path, tmp_path: Path) -> None:
    result = run_cli("complete", "-m", str(stories), "--greedy", "--schema", "name, age: int", "Once")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert set(record) == {"name", "age"} and isinstance(record["age"], int)
    grammar = tmp_path / "yn.gbnf"
    grammar.write_text('root ::= "yes" | "no"\n')
    result = run_cli("complete", "-m", str(stories), "--grammar", str(grammar), "Once")
    assert (result.returncode, result.stdout.strip() in ("yes", "no")) == (0, True), result.stderr
    result = run_cli("complete", "-m", str(stories), "--greedy", "--schema", "object", "-n", "5", "Once")
    assert result.returncode == 1 and "not valid JSON" in result.stderr and "raise -n" in result.stderr
    result = run_cli("chat", "-m", str(stories), "--greedy", "--schema", "name", input="Hi")
    assert result.returncode == 0 and set(json.loads(result.stdout)) == {"name"}, result.stderr
    for flags, message in [
        (["--schema", '{"not": {}}'], "uses not (at /), which llama.cpp's grammars cannot express"),
        (["--schema", "a", "--grammar", str(grammar)], "give --schema or --grammar, not both"),
        (["--grammar", str(tmp_path / "none.gbnf")], "cannot read the grammar file"),
    ]:
        result = run_cli("complete", "-m", str(stories), *flags, "x")
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_extract_twenty_documents_resumes_and_parallel_gives_the_same_records(
    run_cli: Run, record_model: Path, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    for i in range(20):
        (docs / f"d{i // 10}").mkdir(parents=True, exist_ok=True)
        (docs / f"d{i // 10}" / f"{i:02}.txt").write_text(f"Document {i} is about Paris.\n")
    out = tmp_path / "records.jsonl"
    base = ["extract", str(docs), "-m", str(record_model), "--schema", "city", "--greedy"]
    first = run_cli(*base, "--jsonl", str(out), "--parallel", "1")
    assert first.returncode == 0, first.stderr
    records = {r["path"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert len(records) == 20 and all(r["record"] == {"city": "Paris"} for r in records.values())
    again = run_cli(*base, "--jsonl", str(out))
    assert "0 extracted, 20 already done, 0 failed" in again.stderr
    parallel = run_cli(*base, "--parallel", "4")
    lines = [json.loads(line) for line in parallel.stdout.splitlines()]
    assert parallel.returncode == 0 and len(lines) == 20, parallel.stderr
    assert [line["path"] for line in lines] == sorted(line["path"] for line in lines)
    assert all(line["record"] == {"city": "Paris"} for line in lines)
    folder = run_cli(*base, "--out-dir", str(tmp_path / "out"))
    assert folder.returncode == 0
    assert json.loads((tmp_path / "out" / "d0" / "00.json").read_text()) == {"city": "Paris"}


def test_extract_without_a_schema_or_with_a_record_cut_short(
    run_cli: Run, record_model: Path, tmp_path: Path
) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("Paris.\n")
    result = run_cli("extract", str(doc), "-m", str(record_model))
    assert result.returncode == 2 and "extract needs --schema" in result.stderr
    result = run_cli("extract", str(doc), "-m", str(record_model), "--schema", "city", "-n", "3")
    assert result.returncode == 1 and "not valid JSON" in result.stderr and not result.stdout

"""`llmcli translate` through the installed command, with real models.

A program model answers every segment with a fixed text that carries a real preamble, so the
exact output is known: structure, code blocks and cleanup can be checked byte for byte. The
stories model (a real trained network, no translator) checks batches, resume and languages.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tinymodel import write_chat_model

Run = Callable[..., subprocess.CompletedProcess[str]]

DOCUMENT = """\
# Getting started

Install the tool first
and then run it.

```sh
pip install llmcli
llmcli translate --to de README.md
```

- the first step
- the second step

| Name | Value |
|------|------:|
| speed | 42 |
"""

EXPECTED = """\
# Hallo Welt

Hallo
Welt

```sh
pip install llmcli
llmcli translate --to de README.md
```

- Hallo Welt
- Hallo Welt

| Hallo Welt | Hallo Welt |
|------|------:|
| Hallo Welt | 42 |
"""


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chat_model(tmp_path_factory.mktemp("translate-cli") / "chat.gguf")


def test_text_argument_gets_only_the_translation(run_cli: Run, hallo: Path) -> None:
    result = run_cli("translate", "Hello world", "--to", "German", "-m", str(hallo))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hallo Welt\n"


def test_structure_and_code_blocks_are_kept_exactly(run_cli: Run, hallo: Path, tmp_path: Path) -> None:
    source = tmp_path / "README.md"
    source.write_text(DOCUMENT)
    result = run_cli("translate", str(source), "--to", "de", "-m", str(hallo), "--verbose")
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPECTED
    assert "source language: English (detected)" in result.stderr
    piped = run_cli("translate", "--to", "de", "-m", str(hallo), input="\n\n  Hello there.\n\n\n")
    assert piped.stdout == "\n\n  Hallo Welt\n\n\n"  # leading and trailing whitespace kept
    dash = run_cli("translate", "-", "--to", "de", "-m", str(hallo), input="\n\n  Hello there.\n\n\n")
    assert dash.stdout == piped.stdout  # "-" is stdin, not the text "-"


def test_out_file_and_out_dir_naming(run_cli: Run, hallo: Path, tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "notes.md").write_text("Hello world.\n")
    (tmp_path / "a" / "page.html").write_text("<html><body><p>Hello world.</p></body></html>")
    out = tmp_path / "out"
    inputs = [
        str(tmp_path / "a" / "notes.md"),
        str(tmp_path / "b" / "notes.md"),
        str(tmp_path / "a" / "page.html"),
    ]
    result = run_cli("translate", *inputs, "--to", "pt-BR", "-m", str(hallo), "--out-dir", str(out))
    assert result.returncode == 0, result.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [".llmcli-manifest.json", "a/notes.pt-BR.md", "b/notes.pt-BR.md", "page.pt-BR.txt"]
    single = tmp_path / "single.txt"
    one = run_cli("translate", inputs[0], "--to", "de", "-m", str(hallo), "--out", str(single))
    assert one.returncode == 0 and one.stdout == "" and single.read_text() == "Hallo Welt\n"
    two = run_cli("translate", *inputs[:2], "--to", "de", "-m", str(hallo), "--out", str(single))
    assert two.returncode == 2 and "--out takes one input" in two.stderr


def test_batch_resume_and_failures(run_cli: Run, chat_model: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "one.txt").write_text("Lily had a red ball.\n\nShe played in the park.\n")
    (docs / "sub" / "two.md").write_text("# A day\n\nTom saw a big dog.\n")
    (docs / "sub" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0binary")
    out = tmp_path / "out"
    args = ["translate", str(docs), "--to", "fr", "-m", str(chat_model), "--ctx", "512", "-n", "12"]
    first = run_cli(*args, "--out-dir", str(out))
    assert first.returncode == 1 and "image.png is not a text file" in first.stderr
    assert "2 translated, 0 already done, 1 failed" in first.stderr
    one = (out / "one.fr.txt").read_text()
    assert one.count("\n\n") == 1 and one.endswith("\n")  # two paragraphs, as in the source
    assert (out / "sub" / "two.fr.md").read_text().startswith("# ")
    again = run_cli(*args, "--out-dir", str(out))
    assert "0 translated, 2 already done, 1 failed" in again.stderr
    other = run_cli(*args[:2], "--to", "es", *args[4:], "--out-dir", str(out))
    assert "2 translated" in other.stderr and (out / "one.es.txt").exists()


def test_glossary(run_cli: Run, hallo: Path, tmp_path: Path) -> None:
    glossary = tmp_path / "terms.tsv"
    glossary.write_text("# term\ttranslation\nllmcli\tllmcli\nworld\tWelt\n")
    ok = run_cli("translate", "Hello world", "--to", "de", "-m", str(hallo), "--glossary", str(glossary))
    assert ok.returncode == 0 and ok.stdout == "Hallo Welt\n"
    glossary.write_text("world Welt\n")
    bad = run_cli("translate", "Hello world", "--to", "de", "-m", str(hallo), "--glossary", str(glossary))
    assert bad.returncode == 2 and f"{glossary}:1: expected `term<TAB>translation`" in bad.stderr


def test_languages_and_usage_errors(run_cli: Run, hallo: Path, tmp_path: Path) -> None:
    unknown = run_cli("translate", "Hello", "--to", "Klingon", "-m", str(hallo))
    assert unknown.returncode == 2 and "unknown language 'Klingon'" in unknown.stderr
    assert "zh-Hans" in unknown.stderr and "Traceback" not in unknown.stderr
    typo = run_cli("translate", "Hello", "--to", "Germna", "-m", str(hallo))
    assert typo.returncode == 2 and "did you mean German?" in typo.stderr
    missing = run_cli("translate", "Hello", "-m", str(hallo))
    assert missing.returncode == 2 and "--to" in missing.stderr
    no_file = run_cli("translate", str(tmp_path / "missing.md"), "--to", "de", "-m", str(hallo))
    assert no_file.returncode == 2 and "missing.md: no such file" in no_file.stderr
    listing = run_cli("translate", "--list-languages")
    assert listing.returncode == 0
    rows = dict(line.split("\t") for line in listing.stdout.splitlines())
    assert rows["zh-Hans"] == "Simplified Chinese" and rows["pt-BR"] == "Brazilian Portuguese"
    same = run_cli(
        "translate", "Hello there, how are you today?", "--to", "en", "-m", str(hallo), "--verbose"
    )
    assert same.stdout == "Hello there, how are you today?\n" and "already in English" in same.stderr


def test_jsonl(run_cli: Run, hallo: Path, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Hello world.\n")
    target = tmp_path / "out.jsonl"
    run_cli("translate", str(tmp_path / "a.txt"), "--to", "de", "-m", str(hallo), "--jsonl", str(target))
    (record,) = [json.loads(line) for line in target.read_text().splitlines()]
    assert record["text"] == "Hallo Welt\n" and record["status"] == "done"

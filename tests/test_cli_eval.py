"""`llmcli eval summarize|translate` through the installed command, with real models and real data.

A program model answers every request with a known text, so the scores can be checked against the
scorer libraries called directly; the stories model and real CNN/DailyMail and FLORES-200 records
check that whole data sets run end to end.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tinymodel import SHARED, write_chat_model

from llmcli.tasks.evaluate import (
    Item,
    Produced,
    UnicodeWords,
    bleu_tokenize,
    load_parallel_data,
    load_summary_data,
    run_items,
    score_summaries,
)
from llmcli.text.languages import resolve_language

Run = Callable[..., subprocess.CompletedProcess[str]]
SUMMEVAL = SHARED / "eval" / "summ" / "summeval_cnndm_gold.jsonl"
FLORES = SHARED / "eval" / "flores200_devtest"


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chat_model(tmp_path_factory.mktemp("eval-cli") / "chat.gguf")


def table(stdout: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in stdout.splitlines()]


def test_summarize_scores_and_keeps_outputs(run_cli: Run, hallo: Path, tmp_path: Path) -> None:
    from rouge_score import rouge_scorer

    data = tmp_path / "data.jsonl"
    records: list[dict[str, Any]] = [
        {"id": "a", "text": "Hello world. " * 20, "reference": "Hallo Welt"},
        {"id": "b", "article": "The cat sat on the mat. " * 20, "references": ["Hallo", "Welt und mehr"]},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "kept"
    args = ["eval", "summarize", str(data), "-m", str(hallo), "--out-dir", str(out)]
    first = run_cli(*args, "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    (model,) = report["models"]
    outputs = [r["output"] for r in model["per_record"]]
    assert outputs == ["Here is the German translation:\nHallo Welt"] * 2
    # The scores are rouge-score's, best over each record's references (F1 x 100).
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=UnicodeWords())
    for record, scores in zip(records, model["per_record"], strict=True):
        references = record.get("references") or [record["reference"]]
        expected = scorer.score_multi(references, outputs[0])
        assert scores["rouge1"] == round(expected["rouge1"].fmeasure * 100, 2)
        assert scores["rougeL"] == round(expected["rougeL"].fmeasure * 100, 2)
    assert model["mean"]["rouge1"] == round(sum(r["rouge1"] for r in model["per_record"]) / 2, 2)
    assert report["scorer"] == {"library": "rouge-score", "tokenizer": "unicode words, CJK characters"}
    kept = out / "data.program.gguf.summaries.jsonl"
    assert model["outputs"] == str(kept) and len(kept.read_text().splitlines()) == 2
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert "2 of 2 outputs reused" in again.stderr and "outputs kept in" in again.stderr
    rows = table(again.stdout)
    assert rows[0] == ["model", "records", "ROUGE-1", "ROUGE-2", "ROUGE-L", "tok/s"]
    assert rows[2][:3] == ["program.gguf", "2", f"{model['mean']['rouge1']:.2f}"]


def test_summarize_real_data_two_models(run_cli: Run, chat_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "summeval.jsonl"
    data.write_text("".join(SUMMEVAL.read_text(encoding="utf-8").splitlines(keepends=True)[:3]))
    copy = tmp_path / "other" / "chat.gguf"
    copy.parent.mkdir()
    copy.write_bytes(chat_model.read_bytes())
    out = tmp_path / "kept"
    result = run_cli(
        "eval", "summarize", str(data), "-m", str(chat_model), "-m", str(copy),
        "--limit", "2", "--ctx", "512", "-n", "24", "--out-dir", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    assert len(rows) == 4 and rows[2][1] == rows[3][1] == "2"
    assert rows[2][2:5] == rows[3][2:5]  # the same weights, the same scores
    assert float(rows[2][2]) > 0 and float(rows[2][5]) > 0
    assert "default, Porter stemmer" in result.stderr  # English references
    kept = sorted(p.name for p in out.iterdir())  # two models of one file name keep two files
    assert kept == ["summeval.chat.gguf-2.summaries.jsonl", "summeval.chat.gguf.summaries.jsonl"]


def test_translate_scores_with_sacrebleu(run_cli: Run, hallo: Path, tmp_path: Path) -> None:
    import sacrebleu

    src, ref = tmp_path / "src.en", tmp_path / "ref.de"
    src.write_text("Hello world.\nGood morning.\nThe cat sleeps.\n")
    ref.write_text("Hallo Welt\nGuten Morgen Welt\nDie Katze schläft.\n")
    out = tmp_path / "kept"
    args = ["eval", "translate", "--src", str(src), "--ref", str(ref), "--to", "German", "-m", str(hallo)]
    result = run_cli(*args, "--out-dir", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    hypotheses = ["Hallo Welt"] * 3
    references = [ref.read_text().splitlines()]
    (model,) = report["models"]
    assert model["mean"] == {
        "bleu": round(sacrebleu.corpus_bleu(hypotheses, references).score, 2),
        "chrf": round(sacrebleu.corpus_chrf(hypotheses, references).score, 2),
    }
    assert model["per_line"][0]["chrf"] == 100.0
    assert report["signatures"]["bleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert (out / "src.program.gguf.de.txt").read_text() == "Hallo Welt\n" * 3
    plain = run_cli(*args, "--out-dir", str(out))
    assert table(plain.stdout)[0] == ["model", "lines", "BLEU", "chrF", "tok/s"]
    assert "3 of 3 outputs reused" in plain.stderr and "BLEU: nrefs:1" in plain.stderr


def test_translate_real_data(run_cli: Run, chat_model: Path, tmp_path: Path) -> None:
    result = run_cli(
        "eval", "translate", "--to", "fr",
        "--src", str(FLORES / "eng_Latn.devtest"), "--ref", str(FLORES / "fra_Latn.devtest"),
        "-m", str(chat_model), "--limit", "4", "--ctx", "512", "-n", "16", "--out-dir", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    assert rows[2][:2] == ["chat.gguf", "4"] and float(rows[2][3]) > 0
    assert len((tmp_path / "eng_Latn.chat.gguf.fr.txt").read_text().splitlines()) == 4


def test_bad_data_is_one_line(run_cli: Run, hallo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "reference": "b"}\n{"text": "no reference"}\n')
    one = run_cli("eval", "summarize", str(bad), "-m", str(hallo), "--out-dir", str(tmp_path))
    assert one.returncode == 2 and f"{bad}:2: needs `reference`" in one.stderr
    src, ref = tmp_path / "a.txt", tmp_path / "b.txt"
    src.write_text("one\ntwo\n")
    ref.write_text("eins\n")
    two = run_cli("eval", "translate", "--src", str(src), "--ref", str(ref), "--to", "de", "-m", str(hallo))
    assert two.returncode == 2 and f"{ref} has 1 lines but {src} has 2" in two.stderr
    lang = run_cli("eval", "translate", "--src", str(src), "--ref", str(src), "--to", "Klingonish")
    assert lang.returncode == 2 and "Traceback" not in one.stderr + two.stderr + lang.stderr


def test_interrupted_evaluation_continues(tmp_path: Path) -> None:
    items = [Item(str(i), f"text {i}", ("ref",)) for i in range(4)]
    calls: list[str] = []

    def produce(text: str) -> Produced:
        calls.append(text)
        if text == "text 2" and len(calls) == 3:
            raise KeyboardInterrupt
        return Produced(text.upper(), 3, 0.1)

    kept = tmp_path / "kept.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_items("m", items, produce, kept, "settings")
    assert len(kept.read_text().splitlines()) == 2
    run = run_items("m", items, produce, kept, "settings")
    assert run.reused == 2 and [p.output for p in run.outputs] == ["TEXT 0", "TEXT 1", "TEXT 2", "TEXT 3"]
    assert calls == ["text 0", "text 1", "text 2", "text 2", "text 3"]
    other = run_items("m", items, produce, kept, "other settings")
    assert other.reused == 0


def test_rouge_for_chinese_and_bleu_tokenizers() -> None:
    assert UnicodeWords().tokenize("今天天气很好, Hello Wörld!") == [
        "今",
        "天",
        "天",
        "气",
        "很",
        "好",
        "hello",
        "wörld",
    ]
    items = [Item("1", "…", ("今天天气很好。",))]
    means, _, name = score_summaries(items, [Produced("今天天气不好。", 1, 1.0)])
    assert name == "unicode words, CJK characters" and 0 < means["rouge1"] < 100
    assert bleu_tokenize(resolve_language("zh-Hans")) == "zh"
    assert bleu_tokenize(resolve_language("Japanese")) == "char"
    assert bleu_tokenize(resolve_language("de")) == "13a"


def test_loaders(tmp_path: Path) -> None:
    items = load_summary_data(SUMMEVAL, limit=2)
    assert len(items) == 2 and len(items[0].references) == 11
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": 1, "text": "a", "reference": "b"}\n{"id": 1, "text": "c", "reference": "d"}\n')
    with pytest.raises(Exception, match="used twice"):
        load_summary_data(dup)
    pairs = load_parallel_data(FLORES / "eng_Latn.devtest", [FLORES / "deu_Latn.devtest"], limit=3)
    assert [p.id for p in pairs] == ["1", "2", "3"] and pairs[0].references[0].startswith("„Wir haben")

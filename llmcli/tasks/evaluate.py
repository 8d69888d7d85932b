"""Evaluate a model on the user's data: ROUGE for summaries, BLEU and chrF for translations.

The scorers are the reference libraries (Google's `rouge-score`, `sacrebleu`), imported only here.
Outputs are kept in a JSONL file per data set and model, written atomically after each item, so an
interrupted evaluation continues where it stopped and a rerun with other metrics costs nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from llmcli.errors import LlmcliError, UsageError
from llmcli.fsutil import read_utf8
from llmcli.tasks.batch import ItemResult, Ledger, Output, content_key
from llmcli.text.languages import Language, detect_language
from llmcli.text.markup import is_cjk

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@dataclass(frozen=True)
class Item:
    """One input to evaluate and its reference outputs."""

    id: str
    text: str
    references: tuple[str, ...]


def _need(package: str, module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"scoring needs the {package} package", hint='pip install "llmcli[eval]"') from None


def load_summary_data(path: Path, limit: int | None = None) -> list[Item]:
    """Records of a JSONL file: `text` (or `article`), and `reference` (text or list) or `references`."""
    items: list[Item] = []
    seen: set[str] = set()
    for number, line in enumerate(read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise UsageError(f"{where}: expected a JSON object")
        text = record.get("text", record.get("article"))
        refs = record.get("references", record.get("reference"))
        refs = [refs] if isinstance(refs, str) else refs
        if not isinstance(text, str) or not text.strip():
            raise UsageError(f"{where}: needs a non-empty `text`")
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r.strip() for r in refs):
            raise UsageError(f"{where}: needs `reference`, a summary or a list of them")
        item_id = str(record.get("id", number))
        if item_id in seen:
            raise UsageError(f"{where}: the id {item_id!r} is used twice", hint="ids must be unique")
        seen.add(item_id)
        items.append(Item(item_id, text, tuple(refs)))
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise UsageError(f"{path} has no records")
    return items


def load_parallel_data(source: Path, references: Sequence[Path], limit: int | None = None) -> list[Item]:
    """Line-aligned source and reference files (one or more references per line)."""
    if not references:
        raise UsageError("give the reference translations with --ref")
    lines = read_utf8(source).splitlines()
    ref_lines = [read_utf8(r).splitlines() for r in references]
    for path, refs in zip(references, ref_lines, strict=True):
        if len(refs) != len(lines):
            raise UsageError(
                f"{path} has {len(refs):,} lines but {source} has {len(lines):,}",
                hint="source and reference files must be line-aligned",
            )
    items = [Item(str(i + 1), line, tuple(r[i] for r in ref_lines)) for i, line in enumerate(lines)]
    items = items[:limit] if limit is not None else items
    if not items:
        raise UsageError(f"{source} is empty")
    return items


# --- running a model over the items -------------------------------------------------------------


@dataclass(frozen=True)
class Produced:
    """A model's output for one item and what it cost."""

    output: str
    generated_tokens: int
    seconds: float


@dataclass
class RunResult:
    """A model's outputs for every item, in order, and where they are kept."""

    model: str
    outputs: list[Produced]
    kept: Path
    reused: int = 0

    @property
    def tokens_per_second(self) -> float:
        seconds = sum(p.seconds for p in self.outputs)
        return sum(p.generated_tokens for p in self.outputs) / seconds if seconds > 0 else 0.0


def run_items(
    model: str,
    items: list[Item],
    produce: Callable[[str], Produced],
    kept: Path,
    settings: str,
    *,
    force: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> RunResult:
    """Each item's output, reusing those kept from an earlier run with the same settings.

    A failing item stops the evaluation (a score over part of the data would mislead); what is done
    stays kept, and KeyboardInterrupt propagates after the last finished item was saved.
    """
    ledger = Ledger(Output(jsonl=kept))
    result = RunResult(model, [], kept)
    for i, item in enumerate(items):
        if progress:
            progress(i, len(items), f"{model}: {item.id}")
        key = content_key(settings, item.text)
        previous = None if force else ledger.done(item.id, key)
        if previous is not None:
            result.outputs.append(Produced(previous["text"], previous["tokens"], previous["seconds"]))
            result.reused += 1
            continue
        start = time.perf_counter()
        try:
            produced = produce(item.text)
        except LlmcliError as exc:
            raise type(exc)(f"item {item.id}: {exc.message}", hint=exc.hint) from None
        seconds = round(time.perf_counter() - start, 3)
        produced = Produced(produced.output, produced.generated_tokens, seconds)
        ledger.record(
            ItemResult(
                item.id,
                "done",
                text=produced.output,
                tokens=produced.generated_tokens,
                seconds=seconds,
                key=key,
            )
        )
        result.outputs.append(produced)
    if progress:
        progress(len(items), len(items), "")
    return result


# --- scoring -----------------------------------------------------------------------------------


class UnicodeWords:
    """ROUGE tokens for any script: lowercased words, each CJK character a token of its own.

    rouge-score's default tokenizer keeps only [a-z0-9], which erases Chinese, Japanese, Cyrillic,
    Greek and accented letters, so non-English summaries would all score zero.
    """

    _word = re.compile(r"[^\W_]+")

    def tokenize(self, text: str) -> list[str]:
        tokens: list[str] = []
        for word in self._word.findall(text.lower()):
            run = ""
            for char in word:
                if is_cjk(char):
                    tokens += [run, char] if run else [char]
                    run = ""
                else:
                    run += char
            if run:
                tokens.append(run)
        return tokens


def rouge_tokenizer(references: Sequence[str]) -> tuple[Any, str]:
    """rouge-score's standard setup (Porter stemmer) for English references, UnicodeWords otherwise."""
    tokenizers = _need("rouge-score", "rouge_score.tokenizers")
    sample = "\n".join(references[:50])
    language = detect_language(sample)
    english = language.code == "en" if language is not None else sample.isascii()
    if english:
        return tokenizers.DefaultTokenizer(use_stemmer=True), "default, Porter stemmer"
    return UnicodeWords(), "unicode words, CJK characters"


def score_summaries(
    items: list[Item], outputs: list[Produced]
) -> tuple[dict[str, float], list[dict[str, Any]], str]:
    """Mean ROUGE-1/2/L F1 (x100), per-item scores and output (best over its references), tokenizer."""
    scoring = _need("rouge-score", "rouge_score.rouge_scorer")
    tokenizer, name = rouge_tokenizer([r for item in items for r in item.references])
    scorer = scoring.RougeScorer(list(ROUGE_TYPES), tokenizer=tokenizer)
    per_item = []
    for item, produced in zip(items, outputs, strict=True):
        scores = scorer.score_multi(list(item.references), produced.output)
        f1 = {k: round(scores[k].fmeasure * 100, 2) for k in ROUGE_TYPES}
        per_item.append({"id": item.id, **f1, "output": produced.output})
    means = {k: round(fmean(s[k] for s in per_item), 2) for k in ROUGE_TYPES}
    return means, per_item, name


def bleu_tokenize(target: Language) -> str:
    """sacrebleu's tokenizer for the target: its Chinese one, characters for Japanese/Thai, else 13a."""
    base = target.code.split("-")[0]
    if base == "zh":
        return "zh"
    if base in ("ja", "th", "lo", "km", "my"):  # written without spaces; ja-mecab needs extra packages
        return "char"
    return "13a"


def score_translations(
    items: list[Item], outputs: list[Produced], target: Language
) -> tuple[dict[str, float], list[dict[str, Any]], dict[str, str]]:
    """Corpus BLEU and chrF, per-line sentence scores and output, and sacrebleu's signatures."""
    metrics = _need("sacrebleu", "sacrebleu.metrics")
    hypotheses = [p.output for p in outputs]
    streams = [list(refs) for refs in zip(*(item.references for item in items), strict=True)]
    bleu = metrics.BLEU(tokenize=bleu_tokenize(target))
    chrf = metrics.CHRF()
    sentence_bleu = metrics.BLEU(tokenize=bleu_tokenize(target), effective_order=True)
    per_item = [
        {
            "id": item.id,
            "bleu": round(sentence_bleu.sentence_score(hyp, list(item.references)).score, 2),
            "chrf": round(chrf.sentence_score(hyp, list(item.references)).score, 2),
            "output": hyp,
        }
        for item, hyp in zip(items, hypotheses, strict=True)
    ]
    means = {
        "bleu": round(bleu.corpus_score(hypotheses, streams).score, 2),
        "chrf": round(chrf.corpus_score(hypotheses, streams).score, 2),
    }
    return means, per_item, {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())}


def slug(name: str) -> str:
    """A file-name-safe form of a model name (`qwen2.5-0.5b:Q4_K_M` -> `qwen2.5-0.5b-Q4_K_M`)."""
    return re.sub(r"[^\w.-]+", "-", name).strip("-") or "model"

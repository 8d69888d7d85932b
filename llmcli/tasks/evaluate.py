"""Evaluate a model on the user's data: ROUGE for summaries, BLEU and chrF for translations.

The scorers are the reference libraries (Google's `rouge-score`, `sacrebleu`), imported only here.
Outputs are kept in a JSONL file per data set and model, written atomically after each item, so an
interrupted evaluation continues where it stopped and a rerun with other metrics costs nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any, Protocol

from llmcli.errors import LlmcliError, UsageError
from llmcli.fsutil import atomic_write_text, read_utf8
from llmcli.tasks.batch import ItemResult, Ledger, Output, content_key
from llmcli.text.languages import Language, detect_language
from llmcli.text.markup import is_cjk

if TYPE_CHECKING:
    from llmcli.tasks.perplexity import PerplexityResult
    from llmcli.tasks.runtime import LoadedModel
    from llmcli.tasks.summarize import Summarizer
    from llmcli.tasks.translate import Translator

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


class Progress(Protocol):
    """Items done of a model's run, told as they go; closed after each model."""

    def __call__(self, done: int, total: int, current: str) -> None: ...

    def close(self) -> None: ...


# A model's way to produce each item's output, and the settings that decide the outputs.
Contender = tuple[Callable[[str], Produced], list[Any]]


def run_models(
    models: Iterable[LoadedModel],
    items: list[Item],
    contender: Callable[[LoadedModel], Contender],
    kept_name: Callable[[str], str],
    out_dir: Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
    notify: Callable[[str], None] = lambda _m: None,
) -> list[RunResult]:
    """Every model's outputs for every item, each model's kept in out_dir / kept_name(its slug).

    Outputs kept by an earlier run with the same model and settings are reused; two models of the
    same file name keep two files. KeyboardInterrupt propagates with what is done kept.
    """
    runs = []
    files: dict[str, str] = {}  # kept file -> model, so two models of the same file name never share one
    for loaded in models:
        produce, settings = contender(loaded)
        name = loaded.display_name
        notify(f"{name}: {len(items)} records")
        file = kept_name(slug(name))
        while files.setdefault(file, loaded.name) != loaded.name:
            file = kept_name(f"{slug(name)}-{len(files) + 1}")
        kept = out_dir / file
        key = json.dumps([loaded.name, settings], sort_keys=True)
        runs.append(run_items(name, items, produce, kept, key, force=force, progress=progress))
        if progress:
            progress.close()
        if runs[-1].reused:
            notify(f"{name}: {runs[-1].reused} of {len(items)} outputs reused from {kept}")
    return runs


def summaries(summarizer: Summarizer) -> Contender:
    """A summarizer's summary of each item, stripped, and the settings that decide it."""

    def produce(text: str) -> Produced:
        result = summarizer.summarize(text)
        return Produced(result.text.strip(), result.generated_tokens, result.seconds)

    return produce, [asdict(summarizer.options), repr(summarizer.sampling)]


def translations(translator: Translator) -> Contender:
    """A translator's translation of each line, on one line, and the settings that decide it."""

    def produce(text: str) -> Produced:
        result = translator.translate(text)
        return Produced(" ".join(result.text.split()), result.generated_tokens, result.seconds)

    return produce, [asdict(translator.options), repr(translator.sampling)]


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


# --- reports -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelScores:
    """One model's scores: the means, each item's scores and output, and what the outputs took."""

    run: RunResult
    means: dict[str, float]
    per_item: list[dict[str, Any]]

    def to_dict(self, count: str, each: str) -> dict[str, Any]:
        """As the JSON report has it: count and each name the items (`records`, `per_record`)."""
        outputs = self.run.outputs
        return {
            "model": self.run.model,
            count: len(self.per_item),
            "mean": self.means,
            "generated_tokens": sum(p.generated_tokens for p in outputs),
            "seconds": round(sum(p.seconds for p in outputs), 3),
            "tokens_per_second": round(self.run.tokens_per_second, 2),
            "outputs": str(self.run.kept),
            each: self.per_item,
        }


@dataclass(frozen=True)
class SummaryReport:
    """ROUGE of each model's summaries of a data set."""

    data: Path
    tokenizer: str  # how rouge-score split the texts into words
    models: list[ModelScores]
    out_dir: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": str(self.data),
            "scorer": {"library": "rouge-score", "tokenizer": self.tokenizer},
            "models": [m.to_dict("records", "per_record") for m in self.models],
        }


@dataclass(frozen=True)
class TranslationReport:
    """BLEU and chrF of each model's translations of a source file, with sacrebleu's signatures."""

    src: Path
    refs: list[Path]
    target: Language
    signatures: dict[str, str]
    models: list[ModelScores]
    out_dir: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "src": str(self.src),
            "refs": [str(r) for r in self.refs],
            "to": self.target.code,
            "signatures": self.signatures,
            "models": [m.to_dict("lines", "per_line") for m in self.models],
        }


def summary_report(data: Path, items: list[Item], runs: list[RunResult], out_dir: Path) -> SummaryReport:
    """Each run's summaries scored against the items' references."""
    models, tokenizer = [], ""
    for run in runs:
        means, per_item, tokenizer = score_summaries(items, run.outputs)
        models.append(ModelScores(run, means, per_item))
    return SummaryReport(data, tokenizer, models, out_dir)


def translation_report(
    src: Path, refs: list[Path], target: Language, items: list[Item], runs: list[RunResult], out_dir: Path
) -> TranslationReport:
    """Each run's translations scored against the items' references; each run's hypotheses are kept
    beside its outputs as a line-aligned .txt."""
    models, signatures = [], dict[str, str]()
    for run in runs:
        atomic_write_text(run.kept.with_suffix(".txt"), "".join(p.output + "\n" for p in run.outputs))
        means, per_item, signatures = score_translations(items, run.outputs, target)
        models.append(ModelScores(run, means, per_item))
    return TranslationReport(src, refs, target, signatures, models, out_dir)


@dataclass(frozen=True)
class PerplexityReport:
    """Each model's perplexity on a text file, in windows of ctx tokens."""

    file: Path
    ctx: int
    stride: int | None
    models: list[tuple[str, PerplexityResult]]  # (model, its result)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "ctx": self.ctx,
            "stride": self.stride,
            "models": [{"model": name, **result.to_dict()} for name, result in self.models],
        }

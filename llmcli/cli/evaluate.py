"""`perplexity` and `eval summarize|translate`: which model or quantization suits the user's data."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli.app import app
from llmcli.cli.options import (
    Backend,
    CacheTypeK,
    CacheTypeV,
    Ctx,
    DraftTokens,
    FlashAttn,
    Force,
    GpuLayers,
    JsonOut,
    MaxTokens,
    MinP,
    Models,
    Offline,
    ReasoningBudget,
    RepeatPenalty,
    Seed,
    Speculative,
    Temperature,
    ThinkOff,
    Threads,
    TopK,
    TopP,
    Verbose,
)
from llmcli.cli.options import lookup as make_lookup
from llmcli.cli.options import sampling as make_sampling
from llmcli.cli.options import settings as make_settings
from llmcli.cli.options import thinking as make_thinking

if TYPE_CHECKING:
    from llmcli.tasks.evaluate import Item, Produced, RunResult
    from llmcli.tasks.runtime import LoadedModel
    from llmcli.ui.environment import Environment

eval_app = typer.Typer(
    help="Score models on your own data: ROUGE for summaries, BLEU and chrF for translations.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")

Limit = Annotated[
    int | None, typer.Option("--limit", min=1, help="Use only the first N records.", show_default="all")
]
OutDir = Annotated[
    Path,
    typer.Option(
        "--out-dir", help="Where the outputs are kept (one JSONL per data set and model), resumable."
    ),
]


def _advance(bar: Any, name: str, done: int, total: int) -> None:
    bar(done, total, name)


def _each_model(env: Environment, params: dict[str, Any], models: list[str] | None) -> Iterator[LoadedModel]:
    """Load each -m model in turn (the configured default when none), yielding it while it is open."""
    from llmcli.tasks.runtime import load_model
    from llmcli.ui.render import DownloadBar

    names: list[str | None] = [*models] if models else [None]
    for name in names:
        settings = make_settings({**params, "model": name})
        loaded = load_model(
            settings, offline=params["offline"], verbose=params["verbose"], progress=DownloadBar(env)
        )
        with loaded:
            yield loaded


# --- perplexity ---------------------------------------------------------------------------------


@app.command()
def perplexity(
    file: Annotated[Path, typer.Argument(help="UTF-8 text file to score.", show_default=False)],
    models: Models = None,
    ctx: Annotated[int, typer.Option("--ctx", help="Window size in tokens (llama-perplexity -c).")] = 512,
    stride: Annotated[
        int | None,
        typer.Option(
            "--stride",
            help="Slide windows of --ctx tokens by N, scoring each one's last N tokens.",
            show_default="non-overlapping windows, second half scored",
        ),
    ] = None,
    threads: Threads = None,
    gpu_layers: GpuLayers = None,
    flash_attn: FlashAttn = None,
    cache_type_k: CacheTypeK = None,
    cache_type_v: CacheTypeV = None,
    json_out: JsonOut = False,
    offline: Offline = False,
    verbose: Verbose = False,
) -> None:
    """Perplexity of one or more models on a text file, windowed exactly like llama.cpp's llama-perplexity.

    The text is cut into windows of --ctx tokens, each starting with BOS; the second half of each
    window is scored, so every scored token sees at least ctx/2 tokens before it. Lower is better;
    the ± figure is one standard error. Only compare figures of models with the same tokenizer.
    llama-perplexity's --ppl-stride S widens its window to ctx + S/2 rounded up to a multiple of
    256: pass that window as --ctx (with --stride S) to reproduce its figure.
    """
    params = dict(locals())
    from llmcli.fsutil import read_utf8
    from llmcli.tasks.perplexity import check_sizes
    from llmcli.tasks.perplexity import perplexity as measure
    from llmcli.ui.environment import Environment
    from llmcli.ui.render import BatchProgress, note

    env = Environment.from_system()
    check_sizes(ctx, stride)
    text = read_utf8(file)
    rows, reports = [], []
    bar = BatchProgress(env, lines=False)
    for loaded in _each_model(env, params, models):
        name = loaded.display_name
        note(env, f"{name}: scoring {file}")
        result = measure(loaded.local(), text, ctx, stride, progress=partial(_advance, bar, name))
        bar.close()
        reports.append({"model": name, **result.to_dict()})
        rows.append(
            {
                "model": name,
                "ctx": str(ctx),
                "windows": str(result.windows),
                "scored tokens": f"{result.scored:,}",
                "PPL": f"{result.ppl:.4f}",
                "±": f"{result.error:.4f}",
                "t/s": f"{result.tokens_per_second:.1f}",
            }
        )
    _report(env, json_out, {"file": str(file), "ctx": ctx, "stride": stride, "models": reports}, rows)


# --- eval summarize / translate ---------------------------------------------------------------


def _run_all(
    env: Environment,
    params: dict[str, Any],
    items: list[Item],
    kept_name: Callable[[str], str],
    build: Callable[[LoadedModel], tuple[Callable[[str], Produced], list[Any]]],
) -> list[RunResult]:
    """Every model's outputs for every item: progress on stderr, kept outputs reused, Ctrl-C exits 130."""
    from llmcli.errors import ExitCode
    from llmcli.tasks.evaluate import run_items, slug
    from llmcli.ui.render import BatchProgress, note

    out_dir: Path = params["out_dir"]
    bar = BatchProgress(env, lines=False)
    runs = []
    files: dict[str, str] = {}  # kept file -> model, so two models of the same file name never share one
    try:
        for loaded in _each_model(env, params, params["models"]):
            produce, settings = build(loaded)
            name = loaded.display_name
            note(env, f"{name}: {len(items)} records")
            file = kept_name(slug(name))
            while files.setdefault(file, loaded.name) != loaded.name:
                file = kept_name(f"{slug(name)}-{len(files) + 1}")
            kept = out_dir / file
            key = json.dumps([loaded.name, settings], sort_keys=True)
            runs.append(run_items(name, items, produce, kept, key, force=params["force"], progress=bar))
            bar.close()
            if runs[-1].reused:
                note(env, f"{name}: {runs[-1].reused} of {len(items)} outputs reused from {kept}")
    except KeyboardInterrupt:
        bar.close()
        note(
            env, f"interrupted: outputs so far are kept in {out_dir}; run the same command again to continue"
        )
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    return runs


def _report(
    env: Environment, json_out: bool, report: dict[str, Any], rows: list[dict[str, str]], legend: str = ""
) -> None:
    """The report as JSON, or the rows as a Markdown table with the legend on stderr."""
    from llmcli.ui.render import markdown_table, note

    if json_out:
        env.write(json.dumps(report, ensure_ascii=False) + "\n")
        return
    env.write(markdown_table(rows) + "\n")
    if legend:
        note(env, legend)


@eval_app.command("summarize")
def eval_summarize(
    data: Annotated[
        Path,
        typer.Argument(
            help="JSONL: `text` (or `article`) and `reference` (a summary or a list) per line.",
            show_default=False,
        ),
    ],
    models: Models = None,
    backend: Backend = None,
    length: Annotated[str, typer.Option("--length", help="short, medium or long.")] = "short",
    words: Annotated[
        int | None, typer.Option("--words", help="About N words (overrides --length).", show_default=False)
    ] = None,
    limit: Limit = None,
    out_dir: OutDir = Path("llmcli-eval"),
    force: Force = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON with per-record scores instead.")
    ] = False,
    ctx: Ctx = None,
    threads: Threads = None,
    gpu_layers: GpuLayers = None,
    flash_attn: FlashAttn = None,
    cache_type_k: CacheTypeK = None,
    cache_type_v: CacheTypeV = None,
    temperature: Temperature = None,
    top_k: TopK = None,
    top_p: TopP = None,
    min_p: MinP = None,
    repeat_penalty: RepeatPenalty = None,
    seed: Seed = None,
    max_tokens: MaxTokens = None,
    think: ThinkOff = None,
    reasoning_budget: ReasoningBudget = None,
    speculative: Speculative = True,
    draft_tokens: DraftTokens = 8,
    offline: Offline = False,
    verbose: Verbose = False,
) -> None:
    """Summarize each record with each -m model and score ROUGE-1/2/L against the references.

    Decoding is greedy unless --temperature is given, so scores are reproducible. Scores are
    F1 x 100 from Google's rouge-score (best over each record's references); tok/s is generated
    tokens per second. Outputs are kept in --out-dir and reused by a rerun with the same settings.
    """
    params = dict(locals())
    from dataclasses import asdict

    from llmcli.tasks.evaluate import Produced, load_summary_data, score_summaries
    from llmcli.tasks.summarize import Summarizer, SummaryOptions
    from llmcli.ui.environment import Environment

    env = Environment.from_system()
    options = SummaryOptions(length=length, words=words)
    options.validate()
    params["greedy"] = temperature is None
    sampling = make_sampling(params)
    items = load_summary_data(data, limit)

    def build(loaded: LoadedModel) -> tuple[Callable[[str], Produced], list[Any]]:
        summarizer = Summarizer(
            loaded.engine,
            loaded.chat_template(),
            sampling,
            options,
            lookup=make_lookup(params),
            thinking=make_thinking(params, "off"),
        )

        def produce(text: str) -> Produced:
            result = summarizer.summarize(text)
            return Produced(result.text.strip(), result.generated_tokens, result.seconds)

        return produce, [asdict(options), repr(summarizer.sampling)]

    runs = _run_all(env, params, items, lambda model: f"{data.stem}.{model}.summaries.jsonl", build)
    rows, reports, tokenizer = [], [], ""
    for run in runs:
        means, per_item, tokenizer = score_summaries(items, run.outputs)
        reports.append(
            {"model": run.model, "records": len(items), "mean": means, **_speed(run), "per_record": per_item}
        )
        rows.append(
            {
                "model": run.model,
                "records": str(len(items)),
                "ROUGE-1": f"{means['rouge1']:.2f}",
                "ROUGE-2": f"{means['rouge2']:.2f}",
                "ROUGE-L": f"{means['rougeL']:.2f}",
                "tok/s": f"{run.tokens_per_second:.1f}",
            }
        )
    report = {
        "data": str(data),
        "scorer": {"library": "rouge-score", "tokenizer": tokenizer},
        "models": reports,
    }
    legend = (
        f"ROUGE F1 x 100 (rouge-score, {tokenizer}), best over each record's references; "
        f"outputs kept in {out_dir}"
    )
    _report(env, json_out, report, rows, legend)


def _speed(run: RunResult) -> dict[str, Any]:
    return {
        "generated_tokens": sum(p.generated_tokens for p in run.outputs),
        "seconds": round(sum(p.seconds for p in run.outputs), 3),
        "tokens_per_second": round(run.tokens_per_second, 2),
        "outputs": str(run.kept),
    }


@eval_app.command("translate")
def eval_translate(
    src: Annotated[
        Path, typer.Option("--src", help="Source text, one segment per line.", show_default=False)
    ],
    refs: Annotated[
        list[Path],
        typer.Option(
            "--ref", help="Reference translations, line-aligned; repeat for several.", show_default=False
        ),
    ],
    to: Annotated[str, typer.Option("--to", help="Target language: name or code.", show_default=False)],
    source_lang: Annotated[
        str | None, typer.Option("--from", help="Source language.", show_default="detected per line")
    ] = None,
    models: Models = None,
    backend: Backend = None,
    limit: Limit = None,
    out_dir: OutDir = Path("llmcli-eval"),
    force: Force = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON with per-line scores instead.")
    ] = False,
    ctx: Ctx = None,
    threads: Threads = None,
    gpu_layers: GpuLayers = None,
    flash_attn: FlashAttn = None,
    cache_type_k: CacheTypeK = None,
    cache_type_v: CacheTypeV = None,
    temperature: Temperature = None,
    top_k: TopK = None,
    top_p: TopP = None,
    min_p: MinP = None,
    repeat_penalty: RepeatPenalty = None,
    seed: Seed = None,
    max_tokens: MaxTokens = None,
    think: ThinkOff = None,
    reasoning_budget: ReasoningBudget = None,
    speculative: Speculative = True,
    draft_tokens: DraftTokens = 8,
    offline: Offline = False,
    verbose: Verbose = False,
) -> None:
    """Translate each source line with each -m model and score corpus BLEU and chrF with sacrebleu.

    Decoding is greedy unless --temperature is given. BLEU uses sacrebleu's 13a tokenizer (zh for
    Chinese, characters for Japanese and Thai); the signatures are printed for reports. Outputs are
    kept in --out-dir (JSONL, and the hypotheses as a line-aligned .txt) and reused by a rerun.
    """
    params = dict(locals())
    from dataclasses import asdict

    from llmcli.fsutil import atomic_write_text
    from llmcli.tasks.evaluate import Produced, load_parallel_data, score_translations
    from llmcli.tasks.translate import TranslateOptions, Translator
    from llmcli.text.languages import resolve_language
    from llmcli.ui.environment import Environment

    env = Environment.from_system()
    options = TranslateOptions(
        target=resolve_language(to), source=resolve_language(source_lang) if source_lang else None
    )
    params["greedy"] = temperature is None
    sampling = make_sampling(params)
    items = load_parallel_data(src, refs, limit)
    code = options.target.code

    def build(loaded: LoadedModel) -> tuple[Callable[[str], Produced], list[Any]]:
        translator = Translator(
            loaded.engine,
            loaded.chat_template(),
            sampling,
            options,
            lookup=make_lookup(params),
            thinking=make_thinking(params, "off"),
        )

        def produce(text: str) -> Produced:
            result = translator.translate(text)
            return Produced(" ".join(result.text.split()), result.generated_tokens, result.seconds)

        return produce, [asdict(options), repr(sampling)]

    runs = _run_all(env, params, items, lambda model: f"{src.stem}.{model}.{code}.jsonl", build)
    rows, reports = [], []
    signatures: dict[str, Any] = {}
    for run in runs:
        atomic_write_text(run.kept.with_suffix(".txt"), "".join(p.output + "\n" for p in run.outputs))
        means, per_item, signatures = score_translations(items, run.outputs, options.target)
        reports.append(
            {"model": run.model, "lines": len(items), "mean": means, **_speed(run), "per_line": per_item}
        )
        rows.append(
            {
                "model": run.model,
                "lines": str(len(items)),
                "BLEU": f"{means['bleu']:.2f}",
                "chrF": f"{means['chrf']:.2f}",
                "tok/s": f"{run.tokens_per_second:.1f}",
            }
        )
    report = {
        "src": str(src),
        "refs": [str(r) for r in refs],
        "to": code,
        "signatures": signatures,
        "models": reports,
    }
    legend = f"BLEU: {signatures['bleu']}\nchrF: {signatures['chrf']}\noutputs kept in {out_dir}"
    _report(env, json_out, report, rows, legend)

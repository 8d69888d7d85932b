"""`perplexity` and `eval summarize|translate`: which model or quantization suits the user's data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli.app import app
from llmcli.cli.options import (
    Force,
    JsonOut,
    LoadOptions,
    ModelsOptions,
    Offline,
    Omit,
    OptionGroup,
    Override,
    RuntimeOptions,
    SamplingOptions,
    TaskThinking,
    TaskThinkingOptions,
    Verbose,
    inject,
)
from llmcli.ui.environment import Environment

if TYPE_CHECKING:
    from llmcli.tasks.evaluate import Contender, Item, RunResult
    from llmcli.tasks.runtime import LoadedModel

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


@dataclass(frozen=True)
class EvalRunOptions(OptionGroup):
    """Which records an evaluation uses, where its outputs are kept, and how it reports."""

    limit: Limit = None
    out_dir: OutDir = Path("llmcli-eval")
    force: Force = False
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON with per-record scores instead.")] = (
        False
    )


PerLineJson = Annotated[bool, typer.Option("--json", help="Print JSON with per-line scores instead.")]
EvalSampling = Annotated[SamplingOptions, Omit("greedy", "stop", "ignore_eos")]
EvalLoad = Annotated[LoadOptions, Omit("prompt_cache", "draft_model", "parallel")]
LocalModels = Annotated[ModelsOptions, Omit("backend")]


def _advance(bar: Any, name: str, done: int, total: int) -> None:
    bar(done, total, name)


def _each_model(
    env: Environment, models: ModelsOptions, runtime: RuntimeOptions, load: LoadOptions, verbose: bool
) -> Iterator[LoadedModel]:
    """Load each -m model in turn (the configured default when none), yielding it while it is open."""
    for model in models.each():
        with load.load(env, model.settings(runtime, env.environ), verbose=verbose) as loaded:
            yield loaded


# --- perplexity ---------------------------------------------------------------------------------


@app.command()
@inject
def perplexity(
    *,
    env: Environment,
    file: Annotated[Path, typer.Argument(help="UTF-8 text file to score.", show_default=False)],
    models: LocalModels,
    ctx: Annotated[int, typer.Option("--ctx", help="Window size in tokens (llama-perplexity -c).")] = 512,
    stride: Annotated[
        int | None,
        typer.Option(
            "--stride",
            help="Slide windows of --ctx tokens by N, scoring each one's last N tokens.",
            show_default="non-overlapping windows, second half scored",
        ),
    ] = None,
    runtime: Annotated[RuntimeOptions, Omit("ctx")],
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
    from dataclasses import replace

    from llmcli.fsutil import read_utf8
    from llmcli.tasks.evaluate import PerplexityReport
    from llmcli.tasks.perplexity import check_sizes
    from llmcli.tasks.perplexity import perplexity as measure
    from llmcli.ui.render import BatchProgress, note, perplexity_table, show_report

    check_sizes(ctx, stride)
    text = read_utf8(file)
    results = []
    bar = BatchProgress(env, lines=False)
    load = LoadOptions(offline=offline)
    for loaded in _each_model(env, models, replace(runtime, ctx=ctx), load, verbose):
        name = loaded.display_name
        note(env, f"{name}: scoring {file}")
        results.append(
            (name, measure(loaded.local(), text, ctx, stride, progress=partial(_advance, bar, name)))
        )
        bar.close()
    report = PerplexityReport(file, ctx, stride, results)
    show_report(env, report.to_dict(), perplexity_table(report), json_out=json_out)


# --- eval summarize / translate ---------------------------------------------------------------


@dataclass(frozen=True)
class EvalOptions(OptionGroup):
    """What both evaluations take: the -m models, the records and outputs, how the models run and decode."""

    models: ModelsOptions = field(default_factory=ModelsOptions)
    run: EvalRunOptions = field(default_factory=EvalRunOptions)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    sampling: EvalSampling = field(default_factory=SamplingOptions)
    thinking: TaskThinkingOptions = field(default_factory=TaskThinking)
    load: EvalLoad = field(default_factory=LoadOptions)
    verbose: Verbose = False

    def outputs(
        self,
        env: Environment,
        items: list[Item],
        task: Callable[..., Any],
        adapt: Callable[[Any], Contender],
        kept_name: Callable[[str], str],
        **settings: Any,
    ) -> list[RunResult]:
        """Every model's outputs for every item from task (Summarizer, Translator) with settings, decoded
        greedily unless --temperature is given: progress on stderr, kept outputs reused, Ctrl-C exits 130."""
        from llmcli.cli.batch import bind
        from llmcli.errors import ExitCode
        from llmcli.tasks.evaluate import run_models
        from llmcli.ui.render import BatchProgress, note

        config = self.sampling.config(greedy_by_default=True)
        think = self.thinking.resolve(env.environ)
        make = bind(task, env, self.load, False, sampling=config, thinking=think, **settings)
        models = _each_model(env, self.models, self.runtime, self.load, self.verbose)
        bar = BatchProgress(env, lines=False)
        try:
            return run_models(
                models,
                items,
                lambda loaded: adapt(make(loaded.engine, loaded.chat_template(), None)),
                kept_name,
                self.run.out_dir,
                force=self.run.force,
                progress=bar,
                notify=partial(note, env),
            )
        except KeyboardInterrupt:
            bar.close()
            kept = self.run.out_dir
            note(
                env, f"interrupted: outputs so far are kept in {kept}; run the same command again to continue"
            )
            raise typer.Exit(ExitCode.INTERRUPTED) from None


@eval_app.command("summarize")
@inject
def eval_summarize(
    *,
    env: Environment,
    data: Annotated[
        Path,
        typer.Argument(
            help="JSONL: `text` (or `article`) and `reference` (a summary or a list) per line.",
            show_default=False,
        ),
    ],
    length: Annotated[str, typer.Option("--length", help="short, medium or long.")] = "short",
    words: Annotated[
        int | None, typer.Option("--words", help="About N words (overrides --length).", show_default=False)
    ] = None,
    evaluation: EvalOptions,
) -> None:
    """Summarize each record with each -m model and score ROUGE-1/2/L against the references.

    Decoding is greedy unless --temperature is given, so scores are reproducible. Scores are
    F1 x 100 from Google's rouge-score (best over each record's references); tok/s is generated
    tokens per second. Outputs are kept in --out-dir and reused by a rerun with the same settings.
    """
    from llmcli.tasks.evaluate import load_summary_data, summaries, summary_report
    from llmcli.tasks.summarize import Summarizer, SummaryOptions
    from llmcli.ui.render import show_report, summary_scores

    options = SummaryOptions(length=length, words=words)
    options.validate()
    run = evaluation.run
    items = load_summary_data(data, run.limit)
    runs = evaluation.outputs(
        env,
        items,
        Summarizer,
        summaries,
        lambda model: f"{data.stem}.{model}.summaries.jsonl",
        options=options,
    )
    report = summary_report(data, items, runs, run.out_dir)
    show_report(env, report.to_dict(), *summary_scores(report), json_out=run.json_out)


@eval_app.command("translate")
@inject
def eval_translate(
    *,
    env: Environment,
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
    evaluation: Annotated[EvalOptions, Override(json_out=PerLineJson)],
) -> None:
    """Translate each source line with each -m model and score corpus BLEU and chrF with sacrebleu.

    Decoding is greedy unless --temperature is given. BLEU uses sacrebleu's 13a tokenizer (zh for
    Chinese, characters for Japanese and Thai); the signatures are printed for reports. Outputs are
    kept in --out-dir (JSONL, and the hypotheses as a line-aligned .txt) and reused by a rerun.
    """
    from llmcli.tasks.evaluate import load_parallel_data, translation_report, translations
    from llmcli.tasks.translate import TranslateOptions, Translator
    from llmcli.text.languages import resolve_language
    from llmcli.ui.render import show_report, translation_scores

    options = TranslateOptions(
        target=resolve_language(to), source=resolve_language(source_lang) if source_lang else None
    )
    run = evaluation.run
    items = load_parallel_data(src, refs, run.limit)
    code = options.target.code
    runs = evaluation.outputs(
        env,
        items,
        Translator,
        translations,
        lambda model: f"{src.stem}.{model}.{code}.jsonl",
        options=options,
    )
    report = translation_report(src, refs, options.target, items, runs, run.out_dir)
    show_report(env, report.to_dict(), *translation_scores(report), json_out=run.json_out)

"""`summarize`: one file, a pipe, or a whole tree; never truncated, always resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmcli.cli.app import app
from llmcli.cli.options import (
    SAMPLING_HELP,
    BatchLoad,
    BatchOptions,
    DocumentPaths,
    ModelOptions,
    OutDirOption,
    PlanVerbose,
    RuntimeOptions,
    TaskSampling,
    TaskThinkingOptions,
    inject,
)
from llmcli.ui.environment import Environment


@app.command(epilog=SAMPLING_HELP)
@inject
def summarize(
    *,
    env: Environment,
    paths: DocumentPaths = None,
    model: ModelOptions,
    length: Annotated[str, typer.Option("--length", help="short, medium or long.")] = "medium",
    words: Annotated[
        int | None, typer.Option("--words", help="About N words (overrides --length).", show_default=False)
    ] = None,
    style: Annotated[str, typer.Option("--style", help="paragraph, bullets or tldr.")] = "paragraph",
    lang: Annotated[
        str | None, typer.Option("--lang", help="Language of the summary.", show_default="the document's")
    ] = None,
    instructions: Annotated[
        str | None, typer.Option("--instructions", help="What to focus on.", show_default=False)
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            help="auto, stuff, map-reduce or refine; auto stuffs a document that fits the context.",
        ),
    ] = "auto",
    out_dir: Annotated[
        Path | None, OutDirOption(help="Write DIR/<input path>.summary.md per input, resumable.")
    ] = None,
    batch: BatchOptions,
    runtime: RuntimeOptions,
    sampling: TaskSampling,
    thinking: TaskThinkingOptions,
    load: BatchLoad,
    verbose: PlanVerbose = False,
) -> None:
    """Summarize documents of any length (map-reduce over chunks when they exceed the context).

    Outputs go to stdout under a header per file, or to --out-dir / --jsonl, where a rerun skips
    inputs that are done and unchanged. A failed file never stops the batch; the exit code is 1
    if any failed. Ctrl-C stops cleanly (exit 130); the next run continues where it stopped.
    """
    from llmcli.cli.batch import BatchJob, bind, one_output, read_inputs, run_job
    from llmcli.tasks.batch import Output
    from llmcli.tasks.summarize import Summarizer, SummaryOptions

    options = SummaryOptions(
        length=length, words=words, style=style, lang=lang, instructions=instructions, strategy=strategy
    )
    options.validate()
    config, think = sampling.config(), thinking.resolve(env.environ)  # read once, not per document
    one_output(out_dir=out_dir, jsonl=batch.jsonl)
    prompts = batch.prompts()
    sources, stdin = read_inputs(env, paths, "summarize")
    job = BatchJob(sources, stdin, Output(out_dir=out_dir, jsonl=batch.jsonl), batch.force, "summarized")
    summarizer = bind(
        Summarizer, env, load, verbose, sampling=config, options=options, prompts=prompts, thinking=think
    )
    run_job(env, job, model.settings(runtime, env.environ), load, summarizer)

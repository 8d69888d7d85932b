"""`summarize`: one file, a pipe, or a whole tree; never truncated, always resumable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from llmcli.cli.app import app
from llmcli.cli.options import (
    SAMPLING_HELP,
    Ctx,
    FlashAttn,
    GpuLayers,
    Greedy,
    MaxTokens,
    MinP,
    Model,
    Offline,
    RepeatPenalty,
    Seed,
    Temperature,
    Threads,
    TopK,
    TopP,
)
from llmcli.cli.options import sampling as make_sampling
from llmcli.cli.options import settings as make_settings
from llmcli.errors import ExitCode


@app.command(epilog=SAMPLING_HELP)
def summarize(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Files, folders (recursive) or glob patterns; stdin when none.", show_default=False
        ),
    ] = None,
    model: Model = None,
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
        Path | None,
        typer.Option(
            "--out-dir", help="Write DIR/<input path>.summary.md per input, resumable.", show_default=False
        ),
    ] = None,
    jsonl: Annotated[
        Path | None,
        typer.Option(
            "--jsonl", help="Write one JSON record per input to FILE, resumable.", show_default=False
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo inputs that are already done.")] = False,
    prompt_file: Annotated[
        Path | None,
        typer.Option(
            "--prompt-file",
            help="TOML file overriding the prompts (see llmcli/prompts.py).",
            show_default=False,
        ),
    ] = None,
    ctx: Ctx = None,
    threads: Threads = None,
    gpu_layers: GpuLayers = None,
    flash_attn: FlashAttn = None,
    greedy: Greedy = False,
    temperature: Temperature = None,
    top_k: TopK = None,
    top_p: TopP = None,
    min_p: MinP = None,
    repeat_penalty: RepeatPenalty = None,
    seed: Seed = None,
    max_tokens: MaxTokens = None,
    offline: Offline = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the chunk plan of each document.")] = False,
) -> None:
    """Summarize documents of any length (map-reduce over chunks when they exceed the context).

    Outputs go to stdout under a header per file, or to --out-dir / --jsonl, where a rerun skips
    inputs that are done and unchanged. A failed file never stops the batch; the exit code is 1
    if any failed. Ctrl-C stops cleanly (exit 130); the next run continues where it stopped.
    """
    params = dict(locals())
    from dataclasses import asdict

    from llmcli.documents import Source, collect_sources
    from llmcli.environment import Environment
    from llmcli.errors import UsageError
    from llmcli.prompts import load_prompts
    from llmcli.render import BatchProgress, DownloadBar, note
    from llmcli.runtime import load_model
    from llmcli.tasks.batch import Output, run_batch
    from llmcli.tasks.summarize import Summarizer, SummaryOptions

    env = Environment.from_system()
    options = SummaryOptions(
        length=length, words=words, style=style, lang=lang, instructions=instructions, strategy=strategy
    )
    options.validate()
    sampling = make_sampling(params)
    if out_dir is not None and jsonl is not None:
        raise UsageError("give --out-dir or --jsonl, not both")
    prompts = load_prompts(prompt_file)
    stdin = None
    if paths:
        sources = collect_sources(paths)
    else:
        if env.stdin_isatty:
            raise UsageError("nothing to summarize", hint="pass files or folders, or pipe text into stdin")
        stdin = env.stdin.read()
        sources = [Source(None, "<stdin>", Path("stdin.txt"))]

    loaded = load_model(make_settings(params), offline=offline, progress=DownloadBar(env))
    with loaded.engine:
        summarizer = Summarizer(
            loaded.engine,
            loaded.chat_template(),
            sampling,
            options,
            prompts,
            notify=(lambda m: note(env, m)) if verbose else None,
        )

        def process(text: str) -> tuple[str, int]:
            result = summarizer.summarize(text)
            return result.text, result.prompt_tokens + result.generated_tokens

        settings = json.dumps(
            [loaded.name, asdict(options), repr(summarizer.sampling), prompts], sort_keys=True
        )
        progress = BatchProgress(env) if len(sources) > 1 or out_dir or jsonl else None
        try:
            results = run_batch(
                sources,
                process,
                Output(out_dir=out_dir, jsonl=jsonl),
                settings=settings,
                force=force,
                stdin=stdin,
                emit=env.write,
                progress=progress,
            )
        except KeyboardInterrupt:
            if progress:
                progress.close()
            note(env, "interrupted: finished files are kept; run the same command again to continue")
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        if progress:
            progress.close()
    failed = [r for r in results if r.status == "failed"]
    done = sum(r.status == "done" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    if len(results) > 1 or out_dir or jsonl:
        note(env, f"{done} summarized, {skipped} already done, {len(failed)} failed")
    for r in failed:
        note(env, f"failed: {r.path}: {r.error}", error=True)
    if failed:
        raise typer.Exit(ExitCode.ERROR)

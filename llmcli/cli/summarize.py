"""`summarize`: one file, a pipe, or a whole tree; never truncated, always resumable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from llmcli.cli.app import app
from llmcli.cli.options import (
    SAMPLING_HELP,
    Backend,
    CacheTypeK,
    CacheTypeV,
    Ctx,
    DraftModel,
    DraftTokens,
    FlashAttn,
    Force,
    GpuLayers,
    Greedy,
    Jsonl,
    MaxTokens,
    MinP,
    Model,
    Offline,
    Parallel,
    PromptFile,
    ReasoningBudget,
    RepeatPenalty,
    Seed,
    Speculative,
    Temperature,
    ThinkOff,
    Threads,
    TopK,
    TopP,
)
from llmcli.cli.options import lookup as make_lookup
from llmcli.cli.options import sampling as make_sampling
from llmcli.cli.options import thinking as make_thinking


@app.command(epilog=SAMPLING_HELP)
def summarize(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Files, folders (recursive) or glob patterns; stdin when none or `-`.", show_default=False
        ),
    ] = None,
    model: Model = None,
    backend: Backend = None,
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
    jsonl: Jsonl = None,
    force: Force = False,
    prompt_file: PromptFile = None,
    ctx: Ctx = None,
    threads: Threads = None,
    gpu_layers: GpuLayers = None,
    flash_attn: FlashAttn = None,
    cache_type_k: CacheTypeK = None,
    cache_type_v: CacheTypeV = None,
    greedy: Greedy = False,
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
    draft_model: DraftModel = None,
    parallel: Parallel = None,
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

    from llmcli.cli.batch import check_split, load_batch_model, read_inputs, run_documents
    from llmcli.errors import UsageError
    from llmcli.tasks.batch import Output
    from llmcli.tasks.summarize import Summarizer, SummaryOptions
    from llmcli.text.prompts import load_prompts
    from llmcli.ui.environment import Environment
    from llmcli.ui.render import note

    env = Environment.from_system()
    options = SummaryOptions(
        length=length, words=words, style=style, lang=lang, instructions=instructions, strategy=strategy
    )
    options.validate()
    sampling = make_sampling(params)
    thinking = make_thinking(params, "off")  # read once: the factory below runs per document
    if out_dir is not None and jsonl is not None:
        raise UsageError("give --out-dir or --jsonl, not both")
    prompts = load_prompts(prompt_file)
    sources, stdin = read_inputs(env, paths, "summarize")

    loaded = load_batch_model(env, params, len(sources))
    with loaded:
        template = loaded.chat_template()

        def summarizer() -> Summarizer:
            # One per document: several run at once on a parallel engine.
            return Summarizer(
                loaded.runner,
                template,
                sampling,
                options,
                prompts,
                notify=(lambda m: note(env, m)) if verbose else None,
                lookup=make_lookup(params),
                thinking=thinking,
            )

        first = summarizer()
        check_split(lambda: first.budget("summarize"), loaded)

        def process(text: str) -> tuple[str, int]:
            result = summarizer().summarize(text)
            return result.text.rstrip() + "\n", result.prompt_tokens + result.generated_tokens

        settings = json.dumps([loaded.name, asdict(options), repr(first.sampling), prompts], sort_keys=True)
        run_documents(
            env,
            sources,
            process,
            Output(out_dir=out_dir, jsonl=jsonl),
            settings=settings,
            force=force,
            stdin=stdin,
            done_word="summarized",
            workers=loaded.n_parallel,
        )

"""`extract`: documents in, one JSON record each out, under a schema; a tree of files, resumable."""

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
    DraftTokens,
    FlashAttn,
    Force,
    GpuLayers,
    Greedy,
    Jsonl,
    MinP,
    Model,
    Offline,
    Parallel,
    RepeatPenalty,
    Seed,
    Speculative,
    Temperature,
    Threads,
    TopK,
    TopP,
)
from llmcli.cli.options import constraint as make_constraint
from llmcli.cli.options import lookup as make_lookup
from llmcli.cli.options import sampling as make_sampling


@app.command(epilog=SAMPLING_HELP)
def extract(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Files, folders (recursive) or glob patterns; stdin when none or `-`.", show_default=False
        ),
    ] = None,
    schema: Annotated[
        str,
        typer.Option(
            "--schema",
            help="The records' JSON Schema: a .json file, inline JSON, or fields such as "
            "'title, date: date, people: list, amount: number' (each one required).",
            show_default=False,
        ),
    ] = "",
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir", help="Write DIR/<input path>.json per input, resumable.", show_default=False
        ),
    ] = None,
    jsonl: Jsonl = None,
    force: Force = False,
    model: Model = None,
    backend: Backend = None,
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
    max_tokens: Annotated[
        int | None,
        typer.Option("-n", "--max-tokens", help="Tokens per record at most.", show_default="512"),
    ] = None,
    speculative: Speculative = True,
    draft_tokens: DraftTokens = 8,
    parallel: Parallel = None,
    offline: Offline = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the chunk plan of each document.")] = False,
) -> None:
    """Turn documents into JSON records under a schema, one per document, resumable.

    The schema is enforced while the record is generated (llama.cpp's grammar sampler) and checked
    after it. A long document is read in chunks whose records the model merges into one. Records go
    to stdout as one JSON line per input ({"path": ..., "record": ...}), or to --jsonl (one line per
    input, the file its own manifest) or --out-dir; a rerun skips inputs that are done and unchanged.
    A failed file never stops the batch (exit 1 at the end); Ctrl-C stops cleanly (exit 130).
    """
    params = dict(locals())
    from llmcli.cli.batch import check_split, load_batch_model, read_inputs, run_documents
    from llmcli.errors import UsageError
    from llmcli.tasks.batch import Output
    from llmcli.tasks.extract import Extractor
    from llmcli.ui.environment import Environment
    from llmcli.ui.render import note

    env = Environment.from_system()
    if not schema.strip():
        raise UsageError("extract needs --schema", hint="e.g. --schema 'title, date: date, people: list'")
    if out_dir is not None and jsonl is not None:
        raise UsageError("give --out-dir or --jsonl, not both")
    constraint = make_constraint(params)
    sampling = make_sampling(params)
    sources, stdin = read_inputs(env, paths, "extract")

    loaded = load_batch_model(env, params, len(sources))
    with loaded:
        template = loaded.chat_template()

        def extractor() -> Extractor:
            # One per document: several run at once on a parallel engine.
            return Extractor(
                loaded.runner,
                template,
                sampling,
                constraint,
                lookup=make_lookup(params),
                notify=(lambda m: note(env, m)) if verbose else None,
            )

        first = extractor()
        check_split(first.budget, loaded)

        def process(text: str) -> tuple[str, int]:
            result = extractor().extract(text)
            return json.dumps(
                result.record, ensure_ascii=False
            ), result.prompt_tokens + result.generated_tokens

        settings = json.dumps([loaded.name, constraint.schema, repr(first.sampling)], sort_keys=True)
        run_documents(
            env,
            sources,
            process,
            Output(out_dir=out_dir, jsonl=jsonl, suffix=".json", records=True),
            settings=settings,
            force=force,
            stdin=stdin,
            done_word="extracted",
            workers=loaded.n_parallel,
        )

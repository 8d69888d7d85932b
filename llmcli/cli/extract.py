"""`extract`: documents in, one JSON record each out, under a schema; a tree of files, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmcli.cli.app import app
from llmcli.cli.options import (
    SAMPLING_HELP,
    BatchOptions,
    DocumentPaths,
    LoadOptions,
    ModelOptions,
    Omit,
    OutDirOption,
    Override,
    PlanVerbose,
    RuntimeOptions,
    SamplingOptions,
    inject,
)
from llmcli.ui.environment import Environment

RecordTokens = Annotated[
    int | None,
    typer.Option("-n", "--max-tokens", help="Tokens per record at most.", show_default="512"),
]


@app.command(epilog=SAMPLING_HELP)
@inject
def extract(
    *,
    env: Environment,
    paths: DocumentPaths = None,
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
        Path | None, OutDirOption(help="Write DIR/<input path>.json per input, resumable.")
    ] = None,
    batch: Annotated[BatchOptions, Omit("prompt_file")],
    model: ModelOptions,
    runtime: RuntimeOptions,
    sampling: Annotated[SamplingOptions, Omit("stop", "ignore_eos"), Override(max_tokens=RecordTokens)],
    load: Annotated[LoadOptions, Omit("prompt_cache", "draft_model")],
    verbose: PlanVerbose = False,
) -> None:
    """Turn documents into JSON records under a schema, one per document, resumable.

    The schema is enforced while the record is generated (llama.cpp's grammar sampler) and checked
    after it. A long document is read in chunks whose records the model merges into one. Records go
    to stdout as one JSON line per input ({"path": ..., "record": ...}), or to --jsonl (one line per
    input, the file its own manifest) or --out-dir; a rerun skips inputs that are done and unchanged.
    A failed file never stops the batch (exit 1 at the end); Ctrl-C stops cleanly (exit 130).
    """
    from llmcli.cli.batch import BatchJob, bind, one_output, read_inputs, run_job
    from llmcli.cli.options import schema_constraint
    from llmcli.errors import UsageError
    from llmcli.tasks.batch import Output
    from llmcli.tasks.extract import Extractor

    if not schema.strip():
        raise UsageError("extract needs --schema", hint="e.g. --schema 'title, date: date, people: list'")
    one_output(out_dir=out_dir, jsonl=batch.jsonl)
    constraint = schema_constraint(schema)
    config = sampling.config()
    sources, stdin = read_inputs(env, paths, "extract")
    output = Output(out_dir=out_dir, jsonl=batch.jsonl, suffix=".json", records=True)
    extractor = bind(Extractor, env, load, verbose, sampling=config, schema=constraint)
    run_job(
        env,
        BatchJob(sources, stdin, output, batch.force, "extracted"),
        model.settings(runtime, env.environ),
        load,
        extractor,
    )

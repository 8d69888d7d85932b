"""`bench`: prompt and generation speed, time to first token and peak memory, like llama-bench."""

from __future__ import annotations

from typing import Annotated

import typer

from llmcli.cli.app import app
from llmcli.cli.options import (
    LoadOptions,
    ModelOptions,
    Offline,
    Omit,
    Override,
    RuntimeOptions,
    Verbose,
    inject,
)
from llmcli.ui.environment import Environment

BenchThreads = Annotated[
    int | None, typer.Option("-t", "--threads", help="CPU threads.", show_default="physical cores")
]


@app.command(
    epilog="Compare with `llama-bench -m MODEL -p P -n N -r R -t THREADS -fa 1` (or -fa 0 to match "
    "--flash-attn off): its tests also start from an empty cache, but its flash attention defaults to "
    "auto (on where supported), llmcli's to on with GPU offload only."
)
@inject
def bench(
    *,
    env: Environment,
    model: Annotated[ModelOptions, Omit("backend")],
    prompt_tokens: Annotated[
        int, typer.Option("-p", "--prompt-tokens", help="Prompt tokens of the pp test (0: skip it).")
    ] = 512,
    gen_tokens: Annotated[
        int, typer.Option("-n", "--gen-tokens", help="Generated tokens of the tg test (0: skip it).")
    ] = 128,
    repetitions: Annotated[
        int, typer.Option("-r", "--repetitions", help="Counted runs of each test, after one warm-up run.")
    ] = 3,
    runtime: Annotated[RuntimeOptions, Override(threads=BenchThreads)],
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (figures, settings, build) instead.")
    ] = False,
    offline: Offline = False,
    verbose: Verbose = False,
) -> None:
    """Measure prompt and generation tokens/s (llama-bench's pp and tg), time to first token and peak memory.

    Runs go through the same generation path as every command, each from an empty KV cache: pp
    evaluates P random tokens, tg generates N tokens greedily after a one-token prompt. Figures are
    mean ± standard deviation over the runs.
    """
    from llmcli.engine import build_info
    from llmcli.tasks.bench import BenchPlan
    from llmcli.tasks.bench import bench as run
    from llmcli.ui.render import bench_text, note, show_report

    plan = BenchPlan(prompt_tokens, gen_tokens, repetitions)
    plan.validate()
    settings = model.settings(runtime, env.environ)
    loaded = LoadOptions(offline=offline).load(env, settings, verbose=verbose)
    build = build_info()
    with loaded.local() as engine:
        report = run(
            engine,
            plan,
            name=loaded.display_name,
            flash_attn=settings.flash_attn,
            build=build,
            progress=lambda text: note(env, text),
        )
    show_report(env, report.to_dict(), bench_text(report), json_out=json_out)

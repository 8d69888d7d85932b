"""`bench`: prompt and generation speed, time to first token and peak memory, like llama-bench."""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer

from llmcli import __version__
from llmcli.cli.app import app
from llmcli.cli.options import CacheTypeK, CacheTypeV, Ctx, FlashAttn, GpuLayers, Model, Offline, Verbose
from llmcli.cli.options import settings as make_settings

GIB, MIB = 1024**3, 1024**2


def _size(n_bytes: int) -> str:
    return f"{n_bytes / GIB:.2f} GiB" if n_bytes >= GIB else f"{n_bytes / MIB:.2f} MiB"


def _params(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def _backend(system_info: str) -> str:
    """The GPU backends llama.cpp names in its system info ("CUDA : ARCHS = 890 | CPU : AVX2 = 1 | ...")."""
    gpus = [name for name in re.findall(r"(\w+) : ", system_info) if name != "CPU"]
    return ",".join(gpus) or "GPU"


@app.command(
    epilog="Compare with `llama-bench -m MODEL -p P -n N -r R -t THREADS -fa 1` (or -fa 0 to match "
    "--flash-attn off): its tests also start from an empty cache, but its flash attention defaults to "
    "auto (on where supported), llmcli's to on with GPU offload only."
)
def bench(
    model: Model = None,
    prompt_tokens: Annotated[
        int, typer.Option("-p", "--prompt-tokens", help="Prompt tokens of the pp test (0: skip it).")
    ] = 512,
    gen_tokens: Annotated[
        int, typer.Option("-n", "--gen-tokens", help="Generated tokens of the tg test (0: skip it).")
    ] = 128,
    repetitions: Annotated[
        int, typer.Option("-r", "--repetitions", help="Counted runs of each test, after one warm-up run.")
    ] = 3,
    ctx: Ctx = None,
    threads: Annotated[
        int | None, typer.Option("-t", "--threads", help="CPU threads.", show_default="physical cores")
    ] = None,
    gpu_layers: GpuLayers = None,
    flash_attn: FlashAttn = None,
    cache_type_k: CacheTypeK = None,
    cache_type_v: CacheTypeV = None,
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
    params = dict(locals())
    from dataclasses import asdict

    from llmcli.engine import build_info, parse_flash_attn
    from llmcli.tasks.bench import BenchPlan, peak_rss_bytes, run_bench
    from llmcli.tasks.runtime import load_model
    from llmcli.ui.environment import Environment
    from llmcli.ui.render import DownloadBar, markdown_table, note

    env = Environment.from_system()
    plan = BenchPlan(prompt_tokens, gen_tokens, repetitions)
    plan.validate()
    settings = make_settings(params)
    loaded = load_model(settings, verbose=verbose, offline=offline, progress=DownloadBar(env))
    facts = build_info()
    with loaded.local() as engine:
        plan.check_context(engine.n_ctx)
        ngl = engine.gpu_layers if facts.gpu_offload else 0
        flash = parse_flash_attn(settings.flash_attn)
        if flash is None:  # the engine's rule for auto: on exactly when layers are offloaded
            flash = ngl != 0
        backend = _backend(facts.system_info) if ngl else "CPU"
        note(
            env,
            f"{engine.model_path.name}: context {engine.n_ctx:,}, threads {engine.n_threads}, {backend}, "
            f"flash attention {'on' if flash else 'off'}",
        )
        results = run_bench(engine, plan, lambda text: note(env, text))
    peak = peak_rss_bytes()
    info = engine.info
    name = loaded.display_name
    if json_out:
        report = {
            "model": {
                "name": name,
                "path": str(engine.model_path),
                "architecture": info.architecture,
                "quantization": info.quantization,
                "size_bytes": info.file_size,
                "params": info.n_params,
            },
            "settings": {
                "n_ctx": engine.n_ctx,
                "n_batch": engine.n_batch,
                "threads": engine.n_threads,
                "gpu_layers": ngl,
                "backend": backend,
                "flash_attn": flash,
                "repetitions": plan.repetitions,
            },
            "tests": [r.to_dict() for r in results],
            "peak_rss_bytes": peak,
            "build": {"llmcli": __version__, **asdict(facts)},
        }
        env.write(json.dumps(report, ensure_ascii=False) + "\n")
        return
    common = {
        "model": name,
        "quant": info.quantization,
        "size": _size(info.file_size),
        "params": _params(info.n_params),
        "backend": backend,
        "ngl": str(ngl),
        "threads": str(engine.n_threads),
        "fa": "on" if flash else "off",
    }
    rows = [{**common, "test": r.name, "t/s": f"{r.avg_ts:.2f} ± {r.stddev_ts:.2f}"} for r in results]
    lines = [markdown_table(rows), ""]
    lines += [
        f"time to first token ({r.name}): {r.avg_ttft_ms:.1f} ± {r.stddev_ttft_ms:.1f} ms"
        for r in results
        if r.samples_ttft_ms
    ]
    memory = _size(peak) if peak is not None else "unknown"
    lines.append(f"peak memory: {memory} resident (model file {_size(info.file_size)})")
    env.write("\n".join(lines) + "\n")

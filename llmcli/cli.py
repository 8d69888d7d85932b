"""The command line: parse, call the core, render. The only module that imports typer."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer

from llmcli import __version__
from llmcli.errors import ExitCode, LlmcliError, OutputClosed

app = typer.Typer(
    name="llmcli",
    help="Run quantized GGUF language models locally: complete, chat, summarize, translate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich rendering would triple `--help` start-up time
    context_settings={"help_option_names": ["-h", "--help"]},
)

# --- options shared by every command that runs a model ---------------------------------------

Model = Annotated[
    str | None,
    typer.Option("-m", "--model", help="GGUF file to run. [env: LLMCLI_MODEL]", show_default=False),
]
Ctx = Annotated[
    int | None,
    typer.Option(
        "--ctx", help="Context size in tokens.", show_default="the model's trained length, at most 8192"
    ),
]
Threads = Annotated[int | None, typer.Option("--threads", help="CPU threads.", show_default="physical cores")]
GpuLayers = Annotated[
    str | None,
    typer.Option(
        "--gpu-layers",
        "-ngl",
        help="Layers to offload to the GPU: N, all or auto.",
        show_default="auto: all when llama.cpp was built with GPU support, else none",
    ),
]
Verbose = Annotated[bool, typer.Option("--verbose", help="Show llama.cpp's own log on stderr.")]

# --- sampling options --------------------------------------------------------------------------

Greedy = Annotated[
    bool,
    typer.Option("--greedy", help="Always pick the most likely token (argmax).", rich_help_panel="Sampling"),
]
Temperature = Annotated[
    float | None,
    typer.Option(
        "-t",
        "--temperature",
        help="Softmax temperature; 0 is greedy.",
        show_default="0.8",
        rich_help_panel="Sampling",
    ),
]
TopK = Annotated[
    int | None,
    typer.Option(
        "--top-k",
        help="Sample from the K most likely tokens (0: off).",
        show_default=False,
        rich_help_panel="Sampling",
    ),
]
TopP = Annotated[
    float | None,
    typer.Option(
        "--top-p",
        help="Nucleus: sample from the smallest set of tokens with probability >= P.",
        show_default=False,
        rich_help_panel="Sampling",
    ),
]
MinP = Annotated[
    float | None,
    typer.Option(
        "--min-p",
        help="Drop tokens less likely than P times the most likely one.",
        show_default=False,
        rich_help_panel="Sampling",
    ),
]
RepeatPenalty = Annotated[
    float | None,
    typer.Option(
        "--repeat-penalty",
        help="Penalize tokens seen in the last 64 (1.0: off).",
        show_default="1.0",
        rich_help_panel="Sampling",
    ),
]
Seed = Annotated[
    int | None,
    typer.Option(
        "--seed",
        help="Seed for reproducible sampling.",
        show_default="fresh randomness every run",
        rich_help_panel="Sampling",
    ),
]
MaxTokens = Annotated[
    int | None,
    typer.Option(
        "-n",
        "--max-tokens",
        help="Stop after N tokens.",
        show_default="until the model ends or the context is full",
        rich_help_panel="Sampling",
    ),
]
Stop = Annotated[
    list[str] | None,
    typer.Option(
        "--stop", help="Stop before this text (repeatable).", show_default=False, rich_help_panel="Sampling"
    ),
]

IgnoreEos = Annotated[
    bool,
    typer.Option(
        "--ignore-eos",
        help="Keep generating past end-of-generation tokens (for benchmarks).",
        rich_help_panel="Sampling",
    ),
]

SAMPLING_HELP = (
    "Sampling: with none of --top-k/--top-p/--min-p given, top-p 0.95 and min-p 0.05 apply; "
    "any of them given alone means exactly that method (plus temperature)."
)


def _sampling(*, stop: list[str] | None, **options: Any) -> Any:
    """A validated SamplingConfig from the sampling flags (None: not given)."""
    from llmcli.sampling import SamplingConfig

    return SamplingConfig.from_options(stop=stop or (), **options)


def _settings(model: str | None, ctx: int | None, threads: int | None, gpu_layers: str | None) -> Any:
    from llmcli.config import load_settings

    return load_settings().merged(model=model, ctx=ctx, threads=threads, gpu_layers=gpu_layers)


# --- commands ----------------------------------------------------------------------------------


@app.command(epilog=SAMPLING_HELP)
def complete(
    prompt: Annotated[str | None, typer.Argument(help="Text to continue.", show_default=False)] = None,
    model: Model = None,
    ctx: Ctx = None,
    threads: Threads = None,
    gpu_layers: GpuLayers = None,
    greedy: Greedy = False,
    temperature: Temperature = None,
    top_k: TopK = None,
    top_p: TopP = None,
    min_p: MinP = None,
    repeat_penalty: RepeatPenalty = None,
    seed: Seed = None,
    max_tokens: MaxTokens = None,
    stop: Stop = None,
    ignore_eos: IgnoreEos = False,
    stats: Annotated[bool, typer.Option("--stats", help="Print token counts and speed to stderr.")] = False,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object (text, finish reason, tokens, timings) instead of streaming.",
        ),
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Continue a prompt and stream the text to stdout.

    The prompt is read from stdin when stdin is not a terminal, and from PROMPT; with both,
    stdin comes first, then a blank line, then PROMPT. Ctrl-C stops and keeps what was printed.
    """
    from llmcli.environment import Environment
    from llmcli.render import finish_note, note, stats_line
    from llmcli.runtime import open_engine
    from llmcli.tasks.complete import build_prompt
    from llmcli.tasks.complete import complete as run_complete

    env = Environment.from_system()
    sampling = _sampling(
        greedy=greedy,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        repeat_penalty=repeat_penalty,
        seed=seed,
        max_tokens=max_tokens,
        stop=stop,
        ignore_eos=ignore_eos,
    )
    settings = _settings(model, ctx, threads, gpu_layers)
    text = build_prompt(env.read_stdin(), prompt)
    with open_engine(settings, verbose=verbose) as engine:
        result = run_complete(engine, text, sampling, (lambda _p: None) if json_out else env.write)
    if json_out:
        env.write(
            json.dumps(
                {
                    "text": result.text,
                    "finish_reason": result.finish_reason,
                    "seed": result.seed,
                    "model": str(engine.model_path),
                    **result.stats.to_dict(),
                },
                ensure_ascii=False,
            )
            + "\n"
        )
    elif env.stdout_isatty and result.text and not result.text.endswith("\n"):
        env.write("\n")  # leave the shell prompt on a line of its own; pipes get the text untouched
    if stats:
        note(env, stats_line(result.stats))
    if reason := finish_note(result):
        note(env, reason)
    if result.finish_reason == "interrupted":
        raise typer.Exit(ExitCode.INTERRUPTED)


@app.command()
def info(
    json_out: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
) -> None:
    """Show what the installed llama.cpp build can do (GPU offload, CPU features, threads)."""
    from dataclasses import asdict

    from llmcli.engine import build_info
    from llmcli.environment import Environment

    env = Environment.from_system()
    facts = build_info()
    if json_out:
        env.write(json.dumps({"llmcli": __version__, **asdict(facts)}) + "\n")
        return
    lines = [
        f"llmcli            {__version__}",
        f"llama-cpp-python  {facts.llama_cpp_python}",
        f"GPU offload       {'yes' if facts.gpu_offload else 'no (CPU only)'}",
        f"mmap              {'yes' if facts.mmap else 'no'}",
        f"threads           {facts.physical_cores} (physical cores available)",
        f"system            {facts.system_info}",
    ]
    if not facts.gpu_offload:
        lines += [
            "",
            "This llama.cpp build runs on the CPU only. To offload to a GPU, reinstall llama-cpp-python:",
            '  NVIDIA (CUDA):  CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir '
            "llama-cpp-python",
            '  Apple (Metal):  CMAKE_ARGS="-DGGML_METAL=on" pip install --force-reinstall --no-cache-dir '
            "llama-cpp-python",
        ]
    env.write("\n".join(lines) + "\n")


def _version(value: bool) -> None:
    if value:
        print(f"llmcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks on errors. [env: LLMCLI_DEBUG=1]")
    ] = False,
) -> None:
    if debug:
        os.environ["LLMCLI_DEBUG"] = "1"


# --- entry point -------------------------------------------------------------------------------


def _quiet_stdout() -> None:
    """After the reader of stdout went away: point stdout at /dev/null so exit does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> None:
    """Run the app, turning every failure into one line on stderr and an exit code."""
    # Typer may vendor its own click: find its usage-error class through a public name.
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    debug = bool(os.environ.get("LLMCLI_DEBUG")) or "--debug" in (argv or sys.argv)
    code: int = ExitCode.OK
    try:
        result = app(args=argv, standalone_mode=False, prog_name="llmcli")
        code = result if isinstance(result, int) else ExitCode.OK
    except usage_error as exc:
        ctx = getattr(exc, "ctx", None)
        cmd = ctx.command_path if ctx else "llmcli"
        message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
        if message:  # empty when help was shown instead (`llmcli` with no command)
            sys.stderr.write(f"error: {message} (see `{cmd} --help`)\n")
        code = ExitCode.USAGE
    except typer.Abort:
        code = ExitCode.INTERRUPTED
    except OutputClosed as exc:
        _quiet_stdout()
        code = exc.exit_code
    except LlmcliError as exc:
        if debug:
            raise
        from llmcli.render import error_line

        sys.stderr.write(error_line(exc) + "\n")
        code = exc.exit_code
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    except OSError as exc:
        if debug:
            raise
        sys.stderr.write(
            f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "") + "\n"
        )
        code = ExitCode.ERROR
    sys.exit(code)

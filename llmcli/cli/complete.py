"""`complete` and `info`."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated

import typer

from llmcli import __version__
from llmcli.cli.app import app
from llmcli.cli.options import (
    SAMPLING_HELP,
    Files,
    InteractiveLoad,
    ModelOptions,
    RuntimeOptions,
    SamplingOptions,
    StructuredOptions,
    ThinkingOptions,
    Verbose,
    inject,
)
from llmcli.errors import ExitCode
from llmcli.ui.environment import Environment


@app.command(epilog=SAMPLING_HELP)
@inject
def complete(
    *,
    env: Environment,
    prompt: Annotated[str | None, typer.Argument(help="Text to continue.", show_default=False)] = None,
    file: Files = None,
    model: ModelOptions,
    runtime: RuntimeOptions,
    sampling: SamplingOptions,
    thinking: ThinkingOptions,
    structured: StructuredOptions,
    stats: Annotated[bool, typer.Option("--stats", help="Print token counts and speed to stderr.")] = False,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object (text, reasoning, finish reason, tokens, timings), not a stream.",
        ),
    ] = False,
    load: InteractiveLoad,
    verbose: Verbose = False,
) -> None:
    """Continue a prompt and stream the text to stdout.

    The prompt is read from stdin when stdin is not a terminal, and from PROMPT; with both,
    stdin comes first, then a blank line, then PROMPT. Each -f file goes before PROMPT, in order
    (`-f -` puts stdin among them). Ctrl-C stops and keeps what was printed. A thinking model's
    thinking never reaches stdout: on a terminal it streams dimmed on stderr; --json has it apart.
    With --schema or --grammar the text is constrained as it is generated and checked at the end.
    """
    from llmcli.errors import ContextOverflowError
    from llmcli.reasoning import THINK
    from llmcli.tasks.complete import build_prompt, count_tokens, files_overflow, read_files, read_note
    from llmcli.tasks.complete import complete as run_complete
    from llmcli.ui.render import PromptMeter, ThoughtPrinter, finish_note, note, stats_line, thinking_note

    config = replace(sampling.config(), constraint=structured.constraint())
    settings = model.settings(runtime, env.environ)
    think = thinking.resolve(env.environ)
    names = [str(p) for p in file or ()]
    stdin_text = None if "-" in names else env.read_stdin()
    files = read_files(names, stdin=env.stdin.read)
    text = build_prompt(stdin_text, prompt, files)
    with load.load(env, settings, verbose=verbose, meter=PromptMeter(env)) as loaded:
        engine = loaded.engine
        # A server's template is not known here: its models' thinking is taken to be <think>-marked.
        fmt = loaded.chat_template().think_format if loaded.ref else THINK
        if said := thinking_note(thinking.asked, fmt is not None):
            note(env, said)
        files = count_tokens(engine, files)
        for f in files:
            note(env, read_note(f))
        thoughts = ThoughtPrinter(env, hide=thinking.hide_thinking or json_out)

        def answer(piece: str) -> None:
            thoughts.end()
            if not json_out:
                env.write(piece)

        try:
            result = run_complete(
                engine,
                text,
                config,
                answer,
                think=(fmt, think),
                emit_thought=thoughts,
                lookup=load.lookup(),
            )
        except ContextOverflowError as exc:
            if not files:
                raise
            raise files_overflow(exc, files) from None
    if json_out:
        env.write(
            json.dumps(
                {
                    "text": result.text,
                    "reasoning": result.reasoning,
                    "finish_reason": result.finish_reason,
                    "seed": result.seed,
                    "model": engine.name,
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
    if config.constraint is not None:
        config.constraint.check(result.text)  # valid by construction, unless cut short


@app.command()
@inject
def info(
    *,
    env: Environment,
    json_out: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
) -> None:
    """Show what the installed llama.cpp build can do here: GPU offload, CPU features, kernels, AMX."""
    from dataclasses import asdict

    from llmcli.engine import build_info
    from llmcli.ui.render import amx_verdict

    facts = build_info()
    if json_out:
        env.write(json.dumps({"llmcli": __version__, **asdict(facts)}) + "\n")
        return
    cpu = facts.cpu
    lines = [
        f"llmcli            {__version__}",
        f"llama-cpp-python  {facts.llama_cpp_python}",
        f"GPU offload       {'yes' if facts.gpu_offload else 'no (CPU only)'}",
        f"mmap              {'yes' if facts.mmap else 'no'}",
        f"CPU               {cpu.model} ({cpu.machine})",
        f"CPU features      {' '.join(f.upper() for f in cpu.features) or 'none of note'}",
        f"AMX               {amx_verdict(cpu)}",
        f"kernels           {', '.join(facts.kernels)}",
        f"threads           {facts.physical_cores} by default (physical cores), at most {facts.logical_cpus}",
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

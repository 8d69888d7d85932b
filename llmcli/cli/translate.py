"""`translate`: text, a pipe, one file or a whole tree, with the structure kept exactly."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Annotated

import typer

from llmcli.cli.app import app
from llmcli.cli.options import (
    BatchLoad,
    BatchOptions,
    ModelOptions,
    OutDirOption,
    RuntimeOptions,
    TaskSampling,
    TaskThinkingOptions,
    inject,
)
from llmcli.ui.environment import Environment

_DOCUMENT_SUFFIXES = (".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".pdf", ".text")


def _is_text_argument(args: list[str]) -> bool:
    """One argument that names no file and does not look like a path is text to translate."""
    if len(args) != 1 or args[0] == "-":
        return False
    arg = args[0]
    if not arg.strip() or Path(arg).exists() or Path(arg).is_symlink() or glob.glob(arg):
        return False
    looks_like_path = not any(c.isspace() for c in arg) and (
        "/" in arg or arg.lower().endswith(_DOCUMENT_SUFFIXES)
    )
    return not looks_like_path


def _list_languages(value: bool) -> None:
    if not value:
        return
    from llmcli.text.languages import known_languages

    for language in known_languages():
        typer.echo(f"{language.code}\t{language.name}")
    raise typer.Exit()


@app.command(
    epilog="Decodes greedily unless --temperature is given. Languages by name or code: "
    "German, de, zh-Hans, pt-BR (see --list-languages)."
)
@inject
def translate(
    *,
    env: Environment,
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Text to translate, or files, folders (recursive), glob patterns; stdin when none or `-`.",
            show_default=False,
            metavar="[TEXT | PATH...]",
        ),
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Language to translate into.", show_default=False)
    ] = None,
    source_lang: Annotated[
        str | None,
        typer.Option("--from", help="Language of the input.", show_default="detected"),
    ] = None,
    glossary: Annotated[
        Path | None,
        typer.Option(
            "--glossary", help="TSV file of `term<TAB>translation` pairs to use.", show_default=False
        ),
    ] = None,
    model: ModelOptions,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the translation of one input to FILE.", show_default=False),
    ] = None,
    out_dir: Annotated[
        Path | None,
        OutDirOption(help="Write DIR/<input path> with the language code before the extension, resumable."),
    ] = None,
    batch: BatchOptions,
    list_languages: Annotated[
        bool,
        typer.Option(
            "--list-languages",
            help="List the language names and codes, then exit.",
            callback=_list_languages,
            is_eager=True,
        ),
    ] = False,
    runtime: RuntimeOptions,
    sampling: TaskSampling,
    thinking: TaskThinkingOptions,
    load: BatchLoad,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show the detected language and the segment plan.")
    ] = False,
) -> None:
    """Translate text or documents, keeping paragraphs, line breaks, Markdown and code blocks exactly.

    A single argument that is not a file is the text to translate. Code blocks and inline code are
    copied, never translated. With --out-dir or --jsonl a rerun skips inputs that are done and
    unchanged; a failed file never stops the batch (exit 1 if any failed); Ctrl-C stops cleanly (130).
    """
    from llmcli.cli.batch import BatchJob, bind, one_output, read_inputs, run_job
    from llmcli.errors import UsageError
    from llmcli.tasks.batch import Output
    from llmcli.tasks.translate import TranslateOptions, Translator, load_glossary
    from llmcli.text.documents import Source
    from llmcli.text.languages import resolve_language

    if to is None:
        raise UsageError("say which language to translate into with --to", hint="e.g. --to German or --to de")
    options = TranslateOptions(
        target=resolve_language(to),
        source=resolve_language(source_lang) if source_lang else None,
        glossary=load_glossary(glossary) if glossary else (),
    )
    config, think = sampling.config(greedy_by_default=True), thinking.resolve(env.environ)  # read once
    one_output(out=out, out_dir=out_dir, jsonl=batch.jsonl)
    prompts = batch.prompts()
    args = inputs or []
    from_text = _is_text_argument(args)
    stdin: bytes | None
    if from_text:
        sources, stdin = [Source(None, "<text>", Path("text.txt"))], args[0].encode("utf-8")
    else:
        sources, stdin = read_inputs(env, args, "translate")
    if out is not None and len(sources) > 1:
        raise UsageError(f"--out takes one input, got {len(sources)}", hint="use --out-dir for many")
    suffix = f".{options.target.code}"
    output = Output(out_dir=out_dir, jsonl=batch.jsonl, out_file=out, suffix=suffix, text_suffix=True)
    translator = bind(
        Translator,
        env,
        load,
        verbose,
        sampling=config,
        options=options,
        prompts=prompts,
        thinking=think,
        ends_line=from_text,
    )
    run_job(
        env,
        BatchJob(sources, stdin, output, batch.force, "translated"),
        model.settings(runtime, env.environ),
        load,
        translator,
    )

"""`translate`: text, a pipe, one file or a whole tree, with the structure kept exactly."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Annotated

import typer

from llmcli.cli.app import app
from llmcli.cli.options import (
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
def translate(
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
    model: Model = None,
    backend: Backend = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the translation of one input to FILE.", show_default=False),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir",
            help="Write DIR/<input path> with the language code before the extension, resumable.",
            show_default=False,
        ),
    ] = None,
    jsonl: Jsonl = None,
    force: Force = False,
    prompt_file: PromptFile = None,
    list_languages: Annotated[
        bool,
        typer.Option(
            "--list-languages",
            help="List the language names and codes, then exit.",
            callback=_list_languages,
            is_eager=True,
        ),
    ] = False,
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
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show the detected language and the segment plan.")
    ] = False,
) -> None:
    """Translate text or documents, keeping paragraphs, line breaks, Markdown and code blocks exactly.

    A single argument that is not a file is the text to translate. Code blocks and inline code are
    copied, never translated. With --out-dir or --jsonl a rerun skips inputs that are done and
    unchanged; a failed file never stops the batch (exit 1 if any failed); Ctrl-C stops cleanly (130).
    """
    params = dict(locals())
    from dataclasses import asdict

    from llmcli.cli.batch import check_split, load_batch_model, read_inputs, run_documents
    from llmcli.errors import UsageError
    from llmcli.tasks.batch import Output
    from llmcli.tasks.translate import TranslateOptions, Translator, load_glossary
    from llmcli.text.documents import Source
    from llmcli.text.languages import resolve_language
    from llmcli.text.prompts import load_prompts
    from llmcli.ui.environment import Environment
    from llmcli.ui.render import note

    env = Environment.from_system()
    if to is None:
        raise UsageError("say which language to translate into with --to", hint="e.g. --to German or --to de")
    options = TranslateOptions(
        target=resolve_language(to),
        source=resolve_language(source_lang) if source_lang else None,
        glossary=load_glossary(glossary) if glossary else (),
    )
    if temperature is None:
        params["greedy"] = True
    sampling = make_sampling(params)
    thinking = make_thinking(params, "off")  # read once: the factory below runs per document
    if sum(x is not None for x in (out, out_dir, jsonl)) > 1:
        raise UsageError("give only one of --out, --out-dir and --jsonl")
    prompts = load_prompts(prompt_file)
    args = inputs or []
    from_text = _is_text_argument(args)
    stdin: bytes | None
    if from_text:
        sources, stdin = [Source(None, "<text>", Path("text.txt"))], args[0].encode("utf-8")
    else:
        sources, stdin = read_inputs(env, args, "translate")
    if out is not None and len(sources) > 1:
        raise UsageError(f"--out takes one input, got {len(sources)}", hint="use --out-dir for many")

    loaded = load_batch_model(env, params, len(sources))
    with loaded:
        template = loaded.chat_template()

        def translator() -> Translator:
            # One per document: several run at once on a parallel engine.
            return Translator(
                loaded.runner,
                template,
                sampling,
                options,
                prompts,
                notify=(lambda m: note(env, m)) if verbose else None,
                lookup=make_lookup(params),
                thinking=thinking,
            )

        check_split(translator().budget, loaded)

        def process(text: str) -> tuple[str, int]:
            result = translator().translate(text)
            produced = result.text + ("\n" if from_text and not result.text.endswith("\n") else "")
            return produced, result.prompt_tokens + result.generated_tokens

        settings = json.dumps([loaded.name, asdict(options), repr(sampling), prompts], sort_keys=True)
        run_documents(
            env,
            sources,
            process,
            Output(
                out_dir=out_dir, jsonl=jsonl, out_file=out, suffix=f".{options.target.code}", text_suffix=True
            ),
            settings=settings,
            force=force,
            stdin=stdin,
            done_word="translated",
            workers=loaded.n_parallel,
        )

"""The body that summarize, translate and extract share: read the inputs, load the model, check the
split of its context, run the documents, write and report the outputs, and exit with the batch's code."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from llmcli.errors import ExitCode, LlmcliError, UsageError
from llmcli.tasks.batch import DocumentWorker, Output
from llmcli.text.documents import Source
from llmcli.ui.environment import Environment

if TYPE_CHECKING:
    from llmcli.chat.templates import ChatTemplate
    from llmcli.cli.options import LoadOptions
    from llmcli.config import Settings
    from llmcli.engine import Engine
    from llmcli.reasoning import Thinking
    from llmcli.sampling import SamplingConfig
    from llmcli.tasks.runtime import LoadedModel
    from llmcli.ui.render import BatchProgress

# Told (done, total) as work goes: a renderer shows it.
Meter = Callable[[int, int], None]
# A batch command's task for one document, on the engine (parallel when several) and chat template,
# telling a meter how the document's pieces go.
Worker = Callable[["Engine", "ChatTemplate", Meter | None], DocumentWorker]
T = TypeVar("T", bound=DocumentWorker)


def read_inputs(env: Environment, paths: list[str] | None, verb: str) -> tuple[list[Source], bytes | None]:
    """The sources that paths name, or standard input when none or `-` (an error on a terminal)."""
    from llmcli.text.documents import collect_sources

    if paths and paths != ["-"]:
        return collect_sources(paths), None
    if env.stdin_isatty:
        raise UsageError(f"nothing to {verb}", hint="pass files or folders, or pipe text into stdin")
    return [Source.stdin()], env.stdin.read()


def one_output(**given: Path | None) -> None:
    """At most one of these output options (out_dir stands for --out-dir) may be given."""
    flags = ["--" + name.replace("_", "-") for name in given]
    if sum(value is not None for value in given.values()) > 1:
        if len(flags) == 2:
            raise UsageError(f"give {flags[0]} or {flags[1]}, not both")
        raise UsageError(f"give only one of {', '.join(flags[:-1])} and {flags[-1]}")


def bind(
    task: Callable[..., T],
    env: Environment,
    load: LoadOptions,
    verbose: bool,
    *,
    sampling: SamplingConfig,
    thinking: Thinking | None = None,
    **kw: Any,
) -> Callable[[Engine, ChatTemplate, Meter | None], T]:
    """task (Summarizer, Translator, Extractor) on an engine and template: its TaskSetup asks with sampling,
    thinking and prompt lookup as --speculative asks, tells its plan on stderr with --verbose and its
    pieces' progress to the meter given; kw goes to task as it is."""
    from llmcli.tasks.asking import TaskSetup
    from llmcli.ui.render import note

    notify = (lambda message: note(env, message)) if verbose else None
    lookup = load.lookup()

    def make(engine: Engine, template: ChatTemplate, meter: Meter | None) -> T:
        return task(TaskSetup(engine, template, sampling, lookup, thinking, notify, meter), **kw)

    return make


@dataclass(frozen=True)
class BatchJob:
    """A batch command's documents, where their outputs go, and the word that counts the done ones."""

    sources: list[Source]
    stdin: bytes | None  # the bytes of standard input when a source is `-`
    output: Output
    force: bool = False
    done_word: str = "done"


def run_job(env: Environment, job: BatchJob, settings: Settings, load: LoadOptions, worker: Worker) -> None:
    """Load the settings' model for the job, check its split, run every document and report the batch.

    A long prompt's evaluation shows on stderr too, and how a document's pieces go, one document at a
    time (--parallel above 1 decodes several documents at once: the batch's own progress shows there).
    """
    from llmcli.ui.render import BatchProgress, PieceMeter, PromptMeter

    output = job.output
    progress = BatchProgress(env) if len(job.sources) > 1 or output.to_files else None
    meter = progress.prompt if progress else PromptMeter(env)
    with load.load(env, settings, inputs=len(job.sources), meter=meter) as loaded:
        pieces: Meter | None = None
        if loaded.n_parallel == 1 or len(job.sources) == 1:  # side by side, documents would take turns
            pieces = progress.pieces if progress else PieceMeter(env)
        template = loaded.chat_template()
        first = worker(loaded.runner, template, None)
        check_split(first.budget, loaded)
        key = json.dumps([loaded.name, *first.settings()], sort_keys=True)
        run_documents(
            env,
            job,
            lambda text: worker(loaded.runner, template, pieces).process(text),
            key,
            progress,
            loaded.n_parallel,
        )


def run_documents(
    env: Environment,
    job: BatchJob,
    process: Callable[[str], tuple[str, int]],
    key: str,
    progress: BatchProgress | None,
    workers: int = 1,
) -> None:
    """Run a batch with progress on stderr; report it; exit 1 if a file failed, 130 on Ctrl-C.

    key: the settings part of each input's key (a rerun skips inputs done with the same).
    """
    from llmcli.tasks.batch import run_batch
    from llmcli.ui.render import note

    output = job.output
    to_files = output.to_files
    try:
        results = run_batch(
            job.sources,
            process,
            output,
            settings=key,
            force=job.force,
            stdin=job.stdin,
            emit=env.write,
            progress=progress,
            workers=workers,
        )
    except KeyboardInterrupt:
        if progress:
            progress.close()
        note(env, "interrupted: finished files are kept; run the same command again to continue")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except LlmcliError:  # one that stops the batch: shown by the app's error table
        if progress:
            progress.close()
        raise
    if progress:
        progress.close()
    failed = [r for r in results if r.status == "failed"]
    if len(results) > 1 or to_files:
        done = sum(r.status == "done" for r in results)
        skipped = sum(r.status == "skipped" for r in results)
        note(env, f"{done} {job.done_word}, {skipped} already done, {len(failed)} failed")
    for r in failed:
        # One input: a plain error line, like any other command's (the message names the input).
        note(env, f"error: {r.error}" if len(results) == 1 else f"failed: {r.path}: {r.error}", error=True)
    if failed:
        raise typer.Exit(ExitCode.ERROR)


def check_split(budget: Callable[[], int], loaded: LoadedModel) -> None:
    """Fail before any work when a sequence's share of the context cannot hold a task's request."""
    from llmcli.errors import ContextOverflowError

    try:
        budget()
    except ContextOverflowError as exc:
        if loaded.parallel is None:
            raise
        n, share = loaded.n_parallel, loaded.parallel.n_ctx
        raise ContextOverflowError(
            f"--parallel {n} splits the context of {loaded.engine.n_ctx:,} tokens into {share:,} per "
            f"sequence, too few: {exc.message}",
            hint=f"raise --ctx to {loaded.engine.n_ctx * 2:,} or more, or lower --parallel",
        ) from None

"""What summarize and translate share: reading their inputs, and running and reporting a batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from llmcli.errors import ExitCode, LlmcliError, UsageError
from llmcli.tasks.batch import Output
from llmcli.text.documents import Source
from llmcli.ui.environment import Environment

if TYPE_CHECKING:
    from llmcli.tasks.runtime import LoadedModel


def read_inputs(env: Environment, paths: list[str] | None, verb: str) -> tuple[list[Source], bytes | None]:
    """The sources that paths name, or standard input when none or `-` (an error on a terminal)."""
    from llmcli.text.documents import collect_sources

    if paths and paths != ["-"]:
        return collect_sources(paths), None
    if env.stdin_isatty:
        raise UsageError(f"nothing to {verb}", hint="pass files or folders, or pipe text into stdin")
    return [Source.stdin()], env.stdin.read()


def run_documents(
    env: Environment,
    sources: list[Source],
    process: Callable[[str], tuple[str, int]],
    output: Output,
    *,
    settings: str,
    force: bool,
    stdin: bytes | None,
    done_word: str,
    workers: int = 1,
) -> None:
    """Run a batch with progress on stderr; report it; exit 1 if a file failed, 130 on Ctrl-C."""
    from llmcli.tasks.batch import run_batch
    from llmcli.ui.render import BatchProgress, note

    to_files = output.out_dir is not None or output.jsonl is not None
    progress = BatchProgress(env) if len(sources) > 1 or to_files else None
    try:
        results = run_batch(
            sources,
            process,
            output,
            settings=settings,
            force=force,
            stdin=stdin,
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
        note(env, f"{done} {done_word}, {skipped} already done, {len(failed)} failed")
    for r in failed:
        # One input: a plain error line, like any other command's (the message names the input).
        note(env, f"error: {r.error}" if len(results) == 1 else f"failed: {r.path}: {r.error}", error=True)
    if failed:
        raise typer.Exit(ExitCode.ERROR)


def load_batch_model(env: Environment, params: dict[str, Any], inputs: int) -> LoadedModel:
    """The command's model, with as many parallel sequences as --parallel (or the default) asks."""
    from llmcli.cli.options import parallel, settings
    from llmcli.tasks.runtime import load_model
    from llmcli.ui.render import DownloadBar

    workers, auto = parallel(params, inputs)
    return load_model(
        settings(params),
        offline=params["offline"],
        progress=DownloadBar(env),
        parallel=workers,
        auto_parallel=auto,
        draft_model=params.get("draft_model"),
    )


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

"""`llmcli models ...`: list, pull, show, path, rm, import, and the shared cache: du, gc."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli.cli.app import app
from llmcli.cli.options import JsonOut, complete_model, inject
from llmcli.ui.environment import Environment

if TYPE_CHECKING:
    from llmcli.chat.templates import ChatTemplate
    from llmcli.models.store import CacheEntry, CacheUsage, GcResult

models_app = typer.Typer(help="List, download, inspect and remove models.", no_args_is_help=True)
app.add_typer(models_app, name="models")

Ref = Annotated[
    str,
    typer.Argument(
        help="Alias, alias:QUANT, owner/repo:QUANT, owner/repo/file.gguf or path.",
        show_default=False,
        autocompletion=complete_model,
    ),
]


def _human(size: int) -> str:
    from llmcli.models.listing import human_size

    return human_size(size)


@models_app.command("list")
@inject
def list_models(*, env: Environment, json_out: JsonOut = False) -> None:
    """Show the curated registry and every downloaded model, with sizes on disk."""
    from dataclasses import asdict

    from llmcli.models.listing import list_models as rows_of
    from llmcli.models.registry import load_registry
    from llmcli.models.store import Store
    from llmcli.ui.render import models_table, show_report

    rows = rows_of(load_registry(environ=env.environ), Store(environ=env.environ))
    show_report(env, [asdict(r) for r in rows], models_table(rows), json_out=json_out, indent=2)


@models_app.command()
@inject
def pull(*, env: Environment, ref: Ref) -> None:
    """Download a model into the Hugging Face cache (resumable, sha256-verified); print its path."""
    from llmcli.models.registry import load_registry
    from llmcli.models.store import Store
    from llmcli.ui.render import DownloadBar, note

    store = Store(environ=env.environ)
    parsed = load_registry(environ=env.environ).parse(ref)
    if (path := store.locate(parsed)) is not None:
        note(env, f"{ref} is already downloaded")
    else:
        path = store.pull(parsed, DownloadBar(env))
    env.write(f"{path}\n")


def _located(env: Environment, ref: str) -> Path:
    """The downloaded (or local) file of ref; never the network."""
    from llmcli.models.registry import load_registry
    from llmcli.models.store import Store

    parsed = load_registry(environ=env.environ).parse(ref)
    path = Store(offline=True, environ=env.environ).locate(parsed)
    if path is None:
        from llmcli.errors import ModelNotFoundError

        raise ModelNotFoundError(f"{ref} is not downloaded", hint=parsed.pull_hint)
    return path


def _chat_template(path: Path, override: str | None = None) -> ChatTemplate | str:
    """The template chat would pick for the GGUF at path, or why it cannot tell."""
    from llmcli.chat.templates import pick_template
    from llmcli.engine import Vocabulary
    from llmcli.errors import LlmcliError
    from llmcli.models.ggufinfo import read_gguf

    info = read_gguf(path)
    if (override and override.strip()) or info.chat_template:
        return pick_template(info.chat_template, override)
    try:
        vocabulary = Vocabulary.load(path)  # only the tokenizer: which special tokens it has
    except LlmcliError as exc:
        return exc.message
    try:
        return pick_template(None, tokenizer=vocabulary, architecture=info.architecture)
    finally:
        vocabulary.close()


def _warn_no_template(env: Environment, path: Path, template: ChatTemplate | str) -> None:
    from llmcli.ui.render import note

    uses = f"chat uses {template.describe()}" if not isinstance(template, str) else template
    note(env, f"warning: {path.name} has no chat template: {uses}")


@models_app.command()
@inject
def show(*, env: Environment, ref: Ref, json_out: JsonOut = False) -> None:
    """Show facts read from the GGUF file: architecture, parameters, quantization, context, KV cache
    size, template."""
    from llmcli.engine import default_ctx
    from llmcli.models.ggufinfo import read_gguf
    from llmcli.models.registry import load_registry

    path = _located(env, ref)
    info = read_gguf(path)
    entry = load_registry(environ=env.environ).parse(ref).entry
    template = _chat_template(path, entry.chat_template if entry else None)
    if info.chat_template is None:
        _warn_no_template(env, path, template)
    facts = {
        "name": info.metadata.get("general.name", path.stem),
        "architecture": info.architecture,
        "parameters": info.n_params,
        "quantization": info.quantization,
        "context_length": info.context_length,
        "kv_cache_per_1k": info.kv_cache_bytes(1024),  # bytes, f16 keys and values
        "default_context": default_ctx(info)[0],
        "chat_template": info.chat_template is not None,
        "template": template if isinstance(template, str) else template.label,
        "size": path.stat().st_size,
        "path": str(path),
    }
    if json_out:
        env.write(json.dumps(facts, ensure_ascii=False, indent=2) + "\n")
        return
    shown = {
        **facts,
        "parameters": f"{info.n_params / 1e9:.2f} B"
        if info.n_params >= 1e8
        else f"{info.n_params / 1e6:.2f} M",
        "size": _human(facts["size"]),
        "kv_cache_per_1k": f"{_human(facts['kv_cache_per_1k'])} per 1,024 tokens (f16; q8_0 halves it)"
        if facts["kv_cache_per_1k"]
        else "unknown",
        "default_context": f"{facts['default_context']:,} tokens",
    }
    shown["chat_template"] = shown.pop("template")  # "gguf", "inferred (gemma)", ...: one line says it
    env.write("".join(f"{k.replace('_', ' '):<15} {v}\n" for k, v in shown.items()))


@models_app.command()
@inject
def path(*, env: Environment, ref: Ref) -> None:
    """Print the path of a downloaded model's file."""
    env.write(f"{_located(env, ref)}\n")


@models_app.command()
@inject
def rm(
    *,
    env: Environment,
    ref: Ref,
    yes: Annotated[bool, typer.Option("-y", "--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a downloaded model from the cache (asks first on a terminal)."""
    from llmcli.errors import UsageError
    from llmcli.models.registry import load_registry
    from llmcli.models.store import Store
    from llmcli.ui.render import note

    parsed = load_registry(environ=env.environ).parse(ref)
    if parsed.is_local:
        raise UsageError(f"{ref} is a local file, not a downloaded model", hint="delete it yourself")
    store = Store(offline=True, environ=env.environ)
    target = store.locate(parsed)
    if target is None:
        raise UsageError(f"{ref} is not downloaded", hint="see `llmcli models list`")
    if not yes:
        if not env.stdin_isatty:
            raise UsageError(f"refusing to delete {ref} without confirmation", hint="pass -y")
        if not typer.confirm(f"Delete {target.name} ({_human(target.stat().st_size)})?", err=True):
            raise typer.Exit(1)
    _, freed = store.remove(parsed)
    note(env, f"removed {ref}, freed {_human(freed)}")


@models_app.command("import")
@inject
def import_model(
    *,
    env: Environment,
    file: Annotated[Path, typer.Argument(help="A local GGUF file.", show_default=False)],
    alias: Annotated[str, typer.Option("--alias", help="Name to use with -m.", show_default=False)],
) -> None:
    """Register a local GGUF file under an alias in your models.toml."""
    from llmcli.config import Paths
    from llmcli.models.ggufinfo import read_gguf
    from llmcli.models.registry import import_local
    from llmcli.ui.render import note

    target = import_local(file, alias, Paths.from_env(env.environ))
    note(env, f"registered {alias} -> {file.resolve()} in {target}")
    if read_gguf(file).chat_template is None:
        _warn_no_template(env, file, _chat_template(file))


def _bytes(size: int) -> str:
    """A size for the cache reports, readable from bytes to hundreds of gigabytes."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}" if unit == "GB" else f"{size / scale:.1f} {unit}"
    return f"{size} B"


_KIND_LABEL = {"snapshot": "superseded snapshot", "partial": "partial download", "orphan": "orphan blob"}


def _entry_json(entry: CacheEntry) -> dict[str, Any]:
    return {"kind": entry.kind, "repo": entry.repo, "path": str(entry.path), "size": entry.size}


def _usage_json(usage: CacheUsage) -> dict[str, Any]:
    return {
        "cache_dir": str(usage.cache_dir),
        "size": usage.size,
        "reclaimable": usage.reclaimable,
        "repos": [
            {
                "kind": r.kind,
                "repo": r.repo,
                "path": str(r.path),
                "gguf": r.gguf,
                "size": r.size,
                "reclaimable": r.reclaimable,
                "busy": r.busy,
                "linked": r.linked,
                "snapshots": [
                    {
                        "commit": s.commit,
                        "refs": list(s.refs),
                        "kept": s.kept,
                        "files": s.files,
                        "size": s.size,
                        "reclaimable": s.reclaimable,
                        "path": str(s.path),
                    }
                    for s in r.snapshots
                ],
                "partials": [_entry_json(e) for e in r.partials],
                "orphans": [_entry_json(e) for e in r.orphans],
            }
            for r in usage.repos
        ],
        "other": [_entry_json(e) for e in usage.other],
    }


def _usage_table(usage: CacheUsage) -> str:
    from llmcli.models.store import total_size
    from llmcli.ui.render import markdown_table

    rows: list[dict[str, str]] = []

    def row(
        repo: str = "",
        kind: str = "",
        item: str = "",
        refs: str = "",
        files: str = "",
        *,
        size: int | None = None,
        free: int = 0,
    ) -> None:
        rows.append(
            {
                "repo": repo,
                "type": kind,
                "snapshot": item,
                "refs": refs,
                "files": files,
                "size": "" if size is None else _bytes(size),
                "reclaimable": _bytes(free) if free else "",
            }
        )

    for r in usage.repos:
        label = "gguf" if r.gguf else r.kind
        if r.linked:
            row(r.repo, f"{label}, symlink", "(not scanned)")
            continue
        row(r.repo, label + (", downloading" if r.busy else ""), size=r.size, free=r.reclaimable)
        for s in r.snapshots:
            refs = ", ".join(s.refs) or ("-" if s.kept else "superseded")
            row(item=s.commit[:12], refs=refs, files=str(s.files), size=s.size, free=s.reclaimable)
        for entries, what in ((r.partials, "partial downloads"), (r.orphans, "orphan blobs")):
            if entries:
                n = total_size(entries)
                row(item=what, files=str(len(entries)), size=n, free=n)
    for e in usage.other:
        row(e.path.name + ("/" if e.path.is_dir() else ""), "other", size=e.size)
    row("total", size=usage.size, free=usage.reclaimable)
    return markdown_table(rows, left=("repo", "type", "snapshot", "refs"))


@models_app.command("du")
@inject
def disk_usage(*, env: Environment, json_out: JsonOut = False) -> None:
    """Show what the Hugging Face cache holds: size per repo and snapshot, which snapshots are
    superseded (no ref points at them), partial downloads, orphan blobs, and what other tools left."""
    from llmcli.models.store import Store
    from llmcli.ui.render import note

    usage = Store(offline=True, environ=env.environ).usage()
    if json_out:
        env.write(json.dumps(_usage_json(usage), ensure_ascii=False, indent=2) + "\n")
        return
    env.write(_usage_table(usage) + "\n")
    if not usage.repos and not usage.other:
        note(env, f"the cache at {usage.cache_dir} is empty")
    elif usage.reclaimable:
        note(env, f"`llmcli models gc` frees {_bytes(usage.reclaimable)} (shows what first)")


def _gc_json(result: GcResult) -> dict[str, Any]:
    return {
        "dry_run": result.dry_run,
        "freed": result.freed,
        "removed": [_entry_json(e) for e in result.removed],
        "skipped": [{"repo": repo, "reason": why} for repo, why in result.skipped],
        "failed": [{**_entry_json(e), "error": why} for e, why in result.failed],
    }


def _gc_table(result: GcResult) -> str:
    from llmcli.ui.render import markdown_table

    rows = [
        {"repo": e.repo, "item": f"{_KIND_LABEL[e.kind]} {e.path.name[:12]}", "size": _bytes(e.size)}
        for e in result.removed
    ]
    count = f"{len(rows)} item" + ("" if len(rows) == 1 else "s")
    rows.append({"repo": "total", "item": count, "size": _bytes(result.freed)})
    return markdown_table(rows, left=("repo", "item"))


def _gc_report(env: Environment, result: GcResult, json_out: bool) -> None:
    from llmcli.ui.render import note

    env.write(json.dumps(_gc_json(result), ensure_ascii=False, indent=2) if json_out else _gc_table(result))
    env.write("\n")
    for repo, why in result.skipped:
        note(env, f"skipped {repo}: {why}")


def _gc_freed(env: Environment, result: GcResult) -> None:
    """What was removed and freed, on stderr; one-line error when something could not go."""
    from llmcli.errors import StorageError
    from llmcli.ui.render import note

    for e in result.removed:
        note(env, f"removed {e.repo} {_KIND_LABEL[e.kind]} {e.path.name}, freed {_bytes(e.size)}")
    note(env, f"freed {_bytes(result.freed)}")
    for e, why in result.failed:
        note(env, f"could not remove {e.path}: {why}", error=True)
    if result.failed:
        raise StorageError(f"{len(result.failed)} item(s) could not be removed", hint="see the lines above")


@models_app.command("gc")
@inject
def gc(
    *,
    env: Environment,
    yes: Annotated[bool, typer.Option("-y", "--yes", help="Remove without asking.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would go; never ask.")] = False,
    json_out: JsonOut = False,
) -> None:
    """Free space in the Hugging Face cache: superseded snapshots (no ref points at them, as llama.cpp
    and other tools leave behind), partial downloads and orphan blobs, in every repo.

    Without -y it only shows what would go and how much that frees (on a terminal it then asks).
    Blobs a kept snapshot links to, repos being downloaded into and anything outside the cache stay."""
    from llmcli.models.store import Store
    from llmcli.ui.render import note

    store = Store(offline=True, environ=env.environ)
    if yes and not dry_run:
        result = store.gc(dry_run=False)
        _gc_report(env, result, json_out)
        _gc_freed(env, result)
        return
    plan = store.gc(dry_run=True)
    _gc_report(env, plan, json_out)
    if not plan.removed:
        note(env, "nothing to remove")
        return
    if dry_run or not env.stdin_isatty:
        note(env, f"dry run: nothing removed; `llmcli models gc -y` frees {_bytes(plan.freed)}")
        return
    if not typer.confirm(f"Remove {len(plan.removed)} items, freeing {_bytes(plan.freed)}?", err=True):
        raise typer.Exit(1)
    _gc_freed(env, store.gc(dry_run=False))

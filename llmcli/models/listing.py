"""`models list`: the curated registry and every downloaded model, one typed row each."""

from __future__ import annotations

from dataclasses import dataclass

from llmcli.models.registry import Registry
from llmcli.models.store import Store, quant_of


def human_size(size: int) -> str:
    """A model file's size as the registry writes sizes: `491 MB`, `1.13 GB`."""
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


@dataclass(frozen=True)
class ModelRow:
    """A model: a registry entry (its default quantization), or a downloaded file it does not name."""

    name: str
    default: bool
    params: str
    quant: str  # "local" for an entry that names a file on disk
    size: str  # the registry's size of the default quantization, or the file's
    downloaded: bool
    on_disk: int  # bytes of its files in the cache
    description: str


def list_models(registry: Registry, store: Store) -> list[ModelRow]:
    """Every registry entry, in order, then every downloaded file no entry names."""
    downloaded = {(f.repo, f.filename): f for f in store.downloaded()}
    rows: list[ModelRow] = []
    for entry in registry.entries.values():
        files = (
            [downloaded.pop((entry.repo, name), None) for name in entry.files.values()] if entry.repo else []
        )
        local = [f for f in files if f is not None]
        rows.append(
            ModelRow(
                name=entry.alias,
                default=entry.default,
                params=entry.params,
                quant=entry.default_quant if entry.repo else "local",
                size=entry.sizes.get(entry.default_quant, ""),
                downloaded=bool(local) or entry.path is not None,
                on_disk=sum(f.size for f in local),
                description=entry.description,
            )
        )
    rows += [
        ModelRow(
            name=f"{f.repo}/{f.filename}",
            default=False,
            params="",
            quant=quant_of(f.filename) or "",
            size=human_size(f.size),
            downloaded=True,
            on_disk=f.size,
            description="",
        )
        for f in downloaded.values()
    ]
    return rows

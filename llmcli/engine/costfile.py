"""Verification costs kept between runs: each `llmcli` command is a new process, and without them
every run would size its first drafts from a prior instead of what this machine measured.

One JSON file maps a key (the model file, thread count and offload) to StepCosts' measurements.
It is a cache: a missing, unreadable or foreign file means starting from the prior, an unwritable
one means measuring again next time.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from llmcli.fsutil import atomic_write_text

KEPT_KEYS = 32  # models x settings remembered; the least recently saved go first


def load_costs(path: Path, key: str) -> dict[int, list[float]]:
    """The measurements saved under key (empty where there are none or the file is not ours)."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8")).get(key, {})
        costs = {int(size): [float(x) for x in ratios] for size, ratios in entry.items()}
        return {size: [x for x in xs if 1.0 <= x <= 1.0 + size] for size, xs in costs.items() if size > 0}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def save_costs(path: Path, key: str, measured: Mapping[int, Sequence[float]]) -> None:
    """Keep measured under key, atomically, with the other keys' most recent KEPT_KEYS - 1."""
    if not measured:
        return
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    known.pop(key, None)
    kept = dict(list(known.items())[-(KEPT_KEYS - 1) :])
    kept[key] = {str(size): [round(x, 4) for x in ratios] for size, ratios in sorted(measured.items())}
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)  # a first run on a model given by path
        atomic_write_text(path, json.dumps(kept, indent=1) + "\n")

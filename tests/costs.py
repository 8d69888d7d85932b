"""Verification costs pinned for tests: what a test asserts about drafting must not depend on how
fast this machine happened to decode a batch."""

from __future__ import annotations

from typing import TypeVar

from llmcli.engine import LocalEngine, ParallelEngine
from llmcli.engine.speculative import StepCosts

Engine = TypeVar("Engine", LocalEngine, ParallelEngine)


def cheap(engine: Engine) -> Engine:
    """engine, told that verifying drafts costs almost nothing (a GPU's economics): it then drafts
    wherever a match is plausible. Its own measurements still come in, one window at a time."""
    tables = engine.step_costs.values() if isinstance(engine, ParallelEngine) else [engine.step_costs]
    for costs in tables:
        costs.remember({k: [1.0 + 0.05 * k / costs.rows] * StepCosts.WINDOW for k in range(1, 65)})
    return engine

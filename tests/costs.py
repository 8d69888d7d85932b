"""Verification costs pinned for tests: what a test asserts about drafting must not depend on how
fast this machine happened to decode a batch."""

from __future__ import annotations

from llmcli.engine import LocalEngine
from llmcli.engine.speculative import StepCosts


def cheap(engine: LocalEngine) -> LocalEngine:
    """engine, told that verifying drafts costs almost nothing (a GPU's economics): it then drafts
    wherever a match is plausible. Its own measurements still come in, one window at a time."""
    engine.step_costs.remember({k: [1.0 + 0.05 * k] * StepCosts.WINDOW for k in range(1, 65)})
    return engine

"""Verification costs kept between runs: what one run measured, the next starts from."""

from __future__ import annotations

import json
from pathlib import Path

from costs import cheap

from llmcli.engine import EngineOptions, LocalEngine, ParallelEngine
from llmcli.engine.costfile import KEPT_KEYS, load_costs, save_costs
from llmcli.engine.speculative import StepCosts
from llmcli.sampling import SamplingConfig

STORY = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
GREEDY = SamplingConfig(temperature=0.0, max_tokens=48)


def test_costs_round_trip_and_bad_files_mean_none(tmp_path: Path) -> None:
    path = tmp_path / "step-costs.json"
    assert load_costs(path, "m") == {}  # no file yet
    save_costs(path, "m", {3: [2.25, 2.3], 1: [1.6]})
    assert load_costs(path, "m") == {1: [1.6], 3: [2.25, 2.3]} and load_costs(path, "other") == {}
    path.write_text('{"m": {"2": [0.5, 2.5, 9.0], "x": []}}')  # impossible costs, a foreign size
    assert load_costs(path, "m") == {}
    path.write_text('{"m": {"2": [0.5, 2.5, 9.0]}}')
    assert load_costs(path, "m") == {2: [2.5]}  # a cost outside [1, 1 + k] is not a measurement
    for text in ("not json", "[1, 2]", '{"m": 3}'):
        path.write_text(text)
        assert load_costs(path, "m") == {}
        save_costs(path, "m", {1: [1.5]})  # replaces what it cannot read
        assert load_costs(path, "m") == {1: [1.5]}
    first = tmp_path / "no cache folder yet" / "step-costs.json"
    save_costs(first, "m", {1: [1.5]})
    assert load_costs(first, "m") == {1: [1.5]}


def test_the_file_keeps_the_latest_keys(tmp_path: Path) -> None:
    path = tmp_path / "step-costs.json"
    for n in range(KEPT_KEYS + 5):
        save_costs(path, f"model {n}", {1: [1.5]})
    save_costs(path, "model 10", {1: [1.7]})  # saved again: now the most recent
    keys = list(json.loads(path.read_text()))
    assert len(keys) == KEPT_KEYS and keys[-1] == "model 10" and "model 4" not in keys


def test_step_costs_start_from_what_was_remembered() -> None:
    costs = StepCosts()
    costs.remember({3: [2.0, 2.0, 2.0]})
    assert costs.relative(3) == 2.0 and costs.measured() == {3: [2.0, 2.0, 2.0]}


def test_an_engine_saves_its_costs_on_close_and_the_next_one_starts_from_them(
    stories: Path, tmp_path: Path
) -> None:
    path = tmp_path / "step-costs.json"
    with cheap(LocalEngine(stories, EngineOptions(n_ctx=512))) as engine:
        engine.use_cost_file(path)
        assert engine.generate(STORY * 3 + "Once", GREEDY, lookup=8).run().stats.drafted_tokens > 0
        measured = engine.step_costs.measured()
    saved = json.loads(path.read_text())
    (key,) = saved
    assert str(stories.resolve()) in key
    assert load_costs(path, key) == {size: [round(x, 4) for x in xs] for size, xs in measured.items()}
    with LocalEngine(stories, EngineOptions(n_ctx=512)) as again:
        again.use_cost_file(path)
        assert again.step_costs.measured() == load_costs(path, key)


def test_a_parallel_engine_keeps_its_costs_by_the_sequences_decoded_together(
    stories: Path, tmp_path: Path
) -> None:
    path = tmp_path / "step-costs.json"
    with cheap(ParallelEngine(LocalEngine(stories, EngineOptions(n_ctx=1024, n_seq_max=2)))) as engine:
        engine.use_cost_file(path)
        gens = [engine.generate(STORY * 3 + start, GREEDY, lookup=8) for start in ("Once", "One")]
        assert sum(g.run().stats.drafted_tokens for g in gens) > 0
    keys = list(json.loads(path.read_text()))
    assert sorted(key.rsplit("|", 1)[1] for key in keys) == ["seqs=1", "seqs=2"]
    with ParallelEngine(LocalEngine(stories, EngineOptions(n_ctx=1024, n_seq_max=2))) as again:
        again.use_cost_file(path)
        for key in keys:
            assert again.step_costs[int(key[-1])].measured() == load_costs(path, key)

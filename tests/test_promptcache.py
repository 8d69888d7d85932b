"""The persistent prompt cache: saved KV states restore long prefixes across engines and runs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from llmcli.engine import EngineOptions, LocalEngine
from llmcli.engine.promptcache import PromptCache
from llmcli.sampling import SamplingConfig

LONG = " ".join(["Once upon a time, there was a little girl named Lily. She loved to play in the park."] * 12)
GREEDY = SamplingConfig(temperature=0.0, max_tokens=24)


def fresh(stories: Path, folder: Path, max_bytes: int = 1 << 30) -> LocalEngine:
    engine = LocalEngine(stories, EngineOptions(n_ctx=512))
    engine.use_prompt_cache(PromptCache(folder, max_bytes))
    return engine


def test_state_is_restored_in_a_new_engine(stories: Path, tmp_path: Path) -> None:
    with fresh(stories, tmp_path) as engine:
        first = engine.generate(LONG, GREEDY).run()
        n_prompt = first.stats.prompt_tokens
    assert first.stats.cached_tokens == 0 and len(list(tmp_path.glob("*.kv"))) == 1
    with fresh(stories, tmp_path) as engine:
        again = engine.generate(LONG, GREEDY).run()
        longer = engine.generate(LONG + " One day, she saw a dog.", GREEDY).run()
    assert again.stats.cached_tokens == n_prompt - 1 and again.text == first.text
    assert longer.stats.cached_tokens >= n_prompt - 1


def test_short_prompts_are_not_saved(stories: Path, tmp_path: Path) -> None:
    with fresh(stories, tmp_path) as engine:
        engine.generate("Once upon a time", GREEDY).run()
    assert not list(tmp_path.glob("*.kv"))


def test_corrupt_or_missing_files_are_ignored(stories: Path, tmp_path: Path) -> None:
    with fresh(stories, tmp_path) as engine:
        first = engine.generate(LONG, GREEDY).run()
    (state,) = tmp_path.glob("*.kv")
    state.write_bytes(b"not a state file")
    with fresh(stories, tmp_path) as engine:
        damaged = engine.generate(LONG, GREEDY).run()
    assert damaged.stats.cached_tokens == 0 and damaged.text == first.text
    for path in tmp_path.glob("*.kv"):
        path.unlink()
    (tmp_path / "index.json").write_text("{broken")
    with fresh(stories, tmp_path) as engine:
        assert engine.generate(LONG, GREEDY).run().text == first.text


def test_least_recently_used_states_are_evicted(stories: Path, tmp_path: Path) -> None:
    with fresh(stories, tmp_path) as engine:
        engine.generate(LONG, GREEDY).run()
    size = next(tmp_path.glob("*.kv")).stat().st_size
    with fresh(stories, tmp_path, max_bytes=int(size * 1.5)) as engine:
        engine.generate("Lily said hello. " + LONG, GREEDY).run()
    cache = PromptCache(tmp_path)
    assert len(cache.entries) == 1 and len(list(tmp_path.glob("*.kv"))) == 1
    (entry,) = cache.entries.values()
    assert entry.n_tokens > 300


def test_cli_second_run_starts_from_the_cache(
    run_cli: Callable[..., subprocess.CompletedProcess[str]], stories: Path
) -> None:
    args = [
        "complete",
        "-m",
        str(stories),
        "--ctx",
        "512",
        "-n",
        "16",
        "--greedy",
        "--prompt-cache",
        "--json",
    ]
    first = json.loads(run_cli(*args, LONG).stdout)
    second = json.loads(run_cli(*args, LONG).stdout)
    assert first["cached_tokens"] == 0 and second["cached_tokens"] == second["prompt_tokens"] - 1
    assert second["text"] == first["text"]


def test_the_size_bound_is_a_setting(stories: Path, tmp_path: Path) -> None:
    from llmcli.config import Settings
    from llmcli.errors import UsageError
    from llmcli.tasks.runtime import load_model

    environ = {"LLMCLI_HOME": str(tmp_path)}
    with load_model(
        Settings(model=str(stories), prompt_cache_mb=3), prompt_cache=True, environ=environ
    ) as loaded:
        cache = loaded.local().prompt_cache
        assert cache is not None and cache.max_bytes == 3 << 20
        assert cache.folder == tmp_path / "cache" / "prompt-cache"  # where the given LLMCLI_HOME says
    with pytest.raises(UsageError, match="prompt_cache_mb"):
        load_model(Settings(model=str(stories), prompt_cache_mb=0), prompt_cache=True, environ=environ)

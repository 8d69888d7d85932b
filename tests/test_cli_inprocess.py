"""Commands run in this process, with an injected Environment over in-memory streams.

The app builds one Environment at its entry and every command reaches it through the click context
(`CliRunner().invoke(app, args, obj=env)` gives it one), so nothing here patches sys or spawns the
installed command, and settings, registry and caches come from its variables, not os.environ; option
groups reach the commands packed and typed (llmcli/cli/options.py).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from llmcli.cli.app import app, run
from llmcli.cli.options import (
    ModelOptions,
    Omit,
    OptionGroup,
    Override,
    RuntimeOptions,
    SamplingOptions,
    TaskThinking,
    inject,
)
from llmcli.ui.environment import Environment


class Streams:
    """An Environment over in-memory streams, and what the command wrote to them."""

    def __init__(self, stdin: bytes | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.out, self.err = io.BytesIO(), io.StringIO()
        self.env = Environment(
            stdin=io.BytesIO(stdin or b""),
            stdout=self.out,
            stderr=self.err,
            stdin_isatty=stdin is None,  # no stdin given: a terminal, which commands do not read
            stdout_isatty=False,
            stderr_isatty=False,
            environ=dict(environ or {}),
        )

    @property
    def stdout(self) -> str:
        return self.out.getvalue().decode("utf-8")


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cli_env: dict[str, str]) -> dict[str, str]:
    """The variables to inject: cli_env's, with llmcli's homes and caches under tmp_path.

    os.environ's LLMCLI_HOME holds a config.toml that is not TOML, so a command that read its settings
    from os.environ instead of the injected variables would fail.
    """
    for var in [v for v in os.environ if v.startswith("LLMCLI_")]:
        monkeypatch.delenv(var)
    wrong = tmp_path / "not-this-home"
    (wrong / "config").mkdir(parents=True)
    (wrong / "config" / "config.toml").write_text("model = [\n")
    monkeypatch.setenv("LLMCLI_HOME", str(wrong))
    return cli_env


def test_complete_writes_to_the_injected_stdout(clean: dict[str, str], stories: Path) -> None:
    io_ = Streams(environ=clean)
    args = ["complete", "-m", str(stories), "--greedy", "-n", "12", "Once upon a time"]
    result = CliRunner().invoke(app, args, obj=io_.env)
    assert result.exit_code == 0, result.output
    assert io_.stdout.startswith(", there was a little girl named Lily")
    assert io_.err.getvalue() == "" and result.output == ""  # nothing reached the process's streams


def test_complete_reads_the_injected_stdin(clean: dict[str, str], stories: Path) -> None:
    io_ = Streams(stdin=b"Once upon a time\n", environ=clean)
    result = CliRunner().invoke(
        app, ["complete", "-m", str(stories), "--greedy", "-n", "8", "--json"], obj=io_.env
    )
    assert result.exit_code == 0, result.output
    data = json.loads(io_.stdout)
    assert data["text"].startswith(", there was a little girl") and data["generated_tokens"] == 8


def test_the_model_is_found_and_loaded_by_the_injected_variables(
    clean: dict[str, str], stories: Path, tmp_path: Path
) -> None:
    registry = tmp_path / "models.toml"
    registry.write_text(f'[models."tiny"]\npath = {json.dumps(str(stories))}\n')
    io_ = Streams(environ={**clean, "LLMCLI_REGISTRY": str(registry), "LLMCLI_MODEL": "tiny"})
    story = "Once upon a time, there was a little girl named Lily. She loved to play in the park."
    prompt = " ".join([story] * 12)  # over the prompt cache's MIN_TOKENS, so its state is saved
    args = ["complete", "--ctx", "512", "--greedy", "-n", "4", "--prompt-cache", "--json", prompt]
    result = CliRunner().invoke(app, args, obj=io_.env)
    assert result.exit_code == 0, io_.err.getvalue()
    assert json.loads(io_.stdout)["generated_tokens"] == 4
    assert list((Path(clean["LLMCLI_HOME"]) / "cache" / "prompt-cache").glob("*.kv"))


def test_models_list_reads_the_injected_variables(tmp_path: Path) -> None:
    registry = tmp_path / "models.toml"
    registry.write_text(
        '[models."tiny-test"]\nrepo = "acme/tiny-GGUF"\ndescription = "A tiny test model"\n'
        '[models."tiny-test".files]\nQ8_0 = { file = "tiny-q8_0.gguf", size = "30 MB" }\n'
    )
    snapshot = tmp_path / "hub" / "models--acme--tiny-GGUF" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "tiny-q8_0.gguf").write_bytes(b"GGUF" + bytes(2_000_000))
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("a" * 40)
    environ = {
        "LLMCLI_HOME": str(tmp_path / "home"),
        "LLMCLI_REGISTRY": str(registry),
        "HF_HUB_CACHE": str(tmp_path / "hub"),
    }
    io_ = Streams(environ=environ)
    result = CliRunner().invoke(app, ["models", "list", "--json"], obj=io_.env)
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(io_.stdout)}
    assert rows["tiny-test"] == {
        "name": "tiny-test",
        "default": False,
        "params": "",
        "quant": "Q8_0",
        "size": "30 MB",
        "downloaded": True,
        "on_disk": 2_000_004,
        "description": "A tiny test model",
    }
    table = Streams(environ=environ)
    assert CliRunner().invoke(app, ["models", "list"], obj=table.env).exit_code == 0
    line = next(x for x in table.stdout.splitlines() if x.startswith("tiny-test"))
    assert line.split()[1:4] == ["Q8_0", "30", "MB"] and "2 MB" in line


def test_the_entry_point_reports_errors_on_the_injected_stderr(clean: dict[str, str], tmp_path: Path) -> None:
    io_ = Streams(environ=clean)
    code = run(["complete", "-m", str(tmp_path / "missing.gguf"), "hi"], io_.env)
    assert code == 3
    assert io_.stdout == ""
    err = io_.err.getvalue()
    assert err.startswith("error: ") and "not found" in err and len(err.splitlines()) == 1
    usage = Streams(environ=clean)
    assert run(["complete", "--top-k", "many"], usage.env) == 2
    assert "(see `llmcli complete --help`)" in usage.err.getvalue()


def test_sessions_live_where_the_injected_environment_says(tmp_path: Path) -> None:
    io_ = Streams(environ={"LLMCLI_HOME": str(tmp_path)})
    assert run(["sessions", "list", "--json"], io_.env) == 0
    assert io_.stdout == "[]\n"


# --- the option groups ---------------------------------------------------------------------------

BenchThreads = Annotated[int | None, typer.Option("-t", "--threads", help="CPU threads.")]


def probe_app(seen: dict[str, object]) -> typer.Typer:
    probe = typer.Typer()

    @probe.command()
    @inject
    def run(
        *,
        env: Environment,
        name: Annotated[str, typer.Argument()] = "x",
        model: Annotated[ModelOptions, Omit("backend")],
        runtime: Annotated[RuntimeOptions, Override(threads=BenchThreads)],
        sampling: Annotated[SamplingOptions, Omit("temperature", "stop", "ignore_eos")],
        thinking: TaskThinking,
    ) -> None:
        seen.update(env=env, name=name, model=model, runtime=runtime, sampling=sampling, thinking=thinking)

    return probe


def test_groups_are_packed_typed_in_place(tmp_path: Path) -> None:
    seen: dict[str, object] = {}
    probe = probe_app(seen)
    command = typer.main.get_command(probe)
    names = [p.name for p in command.params]
    assert names[:4] == ["name", "model", "ctx", "threads"]  # each group's options at its place
    assert not {"backend", "temperature", "stop", "ignore_eos"} & set(names)
    io_ = Streams()
    result = CliRunner().invoke(probe, ["doc", "-m", "m.gguf", "-t", "3", "--top-k", "5"], obj=io_.env)
    assert result.exit_code == 0, result.output
    assert seen["env"] is io_.env and seen["name"] == "doc"
    model = seen["model"]
    assert isinstance(model, ModelOptions) and model.model == "m.gguf" and not model.offers("backend")
    runtime = seen["runtime"]
    assert isinstance(runtime, RuntimeOptions) and runtime.threads == 3 and runtime.ctx is None
    sampling = seen["sampling"]
    assert isinstance(sampling, SamplingOptions) and sampling.top_k == 5 and sampling.stop is None
    thinking = seen["thinking"]
    home = {"LLMCLI_HOME": str(tmp_path)}
    assert isinstance(thinking, TaskThinking) and thinking.resolve(home).mode == "off"
    asked = thinking.resolve({**home, "LLMCLI_THINK": "on", "LLMCLI_REASONING_BUDGET": "64"})
    assert (asked.mode, asked.budget) == ("on", 64)
    assert sampling.config(greedy_by_default=True).greedy


@dataclass(frozen=True)
class Nested(OptionGroup):
    """A group of groups, as `eval` takes them (EvalOptions)."""

    model: Annotated[ModelOptions, Omit("backend")] = field(default_factory=ModelOptions)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)


def test_a_group_of_groups_shows_their_options_and_packs_them_nested() -> None:
    seen: dict[str, object] = {}
    probe = typer.Typer()

    @probe.command()
    @inject
    def run(*, nested: Annotated[Nested, Omit("gpu_layers"), Override(threads=BenchThreads)]) -> None:
        seen["nested"] = nested

    names = [p.name for p in typer.main.get_command(probe).params]
    assert names[:3] == ["model", "ctx", "threads"] and not {"backend", "gpu_layers"} & set(names)
    result = CliRunner().invoke(probe, ["-m", "m.gguf", "-t", "3"], obj=Streams().env)
    assert result.exit_code == 0, result.output
    nested = seen["nested"]
    assert isinstance(nested, Nested) and nested.model.model == "m.gguf" and nested.runtime.threads == 3
    assert not nested.model.offers("backend") and not nested.runtime.offers("gpu_layers")

    def unknown(*, nested: Annotated[Nested, Omit("top_k")]) -> None: ...

    with pytest.raises(TypeError, match="Nested has no options \\['top_k'\\]"):
        inject(unknown)


def test_a_group_without_backend_runs_locally(tmp_path: Path) -> None:
    environ = {"LLMCLI_HOME": str(tmp_path), "LLMCLI_BACKEND": "http://127.0.0.1:9/v1"}
    runtime = RuntimeOptions(ctx=256)
    assert ModelOptions("m").settings(runtime, environ).backend == "http://127.0.0.1:9/v1"
    local = ModelOptions("m", omitted=frozenset({"backend"})).settings(runtime, environ)
    assert local.backend is None and local.ctx == 256 and local.model == "m"


def test_an_option_declared_twice_is_refused() -> None:
    def same_name(*, model: ModelOptions, backend: str = "") -> None: ...

    def same_flag(
        *, runtime: Annotated[RuntimeOptions, Override(threads=BenchThreads)], sampling: SamplingOptions
    ) -> None: ...

    with pytest.raises(TypeError, match="named twice: \\['backend'\\]"):
        inject(same_name)
    with pytest.raises(TypeError, match="named twice: \\['-t'\\]"):  # --threads and --temperature
        inject(same_flag)

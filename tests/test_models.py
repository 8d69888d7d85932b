"""Model references, the registry, and `llmcli models` against a local fake of the Hugging Face hub."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import LLMCLI
from hub_server import FakeHub

from llmcli.errors import ModelNotFoundError, UsageError
from llmcli.models.registry import Registry, RegistryError, _parse, load_registry
from llmcli.models.store import available_quants, pick_quant, quant_of, split_parts

REPO = "acme/stories-GGUF"
Q4, Q8 = "stories-Q4_K_M.gguf", "stories-Q8_0.gguf"
Run = Callable[..., subprocess.CompletedProcess[str]]


# --- pure parts --------------------------------------------------------------------------------


def test_quant_names_in_file_names() -> None:
    assert quant_of("Qwen2.5-7B-Instruct-Q4_K_M.gguf") == "Q4_K_M"
    assert quant_of("qwen2.5-1.5b-instruct-q8_0.gguf") == "Q8_0"
    assert quant_of("sub/model.IQ4_XS-00001-of-00002.gguf") == "IQ4_XS"
    assert quant_of("model-f16.gguf") == "F16"
    listing = [
        "README.md",
        "m-Q4_K_S.gguf",
        "m-Q4_K_M.gguf",
        "big/m-Q8_0-00001-of-00002.gguf",
        "big/m-Q8_0-00002-of-00002.gguf",
        "mmproj-m-Q4_K_M.gguf",
    ]
    assert pick_quant(listing, "q4_k_m") == ["m-Q4_K_M.gguf"]
    assert pick_quant(listing, "Q8_0") == ["big/m-Q8_0-00001-of-00002.gguf", "big/m-Q8_0-00002-of-00002.gguf"]
    assert pick_quant(listing, "Q4_K") == []
    assert available_quants(listing) == ["Q4_K_M", "Q4_K_S", "Q8_0"]
    assert split_parts("a-00001-of-00003.gguf")[-1] == "a-00003-of-00003.gguf"


def test_reference_forms(tmp_path: Path) -> None:
    registry = load_registry(environ={"LLMCLI_HOME": str(tmp_path)})
    alias = registry.parse("qwen2.5-1.5b")
    assert (alias.repo, alias.filename, alias.quant) == (
        "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
        "qwen2.5-1.5b-instruct-q4_k_m.gguf",
        "Q4_K_M",
    )
    assert registry.parse("qwen2.5-1.5b:q8_0").filename == "qwen2.5-1.5b-instruct-q8_0.gguf"
    hub_file = registry.parse("owner/repo/sub/x-Q4_0.gguf")
    assert (hub_file.repo, hub_file.filename) == ("owner/repo", "sub/x-Q4_0.gguf")
    assert registry.parse("hf://owner/repo:Q5_K_M").quant == "Q5_K_M"
    assert registry.parse("hf.co/owner/repo").quant == "Q4_K_M"
    url = registry.parse("https://huggingface.co/owner/repo/resolve/abc123/x.gguf")
    assert (url.repo, url.filename, url.revision) == ("owner/repo", "x.gguf", "abc123")
    local = tmp_path / "m.gguf"
    local.write_bytes(b"GGUF")
    assert registry.parse(str(local)).path == local
    with pytest.raises(ModelNotFoundError) as err:
        registry.parse("qwen2.5-1.5")
    assert "did you mean qwen2.5-1.5b" in (err.value.hint or "")
    with pytest.raises(ModelNotFoundError, match="has no Q2_K file") as err:
        registry.parse("qwen2.5-1.5b:Q2_K")
    assert "Q4_K_M" in (err.value.hint or "")
    with pytest.raises(ModelNotFoundError, match="not found"):
        registry.parse("./missing.gguf")
    with pytest.raises(UsageError):
        registry.parse("owner/repo/README.md")


def test_builtin_registry_is_valid() -> None:
    registry = Registry(_parse(Path(__file__).parents[1].joinpath("models.toml").read_text(), Path("m")))
    assert 10 <= len(registry.entries) <= 25
    assert sum(e.default for e in registry.entries.values()) == 1
    assert registry.default is not None and registry.default.alias == "gemma3-4b"
    assert not registry.default.reasoning  # the default answers directly: no slow thinking pass on a CPU
    assert sum(e.tiny for e in registry.entries.values()) == 1
    assert all(e.default_quant in e.files for e in registry.entries.values())
    assert all(e.files and e.sizes.keys() == e.files.keys() for e in registry.entries.values())
    thinking = {alias for alias, e in registry.entries.items() if e.reasoning}
    assert {"qwen3-4b", "qwen3.5-4b", "smollm3-3b", "deepseek-r1-1.5b"} <= thinking
    assert not {"qwen2.5-1.5b", "gemma3-4b", "llama3.2-3b"} & thinking


def test_reasoning_flag(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        '[models.think]\nrepo = "a/b"\nreasoning = true\n[models.think.files]\nQ4_K_M = "t.gguf"\n'
        '[models.plain]\nrepo = "a/c"\n[models.plain.files]\nQ4_K_M = "p.gguf"\n'
    )
    registry = load_registry(environ={"LLMCLI_HOME": str(tmp_path / "home"), "LLMCLI_REGISTRY": str(path)})
    assert registry.get("think").reasoning is True
    assert registry.get("plain").reasoning is False


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        (
            '[models.x]\nrepo = "a/b"\ncontext = "big"\n[models.x.files]\nQ4_K_M = "x.gguf"',
            "'context' must be a int",
        ),
        ('[models.x]\nrepo = "a/b"\ncolour = 1\n', "unknown field 'colour'"),
        ('[models.x]\nrepo = "a/b"\nreasoning = "yes"\n', "'reasoning' must be a bool"),
        ('[models.x]\ndescription = "no source"\n', "exactly one of 'repo' or 'path'"),
        ('[models.x]\nrepo = "a/b"\n[models.x.files]\nQ4_K_M = "x.bin"', "files.Q4_K_M must give a .gguf"),
        ("[models.x\n", "not valid TOML"),
    ],
)
def test_malformed_registry_names_file_table_field(tmp_path: Path, toml: str, needle: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(toml)
    with pytest.raises(RegistryError) as err:
        load_registry(environ={"LLMCLI_HOME": str(tmp_path / "home"), "LLMCLI_REGISTRY": str(path)})
    assert str(path) in err.value.message and needle in err.value.message
    if "TOML" not in needle:
        assert '[models."x"]' in err.value.message


# --- against the fake hub, through the installed CLI ---------------------------------------------


@pytest.fixture
def hub(stories: Path) -> Iterator[FakeHub]:
    data = stories.read_bytes()
    with FakeHub() as server:
        server.add_file(REPO, Q4, data)
        server.add_file(REPO, Q8, data + b"\0" * 64)  # a distinct, still valid GGUF
        server.add_file(REPO, "README.md", b"# stories\n")
        server.add_file("acme/split-GGUF", "big-Q4_K_M-00001-of-00002.gguf", data[:600_000])
        server.add_file("acme/split-GGUF", "big-Q4_K_M-00002-of-00002.gguf", data[600_000:])
        server.add_repo("acme/gated-GGUF", gated=True)
        server.add_file("acme/gated-GGUF", Q4, data)
        yield server


@pytest.fixture
def hub_env(cli_env: dict[str, str], hub: FakeHub, tmp_path: Path) -> dict[str, str]:
    cli_env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_CACHE=str(tmp_path / "hf" / "hub"),
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    for var in ("HF_TOKEN", "HF_HUB_OFFLINE"):
        cli_env.pop(var, None)
    return cli_env


def cache_files(env: dict[str, str]) -> list[Path]:
    return sorted(p for p in Path(env["HF_HUB_CACHE"]).rglob("*") if p.is_file())


def test_pull_runs_and_needs_no_network_afterwards(
    run_cli: Run, hub: FakeHub, hub_env: dict[str, str], stories: Path
) -> None:
    pulled = run_cli("models", "pull", f"{REPO}:Q4_K_M")
    assert pulled.returncode == 0, pulled.stderr
    path = Path(pulled.stdout.strip())
    assert path.read_bytes() == stories.read_bytes()
    assert path.is_symlink() and "snapshots" in path.parts  # the standard hub cache layout
    assert "downloading stories-Q4_K_M.gguf" in pulled.stderr

    hub.clear_requests()
    result = run_cli("complete", "-m", f"{REPO}:Q4_K_M", "--greedy", "-n", "8", "Once upon a time")
    assert result.stdout.startswith(", there was a little girl")
    assert hub.requests == []  # a cached model starts with no network call at all

    hub.stop()
    offline = run_cli(
        "complete",
        "-m",
        f"hf://{REPO}/{Q4}",
        "--greedy",
        "-n",
        "4",
        "Once upon a time",
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert offline.stdout.startswith(", there was")


def test_two_pulls_of_one_file_at_once_share_it(hub: FakeHub, hub_env: dict[str, str], stories: Path) -> None:
    hub.bytes_per_second = 1_000_000  # about a second each: the two downloads overlap
    pulls = [
        subprocess.Popen(
            [str(LLMCLI), "models", "pull", f"{REPO}:Q4_K_M"],
            env=hub_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [p.communicate(timeout=120) for p in pulls]
    assert [p.returncode for p in pulls] == [0, 0], outcomes
    for out, _ in outcomes:
        assert Path(out.strip()).read_bytes() == stories.read_bytes()
    assert any("waiting for another download of stories-Q4_K_M.gguf" in err for _, err in outcomes)
    assert not [p for p in cache_files(hub_env) if p.name.endswith(".incomplete")]


def test_using_a_model_pulls_it_first(run_cli: Run, hub_env: dict[str, str]) -> None:
    result = run_cli("complete", "-m", f"{REPO}:Q8_0", "--greedy", "-n", "4", "Once upon a time")
    assert result.returncode == 0, result.stderr
    assert "downloading stories-Q8_0.gguf" in result.stderr
    assert result.stdout.startswith(", there was")


def test_quant_not_offered_lists_the_available_ones(run_cli: Run, hub_env: dict[str, str]) -> None:
    result = run_cli("models", "pull", f"{REPO}:Q5_K_M")
    assert result.returncode == 3
    assert "has no GGUF file for Q5_K_M (available: Q4_K_M, Q8_0)" in result.stderr


def test_split_files_download_all_parts(run_cli: Run, hub_env: dict[str, str], stories: Path) -> None:
    result = run_cli("models", "pull", "acme/split-GGUF:Q4_K_M")
    assert result.returncode == 0, result.stderr
    first = Path(result.stdout.strip())
    second = first.with_name("big-Q4_K_M-00002-of-00002.gguf")
    assert first.read_bytes() + second.read_bytes() == stories.read_bytes()


def test_dropped_connection_is_resumed(
    run_cli: Run, hub: FakeHub, hub_env: dict[str, str], stories: Path
) -> None:
    hub.drop_after_bytes = 300_000
    result = run_cli("models", "pull", f"{REPO}:Q4_K_M")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).read_bytes() == stories.read_bytes()
    ranges = [r.headers.get("range") for r in hub.requests if r.method == "GET" and Q4 in r.path]
    assert "bytes=300000-" in ranges


def test_interrupted_run_resumes_in_the_next(
    run_cli: Run, hub: FakeHub, hub_env: dict[str, str], stories: Path
) -> None:
    import hashlib

    data = stories.read_bytes()
    blobs = Path(hub_env["HF_HUB_CACHE"]) / f"models--{REPO.replace('/', '--')}" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{hashlib.sha256(data).hexdigest()}.incomplete").write_bytes(data[:500_000])  # a killed run
    result = run_cli("models", "pull", f"{REPO}:Q4_K_M")
    assert result.returncode == 0, result.stderr
    assert "resuming at" in result.stderr
    assert any(r.headers.get("range") == "bytes=500000-" for r in hub.requests)
    assert Path(result.stdout.strip()).read_bytes() == data


def test_corrupt_bytes_are_refused_and_deleted(run_cli: Run, hub: FakeHub, hub_env: dict[str, str]) -> None:
    hub.corrupt(REPO, Q4)
    result = run_cli("models", "pull", f"{REPO}:Q4_K_M")
    assert result.returncode == 6
    assert "refusing stories-Q4_K_M.gguf: the download is corrupt (sha256" in result.stderr
    assert not [p for p in cache_files(hub_env) if p.suffix in ("", ".incomplete") and "blobs" in p.parts]
    assert not list(Path(hub_env["HF_HUB_CACHE"]).rglob(Q4))


@pytest.mark.parametrize(
    ("ref", "code", "needles"),
    [
        ("acme/nothing-GGUF:Q4_K_M", 3, ["repository acme/nothing-GGUF not found", "HF_TOKEN"]),
        (f"{REPO}/missing-Q4_K_M.gguf", 3, ["missing-Q4_K_M.gguf not found in acme/stories-GGUF"]),
        (f"acme/gated-GGUF/{Q4}", 3, ["acme/gated-GGUF is gated", "HF_TOKEN", "hf auth login"]),
    ],
)
def test_hub_errors_name_the_next_step(
    run_cli: Run, hub_env: dict[str, str], ref: str, code: int, needles: list[str]
) -> None:
    result = run_cli("models", "pull", ref)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    for needle in needles:
        assert needle in result.stderr


def test_hub_down(run_cli: Run, hub: FakeHub, hub_env: dict[str, str]) -> None:
    hub.stop()
    result = run_cli("models", "pull", f"{REPO}:Q4_K_M")
    assert result.returncode == 6
    assert "cannot reach the hub" in result.stderr and "Traceback" not in result.stderr


def test_offline_and_missing_says_what_to_pull(run_cli: Run, hub_env: dict[str, str]) -> None:
    result = run_cli("complete", "-m", f"{REPO}:Q4_K_M", "--offline", "hi")
    assert result.returncode == 3
    assert f"run `llmcli models pull {REPO}:Q4_K_M` while online" in result.stderr


def test_list_show_path_rm(run_cli: Run, hub_env: dict[str, str]) -> None:
    path = run_cli("models", "pull", f"{REPO}:Q4_K_M").stdout.strip()
    rows = json.loads(run_cli("models", "list", "--json").stdout)
    assert any(r["name"] == "gemma3-4b" and r["default"] for r in rows)
    mine = next(r for r in rows if r["name"] == f"{REPO}/{Q4}")
    assert mine["downloaded"] and mine["on_disk"] > 1_000_000
    assert run_cli("models", "path", f"{REPO}:Q4_K_M").stdout.strip() == path
    shown = json.loads(run_cli("models", "show", f"{REPO}:Q4_K_M", "--json").stdout)
    assert (shown["architecture"], shown["context_length"], shown["chat_template"]) == ("llama", 2048, False)
    refused = run_cli("models", "rm", f"{REPO}:Q4_K_M")  # stdin is not a terminal: no silent deletes
    assert refused.returncode == 2 and "-y" in refused.stderr
    removed = run_cli("models", "rm", f"{REPO}:Q4_K_M", "-y")
    assert removed.returncode == 0 and "freed 1 MB" in removed.stderr
    assert cache_files(hub_env) == []
    gone = run_cli("models", "path", f"{REPO}:Q4_K_M")
    assert gone.returncode == 3 and "llmcli models pull" in gone.stderr


def test_registry_override_and_import(
    run_cli: Run, hub_env: dict[str, str], tmp_path: Path, stories: Path
) -> None:
    user = tmp_path / "mine.toml"
    user.write_text(
        f'[models.tales]\nrepo = "{REPO}"\ndescription = "stories"\n'
        f'[models.tales.files]\nQ8_0 = {{ file = "{Q8}", size = "1 MB" }}\n'
    )
    result = run_cli(
        "complete",
        "-m",
        "tales",
        "--greedy",
        "-n",
        "4",
        "Once upon a time",
        env={"LLMCLI_REGISTRY": str(user)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(", there was")

    imported = run_cli("models", "import", str(stories), "--alias", "bedtime")
    assert imported.returncode == 0, imported.stderr
    assert run_cli("complete", "-m", "bedtime", "--greedy", "-n", "4", "Once upon a time").stdout.startswith(
        ", there was"
    )
    again = run_cli("models", "import", str(stories), "--alias", "bedtime")
    assert again.returncode == 2 and "already" in again.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text('[models.oops]\nrepo = "a/b"\ncontext = "long"\n')
    broken = run_cli("models", "list", env={"LLMCLI_REGISTRY": str(bad)})
    assert broken.returncode == 2
    assert f"{bad}: [models.\"oops\"]: field 'context' must be a int" in broken.stderr


def test_unknown_alias_suggests(run_cli: Run, hub_env: dict[str, str]) -> None:
    result = run_cli("complete", "-m", "qwen2.5-15b", "hi")
    assert result.returncode == 3
    assert "unknown model 'qwen2.5-15b'" in result.stderr and "llmcli models list" in result.stderr


def test_cache_not_writable(run_cli: Run, hub_env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("models", "pull", f"{REPO}:Q4_K_M", env={"HF_HUB_CACHE": str(blocker / "hub")})
    assert result.returncode == 7
    assert "cannot write to the model cache" in result.stderr and "HF_HUB_CACHE" in result.stderr


def test_disk_full_is_refused_before_downloading(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from llmcli.errors import StorageError
    from llmcli.models import store

    monkeypatch.setattr(store.shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    cache = store.Store(environ={"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_ENDPOINT": hub.url})
    ref = load_registry(environ={"LLMCLI_HOME": str(tmp_path)}).parse(f"{REPO}/{Q4}")
    with pytest.raises(StorageError, match=r"not enough disk space for stories-Q4_K_M\.gguf"):
        cache.pull(ref)
    # Only the download lock (kept like huggingface_hub's own) may remain.
    assert not any(p.is_file() and ".locks" not in p.parts for p in (tmp_path / "hub").rglob("*"))

"""The shared hub cache: `llmcli models du` and `llmcli models gc`, over trees built by hand and pulls."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import LLMCLI
from hub_server import FakeHub

from llmcli.models.store import Store

Run = Callable[..., subprocess.CompletedProcess[str]]
REPO = "acme/stories-GGUF"
Q4, Q8 = "stories-Q4_K_M.gguf", "stories-Q8_0.gguf"
OLD, NEW = "1" * 40, "2" * 40
PROMPT = ("complete", "--offline", "--greedy", "-n", "8", "Once upon a time")


def _link(snapshot: Path, name: str, blob: Path) -> Path:
    path = snapshot / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(os.path.relpath(blob, path.parent))
    return path


def _blob(repo_dir: Path, data: bytes, name: str | None = None) -> Path:
    blob = repo_dir / "blobs" / (name or hashlib.sha256(data).hexdigest())
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    return blob


def build_cache(hub: Path, stories: Path) -> dict[str, Path]:
    """A cache as several tools leave it; returns the paths the tests look at."""
    data = stories.read_bytes()
    model = hub / "models--acme--stories-GGUF"
    current = _blob(model, data)
    older = _blob(model, data + b"\0" * 64)  # a distinct, still valid GGUF
    readme = _blob(model, b"# stories\n", "a" * 40)  # linked by both snapshots: must stay
    partial = _blob(model, b"x" * 300_000, "b" * 64 + ".incomplete")
    orphan = _blob(model, b"y" * 5_000, "c" * 64)
    for commit, blob in ((OLD, older), (NEW, current)):
        _link(model / "snapshots" / commit, Q4, blob)
        _link(model / "snapshots" / commit, "README.md", readme)
    outside = hub.parent / "outside.txt"
    outside.write_text("not the cache's")
    (model / "snapshots" / OLD / "notes.txt").symlink_to(outside)  # a link out of the cache
    os.utime(model / "snapshots" / OLD, (1e9, 1e9))
    (model / "refs").mkdir()
    (model / "refs" / "main").write_text(NEW)

    # Pinned by commit only (no refs): nothing says which is current, so both stay.
    pinned = hub / "models--acme--pinned-GGUF"
    for commit, content in ((OLD, data), (NEW, data + b"\0" * 32)):
        _link(pinned / "snapshots" / commit, Q4, _blob(pinned, content))

    # Another tool's model (no GGUF), a dataset with a superseded revision, a space.
    bert = hub / "models--acme--bert"
    _link(bert / "snapshots" / NEW, "config.json", _blob(bert, b"{}", "d" * 40))
    (bert / "refs").mkdir()
    (bert / "refs" / "main").write_text(NEW)
    texts = hub / "datasets--acme--texts"
    _link(texts / "snapshots" / NEW, "train.csv", _blob(texts, b"a,b\n" * 100))
    (texts / "snapshots" / OLD).mkdir(parents=True)
    (texts / "snapshots" / OLD / "copied.csv").write_bytes(b"z" * 1_000)  # a copy, not a link
    (texts / "refs" / "pr").mkdir(parents=True)
    (texts / "refs" / "main").write_text(NEW)
    (texts / "refs" / "pr" / "1").write_text(NEW)
    demo = hub / "spaces--acme--demo"
    _link(demo / "snapshots" / NEW, "app.py", _blob(demo, b"print()\n"))
    (demo / "refs").mkdir()
    (demo / "refs" / "main").write_text(NEW)

    # A repo folder that is a link to another disk: never scanned, never touched.
    elsewhere = hub.parent / "other-disk" / "models--acme--far-GGUF"
    _link(elsewhere / "snapshots" / OLD, Q4, _blob(elsewhere, b"far away"))
    (hub / "models--acme--far-GGUF").symlink_to(elsewhere)

    locks = hub / ".locks" / model.name
    locks.mkdir(parents=True)
    (locks / f"{current.name}.lock").touch()
    (hub / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
    return {
        "model": model,
        "current": current,
        "older": older,
        "readme": readme,
        "partial": partial,
        "orphan": orphan,
        "outside": outside,
        "elsewhere": elsewhere,
        "lock": locks / f"{current.name}.lock",
    }


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under root, not followed: file bytes, or a link's target."""
    found: dict[str, bytes | str] = {}
    for top, dirs, files in os.walk(root):
        for name in [*files, *dirs]:
            path = Path(top, name)
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[key] = "-> " + os.readlink(path)
            elif path.is_file():
                found[key] = path.read_bytes()
    return found


@pytest.fixture
def cache(cli_env: dict[str, str], stories: Path) -> dict[str, Path]:
    hub = Path(cli_env["HF_HUB_CACHE"])
    hub.mkdir(parents=True)
    return {"hub": hub, **build_cache(hub, stories)}


def test_du_reports_every_repo_snapshot_and_leftover(run_cli: Run, cache: dict[str, Path]) -> None:
    result = run_cli("models", "du", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout is the report and nothing else
    repos = {r["repo"]: r for r in report["repos"]}
    assert {(r["kind"], r["gguf"]) for r in report["repos"]} >= {
        ("model", True),
        ("model", False),
        ("dataset", False),
        ("space", False),
    }
    stories = repos[REPO]
    snaps = {s["commit"]: s for s in stories["snapshots"]}
    assert snaps[NEW]["refs"] == ["main"] and snaps[NEW]["kept"] and snaps[NEW]["reclaimable"] == 0
    assert not snaps[OLD]["kept"] and snaps[OLD]["files"] == 3
    assert snaps[OLD]["reclaimable"] == cache["older"].stat().st_size  # the shared README is not counted
    assert snaps[NEW]["size"] == cache["current"].stat().st_size + cache["readme"].stat().st_size
    assert [p["path"] for p in stories["partials"]] == [str(cache["partial"])]
    assert [o["path"] for o in stories["orphans"]] == [str(cache["orphan"])]
    on_disk = sum(p.stat().st_size for p in cache["model"].rglob("*") if p.is_file() and not p.is_symlink())
    assert stories["size"] == on_disk
    assert stories["reclaimable"] == sum(cache[k].stat().st_size for k in ("older", "partial", "orphan"))
    assert all(s["kept"] for s in repos["acme/pinned-GGUF"]["snapshots"])
    texts = {s["commit"]: s for s in repos["acme/texts"]["snapshots"]}
    assert texts[NEW]["refs"] == ["main", "pr/1"] and texts[OLD]["reclaimable"] == 1_000
    assert repos["acme/far-GGUF"]["linked"] and repos["acme/far-GGUF"]["size"] == 0
    assert {Path(o["path"]).name for o in report["other"]} == {".locks", "CACHEDIR.TAG"}
    assert report["size"] == sum(r["size"] for r in report["repos"]) + sum(o["size"] for o in report["other"])

    table = run_cli("models", "du")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].startswith("| repo") and lines[1].startswith("| ---")
    assert any(REPO in line and "gguf" in line for line in lines)
    assert any(OLD[:12] in line and "superseded" in line for line in lines)
    assert any("partial downloads" in line for line in lines) and any(
        "orphan blobs" in line for line in lines
    )
    assert any("acme/far-GGUF" in line and "not scanned" in line for line in lines)
    assert lines[-1].startswith("| total")
    assert "llmcli models gc" in table.stderr


def test_gc_dry_run_removes_nothing(run_cli: Run, cache: dict[str, Path]) -> None:
    before = tree(cache["hub"].parent)
    result = run_cli("models", "gc")  # stdin is not a terminal: a dry run, no question
    assert result.returncode == 0, result.stderr
    assert (
        OLD[:12] in result.stdout and "partial download" in result.stdout and "orphan blob" in result.stdout
    )
    assert "dry run: nothing removed" in result.stderr and "-y" in result.stderr
    plan = json.loads(run_cli("models", "gc", "--json").stdout)
    assert plan["dry_run"] and plan["freed"] > 1_000_000
    assert json.loads(run_cli("models", "gc", "-y", "--dry-run", "--json").stdout)["dry_run"]
    assert tree(cache["hub"].parent) == before


def test_gc_yes_removes_exactly_the_garbage_and_the_model_still_runs(
    run_cli: Run, cache: dict[str, Path], cli_env: dict[str, str]
) -> None:
    hub = cache["hub"]
    before = tree(hub.parent)
    planned = json.loads(run_cli("models", "gc", "--json").stdout)
    result = run_cli("models", "gc", "-y", "--json")
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    assert not done["dry_run"] and done["removed"] == planned["removed"] and done["freed"] == planned["freed"]
    assert done["skipped"] == [{"repo": "acme/far-GGUF", "reason": "its folder is a symbolic link"}]
    assert f"freed {done['freed'] / 1e6:.1f} MB" in result.stderr
    assert f"removed {REPO} superseded snapshot {OLD}" in result.stderr

    model = cache["model"].relative_to(hub.parent).as_posix()
    texts = "hub/datasets--acme--texts/snapshots/" + OLD
    gone = {
        key
        for key in before
        if key.startswith((f"{model}/snapshots/{OLD}/", f"{texts}/"))
        or key
        in {
            f"{model}/blobs/{cache['older'].name}",
            f"{model}/blobs/{cache['partial'].name}",
            f"{model}/blobs/{cache['orphan'].name}",
        }
    }
    assert len(gone) == 7
    assert tree(hub.parent) == {k: v for k, v in before.items() if k not in gone}
    assert not (cache["model"] / "snapshots" / OLD).exists() and not (hub.parent / texts).exists()
    assert cache["outside"].read_text() == "not the cache's" and cache["elsewhere"].is_dir()

    ran = run_cli(*PROMPT, "-m", f"{REPO}:Q4_K_M")  # the kept snapshot's blobs still work
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith(", there was a little girl")
    again = run_cli("models", "gc", "-y")
    assert again.returncode == 0 and "freed 0 B" in again.stderr
    assert run_cli("models", "gc").stderr.strip().endswith("nothing to remove")
    assert json.loads(run_cli("models", "du", "--json").stdout)["reclaimable"] == 0


def test_gc_leaves_a_repo_that_is_being_downloaded(run_cli: Run, cache: dict[str, Path]) -> None:
    before = tree(cache["hub"])
    fd = os.open(cache["lock"], os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running `hf download` or llmcli pull holds
        du = json.loads(run_cli("models", "du", "--json").stdout)
        assert next(r for r in du["repos"] if r["repo"] == REPO)["busy"]
        result = run_cli("models", "gc", "-y", "--json")
    finally:
        os.close(fd)
    assert result.returncode == 0, result.stderr
    assert f"skipped {REPO}: a download is in progress" in result.stderr
    assert all(e["repo"] != REPO for e in json.loads(result.stdout)["removed"])
    after = tree(cache["hub"])
    assert {k: v for k, v in after.items() if "texts" not in k} == {
        k: v for k, v in before.items() if "texts" not in k
    }


def test_gc_asks_on_a_terminal(cli_env: dict[str, str], cache: dict[str, Path]) -> None:
    def answer(text: str) -> subprocess.CompletedProcess[str]:
        master, slave = pty.openpty()
        try:
            os.write(master, text.encode())
            return subprocess.run(
                [str(LLMCLI), "models", "gc"],
                stdin=slave,
                capture_output=True,
                text=True,
                env=cli_env,
                timeout=60,
            )
        finally:
            os.close(master)
            os.close(slave)

    before = tree(cache["hub"])
    refused = answer("n\n")
    assert refused.returncode == 1 and "Remove 4 items, freeing 1.5 MB?" in refused.stderr
    assert tree(cache["hub"]) == before
    accepted = answer("y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "freed 1.5 MB" in accepted.stderr and not cache["older"].exists() and cache["current"].exists()


def test_empty_or_missing_cache(run_cli: Run, tmp_path: Path) -> None:
    env = {"HF_HUB_CACHE": str(tmp_path / "nowhere")}
    du = run_cli("models", "du", env=env)
    assert du.returncode == 0 and du.stdout.splitlines()[-1].startswith("| total")
    assert "is empty" in du.stderr
    gc = run_cli("models", "gc", "-y", "--json", env=env)
    assert gc.returncode == 0 and json.loads(gc.stdout)["removed"] == []
    assert not (tmp_path / "nowhere").exists()


def test_store_gc_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = tmp_path / "hub"
    repo = hub / "models--acme--x-GGUF"
    shared, own = _blob(repo, b"shared by two superseded"), _blob(repo, b"only the current one")
    for commit in ("3" * 40, "4" * 40):
        _link(repo / "snapshots" / commit, "a.gguf", shared)
    _link(repo / "snapshots" / NEW, "b.gguf", own)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("5" * 40)  # a failed download's ref: no snapshot of it on disk
    store = Store(environ={"HF_HUB_CACHE": str(hub)})
    assert store.gc(dry_run=True).removed == ()  # then nothing says which is current: all stay

    (repo / "refs" / "main").write_text(NEW)
    plan = store.gc(dry_run=True)
    assert sorted(e.path.name for e in plan.removed) == ["3" * 40, "4" * 40]
    assert plan.freed == shared.stat().st_size  # the blob two of them share is counted once

    def refuse(path: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("llmcli.models.store.shutil.rmtree", refuse)
    failed = store.gc(dry_run=False)
    assert len(failed.failed) == 2 and failed.failed[0][1] == "Permission denied"
    assert shared.exists() and own.exists()


def test_gc_after_pulls_of_a_repo_that_moved_on(run_cli: Run, cli_env: dict[str, str], stories: Path) -> None:
    data = stories.read_bytes()
    with FakeHub() as hub:
        env = {"HF_ENDPOINT": hub.url}
        first = hub.add_file(REPO, Q4, data)
        assert run_cli("models", "pull", f"{REPO}:Q4_K_M", env=env).returncode == 0
        second = hub.add_file(REPO, Q8, data + b"\0" * 64)  # the repo gets a new commit
        pulled = run_cli("models", "pull", f"{REPO}:Q8_0", env=env)
        assert pulled.returncode == 0, pulled.stderr
    model = Path(cli_env["HF_HUB_CACHE"]) / "models--acme--stories-GGUF"
    assert (model / "refs" / "main").read_text() == second != first
    result = run_cli("models", "gc", "-y", "--json")
    assert result.returncode == 0, result.stderr
    removed = json.loads(result.stdout)["removed"]
    assert [(e["kind"], Path(e["path"]).name) for e in removed] == [("snapshot", first)]
    assert removed[0]["size"] == len(data)  # the superseded snapshot's blob went with it
    assert [p.name for p in (model / "snapshots").iterdir()] == [second]
    assert len(list((model / "blobs").iterdir())) == 1
    ran = run_cli(*PROMPT, "-m", f"{REPO}:Q8_0")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith(", there was")

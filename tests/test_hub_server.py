"""Prove that the real huggingface_hub 2.4.0 client works against tests/hub_server.FakeHub.

The tests also pin down, as executable documentation, what the client does on failures (dropped
connections, corrupted bodies, 4xx/5xx, server down). See the hub_server module docstring for a summary.

Pointing huggingface_hub at the fake hub: the env vars HF_ENDPOINT / HF_HOME / HF_HUB_CACHE / HF_HUB_OFFLINE
are read once, when ``huggingface_hub.constants`` is imported. Setting them afterwards (monkeypatch.setenv)
changes nothing, so the ``hf_env`` fixture both sets the env vars (for code that reads them itself and for
subprocesses) and patches the constants, and the tests still pass ``endpoint=`` / ``cache_dir=`` explicitly.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx2
import pytest
from hub_server import FakeHub, git_blob_sha1
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder
from huggingface_hub.utils import _http

REPO = "acme/tiny-GGUF"
GGUF = "tiny-Q4_K_M.gguf"
PAYLOAD = hashlib.sha256(b"seed").digest() * 6250  # 200 000 bytes, deterministic
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class _NoSleepTime:
    """Stand-in for the `time` module inside huggingface_hub: records sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def __getattr__(self, name: str):
        return getattr(time, name)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> _NoSleepTime:
    """Make the client's retry back-off (1 s, 2 s, 4 s...) instantaneous."""
    fake = _NoSleepTime()
    import huggingface_hub.file_download as file_download

    monkeypatch.setattr(_http, "time", fake)
    monkeypatch.setattr(file_download, "time", fake)
    return fake


@pytest.fixture
def hub():
    with FakeHub() as server:
        server.add_file(REPO, GGUF, PAYLOAD)
        server.add_file(REPO, "README.md", b"# tiny\n")
        yield server
    _http.close_session()  # drop pooled keep-alive connections to this server


def point_hf_at(server: FakeHub, home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary HF home/cache + HF_ENDPOINT=server.url, for env readers *and* the import-time constants.

    Returns the hub cache dir. Telemetry is disabled so that the client does not fetch
    /api/agent-harnesses (see test_agent_harness_registry_is_fetched_once_per_process).
    """
    cache = home / "hub"
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # Already-imported huggingface_hub copied these at import time:
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_ASSETS_CACHE", str(home / "assets"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(home / ".agent_harnesses.json"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    return cache


@pytest.fixture
def hf_env(hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return point_hf_at(hub, tmp_path / "hf_home", monkeypatch)


def _download(hub: FakeHub, cache: Path, filename: str = GGUF, repo_id: str = REPO, **kwargs) -> str:
    return hf_hub_download(repo_id, filename, endpoint=hub.url, cache_dir=cache, **kwargs)


def _leftovers(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*.incomplete")]


# 1. Download into the cache; cached files need no request ------------------------------------------------


def test_download_lands_in_cache_and_cached_copy_needs_no_request(
    hub: FakeHub, hf_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(_download(hub, hf_env))
    commit = hub.sha(REPO)

    assert path.read_bytes() == PAYLOAD
    assert path == hf_env / "models--acme--tiny-GGUF" / "snapshots" / commit / GGUF
    assert path.resolve() == hf_env / "models--acme--tiny-GGUF" / "blobs" / SHA256  # LFS blob named by sha256
    assert (hf_env / "models--acme--tiny-GGUF" / "refs" / "main").read_text() == commit
    assert [(r.method, r.path) for r in hub.requests] == [
        ("HEAD", f"/{REPO}/resolve/main/{GGUF}"),
        ("GET", f"/{REPO}/resolve/main/{GGUF}"),
    ]
    # A regular (non-LFS) file is stored under its git blob sha1.
    readme = Path(_download(hub, hf_env, "README.md"))
    assert readme.resolve().name == git_blob_sha1(b"# tiny\n")

    # local_files_only=True: zero requests.
    hub.clear_requests()
    assert _download(hub, hf_env, local_files_only=True) == str(path)
    # A pinned commit sha that is already cached: zero requests too.
    assert _download(hub, hf_env, revision=commit) == str(path)
    assert hub.requests == []

    # Online with revision="main", the client still sends a HEAD (to learn the current commit), but no GET.
    assert _download(hub, hf_env) == str(path)
    assert [r.method for r in hub.requests] == ["HEAD"]

    # HF_HUB_OFFLINE is read at import: setting the env var now is ignored (a HEAD is still sent) ...
    hub.clear_requests()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _download(hub, hf_env)
    assert [r.method for r in hub.requests] == ["HEAD"]
    # ... patching the constant is what works: zero requests.
    hub.clear_requests()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert _download(hub, hf_env) == str(path)
    assert hub.requests == []


def test_agent_harness_registry_is_fetched_once_per_process(
    hub: FakeHub, hf_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With telemetry on, the first header build GETs {constants.ENDPOINT}/api/agent-harnesses, even for a
    local_files_only call. It is cached in-process and on disk ($HF_HOME/.agent_harnesses.json, 24 h)."""
    from huggingface_hub.utils import _detect_agent

    cached = _download(hub, hf_env)
    hub.clear_requests()
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", False)
    monkeypatch.setattr(_detect_agent, "_registry", None)

    assert _download(hub, hf_env, local_files_only=True) == cached
    assert [(r.method, r.path) for r in hub.requests] == [("GET", "/api/agent-harnesses")]
    assert Path(constants.AGENT_HARNESSES_PATH).is_file()

    hub.clear_requests()
    monkeypatch.setattr(_detect_agent, "_registry", None)  # new process, fresh on-disk copy => no request
    assert _download(hub, hf_env, local_files_only=True) == cached
    assert hub.requests == []


def test_env_vars_work_when_set_before_import(hub: FakeHub, hf_env: Path) -> None:
    """In a fresh interpreter HF_ENDPOINT/HF_HUB_CACHE/HF_HUB_OFFLINE work without endpoint=/cache_dir=."""
    script = (
        f"import sys; from huggingface_hub import hf_hub_download;print(hf_hub_download({REPO!r}, {GGUF!r}))"
    )
    env = {
        **os.environ,
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }  # hf_env already set HF_ENDPOINT, HF_HUB_CACHE...
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    path = Path(out.stdout.strip())
    assert path.is_relative_to(hf_env)
    assert path.read_bytes() == PAYLOAD
    assert [r.method for r in hub.requests] == ["HEAD", "GET"]

    hub.clear_requests()
    env["HF_HUB_OFFLINE"] = "1"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == path
    assert hub.requests == []


def test_module_level_api_keeps_import_time_endpoint(hub: FakeHub, hf_env: Path) -> None:
    """`huggingface_hub.model_info` & co. are bound to an HfApi() made at import: patching can't reach it."""
    import huggingface_hub.hf_api as hf_api

    assert hf_api.api.endpoint != hub.url  # so never call the module-level functions in tests
    assert HfApi().endpoint == hub.url  # a new HfApi() reads the (patched) constant
    assert HfApi(endpoint=hub.url).endpoint == hub.url  # the explicit way


def test_snapshot_download(hub: FakeHub, hf_env: Path) -> None:
    hub.add_file(REPO, "sub/config.json", b"{}")
    folder = Path(snapshot_download(REPO, endpoint=hub.url, cache_dir=hf_env))
    assert (folder / GGUF).read_bytes() == PAYLOAD
    assert (folder / "sub" / "config.json").read_bytes() == b"{}"
    paths = [r.path.split("?")[0] for r in hub.requests]
    assert paths[:2] == [f"/api/models/{REPO}/revision/main", f"/api/models/{REPO}/tree/{hub.sha(REPO)}"]

    hub.clear_requests()
    again = snapshot_download(REPO, endpoint=hub.url, cache_dir=hf_env, local_files_only=True)
    assert Path(again) == folder
    assert hub.requests == []


# 2. Listing: tree and model info -------------------------------------------------------------------------


def test_list_repo_tree_and_model_info(hub: FakeHub, hf_env: Path) -> None:
    hub.add_file(REPO, "extra/notes.txt", b"notes")
    api = HfApi(endpoint=hub.url)

    top = {e.path: e for e in api.list_repo_tree(REPO)}
    assert set(top) == {GGUF, "README.md", "extra"}
    assert isinstance(top["extra"], RepoFolder)
    gguf = top[GGUF]
    assert isinstance(gguf, RepoFile)
    assert gguf.size == len(PAYLOAD)
    assert gguf.lfs is not None and gguf.lfs.sha256 == SHA256 and gguf.lfs.size == len(PAYLOAD)
    assert gguf.lfs.pointer_size > 0
    readme = top["README.md"]
    assert isinstance(readme, RepoFile)
    assert readme.lfs is None and readme.blob_id == git_blob_sha1(b"# tiny\n")
    assert gguf.xet_hash is None  # => the client never takes the Xet path

    everything = {e.path for e in api.list_repo_tree(REPO, recursive=True)}
    assert everything == {GGUF, "README.md", "extra", "extra/notes.txt"}
    assert [e.path for e in api.list_repo_tree(REPO, path_in_repo="extra")] == ["extra/notes.txt"]
    with pytest.raises(RemoteEntryNotFoundError):
        list(api.list_repo_tree(REPO, path_in_repo="nope"))

    info = api.model_info(REPO, files_metadata=True)
    assert info.sha == hub.sha(REPO)
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert set(siblings) == {GGUF, "README.md", "extra/notes.txt"}
    assert siblings[GGUF].size == len(PAYLOAD)
    gguf_lfs = siblings[GGUF].lfs
    assert gguf_lfs is not None and gguf_lfs.sha256 == SHA256
    assert siblings["README.md"].lfs is None and siblings["README.md"].size == 7
    assert any(r.path.endswith(f"/api/models/{REPO}?blobs=true") for r in hub.requests)

    plain = api.model_info(REPO, revision="main")
    assert plain.sha == info.sha
    assert all(s.size is None for s in plain.siblings or [])  # sizes only with files_metadata=True


def test_revisions_and_old_commits(hub: FakeHub, hf_env: Path) -> None:
    old = hub.sha(REPO)
    new = hub.add_file(REPO, GGUF, b"v2" * 1000)
    assert new != old and hub.sha(REPO) == new
    assert Path(_download(hub, hf_env, revision=old)).read_bytes() == PAYLOAD
    assert Path(_download(hub, hf_env)).read_bytes() == b"v2" * 1000
    assert HfApi(endpoint=hub.url).model_info(REPO, revision=old[:7]).sha == old
    with pytest.raises(RevisionNotFoundError):
        _download(hub, hf_env, revision="no-such-branch")


# 3. Interrupted downloads ---------------------------------------------------------------------------------


def test_dropped_connection_resumes_with_range_inside_the_same_call(
    hub: FakeHub, hf_env: Path, monkeypatch: pytest.MonkeyPatch, no_sleep: _NoSleepTime
) -> None:
    """Connection closed mid-body => httpx2.RemoteProtocolError => http_get retries with a Range header.

    The resume offset is what had been *written* to the temp file: httpx2's iter_bytes hands data over in
    DOWNLOAD_CHUNK_SIZE (10 MiB) pieces, so the chunk size is shrunk here to see a non-zero offset.
    """
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)
    hub.drop_after_bytes = 50_000

    path = _download(hub, hf_env)  # no exception: the retry happens inside hf_hub_download

    assert Path(path).read_bytes() == PAYLOAD
    gets = [r for r in hub.requests if r.method == "GET"]
    assert len(gets) == 2
    assert gets[0].headers.get("Range") is None
    assert gets[1].headers.get("Range") == "bytes=49152-"  # 3 full 16 KiB chunks had been written
    assert no_sleep.sleeps == [1]
    assert _leftovers(hf_env) == []


def test_dropped_connection_with_default_chunk_size_restarts_from_zero(hub: FakeHub, hf_env: Path) -> None:
    """With the default 10 MiB chunk a smaller file has nothing written yet: the retry sends no Range."""
    hub.drop_after_bytes = 50_000
    path = _download(hub, hf_env)
    assert Path(path).read_bytes() == PAYLOAD
    assert [(r.method, r.headers.get("Range")) for r in hub.requests] == [
        ("HEAD", None),
        ("GET", None),
        ("GET", None),
    ]


def test_reset_connection_raises_and_the_next_call_starts_over(
    hub: FakeHub, hf_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TCP reset gives httpx2.ReadError, which http_get does not retry: hf_hub_download raises it.

    The partial file is deleted (process-unique `<etag>.<rand>.incomplete`), so a second call cannot resume:
    it downloads from byte 0, without a Range header.
    """
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)
    hub.drop_mode = "reset"
    hub.drop_after_bytes = 50_000
    with pytest.raises(httpx2.ReadError):
        _download(hub, hf_env)
    assert _leftovers(hf_env) == []
    assert not (hf_env / "models--acme--tiny-GGUF" / "blobs" / SHA256).exists()

    hub.clear_requests()
    assert Path(_download(hub, hf_env)).read_bytes() == PAYLOAD
    assert [(r.method, r.headers.get("Range")) for r in hub.requests] == [("HEAD", None), ("GET", None)]


def test_range_requests_on_the_wire(hub: FakeHub) -> None:
    url = f"{hub.url}/{REPO}/resolve/main/{GGUF}"

    def fetch(range_header: str) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(url, headers={"Range": range_header})
        try:
            with urllib.request.urlopen(req) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    status, headers, body = fetch("bytes=100-199")
    assert (status, body, headers["Content-Range"]) == (
        206,
        PAYLOAD[100:200],
        f"bytes 100-199/{len(PAYLOAD)}",
    )
    status, headers, body = fetch("bytes=199990-")
    assert (status, body) == (206, PAYLOAD[199990:])
    status, headers, body = fetch("bytes=-10")
    assert (status, body) == (206, PAYLOAD[-10:])
    status, headers, _ = fetch(f"bytes={len(PAYLOAD)}-")
    assert (status, headers["Content-Range"]) == (416, f"bytes */{len(PAYLOAD)}")
    head = urllib.request.urlopen(urllib.request.Request(url, method="HEAD"))
    assert head.headers["X-Linked-Etag"] == f'"{SHA256}"'
    assert head.headers["X-Linked-Size"] == str(len(PAYLOAD))
    assert head.headers["X-Repo-Commit"] == hub.sha(REPO)
    assert "X-Xet-Hash" not in head.headers


# Corrupted content ----------------------------------------------------------------------------------------


def test_corrupted_body_is_not_detected_by_hf_hub_download(hub: FakeHub, hf_env: Path) -> None:
    """hf_hub_download checks only the size, never the sha256: corrupted bytes land in the cache silently."""
    hub.corrupt(REPO, GGUF)
    path = Path(_download(hub, hf_env))
    data = path.read_bytes()
    assert len(data) == len(PAYLOAD) and data != PAYLOAD
    assert path.resolve().name == SHA256  # stored under the advertised sha256 all the same
    assert hashlib.sha256(data).hexdigest() != SHA256

    # HfApi.verify_repo_checksums (tree listing vs. local hashes) is what catches it.
    result = HfApi(endpoint=hub.url).verify_repo_checksums(REPO, cache_dir=hf_env)
    assert [m["path"] for m in result.mismatches] == [GGUF]
    assert result.mismatches[0]["expected"] == SHA256


# 4. HTTP errors -------------------------------------------------------------------------------------------


def test_http_errors_map_to_client_exceptions(hub: FakeHub, hf_env: Path) -> None:
    api = HfApi(endpoint=hub.url)
    with pytest.raises(RepositoryNotFoundError):
        _download(hub, hf_env, repo_id="acme/missing")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/missing")

    with pytest.raises(RemoteEntryNotFoundError) as excinfo:
        _download(hub, hf_env, "missing.gguf")
    assert isinstance(excinfo.value, EntryNotFoundError) and excinfo.value.response.status_code == 404
    # The client caches the non-existence under the commit from X-Repo-Commit.
    assert (hf_env / "models--acme--tiny-GGUF" / ".no_exist" / hub.sha(REPO) / "missing.gguf").exists()

    hub.add_repo("acme/gated", gated=True, tokens={"hf_good"})
    hub.add_file("acme/gated", "g.gguf", b"gated bytes")
    with pytest.raises(GatedRepoError) as gated:
        _download(hub, hf_env, "g.gguf", repo_id="acme/gated")
    assert gated.value.response.status_code == 401
    assert isinstance(gated.value, RepositoryNotFoundError)  # GatedRepoError subclasses it
    assert api.model_info("acme/gated").gated == "manual"  # metadata stays public, like on huggingface.co
    ok = _download(hub, hf_env, "g.gguf", repo_id="acme/gated", token="hf_good")
    assert Path(ok).read_bytes() == b"gated bytes"
    assert hub.requests[-1].headers.get("Authorization") == "Bearer hf_good"

    hub.add_repo("acme/private", private=True)
    hub.add_file("acme/private", "p.gguf", b"p")
    with pytest.raises(RepositoryNotFoundError) as private:
        api.model_info("acme/private")
    assert private.value.response.status_code == 401


def test_fail_next_503_on_head_is_retried(hub: FakeHub, hf_env: Path, no_sleep: _NoSleepTime) -> None:
    hub.fail_next(503, 1, method="HEAD")
    assert Path(_download(hub, hf_env)).read_bytes() == PAYLOAD
    assert [r.method for r in hub.requests] == ["HEAD", "HEAD", "GET"]
    assert no_sleep.sleeps == []  # first HEAD: no retry; second HEAD (retry_on_errors=True) succeeded


def test_fail_next_503_on_get_is_not_retried(hub: FakeHub, hf_env: Path) -> None:
    hub.fail_next(503, 1, method="GET")
    with pytest.raises(HfHubHTTPError) as excinfo:
        _download(hub, hf_env)
    assert excinfo.value.response.status_code == 503
    assert _leftovers(hf_env) == []


def test_fail_next_429_on_get_is_retried(hub: FakeHub, hf_env: Path, no_sleep: _NoSleepTime) -> None:
    hub.fail_next(429, 2, method="GET", headers={"Retry-After": "3"})
    assert Path(_download(hub, hf_env)).read_bytes() == PAYLOAD
    assert [r.method for r in hub.requests] == ["HEAD", "GET", "GET", "GET"]
    assert no_sleep.sleeps == [4.0, 4.0]  # Retry-After + 1 s


def test_persistent_503_gives_up(hub: FakeHub, hf_env: Path, no_sleep: _NoSleepTime) -> None:
    hub.fail_next(503, 100)
    with pytest.raises(LocalEntryNotFoundError) as excinfo:
        _download(hub, hf_env)
    assert isinstance(excinfo.value.__cause__, HfHubHTTPError)
    assert len(hub.requests) == 1 + 6  # one quick HEAD, then 1 + 5 retries
    assert no_sleep.sleeps == [1, 2, 4, 8, 8]


# 5. Server down ---------------------------------------------------------------------------------------------


def test_server_stopped_raises_connection_errors(hub: FakeHub, hf_env: Path) -> None:
    cached = _download(hub, hf_env, "README.md")
    api = HfApi(endpoint=hub.url)
    hub.stop()

    # Nothing cached: hf_hub_download wraps the connection failure.
    with pytest.raises(LocalEntryNotFoundError) as excinfo:
        _download(hub, hf_env)
    assert isinstance(excinfo.value.__cause__, httpx2.ConnectError)
    # Already cached: it falls back to the cached copy without complaint.
    assert _download(hub, hf_env, "README.md") == cached
    # HfApi methods let httpx2's exception through unchanged.
    with pytest.raises(httpx2.ConnectError):
        api.model_info(REPO)

    hub.start()  # same port again: the client recovers
    assert Path(_download(hub, hf_env)).read_bytes() == PAYLOAD


# CDN-style redirect for LFS files ---------------------------------------------------------------------------


def test_lfs_redirect_to_cdn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)
    with FakeHub(redirect_lfs=True) as cdn_hub:
        cache = point_hf_at(cdn_hub, tmp_path / "hf_home", monkeypatch)
        cdn_hub.add_file(REPO, GGUF, PAYLOAD)
        cdn_hub.drop_after_bytes = 40_000
        path = hf_hub_download(REPO, GGUF, endpoint=cdn_hub.url, cache_dir=cache, token="hf_secret")
        assert Path(path).read_bytes() == PAYLOAD
        seen = [(r.method, r.path.split("/")[1], r.headers.get("Range")) for r in cdn_hub.requests]
        assert seen == [("HEAD", "acme", None), ("GET", "__cdn__", None), ("GET", "__cdn__", "bytes=32768-")]
        assert cdn_hub.requests[0].headers.get("Authorization") == "Bearer hf_secret"
        assert all(r.headers.get("Authorization") is None for r in cdn_hub.requests[1:])  # not sent off-Hub
    _http.close_session()

"""A fake Hugging Face Hub on 127.0.0.1 for tests (stdlib only, no network).

``FakeHub`` serves, from memory, the part of the Hub HTTP protocol that the *real* ``huggingface_hub``
2.4.0 client uses to download model files, so a test can point the client at ``hub.url`` and exercise
``hf_hub_download``, ``snapshot_download``, ``HfApi.model_info``/``repo_info`` and ``HfApi.list_repo_tree``
without touching the internet::

    with FakeHub() as hub:
        hub.add_file("org/model-GGUF", "model-Q4_K_M.gguf", b"GGUF...")
        path = hf_hub_download("org/model-GGUF", "model-Q4_K_M.gguf", endpoint=hub.url, cache_dir=tmp)

Endpoints (model repos only; ``repo_id`` is ``name`` or ``namespace/name``):

* ``HEAD``/``GET /{repo_id}/resolve/{revision}/{path}``: sends ``X-Repo-Commit`` (commit sha),
  ``ETag`` (git blob sha1 for regular files, sha256 for LFS files), ``X-Linked-Etag`` and ``X-Linked-Size``
  (LFS files only), ``Content-Length`` and ``Accept-Ranges: bytes``. ``GET`` honours a single
  ``Range: bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` with ``206 Partial Content`` + ``Content-Range``
  (``416`` when unsatisfiable).
  With ``FakeHub(redirect_lfs=True)`` LFS files answer ``302`` to a second listening port (a "CDN": a
  different origin, like the real Hub's CDN) that serves the bytes; the ``302`` itself carries the metadata
  headers, exactly like huggingface.co.
* ``GET /api/models/{repo_id}`` and ``GET /api/models/{repo_id}/revision/{revision}``: model info with
  ``id``, ``sha``, ``gated``, ``private``, ``siblings`` (``rfilename``; with ``?blobs=true``, which is what
  ``files_metadata=True`` sends, also ``size``, ``blobId`` and ``lfs {sha256, size, pointerSize}``), plus any
  ``info=`` extras given to ``add_repo`` (e.g. a ``gguf`` block).
* ``GET /api/models/{repo_id}/tree/{revision}[/{path}]?recursive=true``: a single, unpaginated JSON list of
  ``{"type": "file", "path", "size", "oid", "lfs": {"oid", "size", "pointerSize"}}`` and
  ``{"type": "directory", "path", "oid", "size": 0}`` entries.
* Errors carry the ``X-Error-Code`` header that ``huggingface_hub.utils.hf_raise_for_status`` maps to an
  exception: ``RepoNotFound`` (404, or 401 for a private repo) -> ``RepositoryNotFoundError``;
  ``RevisionNotFound`` (404) -> ``RevisionNotFoundError``; ``EntryNotFound`` (404) ->
  ``RemoteEntryNotFoundError``; ``GatedRepo`` (401) -> ``GatedRepoError``.

Which files are LFS: a path ending in ``.gguf`` or a file of at least ``lfs_threshold`` bytes (default
10 MiB, the Hub's own limit for non-LFS files); ``add_file(..., lfs=True/False)`` overrides it.

Things worth knowing about huggingface_hub 2.4.0 (checked against its source and with these tests):

* Xet is never used here: the client only takes the Xet path when a resolve response carries
  ``X-Xet-Hash`` plus ``X-Xet-Refresh-Route`` (or a ``Link: <...>; rel="xet-auth"``), or when a cached tree
  listing has a ``xetHash``. This server sends none of them, so ``hf_xet`` (installed) stays unused and
  the plain HTTP ``http_get`` path runs. ``hf_transfer`` is gone in 2.x (the env var only warns).
* Gated repos behave like on huggingface.co: the metadata endpoints (model info, tree) answer 200 with
  ``"gated": "manual"``; only ``/resolve`` answers ``401`` + ``X-Error-Code: GatedRepo``. A request with
  ``Authorization: Bearer <token>`` for a token given in ``add_repo(tokens=...)`` is let through.
* Pointing the client here: ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``,
  ``HF_HUB_DISABLE_TELEMETRY`` (and the token path) are read once, when ``huggingface_hub.constants`` is
  imported. Setting them with ``monkeypatch.setenv`` afterwards has no effect; either set them before the
  first import (e.g. a subprocess), or pass ``endpoint=``/``cache_dir=`` (``HfApi(endpoint=...)``) *and*
  patch ``constants.ENDPOINT``, ``constants.HUGGINGFACE_CO_URL_TEMPLATE``, ``constants.HF_HUB_CACHE``,
  ``constants.HF_HUB_OFFLINE``... (see ``point_hf_at`` in test_hub_server.py). The module-level functions
  (``huggingface_hub.model_info``, ``list_repo_tree``...) are bound to an ``HfApi()`` created at import,
  so they keep the import-time endpoint whatever you patch: use ``HfApi(endpoint=hub.url)``.
* A broken download is resumed *inside the same* ``hf_hub_download`` call: ``http_get`` catches
  ``httpx2.RemoteProtocolError`` (what a connection closed mid-body gives), sleeps 1 s and re-requests with
  ``Range: bytes=<written>-`` (up to 5 times without progress). ``<written>`` counts only whole
  ``constants.DOWNLOAD_CHUNK_SIZE`` (10 MiB) pieces, so below 10 MiB the retry starts from 0 without a
  ``Range`` header unless a test lowers that constant. A TCP reset instead gives
  ``httpx2.ReadError``, which ``http_get`` does NOT catch: it propagates out of ``hf_hub_download``.
  Partial data is never kept across calls: 2.4.0 downloads into a process-unique
  ``blobs/<etag>.<random>.incomplete`` file and deletes it when the download fails, so a second call
  starts again from byte 0 (no ``Range``).
* ``hf_hub_download`` does not hash what it downloads (cache_dir mode): a body that differs from the
  advertised sha256 but has the right length is stored and returned silently. Only the length is
  checked (``OSError: Consistency check failed``). ``HfApi.verify_repo_checksums`` detects it afterwards.
* Retries: the metadata ``HEAD`` is first tried without retries; on 429/5xx/connection errors with no
  cached copy it is tried again with up to 5 retries (backoff sleeps of 1, 2, 4, 8, 8 s, or
  ``Retry-After``). The body ``GET`` retries only 408/429; a 5xx on it raises ``HfHubHTTPError``.
  Tests should stub ``time.sleep`` in ``huggingface_hub.utils._http`` and ``huggingface_hub.file_download``.
* Phone-home: the first ``build_hf_headers()`` in a process (every ``hf_hub_download`` call builds headers,
  even with ``local_files_only=True``) fetches ``GET {constants.ENDPOINT}/api/agent-harnesses`` to detect
  AI agents for the user-agent string, unless ``HF_HUB_DISABLE_TELEMETRY``/``HF_HUB_OFFLINE`` was set at
  import time or ``$HF_HOME/.agent_harnesses.json`` is less than a day old. It goes to
  ``constants.ENDPOINT`` (import-time ``HF_ENDPOINT``), *not* to the ``endpoint=`` argument: with only
  ``endpoint=`` passed, a test process tries to reach https://huggingface.co. This server answers it with
  an empty registry; the result is cached for the rest of the process
  (``huggingface_hub.utils._detect_agent._registry``).
* HTTP is done with ``httpx2`` through one shared client (``huggingface_hub.utils.get_session()``),
  keep-alive included; ``stop()`` therefore also closes the server side of open connections.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["FakeHub", "RecordedRequest", "git_blob_sha1", "lfs_pointer"]

LFS_SUFFIXES = (".gguf",)
DEFAULT_LFS_THRESHOLD = 10 * 1024 * 1024
_INVERT = bytes(range(255, -1, -1))  # translate table: b -> 255 - b (same length, every byte differs)

_RESOLVE_RE = re.compile(r"^/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_API_RE = re.compile(
    r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)?)"
    r"(?:/(?P<kind>revision|tree)/(?P<rev>[^/]+)(?:/(?P<path>.+))?)?/?$"
)
_CDN_RE = re.compile(r"^/__cdn__/(?P<repo>[^/]+(?:/[^/]+)?)/(?P<rev>[0-9a-f]{40})/(?P<path>.+)$")
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def git_blob_sha1(data: bytes) -> str:
    """Git object id of a blob (what the Hub calls ``oid``/``blobId`` of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that git stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class RecordedRequest(NamedTuple):
    """One request seen by the server (hub or CDN port); ``headers.get()`` is case-insensitive."""

    method: str
    path: str  # raw request target, query string included
    headers: Any  # http.client.HTTPMessage


@dataclass(frozen=True)
class _File:
    path: str
    data: bytes
    lfs: bool

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return lfs_pointer(self.sha256, self.size)

    @property
    def oid(self) -> str:
        """Git blob id: of the content for a regular file, of the pointer for an LFS file."""
        return git_blob_sha1(self.pointer if self.lfs else self.data)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.oid


@dataclass
class _Repo:
    repo_id: str
    gated: bool = False
    private: bool = False
    tokens: frozenset[str] = frozenset()
    info: dict[str, Any] = field(default_factory=dict)
    commits: dict[str, dict[str, _File]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    created: float = field(default_factory=time.time)


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], hub: FakeHub, *, is_cdn: bool):
        self.hub = hub
        self.is_cdn = is_cdn
        super().__init__(address, _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"
    timeout = 30  # idle keep-alive connections end after this
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr logging
        pass

    def setup(self) -> None:
        super().setup()
        self.server.hub._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.hub._track(self.connection, add=False)

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def _not_allowed(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

    # -- plumbing -------------------------------------------------------------------------------------

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        headers = {"Content-Length": str(len(body)), **headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self._send(200, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body)

    def _send_error(self, err: _HttpError) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Error-Message": err.message}
        if err.code:
            headers["X-Error-Code"] = err.code
        headers.update(err.headers)
        self.close_connection = self.command not in ("GET", "HEAD")  # unread request body => do not reuse
        self._send(err.status, headers, json.dumps({"error": err.message}).encode())

    def _dispatch(self) -> None:
        hub = self.server.hub
        hub._record(RecordedRequest(self.command, self.path, self.headers))
        try:
            injected = hub._take_failure(self.command, self.path)
            if injected is not None:
                status, extra = injected
                raise _HttpError(status, f"Injected failure {status}", headers=extra)
            if self.command not in ("GET", "HEAD"):
                raise _HttpError(405, f"{self.command} is not supported by FakeHub")
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            if self.server.is_cdn:
                self._route_cdn(split.path)
            else:
                self._route_hub(split.path, query)
        except _HttpError as err:
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- routes ---------------------------------------------------------------------------------------

    def _route_hub(self, path: str, query: dict[str, str]) -> None:
        hub = self.server.hub
        if m := _RESOLVE_RE.match(path):
            repo = hub._repo_for(m["repo"], self._bearer(), files=True)
            commit, files = hub._commit(repo, unquote(m["rev"]))
            filename = unquote(m["path"])
            entry = files.get(filename)
            if entry is None:
                raise _HttpError(
                    404, f"Entry not found: {filename}", "EntryNotFound", {"X-Repo-Commit": commit}
                )
            meta = {"X-Repo-Commit": commit, "ETag": f'"{entry.etag}"', "Accept-Ranges": "bytes"}
            if entry.lfs:
                meta["X-Linked-Etag"] = f'"{entry.sha256}"'
                meta["X-Linked-Size"] = str(entry.size)
                if hub.redirect_lfs:
                    location = f"{hub.cdn_url}/__cdn__/{repo.repo_id}/{commit}/{quote(filename)}"
                    self._send(302, {**meta, "Location": location})
                    return
            self._send_file(repo.repo_id, entry, meta)
            return
        if m := _API_RE.match(path):
            repo = hub._repo_for(m["repo"], self._bearer(), files=False)
            kind = m["kind"]
            revision = unquote(m["rev"]) if m["rev"] else "main"
            if kind == "tree":
                commit, files = hub._commit(repo, revision)
                sub = unquote(m["path"] or "").strip("/")
                recursive = query.get("recursive", "false").lower() in ("1", "true")
                self._send_json(hub._tree(files, sub, recursive))
                return
            if kind == "revision" and m["path"]:
                raise _HttpError(404, "Not Found")
            commit, files = hub._commit(repo, revision)
            blobs = query.get("blobs", "false").lower() in ("1", "true")
            self._send_json(hub._model_info(repo, commit, files, blobs=blobs))
            return
        if path == "/api/agent-harnesses":  # fetched by the client's user-agent code, see module docstring
            self._send_json({"standardEnvVars": [], "harnesses": {}})
            return
        raise _HttpError(404, f"FakeHub has no route for {path}")

    def _route_cdn(self, path: str) -> None:
        hub = self.server.hub
        m = _CDN_RE.match(path)
        if m is None:
            raise _HttpError(404, "Not Found")
        with hub._lock:
            repo = hub._repos.get(m["repo"])
            files = repo.commits.get(m["rev"]) if repo else None
            entry = files.get(unquote(m["path"])) if files else None
        if entry is None:
            raise _HttpError(404, "Not Found")
        self._send_file(m["repo"], entry, {"ETag": f'"{entry.etag}"', "Accept-Ranges": "bytes"})

    def _bearer(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _send_file(self, repo_id: str, entry: _File, headers: dict[str, str]) -> None:
        hub = self.server.hub
        data = entry.data
        if hub._is_corrupt(repo_id, entry.path):
            data = data.translate(_INVERT)
        total = len(data)
        status, start, end = 200, 0, total  # end is exclusive
        range_header = self.headers.get("Range")
        if range_header and "," not in range_header:
            m = _RANGE_RE.match(range_header)
            if m and (m[1] or m[2]):
                if m[1]:
                    start = int(m[1])
                    end = min(int(m[2]) + 1, total) if m[2] else total
                else:
                    start = max(total - int(m[2]), 0)
                if start >= total or start >= end:
                    raise _HttpError(
                        416, "Range Not Satisfiable", headers={"Content-Range": f"bytes */{total}"}
                    )
                status = 206
                headers = {**headers, "Content-Range": f"bytes {start}-{end - 1}/{total}"}
        body = data[start:end]
        headers = {"Content-Type": "application/octet-stream", **headers}
        if self.command == "HEAD":
            self._send(status, {**headers, "Content-Length": str(len(body))})
            return
        drop = hub._take_drop()
        if drop is None and hub.bytes_per_second:  # a slow link: two clients overlap in time
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            step = 32 * 1024
            for i in range(0, len(body), step):
                self.wfile.write(body[i : i + step])
                self.wfile.flush()
                time.sleep(step / hub.bytes_per_second)
            return
        if drop is None:
            self._send(status, headers, body)
            return
        limit, mode = drop
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body[: max(0, limit)])
        self.wfile.flush()
        self.close_connection = True
        if mode == "reset":  # RST instead of FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        else:
            self.connection.shutdown(socket.SHUT_RDWR)


class FakeHub:
    """In-memory Hugging Face Hub served over HTTP on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        redirect_lfs: bool = False,
        lfs_threshold: int = DEFAULT_LFS_THRESHOLD,
    ) -> None:
        self.host = host
        self.port = port
        self.redirect_lfs = redirect_lfs
        self.lfs_threshold = lfs_threshold
        self.requests: list[RecordedRequest] = []
        self.drop_after_bytes: int | None = None
        self.drop_mode: str = "close"  # "close" (FIN, clean EOF) or "reset" (TCP RST)
        self.bytes_per_second: int | None = None  # file bodies sent at this rate (None: at once)
        self._lock = threading.RLock()
        self._repos: dict[str, _Repo] = {}
        self._corrupt: set[tuple[str, str]] = set()
        self._failures: list[list[Any]] = []  # [status, remaining, headers, method, path_contains]
        self._connections: set[socket.socket] = set()
        self._servers: list[_Server] = []
        self._cdn_port = 0
        self._threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> FakeHub:
        """Start listening (hub port + CDN port) in background threads; returns self."""
        if self._servers:
            return self
        hub = _Server((self.host, self.port), self, is_cdn=False)
        cdn = _Server((self.host, self._cdn_port), self, is_cdn=True)
        self._servers = [hub, cdn]
        self.port = hub.server_address[1]
        self._cdn_port = cdn.server_address[1]
        for server in self._servers:
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection; a later ``start()`` reuses the same port."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.shutdown()
            server.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return bool(self._servers)

    @property
    def url(self) -> str:
        """Base URL for ``HF_ENDPOINT`` / ``endpoint=`` (no trailing slash); still set after ``stop()``."""
        if not self.port:
            raise RuntimeError("FakeHub was never started")
        return f"http://{self.host}:{self.port}"

    @property
    def cdn_url(self) -> str:
        """Base URL of the CDN port that LFS files are redirected to when ``redirect_lfs`` is set."""
        if not self._cdn_port:
            raise RuntimeError("FakeHub was never started")
        return f"http://{self.host}:{self._cdn_port}"

    # -- content --------------------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        *,
        gated: bool = False,
        private: bool = False,
        tokens: tuple[str, ...] | list[str] | set[str] = (),
        info: dict[str, Any] | None = None,
    ) -> None:
        """Create (or update the flags of) a model repo. Gated/private repos admit only ``tokens``."""
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                repo = self._repos[repo_id] = _Repo(repo_id)
                empty = hashlib.sha1(f"{repo_id}\ninitial commit".encode()).hexdigest()
                repo.commits[empty] = {}
                repo.refs["main"] = empty
            repo.gated, repo.private, repo.tokens = gated, private, frozenset(tokens)
            repo.info = dict(info or {})

    def add_file(
        self,
        repo_id: str,
        path: str,
        data: bytes,
        revision_sha: str | None = None,
        *,
        lfs: bool | None = None,
    ) -> str:
        """Commit ``data`` at ``path`` on ``main`` (creating the repo if needed) and return the commit sha.

        Each call makes a new commit whose sha is derived from the content, unless ``revision_sha`` (40 hex
        chars) is given: then that is the new commit's sha, and passing the current head sha again adds the
        file to that same commit. Older commits stay downloadable by sha.
        """
        path = path.strip("/")
        if lfs is None:
            lfs = path.endswith(LFS_SUFFIXES) or len(data) >= self.lfs_threshold
        if revision_sha is not None and not re.fullmatch(r"[0-9a-f]{40}", revision_sha):
            raise ValueError("revision_sha must be 40 lowercase hex characters")
        with self._lock:
            if repo_id not in self._repos:
                self.add_repo(repo_id)
            repo = self._repos[repo_id]
            head = repo.refs["main"]
            entry = _File(path, bytes(data), lfs)
            if revision_sha is None:
                revision_sha = hashlib.sha1(f"{head}\n{path}\n{entry.oid}".encode()).hexdigest()
            files = repo.commits[head] if revision_sha == head else dict(repo.commits[head])
            files[path] = entry
            repo.commits[revision_sha] = files
            repo.refs["main"] = revision_sha
            return revision_sha

    def sha(self, repo_id: str, revision: str = "main") -> str:
        """Commit sha that ``revision`` (branch or sha) currently points to."""
        with self._lock:
            return self._commit(self._repos[repo_id], revision)[0]

    # -- failure injection ----------------------------------------------------------------------------

    def corrupt(self, repo_id: str, path: str, enabled: bool = True) -> None:
        """Serve every byte of this file inverted: same length, same advertised ETag/sha256, wrong content."""
        with self._lock:
            (self._corrupt.add if enabled else self._corrupt.discard)((repo_id, path.strip("/")))

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with ``status`` and a JSON error body.

        Only requests with this ``method`` (e.g. ``"GET"``) and whose raw path contains ``path_contains``
        count, when given. ``headers`` are added to the error response (e.g. ``{"Retry-After": "0"}``).
        """
        with self._lock:
            self._failures.append([status, count, dict(headers or {}), method, path_contains])

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- internals used by the handler ----------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def _take_failure(self, method: str, path: str) -> tuple[int, dict[str, str]] | None:
        with self._lock:
            for failure in self._failures:
                status, remaining, headers, want_method, needle = failure
                if (
                    remaining > 0
                    and (want_method is None or want_method.upper() == method)
                    and (needle is None or needle in path)
                ):
                    failure[1] -= 1
                    self._failures = [f for f in self._failures if f[1] > 0]
                    return status, headers
        return None

    def _take_drop(self) -> tuple[int, str] | None:
        with self._lock:
            if self.drop_after_bytes is None:
                return None
            limit, self.drop_after_bytes = self.drop_after_bytes, None
            return limit, self.drop_mode

    def _is_corrupt(self, repo_id: str, path: str) -> bool:
        with self._lock:
            return (repo_id, path) in self._corrupt

    def _repo_for(self, repo_id: str, token: str | None, *, files: bool) -> _Repo:
        with self._lock:
            repo = self._repos.get(repo_id)
        if repo is None:
            raise _HttpError(404, "Repository not found", "RepoNotFound")
        allowed = token is not None and token in repo.tokens
        if repo.private and not allowed:
            raise _HttpError(401, "Repository not found", "RepoNotFound")
        if repo.gated and files and not allowed:
            raise _HttpError(
                401,
                f"Access to model {repo_id} is restricted. You must have access to it and be authenticated"
                " to access it. Please log in.",
                "GatedRepo",
            )
        return repo

    def _commit(self, repo: _Repo, revision: str) -> tuple[str, dict[str, _File]]:
        with self._lock:
            sha = repo.refs.get(revision, revision)
            files = repo.commits.get(sha)
            if files is None and re.fullmatch(r"[0-9a-f]{7,39}", revision):  # short sha
                matches = [c for c in repo.commits if c.startswith(revision)]
                if len(matches) == 1:
                    sha, files = matches[0], repo.commits[matches[0]]
            if files is None:
                raise _HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return sha, dict(files)

    @staticmethod
    def _file_json(entry: _File) -> dict[str, Any]:
        item: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": entry.path}
        if entry.lfs:
            item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": len(entry.pointer)}
        return item

    def _tree(self, files: dict[str, _File], sub: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = f"{sub}/" if sub else ""
        dirs: set[str] = set()
        out: list[dict[str, Any]] = []
        for path in sorted(files):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                if depth > 1 and not recursive:
                    break
                dirs.add(prefix + "/".join(parts[:depth]))
            if len(parts) == 1 or recursive:
                out.append(self._file_json(files[path]))
        if sub and not out and not dirs:
            raise _HttpError(404, f"Entry not found: {sub}", "EntryNotFound")
        for d in sorted(dirs):
            oid = hashlib.sha1(f"tree {d}".encode()).hexdigest()
            out.append({"type": "directory", "oid": oid, "size": 0, "path": d})
        return sorted(out, key=lambda item: (item["type"] != "directory", item["path"]))

    def _model_info(
        self, repo: _Repo, commit: str, files: dict[str, _File], *, blobs: bool
    ) -> dict[str, Any]:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(repo.created))
        siblings = []
        for path in sorted(files):
            entry = files[path]
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=entry.size, blobId=entry.oid)
                if entry.lfs:
                    sibling["lfs"] = {
                        "sha256": entry.sha256,
                        "size": entry.size,
                        "pointerSize": len(entry.pointer),
                    }
            siblings.append(sibling)
        author = repo.repo_id.split("/")[0] if "/" in repo.repo_id else None
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": author,
            "sha": commit,
            "lastModified": stamp,
            "createdAt": stamp,
            "private": repo.private,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": ["gguf"] if any(p.endswith(".gguf") for p in files) else [],
            "siblings": siblings,
            "usedStorage": sum(e.size for e in files.values()),
        }
        info.update(repo.info)
        return info

"""Models on disk, in the Hugging Face hub cache (HF_HUB_CACHE / HF_HOME), shared with other tools.

huggingface_hub answers the metadata questions (which commit, which files, what sha256); the
bytes are fetched here, because llmcli must resume a download across runs and verify its sha256,
which hf_hub_download does not. Files land in the standard layout (blobs/, snapshots/, refs/),
so models pulled by other tools are reused and ours are theirs. A cached model is found with no
network call at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import http.client
import os
import re
import shutil
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

try:
    import fcntl
except ImportError:  # Windows: no flock; a file open there cannot be deleted anyway
    fcntl = None  # type: ignore[assignment]

from llmcli import __version__
from llmcli.errors import LlmcliError, ModelNotFoundError, NetworkError, StorageError
from llmcli.models.registry import ModelRef

_SPLIT = re.compile(r"^(?P<stem>.*)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$", re.I)
_QUANT_NAME = re.compile(r"^(I?Q\d[A-Z0-9_]*|BF16|F16|F32)$", re.I)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
CHUNK = 1 << 20
ATTEMPTS = 5
REPO_KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}


class Progress(Protocol):
    """Receives download progress and notes (a renderer draws them)."""

    def start(self, name: str, total: int, done: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...

    def note(self, text: str) -> None: ...


class _NoProgress:
    def start(self, name: str, total: int, done: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class CachedFile:
    """A GGUF in the hub cache."""

    repo: str
    filename: str
    path: Path  # the snapshot path (a link into blobs/)
    size: int


@dataclass(frozen=True)
class CacheEntry:
    """A file or folder in the hub cache: one `models gc` may remove, or another tool's (kind "other")."""

    kind: str  # "snapshot" (superseded), "partial" (download), "orphan" (blob), or "other"
    repo: str  # "owner/name"; "" outside any repo
    path: Path
    size: int  # bytes freed by removing it: a snapshot counts the blobs only it links
    blobs: tuple[Path, ...] = ()  # a snapshot's blobs that go with it


def total_size(entries: Iterable[CacheEntry]) -> int:
    """The sum of the entries' sizes, in bytes."""
    return sum(e.size for e in entries)


@dataclass(frozen=True)
class SnapshotUsage:
    """One snapshot (commit) of a cached repo."""

    commit: str
    path: Path
    refs: tuple[str, ...]  # the refs that point at it: main, pr/1, ...
    kept: bool  # a ref points at it, or none points at any snapshot on disk (nothing says which is current)
    files: int
    size: int  # the bytes of the files it shows, each blob once
    reclaimable: int  # what removing it frees (0 when kept)


@dataclass(frozen=True)
class RepoUsage:
    """One repo folder of the hub cache (`models--owner--name`, `datasets--…`, `spaces--…`)."""

    kind: str  # model, dataset, space
    repo: str
    path: Path
    size: int  # bytes on disk under its folder
    gguf: bool
    snapshots: tuple[SnapshotUsage, ...] = ()
    partials: tuple[CacheEntry, ...] = ()
    orphans: tuple[CacheEntry, ...] = ()
    superseded: tuple[CacheEntry, ...] = ()
    busy: bool = False  # a download holds one of its locks: gc leaves it alone
    linked: bool = False  # its folder, blobs/ or snapshots/ is a symlink: not scanned, never touched

    @property
    def removable(self) -> tuple[CacheEntry, ...]:
        """What `models gc` would remove here."""
        return () if self.linked else (*self.superseded, *self.partials, *self.orphans)

    @property
    def reclaimable(self) -> int:
        return total_size(self.removable)


@dataclass(frozen=True)
class CacheUsage:
    """What the hub cache holds."""

    cache_dir: Path
    repos: tuple[RepoUsage, ...]
    other: tuple[CacheEntry, ...]  # what is not a repo folder: .locks/, other tools' files

    @property
    def size(self) -> int:
        return sum(r.size for r in self.repos) + total_size(self.other)

    @property
    def reclaimable(self) -> int:
        return sum(r.reclaimable for r in self.repos)


@dataclass(frozen=True)
class GcResult:
    """What `Store.gc` removed (or, in a dry run, would remove)."""

    dry_run: bool
    removed: tuple[CacheEntry, ...]
    skipped: tuple[tuple[str, str], ...]  # (repo, why) left alone
    failed: tuple[tuple[CacheEntry, str], ...]  # could not be removed, and why

    @property
    def freed(self) -> int:
        return total_size(self.removed)


def _tree_size(path: Path) -> int:
    """Bytes of the regular files under path; symlinks are neither followed nor counted."""
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size if path.is_file() and not path.is_symlink() else 0
    total = 0
    for top, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(top, name))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def _inside(path: Path, root: Path) -> bool:
    """Whether path (not followed itself) lies under root, its parent folders resolved."""
    parent, real_root = os.path.realpath(path.parent), os.path.realpath(root)
    return os.path.commonpath([parent, real_root]) == real_root


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def hub_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the hub cache lives, by huggingface_hub's own rules (without importing it)."""
    env = os.environ if environ is None else environ
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    xdg = env.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def split_parts(filename: str, listing: list[str] | None = None) -> list[str]:
    """All parts of a split GGUF (`-00001-of-00003.gguf`), or just [filename]."""
    m = _SPLIT.match(filename)
    if not m:
        return [filename]
    total = int(m["total"])
    return [f"{m['stem']}-{i:05d}-of-{total:05d}.gguf" for i in range(1, total + 1)]


def quant_of(filename: str) -> str | None:
    """The quantization named in a GGUF file name (`...-Q4_K_M.gguf` -> Q4_K_M)."""
    base = _SPLIT.sub(lambda m: m["stem"] + ".gguf", filename.rsplit("/", 1)[-1])
    for token in reversed(re.split(r"[-.]", base[: -len(".gguf")])):
        if _QUANT_NAME.match(token):
            return token.upper()
    return None


def pick_quant(files: list[str], quant: str) -> list[str]:
    """The files (all parts, first first) of the GGUF for quant in a repo listing; [] if none."""
    candidates = [
        f
        for f in files
        if f.lower().endswith(".gguf")
        and "mmproj" not in f.lower()
        and quant_of(f) == quant.upper()
        and ((split := _SPLIT.match(f)) is None or int(split["part"]) == 1)
    ]
    if not candidates:
        return []
    best = min(candidates, key=lambda f: (f.count("/"), len(f)))
    return split_parts(best)


def available_quants(files: list[str]) -> list[str]:
    """Quantizations offered by a repo listing."""
    return sorted({q for f in files if f.lower().endswith(".gguf") and (q := quant_of(f))})


class Store:
    """The hub cache, plus downloads into it."""

    def __init__(self, *, offline: bool = False, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.cache_dir = hub_cache_dir(env)
        self.offline = offline or _truthy(env.get("HF_HUB_OFFLINE"))
        self.endpoint = (env.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")

    # --- the cache, no network

    def repo_dir(self, repo: str) -> Path:
        return self.cache_dir / ("models--" + repo.replace("/", "--"))

    def _commit(self, repo: str, revision: str) -> str | None:
        if _COMMIT.match(revision):
            return revision
        ref = self.repo_dir(repo) / "refs" / revision
        return ref.read_text().strip() if ref.is_file() else None

    def _snapshot(self, repo: str, revision: str) -> Path | None:
        commit = self._commit(repo, revision)
        return self.repo_dir(repo) / "snapshots" / commit if commit else None

    def cached_listing(self, repo: str, revision: str = "main") -> list[str]:
        snap = self._snapshot(repo, revision)
        if not snap or not snap.is_dir():
            return []
        return sorted(p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file())

    def locate(self, ref: ModelRef) -> Path | None:
        """The model's file if it is on disk (every part of a split model), else None."""
        if ref.path is not None:
            return ref.path
        assert ref.repo
        listing = self.cached_listing(ref.repo, ref.revision)
        files = split_parts(ref.filename) if ref.filename else pick_quant(listing, ref.quant or "")
        snap = self._snapshot(ref.repo, ref.revision)
        if not files or snap is None or not all((snap / f).is_file() for f in files):
            return None
        return snap / files[0]

    def resolve(self, ref: ModelRef, progress: Progress | None = None) -> Path:
        """The model's file: from the cache with no network, else downloaded (unless offline)."""
        if (path := self.locate(ref)) is not None:
            return path
        if ref.path is not None:
            raise ModelNotFoundError(f"model file not found: {ref.path}")
        if self.offline:
            raise ModelNotFoundError(
                f"{ref.text} is not downloaded and offline mode is on", hint=f"{ref.pull_hint} while online"
            )
        return self.pull(ref, progress)

    def downloaded(self) -> list[CachedFile]:
        """Every GGUF in the cache (one entry per split model), newest snapshot per repo."""
        found: list[CachedFile] = []
        for repo_dir in sorted(self.cache_dir.glob("models--*")):
            repo = repo_dir.name[len("models--") :].replace("--", "/", 1)
            seen: set[str] = set()
            snapshots = sorted(
                (repo_dir / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True
            )
            for snap in snapshots:
                for path in sorted(snap.rglob("*.gguf")):
                    name = path.relative_to(snap).as_posix()
                    m = _SPLIT.match(name)
                    if name in seen or (m and int(m["part"]) != 1) or not path.exists():
                        continue
                    seen.add(name)
                    parts = [snap / p for p in split_parts(name)]
                    size = sum(p.stat().st_size for p in parts if p.exists())
                    found.append(CachedFile(repo, name, path, size))
        return found

    def remove(self, ref: ModelRef) -> tuple[list[Path], int]:
        """Delete a downloaded model (all parts, all snapshots); return (removed paths, bytes freed)."""
        assert ref.repo
        target = self.locate(ref)
        if target is None:
            raise ModelNotFoundError(f"{ref.text} is not downloaded", hint="see `llmcli models list`")
        snap = target.parent
        while snap.parent.name != "snapshots":
            snap = snap.parent
        names = split_parts(target.relative_to(snap).as_posix())
        repo_dir = self.repo_dir(ref.repo)
        removed: list[Path] = []
        blobs: set[Path] = set()
        for snapshot in (repo_dir / "snapshots").glob("*"):
            for name in names:
                link = snapshot / name
                if link.is_symlink() or link.exists():
                    blobs.add(link.resolve())
                    link.unlink()
                    removed.append(link)
        in_use = {p.resolve() for p in (repo_dir / "snapshots").rglob("*") if p.is_symlink()}
        freed = 0
        for blob in blobs - in_use:
            if blob.is_file() and blob.parent == repo_dir / "blobs":
                freed += blob.stat().st_size
                blob.unlink()
        if not any(p.is_file() for p in (repo_dir / "snapshots").rglob("*")):
            shutil.rmtree(repo_dir, ignore_errors=True)
            shutil.rmtree(self.cache_dir / ".locks" / repo_dir.name, ignore_errors=True)
        return removed, freed

    # --- the cache as a whole: `models du` and `models gc`

    def _repo_folders(self) -> tuple[list[Path], list[Path]]:
        """The cache's repo folders, and everything else at its top."""
        if not self.cache_dir.is_dir():
            return [], []
        repos: list[Path] = []
        other: list[Path] = []
        for path in sorted(self.cache_dir.iterdir()):
            prefix, sep, rest = path.name.partition("--")
            (repos if sep and rest and prefix in REPO_KINDS else other).append(path)
        return repos, other

    @contextlib.contextmanager
    def _repo_locks(self, repo_dir: Path) -> Iterator[bool]:
        """Hold every download lock of a repo, without waiting; yield False if a download holds one.

        The same flock huggingface_hub and llmcli take (`.locks/models--…/ETAG.lock`) for a whole
        download, link and ref included, so what is scanned under it is not half-written."""
        folder = self.cache_dir / ".locks" / repo_dir.name
        fds: list[int] = []
        free = True
        try:
            if fcntl is not None and folder.is_dir() and not folder.is_symlink():
                for lock in sorted(folder.glob("*.lock")):
                    try:
                        fd = os.open(lock, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                    except OSError:
                        continue
                    fds.append(fd)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError as exc:
                        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                            raise
                        free = False
                        break
            yield free
        finally:
            for fd in fds:
                os.close(fd)  # closing drops the flock

    def _scan_repo(self, repo_dir: Path) -> RepoUsage:
        """Sizes, snapshots, refs, partial downloads and orphan blobs of one repo folder (no network)."""
        prefix, _, name = repo_dir.name.partition("--")
        kind, repo = REPO_KINDS[prefix], name.replace("--", "/", 1)
        blobs_dir, snaps_dir, refs_dir = repo_dir / "blobs", repo_dir / "snapshots", repo_dir / "refs"
        if any(p.is_symlink() for p in (repo_dir, blobs_dir, snaps_dir, refs_dir)) or not repo_dir.is_dir():
            return RepoUsage(kind, repo, repo_dir, 0, False, linked=True)
        blobs: dict[str, int] = {}
        partials: list[CacheEntry] = []
        if blobs_dir.is_dir():
            for entry in sorted(os.scandir(blobs_dir), key=lambda e: e.name):
                if entry.is_file(follow_symlinks=False):
                    size = entry.stat(follow_symlinks=False).st_size
                    if entry.name.endswith(".incomplete"):
                        partials.append(CacheEntry("partial", repo, Path(entry.path), size))
                    else:
                        blobs[entry.name] = size
        refs: dict[str, list[str]] = {}
        if refs_dir.is_dir():
            for top, _, files in os.walk(refs_dir):
                for ref_name in sorted(files):
                    ref = Path(top, ref_name)
                    if not ref.is_symlink():
                        name_of = ref.relative_to(refs_dir).as_posix()
                        refs.setdefault(ref.read_text(errors="replace").strip(), []).append(name_of)
        real_blobs = os.path.realpath(blobs_dir)
        gguf = False
        scanned: list[tuple[Path, set[str], int, int]] = []  # snapshot, blobs linked, own bytes, files
        if snaps_dir.is_dir():
            folders = [p for p in snaps_dir.iterdir() if p.is_dir() or p.is_symlink()]
            for snap in sorted(folders, key=lambda p: (-p.lstat().st_mtime, p.name)):
                linked: set[str] = set()
                own = files_seen = 0
                walk = [] if snap.is_symlink() else os.walk(snap)  # a linked snapshot is not followed
                for top, dirs, files in walk:
                    for entry_name in [*files, *(d for d in dirs if os.path.islink(os.path.join(top, d)))]:
                        path = os.path.join(top, entry_name)
                        gguf = gguf or entry_name.lower().endswith(".gguf")
                        files_seen += 1
                        if os.path.islink(path):
                            target = os.path.realpath(path)
                            if os.path.dirname(target) == real_blobs and os.path.basename(target) in blobs:
                                linked.add(os.path.basename(target))
                        else:
                            own += os.lstat(path).st_size
                scanned.append((snap, linked, own, files_seen))
        # No ref at a snapshot on disk (none at all, or only at a download that failed): nothing says
        # which is current, so all stay.
        referenced = {snap.name for snap, *_ in scanned if snap.name in refs}
        kept = referenced or {snap.name for snap, *_ in scanned}
        protected = {b for snap, linked, *_ in scanned if snap.name in kept for b in linked}
        claimed: set[str] = set()
        snapshots: list[SnapshotUsage] = []
        superseded: list[CacheEntry] = []
        for snap, linked, own, files_seen in scanned:
            size = own + sum(blobs[b] for b in linked)
            freed = 0
            if snap.name not in kept:
                mine = sorted(linked - protected - claimed)
                claimed.update(mine)
                freed = own + sum(blobs[b] for b in mine)
                superseded.append(
                    CacheEntry("snapshot", repo, snap, freed, tuple(blobs_dir / b for b in mine))
                )
            snapshots.append(
                SnapshotUsage(
                    snap.name,
                    snap,
                    tuple(refs.get(snap.name, ())),
                    snap.name in kept,
                    files_seen,
                    size,
                    freed,
                )
            )
        linked_anywhere = {b for _, linked, *_ in scanned for b in linked}
        orphans = [
            CacheEntry("orphan", repo, blobs_dir / b, n) for b, n in blobs.items() if b not in linked_anywhere
        ]
        return RepoUsage(
            kind,
            repo,
            repo_dir,
            _tree_size(repo_dir),
            gguf,
            tuple(snapshots),
            tuple(partials),
            tuple(orphans),
            tuple(superseded),
        )

    def _scan_error(self, exc: OSError) -> StorageError:
        return StorageError(
            f"cannot read the model cache ({exc.filename or self.cache_dir}): {exc.strerror or exc}",
            hint="check the permissions of HF_HUB_CACHE",
        )

    def usage(self) -> CacheUsage:
        """Every repo in the cache (models, datasets, spaces) with its snapshots, partial downloads and
        orphan blobs, plus what else lies there. No network, and nothing is written."""
        try:
            repo_dirs, other = self._repo_folders()
            repos = []
            for repo_dir in repo_dirs:
                with self._repo_locks(repo_dir) as free:
                    repos.append(dataclasses.replace(self._scan_repo(repo_dir), busy=not free))
            extra = tuple(CacheEntry("other", "", p, _tree_size(p)) for p in other)
        except OSError as exc:
            raise self._scan_error(exc) from None
        return CacheUsage(self.cache_dir, tuple(repos), extra)

    def gc(self, *, dry_run: bool = True) -> GcResult:
        """Remove superseded snapshots (no ref points at them), partial downloads and blobs no snapshot
        links to, in every repo of the cache; a dry run only says what would go.

        A repo where no ref points at a snapshot on disk keeps them all, one that a download holds a lock
        of is skipped, and nothing outside the cache is followed or removed. `.locks/` is left as it is."""
        removed: list[CacheEntry] = []
        skipped: list[tuple[str, str]] = []
        failed: list[tuple[CacheEntry, str]] = []
        try:
            repo_dirs, _ = self._repo_folders()
            for repo_dir in repo_dirs:
                with self._repo_locks(repo_dir) as free:
                    usage = self._scan_repo(repo_dir)
                    if usage.linked:
                        skipped.append((usage.repo, "its folder is a symbolic link"))
                        continue
                    if not free and usage.removable:
                        skipped.append((usage.repo, "a download is in progress"))
                        continue
                    for entry in usage.removable:
                        if dry_run:
                            removed.append(entry)
                            continue
                        try:
                            self._remove_entry(entry, repo_dir)
                        except OSError as exc:
                            failed.append((entry, exc.strerror or str(exc)))
                        else:
                            removed.append(entry)
        except OSError as exc:
            raise self._scan_error(exc) from None
        return GcResult(dry_run, tuple(removed), tuple(skipped), tuple(failed))

    @staticmethod
    def _remove_entry(entry: CacheEntry, repo_dir: Path) -> None:
        for path in (entry.path, *entry.blobs):
            if not _inside(path, repo_dir):
                raise OSError(errno.EXDEV, f"{path} lies outside the cache")
        if entry.kind == "snapshot" and entry.path.is_dir() and not entry.path.is_symlink():
            shutil.rmtree(entry.path)  # unlinks the links in it, never what they point to
        else:
            entry.path.unlink(missing_ok=True)
        for blob in entry.blobs:
            blob.unlink(missing_ok=True)

    # --- the hub

    def pull(self, ref: ModelRef, progress: Progress | None = None) -> Path:
        """Download the model (all parts) into the cache; resumes, retries and verifies sha256."""
        if ref.path is not None:
            return ref.path
        if self.offline:
            raise ModelNotFoundError(f"cannot download {ref.text}: offline mode is on (HF_HUB_OFFLINE)")
        assert ref.repo
        progress = progress or _NoProgress()
        with self._hub_errors(ref):
            if ref.filename:
                files = split_parts(ref.filename)
            else:
                from huggingface_hub import HfApi

                # model_info fails fast when the hub is unreachable; list_repo_files retries for ~20 s.
                info = HfApi(endpoint=self.endpoint).model_info(ref.repo, revision=ref.revision)
                listing = [s.rfilename for s in info.siblings or []]
                files = pick_quant(listing, ref.quant or "")
                if not files:
                    offered = available_quants(listing)
                    raise ModelNotFoundError(
                        f"{ref.repo} has no GGUF file for {ref.quant}",
                        hint=f"available: {', '.join(offered)}"
                        if offered
                        else "the repo holds no GGUF files",
                    )
            paths = [self._download(ref.repo, name, ref.revision, progress) for name in files]
        return paths[0]

    @contextlib.contextmanager
    def _hub_errors(self, ref: ModelRef) -> Iterator[None]:
        """One table from huggingface_hub's exceptions to messages that name the next step."""
        from huggingface_hub import errors as hf

        repo = ref.repo
        try:
            yield
        except LlmcliError:
            raise
        except hf.GatedRepoError:
            raise ModelNotFoundError(
                f"{repo} is gated: accept its license on {self.endpoint}/{repo}",
                hint="then set HF_TOKEN or run `hf auth login`",
            ) from None
        except hf.RevisionNotFoundError:
            raise ModelNotFoundError(f"revision {ref.revision!r} not found in {repo}") from None
        except hf.RepositoryNotFoundError:
            raise ModelNotFoundError(
                f"repository {repo} not found on {self.endpoint}",
                hint="check the name; private repos need HF_TOKEN or `hf auth login`",
            ) from None
        except hf.EntryNotFoundError:
            raise ModelNotFoundError(
                f"{ref.filename or ref.text} not found in {repo}",
                hint=f"see the files at {self.endpoint}/{repo}",
            ) from None
        except hf.OfflineModeIsEnabled:
            raise ModelNotFoundError(
                f"{ref.text} is not downloaded and offline mode is on", hint=f"{ref.pull_hint} while online"
            ) from None
        except hf.HfHubHTTPError as exc:
            raise NetworkError(
                f"the hub answered an error for {ref.text}: {exc}".splitlines()[0], hint="try again later"
            ) from None
        except OSError as exc:
            raise self._os_error(exc) from None
        except Exception as exc:  # httpx / httpx2 connection errors have no common public base
            if type(exc).__module__.split(".")[0].startswith("httpx"):
                raise NetworkError(
                    f"cannot reach the hub at {self.endpoint}: {exc}",
                    hint="check the connection; downloaded models work with --offline",
                ) from None
            raise

    def _os_error(self, exc: OSError) -> LlmcliError:
        if exc.errno == errno.ENOSPC:
            return StorageError(
                f"disk full while downloading into {self.cache_dir}",
                hint="free some space, or set HF_HUB_CACHE to a bigger disk",
            )
        if isinstance(exc, urllib.error.URLError | ConnectionError | TimeoutError):
            reason = getattr(exc, "reason", exc)
            return NetworkError(
                f"cannot reach the hub at {self.endpoint}: {reason}",
                hint="check the connection; downloaded models work with --offline",
            )
        where = exc.filename or self.cache_dir
        return StorageError(
            f"cannot write to the model cache ({where}): {exc.strerror or exc}",
            hint="set HF_HUB_CACHE to a writable folder",
        )

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"llmcli/{__version__}", "Accept-Encoding": "identity"}
        from huggingface_hub import get_token

        if token := get_token():
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _download(self, repo: str, filename: str, revision: str, progress: Progress) -> Path:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        url = hf_hub_url(repo, filename, revision=revision, endpoint=self.endpoint)
        meta = get_hf_file_metadata(
            url, token=None if "Authorization" not in self._headers() else True, endpoint=self.endpoint
        )
        if not meta.commit_hash or not meta.etag or meta.size is None:
            raise NetworkError(f"the hub sent incomplete metadata for {repo}/{filename}")
        repo_dir = self.repo_dir(repo)
        blob = repo_dir / "blobs" / meta.etag
        link = repo_dir / "snapshots" / meta.commit_hash / filename
        with self._exclusive(repo_dir, meta.etag, filename, progress):
            if not (blob.is_file() and blob.stat().st_size == meta.size):
                blob.parent.mkdir(parents=True, exist_ok=True)
                self._fetch(meta.location, blob, meta.size, meta.etag, filename, progress)
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(os.path.relpath(blob, link.parent))
            if not _COMMIT.match(revision):
                ref = repo_dir / "refs" / revision
                ref.parent.mkdir(parents=True, exist_ok=True)
                ref.write_text(meta.commit_hash)
        return link

    @contextlib.contextmanager
    def _exclusive(self, repo_dir: Path, etag: str, name: str, progress: Progress) -> Iterator[None]:
        """One download of a blob at a time, across processes: the lock huggingface_hub itself takes
        (`.locks/models--…/ETAG.lock`), so `hf download` and other llmcli runs wait for each other."""
        from filelock import FileLock, Timeout

        path = self.cache_dir / ".locks" / repo_dir.name / f"{etag}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            progress.note(f"waiting for another download of {name} to finish")
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def _fetch(self, url: str, blob: Path, size: int, etag: str, name: str, progress: Progress) -> None:
        part = blob.with_name(blob.name + ".incomplete")
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            part.unlink()
            have = 0
        free = shutil.disk_usage(blob.parent).free
        if size - have > free:
            raise StorageError(
                f"not enough disk space for {name}: needs {(size - have) / 1e9:.2f} GB, "
                f"{free / 1e9:.2f} GB free in {blob.parent}",
                hint="free some space, or set HF_HUB_CACHE to a bigger disk",
            )
        progress.start(name, size, have)
        digest = _hash_file(part) if have else hashlib.sha256()  # hashed as it arrives: no second pass
        try:
            for attempt in range(ATTEMPTS):
                have = part.stat().st_size if part.exists() else 0
                if have >= size:
                    break
                try:
                    digest = self._get(url, part, have, digest, name, size, progress)
                except urllib.error.HTTPError as exc:
                    if exc.code == 416:
                        part.unlink(missing_ok=True)
                        digest = hashlib.sha256()
                    elif exc.code not in (429, 500, 502, 503, 504) or attempt == ATTEMPTS - 1:
                        raise NetworkError(f"download of {name} failed: HTTP {exc.code}") from None
                except (
                    urllib.error.URLError,
                    http.client.HTTPException,
                    ConnectionError,
                    TimeoutError,
                    OSError,
                ) as exc:
                    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EACCES, errno.EROFS):
                        raise
                    if attempt == ATTEMPTS - 1:
                        raise NetworkError(
                            f"download of {name} failed after {ATTEMPTS} attempts: {exc}",
                            hint="run the same command again to resume",
                        ) from None
                time.sleep(min(2**attempt * 0.5, 8))
        finally:
            progress.finish()
        self._verify(part, size, etag, digest, name)
        os.replace(part, blob)

    def _get(
        self, url: str, part: Path, have: int, digest: hashlib._Hash, name: str, size: int, progress: Progress
    ) -> hashlib._Hash:
        """Append the rest of the file to part (from `have`); return the running sha256."""
        headers = self._headers()
        if have:
            headers["Range"] = f"bytes={have}-"
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
            resume = have and resp.status == 206
            if have and not resume:  # the server ignored Range: start over
                digest = hashlib.sha256()
                progress.start(name, size, 0)
            with part.open("ab" if resume else "wb") as f:
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    progress.advance(len(chunk))
        return digest

    @staticmethod
    def _verify(part: Path, size: int, etag: str, digest: hashlib._Hash, name: str) -> None:
        actual = part.stat().st_size
        problem = f"{actual:,} bytes instead of {size:,}" if actual != size else None
        if problem is None and _SHA256.match(etag) and digest.hexdigest() != etag:
            problem = f"sha256 {digest.hexdigest()[:12]}… does not match the hub's {etag[:12]}…"
        if problem:
            part.unlink(missing_ok=True)
            raise NetworkError(
                f"refusing {name}: the download is corrupt ({problem}); it was deleted",
                hint="run the same command again",
            )


def _hash_file(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK * 8):
            digest.update(block)
    return digest

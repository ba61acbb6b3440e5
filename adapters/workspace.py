"""Shadow workspaces: a private copy of the vault where verification runs, so it never touches live files.

The copy is a real copy (never hardlinks: a task writing `>> file` in the shadow would write through a
hardlink into the live vault). Symlinked files are copied as their content for the same reason; symlinked
folders are skipped. Folders that are not the vault's "weights" (.git, .autovault, caches, virtualenvs) are
left out; `include` narrows the copy to a few globs when the vault is large.

A shadow `autovault-shadow-XXXX/` comes with `autovault-shadow-XXXX.lock` beside it, flock'ed by the process
using the shadow until `cleanup`. A process killed mid-verification leaves both; `sweep_orphans` (run at the
start of every command) removes a shadow whose lock nobody holds — never one a live process is using.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType

from adapters.atomic import Content, safe_path
from adapters.run_temps import RUN_TEMP_PREFIXES

DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".git", ".autovault", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache",
    ".pytest_cache", ".DS_Store",
)
MAX_COPY_BYTES = 1 << 30  # a vault bigger than this is almost surely copying data it does not need
PREFIX = "autovault-shadow-"
LEGACY_AGE_S = 24 * 3600  # a shadow made before locks existed is an orphan once this old


class WorkspaceTooLarge(RuntimeError):
    """The copy would exceed `max_bytes`; narrow it with `include` globs."""


class ShadowWorkspace:
    """A temp copy of a vault. Use as a context manager; `root` is where tasks run."""

    def __init__(self, live_root: Path, root: Path, manifest: dict[str, str], skipped: list[str],
                 lock_fd: int = -1) -> None:
        self.live_root = live_root
        self.root = root
        self.manifest = manifest  # rel -> sha256 at copy time
        self.skipped = skipped  # symlinked folders left out, for the record
        self._lock_fd = lock_fd  # held while the shadow is in use (see `sweep_orphans`)

    @classmethod
    def create(
        cls,
        root: Path | str,
        include: Iterable[str] | None = None,
        *,
        exclude: Iterable[str] = (),
        parent: Path | str | None = None,
        max_bytes: int = MAX_COPY_BYTES,
    ) -> ShadowWorkspace:
        """Copy `root` (all of it but excluded folders, or only files matching `include`) into a temp dir."""
        live = Path(root).resolve()
        if not live.is_dir():
            raise FileNotFoundError(f"vault root {live} is not a folder; check `vault:` in vault.yml")
        shadow, lock_fd = _claim(Path(parent) if parent is not None else Path(tempfile.gettempdir()))
        try:
            manifest, skipped = _copy_tree(live, shadow, list(include) if include is not None else None,
                                           set(DEFAULT_EXCLUDE) | set(exclude), max_bytes)
        except BaseException:
            _release(shadow, lock_fd)
            raise
        return cls(live, shadow, manifest, skipped, lock_fd)

    def path(self, rel: str) -> Path:
        return safe_path(self.root, rel)

    def read(self, rel: str) -> bytes:
        return self.path(rel).read_bytes()

    def read_text(self, rel: str) -> str:
        return self.path(rel).read_text(encoding="utf-8")

    def write(self, rel: str, data: Content) -> None:
        target = self.path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    def delete(self, rel: str) -> None:
        self.path(rel).unlink(missing_ok=True)

    def overlay(self, files: Mapping[str, Content | None]) -> None:
        """Put candidate contents in the shadow (None deletes): the delta under test."""
        for rel, data in files.items():
            if data is None:
                self.delete(rel)
            else:
                self.write(rel, data)

    def changed(self) -> dict[str, str | None]:
        """Files that differ from the copy as made: rel -> new sha256 (None when deleted)."""
        now = dict(_hash_tree(self.root))
        out: dict[str, str | None] = {rel: h for rel, h in now.items() if self.manifest.get(rel) != h}
        out.update({rel: None for rel in self.manifest if rel not in now})
        return out

    def cleanup(self) -> None:
        fd, self._lock_fd = self._lock_fd, -1
        _release(self.root, fd)

    def __enter__(self) -> ShadowWorkspace:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.cleanup()


def _claim(parent: Path) -> tuple[Path, int]:
    """A fresh shadow folder and the held lock that marks it in use. The lock file is locked before it gets
    its sweepable name (an atomic link), so a sweep never finds a live shadow's lock free.

    The claim file itself is sweepable from its creation until it is locked: a sweep in another process may take
    it in that instant and remove it. Once locked, the claim is checked to be still the file at its name; one a
    sweep removed is let go and another name claimed."""
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd, claim = tempfile.mkstemp(prefix=f".{PREFIX}", suffix=".claim", dir=parent)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not _names(claim, fd):  # swept before it was locked: the name is no longer ours
            os.close(fd)
            continue
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
            shadow = parent / Path(claim).name[1:].removesuffix(".claim")
            lock = shadow.with_name(shadow.name + ".lock")
            os.link(claim, lock)
            try:
                os.mkdir(shadow, 0o700)
            except FileExistsError:  # a folder of that name that is not ours: try another name
                lock.unlink()
                raise
            return shadow, fd
        except FileExistsError:
            os.close(fd)
        except BaseException:
            os.close(fd)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(claim)


def _names(path: Path | str, fd: int) -> bool:
    """Whether `path` still names the file open as `fd` (a sweep may have removed it, or put another there)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def _release(shadow: Path, lock_fd: int) -> None:
    """Remove the shadow, then its lock file; the lock is let go last."""
    shutil.rmtree(shadow, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        shadow.with_name(shadow.name + ".lock").unlink()
    if lock_fd >= 0:
        os.close(lock_fd)


def sweep_orphans(parent: Path | str | None = None, *, now: float | None = None) -> list[Path]:
    """Remove shadows under `parent` (default: the temp folder) whose process is gone; returns them.

    A shadow with a lock file is an orphan when the lock can be taken; one without (made before locks
    existed) when it is older than a day.
    """
    base = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(base.glob(f"{PREFIX}*"))
    except OSError:
        return removed
    at = time.time() if now is None else now
    for claim in base.glob(f".{PREFIX}*.claim"):  # killed while claiming a name
        if _take(claim):
            removed.append(claim)
    for path in entries:
        if path.name.endswith(".lock"):
            if not path.with_name(path.name.removesuffix(".lock")).exists() and _take(path):
                removed.append(path)  # a kill between the shadow's removal and its lock's
            continue
        if not path.is_dir() or path.is_symlink():
            continue
        lock = path.with_name(path.name + ".lock")
        if lock.exists():
            if _take(lock, shadow=path):
                removed.append(path)
        elif _remove_if_stale(path, at):
            removed.append(path)
    removed += _sweep_run_temps(base, at)
    return removed


def _sweep_run_temps(base: Path, at: float) -> list[Path]:
    """Run temp folders a kill left behind (`adapters.run_temps`), once older than a day."""
    return [path for prefix in RUN_TEMP_PREFIXES for path in base.glob(f"{prefix}*") if _remove_if_stale(path, at)]


def _remove_if_stale(path: Path, at: float) -> bool:
    """Remove the folder `path` (not a link to one) when it was last modified over LEGACY_AGE_S before `at`."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink() and at - path.stat().st_mtime > LEGACY_AGE_S:
            shutil.rmtree(path, ignore_errors=True)
            return True
    return False


def _take(lock: Path, shadow: Path | None = None) -> bool:
    """Take `lock` if nobody holds it, remove the shadow and the lock; False when it is in use."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    if not _names(lock, fd):  # removed (and perhaps claimed anew) since it was opened: not ours to remove
        os.close(fd)
        return False
    if shadow is not None:
        shutil.rmtree(shadow, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        lock.unlink()
    os.close(fd)
    return True


def _wanted(rel: str, include: list[str] | None) -> bool:
    return include is None or any(fnmatch.fnmatchcase(rel, pat) or rel.startswith(pat.rstrip("/") + "/")
                                  for pat in include)


def _walk(root: Path, exclude: set[str]) -> Iterator[tuple[str, Path, bool]]:
    """(rel, path, is_symlinked_dir) for every file under root, excluded folders pruned."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        keep = []
        for d in dirnames:
            if d in exclude:
                continue
            if (here / d).is_symlink():
                yield (here / d).relative_to(root).as_posix(), here / d, True
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            if name not in exclude:
                yield (here / name).relative_to(root).as_posix(), here / name, False


def _copy_tree(
    live: Path, shadow: Path, include: list[str] | None, exclude: set[str], max_bytes: int,
) -> tuple[dict[str, str], list[str]]:
    manifest: dict[str, str] = {}
    skipped: list[str] = []
    total = 0
    for rel, src, symlinked_dir in _walk(live, exclude):
        if not _wanted(rel, include):
            continue
        if symlinked_dir or not src.is_file():  # dangling links, sockets, fifos: nothing a task reads
            skipped.append(rel)
            continue
        total += src.stat().st_size
        if total > max_bytes:
            raise WorkspaceTooLarge(
                f"copying {live} into a shadow would exceed {max_bytes} bytes; pass include=[globs] "
                "naming the files the task reads and writes")
        dst = shadow / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)  # follows symlinks: the shadow holds content, never a link to live files
        shutil.copystat(src, dst)
        manifest[rel] = _sha256(dst)
    return manifest, skipped


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _hash_tree(root: Path) -> Iterator[tuple[str, str]]:
    for rel, path, symlinked_dir in _walk(root, set()):
        if not symlinked_dir and path.is_file():
            yield rel, _sha256(path)

"""Shadow workspaces: a private copy of the vault where verification runs, so it never touches live files.

The copy is a real copy (never hardlinks: a task writing `>> file` in the shadow would write through a
hardlink into the live vault). Symlinked files are copied as their content for the same reason; symlinked
folders are skipped. Folders that are not the vault's "weights" (.git, .autovault, caches, virtualenvs) are
left out; `include` narrows the copy to a few globs when the vault is large.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType

from adapters.atomic import Content, safe_path

DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".git", ".autovault", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache",
    ".pytest_cache", ".DS_Store",
)
MAX_COPY_BYTES = 1 << 30  # a vault bigger than this is almost surely copying data it does not need


class WorkspaceTooLarge(RuntimeError):
    """The copy would exceed `max_bytes`; narrow it with `include` globs."""


class ShadowWorkspace:
    """A temp copy of a vault. Use as a context manager; `root` is where tasks run."""

    def __init__(self, live_root: Path, root: Path, manifest: dict[str, str], skipped: list[str]) -> None:
        self.live_root = live_root
        self.root = root
        self.manifest = manifest  # rel -> sha256 at copy time
        self.skipped = skipped  # symlinked folders left out, for the record

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
        shadow = Path(tempfile.mkdtemp(prefix="autovault-shadow-", dir=parent))
        try:
            manifest, skipped = _copy_tree(live, shadow, list(include) if include is not None else None,
                                           set(DEFAULT_EXCLUDE) | set(exclude), max_bytes)
        except BaseException:
            shutil.rmtree(shadow, ignore_errors=True)
            raise
        return cls(live, shadow, manifest, skipped)

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
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ShadowWorkspace:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.cleanup()


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

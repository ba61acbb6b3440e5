"""Atomic writes to the vault: every file ends either old or new, never half-written.

`write_atomic` writes a temp file beside the target, fsyncs it, renames it over the target and fsyncs the
directory. `apply_files` changes several files as one step: it checks every expected hash first, stages the
new contents in a journal under `.autovault/journal/`, commits the journal (one atomic rename), then writes
each file. A crash before the commit leaves the vault untouched; a crash after it is rolled forward by
`recover(root)`, which the daemon calls on start. Expected hashes guard against overwriting a human's edit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Final

JOURNAL_DIR: Final = ".autovault/journal"
TMP_SUFFIX: Final = ".avtmp"  # temp files beside a target carry it, so `recover` can sweep crash leftovers


class _Missing(Enum):
    MISSING = "MISSING"


MISSING: Final = _Missing.MISSING  # "don't check the current hash" (distinct from None: "must not exist")
ExpectedHash = str | None | _Missing
Content = bytes | str


class HashConflict(RuntimeError):
    """The file on disk is not the one a change was made against (someone edited it in between)."""

    def __init__(self, path: str, expected: str | None, actual: str | None) -> None:
        self.path, self.expected, self.actual = path, expected, actual
        super().__init__(
            f"{path}: expected {_short(expected)} but found {_short(actual)} on disk; "
            "the file changed since the delta was made — re-verify against the current file"
        )


class PathEscape(ValueError):
    """A relative path would leave the vault (absolute, `..`, or a symlink pointing outside)."""


def _short(h: str | None) -> str:
    return "no file" if h is None else f"sha256 {h[:12]}"


_UMASK = os.umask(0o022)
os.umask(_UMASK)


def sha256_file(path: Path) -> str | None:
    """The file's sha256, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        return None


def safe_path(root: Path | str, rel: str | os.PathLike[str]) -> Path:
    """`root/rel` resolved, refusing anything that would land outside `root` (PathEscape, one line)."""
    text = os.fspath(rel)
    if not text or os.path.isabs(text) or text.startswith("~"):
        raise PathEscape(f"{text!r} is not a path inside the vault; use a relative path like 'prompts/x.md'")
    base = Path(root).resolve()
    target = (base / text).resolve()
    if target != base and base not in target.parents:
        why = "a symlink points outside it" if ".." not in Path(text).parts else "'..' leaves it"
        raise PathEscape(f"{text!r} escapes the vault {base} ({why}); only paths inside the vault are allowed")
    return target


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _as_bytes(data: Content) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def check_hash(path: Path, expected: ExpectedHash, *, label: str | None = None) -> None:
    """Raise HashConflict when `expected` is given and the file's current hash differs."""
    if expected is MISSING:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise HashConflict(label or str(path), expected, actual)


def write_atomic(path: Path | str, data: Content, *, expected_hash: ExpectedHash = MISSING) -> str:
    """Replace `path` with `data` in one rename; keep the old file's mode. Returns the new sha256."""
    target = Path(path)
    check_hash(target, expected_hash)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = _as_bytes(data)
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_UMASK
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)
    return hashlib.sha256(payload).hexdigest()


def delete_atomic(path: Path | str, *, expected_hash: ExpectedHash = MISSING) -> None:
    """Remove `path` (a no-op when already gone) and make the removal durable."""
    target = Path(path)
    check_hash(target, expected_hash)
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
        _fsync_dir(target.parent)


# --- several files as one step ------------------------------------------------------------------------

Change = tuple[ExpectedHash, Content | None]  # (hash the file must have now, new content or None = delete)


@dataclass(frozen=True)
class Recovery:
    """What `recover` did: files rolled forward, journals discarded, files left alone because they changed."""

    rolled_forward: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def apply_files(
    root: Path | str,
    changes: Mapping[str, Change],
    *,
    on_written: Callable[[str], None] | None = None,
) -> dict[str, str | None]:
    """Apply every change or none: all hashes are checked before the first write; returns rel -> new hash.

    `on_written(rel)` is called after each file lands (progress; tests use it to crash mid-apply).
    """
    base = Path(root).resolve()
    targets = {rel: safe_path(base, rel) for rel in changes}
    for rel, (expected, _) in changes.items():
        check_hash(targets[rel], expected, label=rel)
    journal = _stage(base, changes)
    result: dict[str, str | None] = {}
    for rel, (_, content) in changes.items():
        result[rel] = _apply_one(targets[rel], content)
        if on_written is not None:
            on_written(rel)
    shutil.rmtree(journal)
    return result


def _apply_one(target: Path, content: Content | None) -> str | None:
    if content is None:
        delete_atomic(target)
        return None
    return write_atomic(target, content)


def _stage(base: Path, changes: Mapping[str, Change]) -> Path:
    """Write new contents and a manifest into a fresh journal; renaming it to `*.commit` is the commit point."""
    journal_root = base / JOURNAL_DIR
    journal_root.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    staging = journal_root / f"{name}.staging"
    staging.mkdir()
    entries = []
    for i, (rel, (expected, content)) in enumerate(changes.items()):
        blob = None
        after = None
        if content is not None:
            payload = _as_bytes(content)
            blob = f"{i}.blob"
            after = hashlib.sha256(payload).hexdigest()
            with open(staging / blob, "wb") as f:
                f.write(payload)
                os.fsync(f.fileno())
        checked = expected is not MISSING
        before = None if expected is MISSING else expected
        entries.append({"path": rel, "checked": checked, "before": before, "after": after, "blob": blob})
    with open(staging / "manifest.json", "w", encoding="utf-8") as f:
        json.dump({"entries": entries}, f)
        os.fsync(f.fileno())
    _fsync_dir(staging)
    committed = journal_root / f"{name}.commit"
    os.rename(staging, committed)
    _fsync_dir(journal_root)
    return committed


def recover(root: Path | str) -> Recovery:
    """Finish or drop interrupted `apply_files` calls; idempotent, and a no-op when nothing was interrupted.

    Committed journals are rolled forward: a file still at its old hash (or half-way: a temp file beside it)
    gets the new content. A file at neither hash was edited after the crash; it is left alone and reported.
    Uncommitted journals touched nothing and are discarded.
    """
    base = Path(root).resolve()
    journal_root = base / JOURNAL_DIR
    result = Recovery()
    if not journal_root.is_dir():
        return result
    for journal in sorted(journal_root.iterdir()):
        if journal.name.endswith(".commit"):
            _roll_forward(base, journal, result)
        else:
            result.discarded.append(journal.name)
        shutil.rmtree(journal, ignore_errors=True)
    return result


def _roll_forward(base: Path, journal: Path, result: Recovery) -> None:
    manifest = json.loads((journal / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["entries"]:
        rel: str = entry["path"]
        target = safe_path(base, rel)
        _sweep_temps(target)
        current = sha256_file(target)
        if current == entry["after"]:
            continue
        if entry["checked"] and current != entry["before"]:
            result.conflicts.append(rel)
            continue
        content = None if entry["blob"] is None else (journal / entry["blob"]).read_bytes()
        _apply_one(target, content)
        result.rolled_forward.append(rel)


def _sweep_temps(target: Path) -> None:
    """Remove temp files a killed `write_atomic` left beside `target`."""
    if not target.parent.is_dir():
        return
    for stray in target.parent.glob(f".{glob_escape(target.name)}.*{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            stray.unlink()


def glob_escape(name: str) -> str:
    """Escape glob metacharacters so a file name matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)

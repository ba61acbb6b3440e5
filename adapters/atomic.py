"""Atomic writes to the vault: every file ends either old or new, never half-written; several files end all old
or all new.

`write_atomic` writes a temp file beside the target, fsyncs it, renames it over the target and fsyncs the
directory. `apply_files` changes several files as one unit through a journal under `.autovault/journal/`:

1. stage: the new contents, the old contents (for a roll back) and a manifest, with the caller's `plan` —
   what must be recorded once the files are written (the events of a kept delta) — fsynced;
2. commit: one atomic rename of the journal (`NAME.staging` → `NAME.commit`);
3. write each file; an error here rolls the written ones back and drops the journal;
4. `finish(hashes)`: the caller records its plan (git commit, events); an error here keeps the journal, so the
   next recovery finishes the record;
5. drop the journal.

A journal is locked (`flock` on `NAME.lock`) by the process applying it, so a recovery in another process —
every command recovers on start — never touches a change in flight. A kill at any point leaves a journal
that `open_journals` hands to a recovery: uncommitted ones are discarded (nothing was touched), committed
ones are rolled forward or back as a whole (`Journal.roll_forward` / `roll_back`) by whoever knows how to
record their plan (`handlers.apply_journal`). `recover(root)` does the files-only part for journals without
a plan and leaves the others to that handler. Expected hashes guard against overwriting a human's edit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Final

JOURNAL_DIR: Final = ".autovault/journal"
TMP_SUFFIX: Final = ".avtmp"  # temp files beside a target carry it, so `recover` can sweep crash leftovers
Step = Callable[[str], None]  # called at each step of an apply (progress; tests kill the process there)


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


def write_atomic(path: Path | str, data: Content, *, expected_hash: ExpectedHash = MISSING, mode: int | None = None,
                 before_replace: Callable[[], None] | None = None) -> str:
    """Replace `path` with `data` in one rename; keep the old file's mode (or use `mode`). Returns the new sha256."""
    target = Path(path)
    check_hash(target, expected_hash)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = _as_bytes(data)
    if mode is None:
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
        if before_replace is not None:
            before_replace()
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


# --- several files as one unit ------------------------------------------------------------------------

Change = tuple[ExpectedHash, Content | None]  # (hash the file must have now, new content or None = delete)


@dataclass(frozen=True)
class Recovery:
    """What `recover` did: files rolled forward or back, journals discarded, files left alone because they
    changed, journals left for a handler that records their plan (or still in use)."""

    rolled_forward: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


class Journal:
    """A staged (or committed) multi-file change, held under an exclusive lock until `close`."""

    def __init__(self, base: Path, path: Path, lock_fd: int, manifest: dict[str, Any] | None) -> None:
        self.base, self.path, self._lock_fd = base, path, lock_fd
        self.name = path.name.rsplit(".", 1)[0]
        self.manifest = manifest or {}

    @property
    def committed(self) -> bool:
        return self.path.name.endswith(".commit") and self.path.is_dir()

    @property
    def entries(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("entries", []))

    @property
    def plan(self) -> dict[str, Any] | None:
        plan = self.manifest.get("plan")
        return plan if isinstance(plan, dict) else None

    def commit(self) -> None:
        committed = self.path.with_name(f"{self.name}.commit")
        os.rename(self.path, committed)
        _fsync_dir(self.path.parent)
        self.path = committed

    def states(self) -> dict[str, str]:
        """path -> 'new' | 'old' | 'other' (a temp file a killed write left is swept first)."""
        out = {}
        for entry in self.entries:
            target = safe_path(self.base, entry["path"])
            _sweep_temps(target)
            current = sha256_file(target)
            if current == entry["after"]:
                out[entry["path"]] = "new"
            elif not entry["checked"] or current == entry["before"]:
                out[entry["path"]] = "old"
            else:
                out[entry["path"]] = "other"
        return out

    def roll_forward(self, on_written: Step | None = None) -> list[str]:
        """Write every file still old; returns them. Files at another hash are left alone."""
        done = []
        for entry in self.entries:
            rel = entry["path"]
            target = safe_path(self.base, rel)
            _sweep_temps(target)
            current = sha256_file(target)
            if current == entry["after"] or (entry["checked"] and current != entry["before"]):
                continue
            content = None if entry["blob"] is None else (self.path / entry["blob"]).read_bytes()
            _apply_one(target, content)
            done.append(rel)
            if on_written is not None:
                on_written(rel)
        return done

    def can_roll_back(self) -> bool:
        return all("old_blob" in e for e in self.entries)  # journals of older versions kept no old contents

    def roll_back(self) -> list[str]:
        """Restore every file already new to its old content; returns them."""
        done = []
        for entry in self.entries:
            rel = entry["path"]
            target = safe_path(self.base, rel)
            _sweep_temps(target)
            if entry["before"] == entry["after"] or sha256_file(target) != entry["after"]:
                continue
            old = entry.get("old_blob")
            if old is None:
                delete_atomic(target)
            else:
                write_atomic(target, (self.path / old).read_bytes(), mode=entry.get("mode"))
            done.append(rel)
        return done

    def close(self, *, remove: bool) -> None:
        """Release the lock; with `remove`, the journal (and its lock file) go first. Idempotent."""
        if self._lock_fd < 0:
            return
        if remove:
            shutil.rmtree(self.path, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                (self.path.parent / f"{self.name}.lock").unlink()
            with contextlib.suppress(OSError):
                _fsync_dir(self.path.parent)
        fd, self._lock_fd = self._lock_fd, -1
        os.close(fd)


def apply_files(
    root: Path | str,
    changes: Mapping[str, Change],
    *,
    on_written: Callable[[str], None] | None = None,
    plan: dict[str, Any] | None = None,
    finish: Callable[[dict[str, str | None]], None] | None = None,
    on_step: Step | None = None,
) -> dict[str, str | None]:
    """Apply every change or none: all hashes are checked before the first write; returns rel -> new hash.

    `plan` is stored in the journal for a recovery; `finish(hashes)` records it once every file is written
    (an error there keeps the journal: the files stay new and the next recovery records the plan).
    `on_written(rel)` is called after each file lands; `on_step(name)` at every step (tests kill the process
    there: staging, staged, committed, writing:REL, written:REL, finished, done).
    """
    step = on_step or (lambda _name: None)
    base = Path(root).resolve()
    targets = {rel: safe_path(base, rel) for rel in changes}
    for rel, (expected, _) in changes.items():
        check_hash(targets[rel], expected, label=rel)
    journal = _stage(base, changes, plan, step)
    result: dict[str, str | None] = {}
    try:
        journal.commit()
        step("committed")
        for rel, (_, content) in changes.items():
            result[rel] = _apply_one(targets[rel], content, step=step, rel=rel)
            step(f"written:{rel}")
            if on_written is not None:
                on_written(rel)
    except BaseException:
        _undo(journal)
        raise
    try:
        if finish is not None:
            finish(result)
            step("finished")
    except BaseException:
        journal.close(remove=False)  # the files are new: the record is finished by the next recovery
        raise
    journal.close(remove=True)
    step("done")
    return result


def _undo(journal: Journal) -> None:
    """Roll back what an interrupted write phase wrote; a journal that cannot be rolled back stays for recovery."""
    try:
        if journal.committed:
            journal.roll_back()
    except BaseException:
        journal.close(remove=False)
        raise
    journal.close(remove=True)


def _apply_one(target: Path, content: Content | None, *, step: Step | None = None, rel: str = "") -> str | None:
    if content is None:
        delete_atomic(target)
        return None
    hook = None if step is None else (lambda: step(f"writing:{rel}"))
    return write_atomic(target, content, before_replace=hook)


def _lock(journal_root: Path, name: str, *, wait: bool) -> int | None:
    """An exclusive flock on NAME.lock; None when another process holds it (and `wait` is False)."""
    fd = os.open(journal_root / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _stage(base: Path, changes: Mapping[str, Change], plan: dict[str, Any] | None, step: Step) -> Journal:
    """Write new and old contents and a manifest into a fresh, locked journal (not committed yet)."""
    journal_root = base / JOURNAL_DIR
    journal_root.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    fd = _lock(journal_root, name, wait=True)
    assert fd is not None
    staging = journal_root / f"{name}.staging"
    journal = Journal(base, staging, fd, None)
    try:
        staging.mkdir()
        step("staging")
        entries = []
        for i, (rel, (expected, content)) in enumerate(changes.items()):
            target = safe_path(base, rel)
            entry: dict[str, Any] = {"path": rel, "checked": expected is not MISSING,
                                     "before": None if expected is MISSING else expected, "after": None, "blob": None,
                                     "old_blob": None, "mode": None}
            if content is not None:
                payload = _as_bytes(content)
                entry.update(after=hashlib.sha256(payload).hexdigest(), blob=f"{i}.new")
                _write_synced(staging / f"{i}.new", payload)
            if target.is_file():
                entry.update(old_blob=f"{i}.old", mode=target.stat().st_mode & 0o7777)
                shutil.copyfile(target, staging / f"{i}.old")
                _fsync_file(staging / f"{i}.old")
            entries.append(entry)
        journal.manifest = {"version": 2, "entries": entries, "plan": plan}
        _write_synced(staging / "manifest.json", json.dumps(journal.manifest).encode("utf-8"))
        _fsync_dir(staging)
        step("staged")
    except BaseException:
        journal.close(remove=True)
        raise
    return journal


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def open_journals(root: Path | str) -> Iterator[list[Journal]]:
    """Every journal under `root` that no live process holds, each locked for the caller; released at exit.

    A journal whose manifest cannot be read (killed while staging) is handed over uncommitted, to be dropped.
    """
    base = Path(root).resolve()
    journal_root = base / JOURNAL_DIR
    found: list[Journal] = []
    try:
        if journal_root.is_dir():
            for path in sorted(journal_root.iterdir()):
                if not path.is_dir() or not path.name.endswith((".staging", ".commit")):
                    continue
                name = path.name.rsplit(".", 1)[0]
                fd = _lock(journal_root, name, wait=False)
                if fd is None:
                    continue  # a live apply
                if not path.is_dir():  # finished between the listing and the lock
                    os.close(fd)
                    continue
                found.append(Journal(base, path, fd, _manifest(path)))
        yield found
    finally:
        for journal in found:
            journal.close(remove=False)


def _manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def journals_waiting(root: Path | str) -> bool:
    """Is any apply journal (or its lock) left under `root`? Then the write side has something to settle."""
    journal_root = Path(root).resolve() / JOURNAL_DIR
    return journal_root.is_dir() and any(journal_root.iterdir())


def sweep_lock_files(root: Path | str) -> None:
    """Lock files whose journal is gone (a kill between removing the two)."""
    journal_root = Path(root).resolve() / JOURNAL_DIR
    if not journal_root.is_dir():
        return
    for lock in journal_root.glob("*.lock"):
        name = lock.name[: -len(".lock")]
        if (journal_root / f"{name}.staging").exists() or (journal_root / f"{name}.commit").exists():
            continue
        fd = _lock(journal_root, name, wait=False)
        if fd is None:
            continue
        with contextlib.suppress(FileNotFoundError):
            if not (journal_root / f"{name}.staging").exists():
                lock.unlink()
        os.close(fd)


def settle(journal: Journal, result: Recovery) -> bool:
    """The files-only recovery of one journal: discard an uncommitted one, roll a committed one forward — or
    back as a whole when a file was edited since (and the journal kept the old contents). Returns True when
    the journal was settled and removed."""
    if not journal.committed or not journal.entries:
        result.discarded.append(journal.path.name)
        journal.close(remove=True)
        return True
    states = journal.states()
    others = [p for p, s in states.items() if s == "other"]
    if others and journal.can_roll_back():
        result.rolled_back.extend(journal.roll_back())
    else:
        result.rolled_forward.extend(journal.roll_forward())
    result.conflicts.extend(others)
    journal.close(remove=True)
    return True


def recover(root: Path | str) -> Recovery:
    """Finish or drop interrupted `apply_files` calls that carry no plan; idempotent, a no-op when nothing was
    interrupted. A committed journal with a plan (events still to record) is left for the handler that records
    it (`handlers.apply_journal.recover_applies`) and reported as pending."""
    result = Recovery()
    with open_journals(root) as journals:
        for journal in journals:
            if journal.committed and journal.plan is not None:
                result.pending.append(journal.path.name)
                continue
            try:
                settle(journal, result)
            except OSError:  # e.g. a read-only file system: never a crash at start, the next start retries
                result.pending.append(journal.path.name)
    sweep_lock_files(root)
    return result


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


def journal_home(vault_root: Path, config_dir: Path) -> Path:
    """Where apply journals live: the vault root, or the folder holding both it and vault.yml."""
    return Path(os.path.commonpath([vault_root.resolve(), config_dir.resolve()]))

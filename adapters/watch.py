"""Watching the vault: which paths matter, a debouncer, autovault's own writes, and a watchdog Observer.

Editors save by writing a temp file and renaming it over the target; heartbeat logs are appended line by
line. Both produce bursts of inotify events for one logical change, so events are coalesced per path and
a path is handed on only after it has been quiet for `delay` seconds (or, for a path that never goes quiet,
such as a busy log, at the latest `max_wait` seconds after its first event). The `Debouncer` takes the time
as an argument, so tests drive it without sleeping.

autovault's own writes (a kept delta applied through `adapters.atomic`, a task's outputs) are noted in
`OwnWrites` as (path, sha256); an event whose file now has one of those hashes is not a human edit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from adapters.atomic import JOURNAL_DIR, TMP_SUFFIX
from domain.config import VaultConfig
from projections.globs import matches

Kind = Literal["editable", "config", "log"]


class Debouncer:
    """Coalesce events per path; `due(now)` returns the paths quiet for `delay` s (or pending `max_wait` s)."""

    def __init__(self, delay: float = 0.3, max_wait: float = 2.0) -> None:
        self.delay = delay
        self.max_wait = max(max_wait, delay)
        self._last: dict[str, float] = {}
        self._first: dict[str, float] = {}

    def add(self, path: str, now: float) -> None:
        self._last[path] = now
        self._first.setdefault(path, now)

    def _due_at(self, path: str) -> float:
        return min(self._last[path] + self.delay, self._first[path] + self.max_wait)

    def due(self, now: float) -> list[str]:
        """Paths ready now, in the order they first changed; they leave the debouncer."""
        ready = sorted((p for p in self._last if self._due_at(p) <= now), key=lambda p: self._first[p])
        for p in ready:
            del self._last[p], self._first[p]
        return ready

    def next_due(self) -> float | None:
        """When the next path becomes ready (None: nothing pending) — how long the loop may block."""
        return min((self._due_at(p) for p in self._last), default=None)

    def __len__(self) -> int:
        return len(self._last)


class OwnWrites:
    """(path, sha256) pairs autovault wrote itself; a few hashes per path are remembered, newest last."""

    def __init__(self, per_path: int = 8) -> None:
        self.per_path = per_path
        self._hashes: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def note(self, path: Path | str, sha256: str | None) -> None:
        if sha256 is None:
            return
        key = str(Path(path).resolve())
        with self._lock:
            seen = self._hashes.setdefault(key, [])
            if sha256 in seen:
                seen.remove(sha256)
            seen.append(sha256)
            del seen[:-self.per_path]

    def is_own(self, path: Path | str, sha256: str | None) -> bool:
        with self._lock:
            return sha256 is not None and sha256 in self._hashes.get(str(Path(path).resolve()), ())

    def claim(self, path: Path | str, sha256: str | None) -> bool:
        """`is_own`, and forget the pair: a human who later saves the very same bytes is a human again."""
        with self._lock:
            seen = self._hashes.get(str(Path(path).resolve()), [])
            if sha256 is None or sha256 not in seen:
                return False
            seen.remove(sha256)
            return True


@dataclass(frozen=True)
class WatchSet:
    """What the daemon watches in a vault, from its config: editable globs plus every prompt, collector,
    postprocessor and rubric file the tasks name, vault.yml itself, and the heartbeat-log folder."""

    root: Path
    config_file: Path
    globs: tuple[str, ...]
    files: frozenset[str]
    logs: Path | None

    @classmethod
    def of(cls, config: VaultConfig) -> WatchSet:
        root = config.root.resolve()
        files: set[str] = {config.judge.rubric} if config.judge.rubric else set()
        for task in config.tasks.values():
            files.update(f for f in (task.prompt, task.rubric) if f)
            files.update(script_paths(task.collect) + script_paths(task.postprocess))
        logs = (root / config.logs).resolve() if config.logs else None
        return cls(root, config.source.resolve(), tuple(config.research.editable), frozenset(files), logs)

    def rel(self, path: Path | str) -> str | None:
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return None

    def classify(self, path: Path | str) -> Kind | None:
        """Why a path matters, or None: temp files, the journal and unrelated files are ignored."""
        p = Path(path)
        if p.name.endswith(TMP_SUFFIX) or p.name.endswith("~") or p.name.endswith(".swp"):
            return None
        resolved = p.resolve() if p.exists() else p.parent.resolve() / p.name
        if resolved == self.config_file:
            return "config"
        if self.logs is not None and resolved.suffix == ".jsonl" and (
                resolved.parent == self.logs or self.logs in resolved.parents):
            return "log"
        rel = self.rel(resolved)
        if rel is None or rel.startswith(".autovault/") or rel.startswith(JOURNAL_DIR) or rel.startswith(".git/"):
            return None
        if rel in self.files or any(matches(g, rel) for g in self.globs):
            return "editable"
        return None

    def editable_files(self) -> list[Path]:
        """Every existing file that is watched as editable (the start-up scan)."""
        out: set[Path] = set()
        for rel in self.files:
            if (self.root / rel).is_file():
                out.add((self.root / rel).resolve())
        for path in self.root.rglob("*"):
            if path.is_file() and self.classify(path) == "editable":
                out.add(path.resolve())
        return sorted(out)

    def log_files(self) -> list[Path]:
        if self.logs is None or not self.logs.is_dir():
            return []
        return sorted(p.resolve() for p in self.logs.rglob("*.jsonl") if p.is_file())


def script_paths(command: str | None) -> list[str]:
    """Vault-relative files a collect/postprocess command names (its first word and any path-like argument)."""
    if not command:
        return []
    import shlex

    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return [w.removeprefix("./") for w in words if "/" in w and not w.startswith(("-", "/", "$"))]


@dataclass
class VaultWatcher:
    """A watchdog Observer over the vault (recursive), the log folder and vault.yml's folder; events land in
    `events` as (path, monotonic time). `wake()` puts a None so a blocked consumer returns at once."""

    watch: WatchSet
    events: queue.Queue[tuple[str, float] | None] = field(default_factory=queue.Queue)
    _observer: Any = None

    def start(self) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        sink = self.events

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory or event.event_type in ("opened", "closed_no_write"):
                    return
                now = time.monotonic()
                for p in (event.src_path, getattr(event, "dest_path", "")):
                    if p:
                        sink.put((p if isinstance(p, str) else p.decode(), now))

        observer = Observer()
        handler = Handler()
        folders = {self.watch.root: True, self.watch.config_file.parent: False}
        if self.watch.logs is not None and self.watch.logs.is_dir():
            folders.setdefault(self.watch.logs, True)
        for folder, recursive in _minimal(folders):
            observer.schedule(handler, str(folder), recursive=recursive)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def wake(self) -> None:
        self.events.put(None)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None


def _minimal(folders: dict[Path, bool]) -> Iterable[tuple[Path, bool]]:
    """Drop folders already covered by a recursive watch of a parent."""
    recursive = [f for f, r in folders.items() if r]
    for folder, rec in folders.items():
        if any(folder != r and r in folder.parents for r in recursive):
            continue
        if not rec and folder in recursive:
            continue
        yield folder, rec

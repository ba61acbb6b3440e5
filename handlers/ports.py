"""What the handlers need of the outside world, as protocols they own: the event store, shadow workspaces,
the config loader, git and the script sandbox. `daemon/bootstrap.py` builds the concrete adapters and passes
them in; tests pass the same or doubles. Handlers import these types, never the adapters behind them.

Exceptions a handler catches (`ConfigError`, `GitError`, `HashConflict`, `SandboxUnavailable`, ...) and pure,
stateless helpers (`safe_path`, `sha256_file`, the yaml_edit functions) stay imported from their adapters:
they hold no state and reach nothing outside.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from adapters.sandbox import Confinement
from domain.aggregates import Cycle
from domain.config import VaultConfig


class Blobs(Protocol):
    """Content-addressed texts: deltas, evidence, diffs."""

    def put(self, data: str | bytes) -> str: ...

    def get_text(self, digest: str) -> str | None: ...


class EventStore(Protocol):
    """What handlers call on the event store (`adapters.eventstore.VaultStore`)."""

    @property
    def blobs(self) -> Blobs: ...

    @property
    def events(self) -> Any: ...

    @property
    def engine(self) -> Any: ...  # the read models' database

    @property
    def recorder(self) -> Any: ...  # notifications by position and topic

    @property
    def mapper(self) -> Any: ...  # a notification to its domain event

    def events_after(self, position: int, topics: Sequence[str], limit: int = ...) -> list[tuple[int, Any]]: ...

    def batch(self) -> Any: ...

    def get_task(self, name: str) -> Any: ...

    def get_cycle(self, key: str) -> Cycle | None: ...

    def start_cycle(self, key: str, task: str, mode: str, target: float | None, trigger: str) -> Cycle: ...

    def update_cycle(self, key: str, command: Callable[[Cycle], Any]) -> Cycle: ...


class Workspace(Protocol):
    """A private copy of the vault where candidate files are laid over and tasks run (a shadow workspace)."""

    @property
    def root(self) -> Path: ...

    def read_text(self, rel: str) -> str: ...

    def overlay(self, files: Mapping[str, str | bytes | None]) -> None: ...

    def changed(self) -> dict[str, str | None]: ...

    def cleanup(self) -> None: ...

    def __enter__(self) -> Workspace: ...

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class Workspaces(Protocol):
    """Makes a shadow copy of the vault folder `root` (all of it, or the files matching `include`)."""

    def __call__(self, root: Path | str, include: Iterable[str] | None = None, *,
                 exclude: Iterable[str] = ()) -> Workspace: ...


class LoadConfig(Protocol):
    """Reads and validates a vault.yml (raises `ConfigError`, one line per problem)."""

    def __call__(self, path: Path, env: Mapping[str, str], /) -> VaultConfig: ...


class Git(Protocol):
    """What handlers ask of the vault's git repository."""

    def repo_root(self, path: Path) -> Path | None: ...

    def commit_paths(self, repo: Path, paths: Sequence[Path], message: str) -> str | None: ...

    def find_commit(self, repo: Path, needle: str, depth: int = 50) -> str | None: ...

    def merge3(self, base: str, ours: str, theirs: str) -> str | None: ...


RunEnv = tuple[dict[str, str], Callable[[], None] | None]  # (env, preexec_fn) for subprocess.Popen


class Confine(Protocol):
    """The env and preexec_fn that confine one script run (`SandboxUnavailable` when that cannot work)."""

    def __call__(self, env: Mapping[str, str], confinement: Confinement | None, /) -> AbstractContextManager[RunEnv]:
        ...


@dataclass(frozen=True)
class Outside:
    """The outside world a handler reaches beyond the event store, built once by bootstrap."""

    workspaces: Workspaces
    load_config: LoadConfig
    git: Git
    confine: Confine


__all__ = ["Blobs", "Confine", "Confinement", "EventStore", "Git", "LoadConfig", "Outside", "RunEnv", "Workspace",
           "Workspaces"]

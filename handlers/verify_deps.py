"""What a verification needs, as protocols it owns: `VerifyDeps` carries them. `daemon.bootstrap.cycle_deps`
builds it from the services; the shadow copies and the config loader are the outside world's
(`handlers.ports`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from domain.config import TaskConfig, VaultConfig
from domain.runs import RunResult, Score
from handlers.ports import Confine, LoadConfig, Workspaces
from handlers.tasks import History


class Runner(Protocol):
    """The task runner (`adapters.runner.TaskRunner`): one run of a task, in a shadow workspace for an arm."""

    @property
    def base_env(self) -> Mapping[str, str]: ...

    @property
    def env_passthrough(self) -> tuple[str, ...]: ...

    def run(self, task_name: str, task: TaskConfig, *, date: dt.date | str | None = None,
            shadow: Any = False, source: str = "cli", context_override: str | None = None,
            run_id: str | None = None) -> RunResult:
        """`shadow`: False (live), True (a fresh copy) or a workspace made by `VerifyDeps.workspaces`."""
        ...


FloorCache = Callable[[str, str], float | None]  # (task, baseline key) -> recorded floor, or None
RecordRun = Callable[[RunResult, Score, str], None]  # (arm run, the score its decision used, cycle key)


@dataclass(frozen=True)
class VerifyDeps:
    config: VaultConfig  # the live config: judge settings, research settings, the live vault root
    runner: Runner
    complete: Callable[..., Any] | None  # the judge's model call (None: contract checks only)
    history: History  # previous outputs (the judge's distinctness check); the loop reads runs and scores too
    read_text: Callable[[str | None], str]  # live vault file text, for the rubric
    record: RecordRun  # every arm run on the record (bootstrap wires the store)
    workspaces: Workspaces  # the arms' shadow copies of the vault
    load_config: LoadConfig  # validates a candidate vault.yml
    confine: Confine  # the sandbox a changed collector's CPU time is measured in
    floor_cache: FloorCache = lambda _task, _key: None
    env: Mapping[str, str] = field(default_factory=dict)
    progress: Callable[[str], None] = lambda _msg: None


__all__ = ["FloorCache", "RecordRun", "Runner", "VerifyDeps"]

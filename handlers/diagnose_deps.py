"""What a diagnosis reads, as protocols diagnosis owns: `DiagnoseDeps` carries them.

The config, the run history and the live vault's texts are always there. The rest is optional, and None says
so: a caller without a store has no quality read model (scores come from the history), no findings, no kept
changes (nothing is ever stale), no earlier cycles (nothing was tried); without model backends tokens are
estimated and the pool is not probed; without a task runner scripts run with the process environment.
`daemon.bootstrap.diagnose_deps` builds it from the services; tests build it with doubles.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from adapters.backends.base import ContextWindow, Health
from domain.config import VaultConfig
from domain.signatures import RunView
from handlers.ports import Workspaces
from handlers.tasks import History

ArmRuns = Callable[[str, str, str, int], list[RunView]]  # (task, cycle key, arm, limit): one arm's verification runs


class QualityReads(Protocol):
    """The quality read model (`projections.quality`)."""

    def rolling_means(self) -> dict[str, float]:
        """task -> rolling mean score, for the tasks that have one."""
        ...

    def last_reasons(self, task: str) -> list[str]:
        """The judge's reasons for the task's last scores."""
        ...


class CycleReads(Protocol):
    """What earlier cycles on a task did, read off their events."""

    def tried(self, task: str, since: dt.datetime | None) -> tuple[dict[str, Any], ...]:
        """Proposals verified on `task` since `since` (`handlers.tried`)."""
        ...

    def swapped_models(self, task: str) -> dict[str, str]:
        """Models earlier cycles swapped `task` to, with how each ended (`handlers.candidates.tried_models`)."""
        ...


class OwnKeeps(Protocol):
    """The read model of the last own kept change per task (`projections.last_change`)."""

    def last_own_keep(self, task: str) -> tuple[dt.datetime, str] | None: ...


class Finding(Protocol):
    """An open data-flow finding (`projections.dataflow.FindingSpec`)."""

    @property
    def kind(self) -> str: ...

    @property
    def subject(self) -> str: ...

    @property
    def tasks(self) -> tuple[str, ...]: ...

    @property
    def evidence(self) -> dict[str, Any]: ...

    @property
    def severity(self) -> str: ...


class Models(Protocol):
    """The model backends (`adapters.backends.registry.ModelRouter`): tokenizers, context windows, probes."""

    def count_tokens(self, model: str, text: str, /) -> int | None: ...

    def context_window(self, model: str, /) -> ContextWindow | None: ...

    def probe(self, model: str, /) -> Health: ...


class ScriptEnv(Protocol):
    """The task runner's environment for scripts (`adapters.runner.TaskRunner`)."""

    @property
    def base_env(self) -> Mapping[str, str]: ...

    @property
    def env_passthrough(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class DiagnoseDeps:
    config: VaultConfig
    history: History
    read_vault_text: Callable[[str | None], str]  # a live vault file's text, '' when absent
    workspaces: Workspaces  # shadow copies a collector is measured in
    quality: QualityReads | None = None  # rolling scores and judge reasons (None: scores from the history)
    findings: Callable[[], Sequence[Finding]] | None = None  # the open data-flow findings
    changes: OwnKeeps | None = None  # None: no kept change is known, no run is stale
    arm_runs: ArmRuns | None = None  # a kept cycle's candidate runs, standing in until live runs follow
    cycles: CycleReads | None = None  # what was already tried
    models: Models | None = None  # None: tokens estimated, the pool not probed
    runner: ScriptEnv | None = None  # the environment a traced collector runs with
    env: Mapping[str, str] | None = None  # overrides the runner's environment when not empty


__all__ = ["ArmRuns", "CycleReads", "DiagnoseDeps", "Finding", "Models", "OwnKeeps", "QualityReads", "ScriptEnv"]

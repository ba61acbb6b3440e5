"""What is still current about a task after a cycle kept a change to it.

Runs made before a task's last kept change ran on files that are gone: the signatures they show are stale
(re-proposing on them repeats a fix, e.g. halving an already halved `head -N`). The same holds for a data-flow
finding read off such runs, on either end of its edge. Two things stay current anyway:
- the kept cycle's candidate runs, which ran the current files (they stand in until live runs fill the window);
- what the old runs say about a pool member that no run since the change has exercised: the candidate runs use
  the task's own model, so a coder in the pool that failed the contract is still the last thing known about it
  (verifying its drop runs it on the current files and settles the question).

deps: a `DiagnoseDeps`; without `changes` nothing is ever stale, without `arm_runs` no candidate run stands in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from domain.signatures import RunView, Signature
from handlers.diagnose_deps import ArmRuns, DiagnoseDeps, Finding
from handlers.tasks import History

F = TypeVar("F", bound=Finding)


def last_own_keep(deps: DiagnoseDeps, task: str) -> tuple[dt.datetime, str] | None:
    """(when, cycle key) of the last change a cycle on `task` itself made to one of its files (None: never, or no
    `changes` read model). A change made by another task's cycle (a producer growing its output for this consumer)
    leaves this task's evidence valid."""
    if deps.changes is None:
        return None
    try:
        return deps.changes.last_own_keep(task)
    except Exception:  # the staleness filter is a refinement: a store that cannot answer leaves history whole
        return None


def last_own_change(deps: DiagnoseDeps, task: str) -> dt.datetime | None:
    kept = last_own_keep(deps, task)
    return None if kept is None else kept[0]


def started_after(started: str, since: dt.datetime) -> bool:
    try:
        at = dt.datetime.fromisoformat(started.replace("Z", "+00:00"))
    except ValueError:
        return True  # an unreadable time: keep the run rather than lose evidence
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)) > since


class RunsSince:
    """A History showing only the runs started after `since`; until live runs fill the window, the kept cycle's
    candidate runs stand in (they ran the current files: a prompt grown for its consumer whose answers now hit
    num_predict shows before the task runs live again). Scores and previous outputs are history and stay whole."""

    def __init__(self, history: History, since: dt.datetime, cycle: str | None = None,
                 arm_runs: ArmRuns | None = None) -> None:
        self.history, self.since, self.cycle, self.arm_runs = history, since, cycle, arm_runs

    def views(self, task: str, limit: int = 10) -> list[RunView]:
        live = [v for v in self.history.views(task, limit) if started_after(v.started, self.since)]
        if len(live) >= limit or self.cycle is None or self.arm_runs is None:
            return live
        return [*self.arm_runs(task, self.cycle, "cand", limit - len(live)), *live]

    def previous_outputs(self, task: str, n: int, *, exclude: str | None = None) -> list[str]:
        return self.history.previous_outputs(task, n, exclude=exclude)

    def scores(self, task: str) -> dict[str, float]:
        return self.history.scores(task)


def current_history(deps: DiagnoseDeps, task: str) -> History:
    kept = last_own_keep(deps, task)
    return deps.history if kept is None else RunsSince(deps.history, *kept, deps.arm_runs)


def ran_since_change(deps: DiagnoseDeps, task: str) -> bool:
    """Whether the task has a live run since its last own kept change (True when it never had one)."""
    kept = last_own_keep(deps, task)
    if kept is None:
        return True
    newest = deps.history.views(task, 1)
    return bool(newest) and started_after(newest[-1].started, kept[0])


def current_findings(deps: DiagnoseDeps, findings: Sequence[F]) -> list[F]:
    """The data-flow findings not read off runs older than a kept change to one of their tasks: the graph is built
    from live runs, so until such a task runs again its finding describes files that are gone."""
    known = set(deps.config.tasks)
    fresh: dict[str, bool] = {}

    def current(t: str) -> bool:
        if t not in fresh:
            fresh[t] = t not in known or ran_since_change(deps, t)
        return fresh[t]

    return [f for f in findings if all(current(t) for t in f.tasks)]


def carried_pool_signatures(found: Sequence[Signature], old: Sequence[Signature], pool: Sequence[str], model: str,
                            current: Sequence[RunView]) -> list[Signature]:
    """`wrong_model` from runs before the last kept change, for pool members (not the task's model) that are still
    in the pool and have not run since (`current`: the runs since the change): nothing newer is known about them.
    [] when the current runs already show it, or nothing of the old verdict is left to carry."""
    if any(s.name == "wrong_model" for s in found):
        return []
    wrong = next((s for s in old if s.name == "wrong_model"), None)
    if wrong is None:
        return []
    ran = {v.model for v in current}
    bad = [m for m in wrong.evidence.get("bad") or [] if m in pool and m != model and m not in ran]
    if not bad:
        return []
    note = "from runs before the task's last kept change: no run of these models since"
    return [replace(wrong, summary=f"{', '.join(bad)} missed the contract where other models passed ({note})",
                    evidence={**wrong.evidence, "bad": bad, "carried": note,
                              "actions": {m: "drop from candidates" for m in bad}})]


__all__ = ["RunsSince", "carried_pool_signatures", "current_findings", "current_history", "last_own_change",
           "last_own_keep", "ran_since_change", "started_after"]

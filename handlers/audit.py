"""`autovault audit TASK`: where did the task's quality drop, and which change did it?

1. **Series.** The task's live scores in history order (`projections.score_series`), from `since` to `until`.
2. **Change point.** `domain.changepoint.find_shifts` with the task's noise floor — the last A/A floor a cycle
   measured on it, never below `research.min_effect` — seeded from the task name so an audit replays exactly.
   More than `MAX_POINTS` scores are tested as that many bins of consecutive scores (their means).
   The latest significant drop is the regression; its location interval gives the **window**: the event
   positions between the last score before it and the first score after it.
3. **Changes.** Every change recorded in the window (`projections.changes`): human edits, kept deltas, reverts,
   config reloads, model, backend, data and judge changes, each with its diff from the blob store.
4. **Judge drift.** A judge change in the window is measured on the task's anchor set (`handlers.drift`); when
   the judge's shift accounts for the drop, the verdict says the judge moved, not the vault.
5. **Verdict.** One change in the window that the judge does not explain is named; several are left to bisect
   (`handlers.bisect`); none means the cause is outside the recorded vault (model server, data, environment).
The result is an `Audit.Opened` event; bisect and revert add to the same aggregate.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.aggregates import Audit, Cycle, Vault
from domain.changepoint import Segmentation, Shift, ShiftTest, find_shifts
from domain.config import VaultConfig
from domain.ids import cycle_id, sha256_text, task_id
from handlers.drift import DriftCheck, DriftDeps, explains, measure
from handlers.rebuild import ConfigVersion, VaultAt, delta_texts_of, file_steps
from projections.changes import HANDLES, Change, PathRoles, change_diff, fold_changes
from projections.score_series import ScorePoint

VERIFIED: Any = Cycle.Verified
STARTED: Any = Cycle.Started  # type: ignore[attr-defined]
VAULT_TOPICS = [get_topic(Vault.Configured), get_topic(Vault.Reconfigured)]  # type: ignore[attr-defined]
TASK_TOPICS = [get_topic(c) for c in HANDLES if c.__qualname__.startswith("Task.")]
MAX_POINTS = 2000  # a longer series is tested as this many bins of consecutive scores


class History(Protocol):
    """What an audit reads (`adapters.history_read.EventLog`)."""

    def last_position(self) -> int: ...

    def read(self, *, originators: Sequence[UUID] = (), topics: Sequence[str] = (), after: int = 0,
             upto: int | None = None) -> Iterable[tuple[int, Any]]: ...

    def position_at(self, when: dt.datetime) -> int: ...

    def timestamp_of(self, position: int) -> dt.datetime | None: ...

    def aggregate(self, aggregate_id: UUID) -> Any: ...

    def blob(self, digest: str) -> str | None: ...


@dataclass
class AuditDeps:
    config: VaultConfig
    history: History
    store: Any  # `batch()`: the Audit events
    series: Callable[[str, int, int | None], list[ScorePoint]]  # task, after, upto -> live scores
    live_text: Callable[[str], str | None]  # a live vault file (vault-relative)
    live_config: Callable[[], str | None]  # the live vault.yml
    drift: DriftDeps | None = None  # rescoring anchors; None: only shifts already on record
    progress: Callable[[str], None] = lambda _m: None


@dataclass
class AuditReport:
    key: str
    task: str
    since: int
    until: int
    series: list[ScorePoint]
    segmentation: Segmentation | None
    shift: Shift | None
    floor: float
    window: tuple[int, int] | None  # positions the culprit lies strictly between
    changes: list[Change]  # in the window
    timeline: list[Change]  # every change of the task up to `until` (for plots)
    drift: list[DriftCheck]
    verdict: str
    suspect: Change | None
    diffs: dict[int, str] = field(default_factory=dict)  # position -> diff text of the window's changes
    notes: list[str] = field(default_factory=list)
    bins: list[tuple[int, int]] = field(default_factory=list)  # what the test saw: [start, stop) of `series`

    def score_index(self, index: int) -> int:
        """The index in `series` where the test's point `index` starts."""
        return self.bins[index][0] if self.bins else index

    def as_dict(self) -> dict[str, Any]:
        seg = self.segmentation
        return {
            "audit": self.key, "task": self.task, "since": self.since, "until": self.until,
            "scores": len(self.series), "floor": self.floor, "verdict": self.verdict,
            "shift": self.shift.as_dict() if self.shift else None,
            "shifts": [s.as_dict() for s in seg.shifts] if seg else [],
            "test": seg.test.as_dict() if seg else None,
            "window": list(self.window) if self.window else None,
            "changes": [{**c.as_dict(), "diff": self.diffs.get(c.position, "")} for c in self.changes],
            "suspect": self.suspect.as_dict() if self.suspect else None,
            "drift": [d.as_dict() for d in self.drift], "notes": self.notes,
        }


def new_key(task: str) -> str:
    return f"audit-{task}-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


# ---- reading the history ------------------------------------------------------------------------------------


def roles(config: VaultConfig, task: str) -> PathRoles:
    return PathRoles.of(config.tasks.get(task), config.source.name, config.judge.rubric)


def task_changes(deps: AuditDeps, task: str, upto: int | None = None) -> list[Change]:
    """Every change of the task up to `upto`, from its own events and vault.yml's versions, in history order."""
    events = list(deps.history.read(originators=[task_id(task)], topics=TASK_TOPICS, upto=upto))
    events += list(deps.history.read(topics=VAULT_TOPICS, upto=upto))
    events.sort(key=lambda pe: pe[0])
    return fold_changes(events, task, roles(deps.config, task), deps.history.blob)


def config_versions(deps: AuditDeps, upto: int | None = None) -> list[ConfigVersion]:
    return [ConfigVersion(position, ev.text_hash, ev.sections.get("file"))
            for position, ev in deps.history.read(topics=VAULT_TOPICS, upto=upto)]


def vault_at(deps: AuditDeps, changes: Sequence[Change]) -> VaultAt:
    """Rebuilds the files `changes` touch, and vault.yml, as of any position (`handlers.rebuild`)."""

    def cycle_blob(key: str) -> str | None:
        cycle = deps.history.aggregate(cycle_id(key))
        return getattr(cycle, "delta_blob", None)

    return VaultAt(file_steps(changes, deps.config.source.name), config_versions(deps), live=deps.live_text,
                   live_config=deps.live_config(), blob=deps.history.blob,
                   delta_texts=delta_texts_of(deps.history.blob, cycle_blob))


def noise_floor(deps: AuditDeps, task: str) -> float:
    """The task's last A/A floor measured by a cycle, never below research.min_effect."""
    cycles = {ev.originator_id for _, ev in deps.history.read(topics=[get_topic(STARTED)]) if ev.task == task}
    floors = [float(ev.detail["noise_floor"]) for _, ev in deps.history.read(topics=[get_topic(VERIFIED)])
              if ev.originator_id in cycles and (ev.detail or {}).get("noise_floor") is not None]
    return max([deps.config.research.min_effect, *floors[-1:]])


# ---- the audit ---------------------------------------------------------------------------------------------------


def shift_test(task: str, floor: float) -> ShiftTest:
    return ShiftTest(floor=floor, seed=int(sha256_text(f"audit:{task}")[:8], 16))


def bins_of(series: Sequence[ScorePoint], most: int = MAX_POINTS) -> list[tuple[int, int]]:
    """[start, stop) indices into `series`: single scores, or — for a series longer than `most` — runs of
    consecutive scores whose means are tested instead (a mean shift survives averaging; its location is then
    known to a bin, and bisect takes it from there)."""
    size = max(1, math.ceil(len(series) / most))
    return [(i, min(i + size, len(series))) for i in range(0, len(series), size)]


def window_of(series: Sequence[ScorePoint], bins: Sequence[tuple[int, int]], shift: Shift,
              since: int) -> tuple[int, int]:
    """(after, before): the culprit was recorded after the last score before the drop's location interval and
    before the first score after it."""
    lo, hi = shift.span
    return (series[bins[lo - 1][1] - 1].position if lo > 0 else since), series[bins[hi][0]].position


def audit(deps: AuditDeps, task: str, *, since: int = 0, until: int | None = None, key: str | None = None,
          record: bool = True, rescore: bool = True) -> AuditReport:
    """Find the drop, list the changes, measure judge drift (rescoring anchors only with `rescore`), name the
    culprit when one change can be it."""
    deps.config.task(task)
    upto = until if until is not None else deps.history.last_position()
    key = key or new_key(task)
    series = deps.series(task, since, upto)
    floor = noise_floor(deps, task)
    timeline = task_changes(deps, task, upto)
    report = AuditReport(key, task, since, upto, series, None, None, floor, None, [], timeline, [], "", None)
    test = shift_test(task, floor)
    if len(series) < 2 * test.min_segment:
        report.verdict = f"not enough scores to test: {len(series)} in the range, at least {2 * test.min_segment} needed"
        return _recorded(deps, report, record)
    report.bins = bins_of(series)
    report.segmentation = find_shifts([math.fsum(p.score for p in series[a:b]) / (b - a) for a, b in report.bins], test)
    report.notes += list(report.segmentation.notes)
    report.shift = report.segmentation.latest_drop()
    if report.shift is None:
        report.verdict = (f"no regression: no significant drop in {len(series)} scores "
                          f"(permutation test, α {test.alpha:g}, noise floor {floor:.2f})")
        return _recorded(deps, report, record)
    report.window = window_of(series, report.bins, report.shift, since)
    lo, hi = report.window
    report.changes = [c for c in timeline if lo < c.position < hi]
    report.diffs = {c.position: change_diff(c, deps.history.blob) for c in report.changes}
    report.drift = _drift(deps, task, report.changes, rescore)
    report.verdict, report.suspect = _verdict(report)
    return _recorded(deps, report, record)


def _drift(deps: AuditDeps, task: str, changes: Sequence[Change], rescore: bool) -> list[DriftCheck]:
    judged = [c for c in changes if "judge" in (c.kinds or (c.kind,))]
    if not judged:
        return []
    if deps.drift is None:
        return [DriftCheck(c.position, None, None, None, None, 0, "no judge wired: drift not measured") for c in judged]
    return [measure(deps.drift, task, c, rescore=rescore) for c in judged]


def _verdict(r: AuditReport) -> tuple[str, Change | None]:
    assert r.shift is not None and r.window is not None
    drop = -r.shift.change
    where = (f"score fell from {r.shift.before:.2f} to {r.shift.after:.2f} ({r.shift.change:+.2f}, "
             f"p={r.shift.p_value:.3f}) between #{r.window[0]} and #{r.window[1]}")
    moved = [d for d in r.drift if d.shift is not None and explains(d, drop, r.floor)]
    if moved:
        d = moved[0]
        return (f"{where}; the judge changed at #{d.position} and moves the same recorded outputs by {d.shift:+.2f} on "
                f"{d.anchors} anchor runs: the judge moved, not the vault"), None
    causes = [c for c in r.changes if not _judge_only(c)]
    if not causes:
        judged = f"; the judge changed but its shift is not enough ({_shifts(r.drift)})" if r.drift else ""
        return (f"{where}; no recorded vault change in that window{judged}: look outside the vault — the model or "
                "its server, the data the collector reads, or an edit made while autovault was not watching"), None
    if len(causes) == 1:
        c = causes[0]
        return f"{where}; one change in that window: #{c.position} {c.summary}", c
    return (f"{where}; {len(causes)} changes in that window — bisect names the one "
            f"(`autovault audit {r.task} --bisect`)"), None


def _judge_only(c: Change) -> bool:
    return (c.kinds or (c.kind,)) == ("judge",)


def _shifts(checks: Sequence[DriftCheck]) -> str:
    return ", ".join(f"#{d.position} {d.shift:+.2f}" if d.shift is not None else f"#{d.position} {d.note}"
                     for d in checks)


def _recorded(deps: AuditDeps, r: AuditReport, record: bool) -> AuditReport:
    if not record:
        return r
    window = list(r.window) if r.window else []
    changes = [c.as_dict() for c in r.changes]
    test = r.segmentation.test.as_dict() if r.segmentation else shift_test(r.task, r.floor).as_dict()
    batch = deps.store.batch()
    batch.add(Audit.create_id(r.key), lambda a: None, lambda: Audit(
        key=r.key, task=r.task, since=r.since or None, until=r.until, test=test,
        shift=r.shift.as_dict() if r.shift else None, window=window, changes=changes,
        drift=[d.as_dict() for d in r.drift], verdict=r.verdict, suspect=r.suspect.position if r.suspect else None))
    batch.commit()
    return r


__all__ = ["AuditDeps", "AuditReport", "History", "audit", "config_versions", "task_changes", "vault_at"]

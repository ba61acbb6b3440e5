"""Judge drift: when the judge model, its rubric or a task's contract changed, did the judge move the scores?

A task's quality is read through its judge. Change the judge and the scores move with no output changed — an
audit that blamed the vault for that would send a person after the wrong fix. So each judge change is measured
on a **fixed anchor set**: recorded live runs of the task (their outputs are in the blob store), chosen once per
task (`Judge.Anchored`: the last `ANCHORS` scored runs before the first judge change measured) and reused for
every later change, so shifts compare like with like. Both judges — rebuilt from the `judge.<task>` sections on
record (judge settings, contract, rubric text) — score every anchor; shift = mean(new − old), with a seeded
bootstrap interval (`Judge.Rescored`). A shift measured once is read back, never paid for again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from uuid import UUID

from domain.acceptance import bootstrap_interval
from domain.aggregates import Judge
from domain.config import Expect, JudgeConfig, TaskConfig
from domain.signatures import RunView
from handlers.judge import judge_run
from handlers.tasks import run_from_view
from projections.changes import Change

ANCHORS = 12
RESCORED: Any = Judge.Rescored  # type: ignore[attr-defined]


class JudgeHistory(Protocol):
    def read(self, *, originators: Sequence[UUID] = (), topics: Sequence[str] = (), after: int = 0,
             upto: int | None = None) -> Any: ...

    def aggregate(self, aggregate_id: UUID) -> Any: ...

    def blob(self, digest: str) -> str | None: ...


@dataclass
class DriftDeps:
    history: JudgeHistory
    store: Any  # `batch()` for the Judge events
    runs: Callable[[str, list[str]], list[RunView]]  # task, run ids -> recorded runs with their outputs
    recent: Callable[[str, int | None, int], list[str]]  # task, up to position, n -> last n scored live run ids
    task: Callable[[str], TaskConfig | None]  # the task's live config (what a rebuilt contract replaces)
    complete: Callable[..., Any] | None = None  # the judge's model call; None: contract checks only
    progress: Callable[[str], None] = lambda _m: None


@dataclass(frozen=True)
class JudgeSpec:
    key: str  # sha256 of its section text: the judge's identity
    judge: JudgeConfig
    expect: Expect
    rubric: str


@dataclass(frozen=True)
class DriftCheck:
    position: int
    before: str | None  # judge keys
    after: str | None
    shift: float | None  # mean over the anchors of (new − old); negative: the new judge is harsher
    interval: tuple[float, float] | None
    anchors: int
    note: str

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = list(self.interval) if self.interval else None
        return out


def spec_of(key: str | None, read_blob: Callable[[str], str | None]) -> JudgeSpec | None:
    """The judge a `judge.<task>` section text describes, with its rubric text; None when not on record."""
    text = read_blob(key) if key else None
    if not key or not text:
        return None
    try:
        data = json.loads(text)
        rubric = read_blob(str(data["rubric_hash"]))
        judge = JudgeConfig.model_validate(data["judge"])
        expect = Expect.model_validate(data["expect"])
    except (ValueError, KeyError, TypeError):
        return None
    return None if rubric is None else JudgeSpec(key, judge, expect, rubric)


def judge_sections(change: Change, task: str) -> tuple[str | None, str | None]:
    section = next((s for s in change.sections if s.name == f"judge.{task}"), None)
    return (section.before, section.after) if section else (None, None)


def _recorded(deps: DriftDeps, task: str, change: Change, before: str, after: str) -> DriftCheck | None:
    for position, ev in deps.history.read(originators=[Judge.create_id(task)], topics=[_topic(RESCORED)]):
        if ev.previous_key == before and ev.key == after:
            lo_hi = (float(ev.interval[0]), float(ev.interval[1])) if len(ev.interval) == 2 else None
            return DriftCheck(change.position, before, after, float(ev.shift), lo_hi, len(ev.scores),
                              f"measured at #{position} on {len(ev.scores)} anchor runs")
    return None


def _topic(cls: Any) -> str:
    from eventsourcing.utils import get_topic

    return get_topic(cls)


def anchor_set(deps: DriftDeps, task: str, before_position: int) -> list[str]:
    """The task's fixed anchors: on record, or chosen now from the runs before `before_position` and recorded."""
    judge = deps.history.aggregate(Judge.create_id(task))
    if judge is not None:
        return list(judge.run_ids)
    chosen = deps.recent(task, before_position, ANCHORS) or deps.recent(task, None, ANCHORS)
    if not chosen:
        return []
    batch = deps.store.batch()
    batch.add(Judge.create_id(task), lambda j: None, lambda: Judge(task=task, run_ids=chosen))
    batch.commit()
    return chosen


def measure(deps: DriftDeps, task: str, change: Change, *, rescore: bool = True) -> DriftCheck:
    """How far the judge change `change` moved the task's scores (see the module docstring)."""
    before, after = judge_sections(change, task)
    if before is None or after is None:
        return DriftCheck(change.position, before, after, None, None, 0,
                          "the judge's identity before or after is not on record: drift not measured")
    found = _recorded(deps, task, change, before, after)
    if found is not None or not rescore:
        return found or DriftCheck(change.position, before, after, None, None, 0, "not measured yet")
    old, new = spec_of(before, deps.history.blob), spec_of(after, deps.history.blob)
    base = deps.task(task)
    if old is None or new is None or base is None:
        return DriftCheck(change.position, before, after, None, None, 0,
                          "the judge's settings or rubric text are not in the blob store: drift not measured")
    anchors = deps.runs(task, anchor_set(deps, task, change.position - 1))
    if len(anchors) < 2:
        return DriftCheck(change.position, before, after, None, None, len(anchors),
                          "fewer than 2 recorded runs to rescore: drift not measured")
    deps.progress(f"{task}: rescoring {len(anchors)} anchor runs under the old and the new judge")
    old_scores, new_scores, notes = _score(deps, base, old, anchors), _score(deps, base, new, anchors), []
    ids = [r.run_id for r in anchors if r.run_id in old_scores and r.run_id in new_scores]
    if len(ids) < 2:
        notes.append("a judge failed on most anchors")
        return DriftCheck(change.position, before, after, None, None, len(ids), "; ".join(notes))
    diffs = [new_scores[i] - old_scores[i] for i in ids]
    shift = math.fsum(diffs) / len(diffs)
    interval = bootstrap_interval(diffs, 0.95, 2000, int(after[:8], 16))
    def op(judge: Judge) -> None:
        judge.rescored_under(key=after, previous_key=before, scores={i: new_scores[i] for i in ids},
                             previous={i: old_scores[i] for i in ids}, shift=shift, interval=list(interval), notes=notes)

    batch = deps.store.batch()
    batch.add(Judge.create_id(task), op)
    batch.commit()
    return DriftCheck(change.position, before, after, shift, interval, len(ids), f"rescored {len(ids)} anchor runs now")


def _score(deps: DriftDeps, task: TaskConfig, spec: JudgeSpec, anchors: list[RunView]) -> dict[str, float]:
    """Each anchor's score under one judge; anchors the judge could not read (an LLM failure) are left out."""
    contract = task.model_copy(update={"expect": spec.expect})
    complete = deps.complete if spec.judge.llm_weight > 0 else None
    out: dict[str, float] = {}
    for view in anchors:
        judged = judge_run(run_from_view(view), contract, spec.judge, complete, (), spec.rubric)
        if judged.llm_failure is None:
            out[view.run_id] = float(judged.score.score)
    return out


def explains(check: DriftCheck, drop: float, floor: float) -> bool:
    """The judge's shift accounts for the drop: what is left of it after the shift is under the noise floor."""
    return check.shift is not None and check.shift < 0 and drop + check.shift < max(floor, 1e-9)

"""A task's live scores in history order, with when each run started: the series an audit tests for a drop.

Read from the `runs` read model (`rm_scores` joined to `rm_runs`): verification and shadow runs are evidence,
not the task's quality, so they are left out as `status` leaves them out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from domain.runs import EVIDENCE_SOURCES
from domain.signatures import RunView
from projections.runs import runs_table, scores_table


@dataclass(frozen=True)
class ScorePoint:
    position: int  # the Scored event's place in the history
    at: str  # when the run started (ISO)
    score: float
    judge: str
    run_id: str


def score_series(conn: Connection, task: str, *, after: int = 0, upto: int | None = None) -> list[ScorePoint]:
    """Scores with after < position ≤ upto, oldest first."""
    s, r = scores_table.c, runs_table.c
    q = (select(s.notification_id, r.started, s.score, s.judge, s.run_id)
         .join(runs_table, r.run_id == s.run_id)
         .where(s.task == task, s.source.not_in(sorted(EVIDENCE_SOURCES)), r.source.not_in(sorted(EVIDENCE_SOURCES)),
                s.notification_id > after))
    if upto is not None:
        q = q.where(s.notification_id <= upto)
    rows = conn.execute(q.order_by(s.notification_id)).all()
    return [ScorePoint(int(p), str(at), float(score), str(judge), str(run)) for p, at, score, judge, run in rows]


def scored_tasks(conn: Connection) -> list[str]:
    s = scores_table.c
    rows = conn.execute(select(s.task).where(s.source.not_in(sorted(EVIDENCE_SOURCES))).distinct()).all()
    return sorted(str(r[0]) for r in rows)


def recent_runs(conn: Connection, task: str, *, upto: int | None, n: int) -> list[str]:
    """The last `n` live, scored run ids recorded at or before `upto`, oldest first."""
    s, r = scores_table.c, runs_table.c
    q = (select(r.run_id).join(scores_table, s.run_id == r.run_id)
         .where(r.task == task, r.source.not_in(sorted(EVIDENCE_SOURCES)), r.status == "ok"))
    if upto is not None:
        q = q.where(r.notification_id <= upto)
    rows = conn.execute(q.group_by(r.run_id, r.notification_id).order_by(r.notification_id.desc()).limit(n)).all()
    return [str(x[0]) for x in reversed(rows)]


def run_views(conn: Connection, read_blob: Callable[[str], str | None], task: str, run_ids: list[str]) -> list[RunView]:
    """Recorded runs with their output texts, in the order asked (ids not on record are left out)."""
    r = runs_table.c
    rows = {x.run_id: x for x in conn.execute(select(runs_table).where(r.task == task, r.run_id.in_(run_ids))).all()}
    out = []
    for rid in run_ids:
        x = rows.get(rid)
        if x is None:
            continue
        out.append(RunView(
            run_id=x.run_id, task=x.task, output=(read_blob(x.output_hash) or "") if x.output_hash else "",
            done_reason=x.done_reason, started=x.started, model=x.model, status=x.status,
            prompt_tokens=x.prompt_tokens, output_tokens=x.tokens, thinking_tokens=x.thinking_tokens,
            num_ctx=x.num_ctx, num_predict=x.num_predict, artifacts=tuple(x.artifacts or ()),
            context=(read_blob(x.context_hash) or "") if x.context_hash else ""))
    return out

"""Runs and scores, one row each: what `history TASK` shows and what the dataflow checks read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import JSON, Column, Float, Index, Integer, String, Table, func, select
from sqlalchemy.engine import Connection

from domain.aggregates import Task
from domain.runs import LIVE_SOURCES
from projections.runner import POSITION, Projection, metadata, upsert

runs_table = Table(
    "rm_runs",
    metadata,
    Column("run_id", String(200), primary_key=True),
    Column("task", String(200), nullable=False),
    Column("started", String(40), nullable=False),
    Column("model", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("done_reason", String(40), nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("tokens", Integer, nullable=False),  # output tokens
    Column("thinking_tokens", Integer, nullable=False),
    Column("num_ctx", Integer),
    Column("num_predict", Integer),
    Column("artifacts", JSON, nullable=False),  # paths written
    Column("context_hash", String(64)),  # the collector's output, in the blob store
    Column("blocks", Integer, nullable=False),
    Column("words", Integer, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("output_hash", String(64), nullable=False),
    Column("source", String(20), nullable=False),
    Column("cycle_id", String(200)),
    Column("error", String),
    Column("notification_id", POSITION, nullable=False),
    Index("rm_runs_task_idx", "task", "notification_id"),
)

scores_table = Table(
    "rm_scores",
    metadata,
    Column("run_id", String(200), primary_key=True),
    Column("judge", String(200), primary_key=True),
    Column("task", String(200), nullable=False),
    Column("score", Float, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("failing", JSON, nullable=False),  # names of the checks that did not pass
    Column("source", String(20), nullable=False),
    Column("notification_id", POSITION, nullable=False),
    Index("rm_scores_task_idx", "task", "notification_id"),
)

RAN: Any = Task.Ran
SCORED: Any = Task.Scored  # type: ignore[attr-defined]


def _int_option(options: dict[str, Any], name: str) -> int | None:
    value = options.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def failing_checks(checks: list[dict[str, Any]]) -> list[str]:
    return [str(c.get("name")) for c in checks if not c.get("passed", True)]


class RunsProjection(Projection):
    name: ClassVar[str] = "runs"
    tables: ClassVar = (runs_table, scores_table)
    handles: ClassVar = (RAN, SCORED)

    def __init__(self) -> None:
        self._runs: dict[str, dict[str, Any]] = {}
        self._scores: dict[tuple[str, str], dict[str, Any]] = {}

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        task = self.origins(event.originator_id).get("name", "?")
        if isinstance(event, RAN):
            self._runs[event.run_id] = {
                "run_id": event.run_id, "task": task, "started": event.started, "model": event.model,
                "status": event.status, "done_reason": event.done_reason, "prompt_tokens": event.prompt_tokens,
                "tokens": event.output_tokens, "thinking_tokens": event.thinking_tokens,
                "num_ctx": _int_option(event.options, "num_ctx"), "num_predict": _int_option(event.options, "num_predict"),
                "artifacts": sorted(event.artifacts), "context_hash": event.context_hash, "blocks": event.blocks,
                "words": event.output_words, "duration_s": event.duration_s,
                "output_hash": event.output_hash, "source": event.source, "cycle_id": event.cycle_id,
                "error": event.error, "notification_id": notification_id,
            }
        else:
            self._scores[(event.run_id, event.judge)] = {
                "run_id": event.run_id, "judge": event.judge, "task": task, "score": event.score,
                "reasons": list(event.reasons), "failing": failing_checks(event.checks),
                "source": getattr(event, "source", "judge"), "notification_id": notification_id,
            }

    def flush(self, conn: Connection) -> None:
        upsert(conn, runs_table, list(self._runs.values()), ["run_id"])
        upsert(conn, scores_table, list(self._scores.values()), ["run_id", "judge"])
        self.reset()

    def reset(self) -> None:
        self._runs.clear()
        self._scores.clear()


@dataclass(frozen=True)
class ScoreRow:
    run_id: str
    judge: str
    score: float
    reasons: tuple[str, ...]
    failing: tuple[str, ...]
    notification_id: int


@dataclass(frozen=True)
class RunRow:
    run_id: str
    task: str
    started: str
    model: str
    status: str
    done_reason: str
    tokens: int
    words: int
    duration_s: float
    output_hash: str
    source: str
    cycle_id: str | None
    notification_id: int
    scores: tuple[ScoreRow, ...]

    @property
    def score(self) -> float | None:
        """The latest score this run got, from any judge."""
        return self.scores[-1].score if self.scores else None


def task_history(conn: Connection, task: str, limit: int = 20, *, cycle: str | None = None,
                 live_only: bool = True) -> list[RunRow]:
    """The task's last `limit` runs, newest first, each with its scores (oldest first): live runs, or every run
    (shadow and verification runs too) when not `live_only`, or the arm runs of one `cycle`."""
    r = runs_table.c
    query = select(runs_table).where(r.task == task)
    if cycle is not None:
        query = query.where(r.cycle_id == cycle)
    elif live_only:
        query = query.where(r.source.in_(sorted(LIVE_SOURCES)))
    rows = conn.execute(query.order_by(r.notification_id.desc()).limit(limit)).all()
    if not rows:
        return []
    s = scores_table.c
    by_run: dict[str, list[ScoreRow]] = {}
    for sr in conn.execute(select(scores_table).where(s.task == task, s.run_id.in_([x.run_id for x in rows]))
                           .order_by(s.notification_id)).all():
        by_run.setdefault(sr.run_id, []).append(ScoreRow(
            run_id=sr.run_id, judge=sr.judge, score=sr.score, reasons=tuple(sr.reasons),
            failing=tuple(sr.failing), notification_id=sr.notification_id))
    return [RunRow(run_id=x.run_id, task=x.task, started=x.started, model=x.model, status=x.status,
                   done_reason=x.done_reason, tokens=x.tokens, words=x.words, duration_s=x.duration_s,
                   output_hash=x.output_hash, source=x.source, cycle_id=x.cycle_id,
                   notification_id=x.notification_id, scores=tuple(by_run.get(x.run_id, ())))
            for x in rows]


def scored_runs(conn: Connection) -> list[tuple[str, float, str]]:
    """(task, score, the run's start time as recorded) of every score: what weekly comparisons bucket by date."""
    s, r = scores_table.c, runs_table.c
    rows = conn.execute(select(s.task, s.score, r.started).join(runs_table, r.run_id == s.run_id)).all()
    return [(task, float(score), started) for task, score, started in rows]


def last_started(conn: Connection, source: str) -> dict[str, str]:
    """task -> the start time (as recorded) of its newest run from `source`: when the schedule last ran it."""
    r = runs_table.c
    rows = conn.execute(select(r.task, func.max(r.started)).where(r.source == source).group_by(r.task)).all()
    return {task: started for task, started in rows}

"""Task quality: the `status` table — last score, rolling mean, trend, failing checks, worst first.

One row per task, updated in place. The row keeps the last 2×`rolling` scores so the rolling mean and
the trend (this window's mean minus the previous window's) fold in O(1) per event.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import JSON, Column, Float, Index, Integer, String, Table, case, select
from sqlalchemy.engine import Connection

from domain.aggregates import Task
from domain.quality import TaskQuality, quality_of
from domain.runs import EVIDENCE_SOURCES, LIVE_SOURCES
from projections.runner import POSITION, Projection, metadata, upsert
from projections.runs import RunRow, failing_checks, task_history

__all__ = ["QualityProjection", "RunRow", "quality_table", "task_history", "task_quality"]

quality_table_rm = Table(
    "rm_task_quality",
    metadata,
    Column("task", String(200), primary_key=True),
    Column("runs", Integer, nullable=False),
    Column("scored_runs", Integer, nullable=False),  # scores recorded (a run scored by two judges counts twice)
    Column("last_score", Float),
    Column("rolling_mean", Float),
    Column("trend", Float),
    Column("last_run_at", String(40)),
    Column("last_status", String(20)),
    Column("last_done_reason", String(40)),
    Column("failing_checks", JSON, nullable=False),
    Column("last_reasons", JSON, nullable=False),
    Column("recent", JSON, nullable=False),  # the last 2×rolling scores, oldest first
    Column("updated_at", String(40)),
    Column("notification_id", POSITION, nullable=False),
    Index("rm_task_quality_mean_idx", "rolling_mean"),
)

REGISTERED: Any = Task.Registered  # type: ignore[attr-defined]
SCORED: Any = Task.Scored  # type: ignore[attr-defined]
RAN: Any = Task.Ran


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


class QualityProjection(Projection):
    name: ClassVar[str] = "quality"
    tables: ClassVar = (quality_table_rm,)
    handles: ClassVar = (REGISTERED, RAN, SCORED)
    version: ClassVar[int] = 2  # 2: shadow and verification runs no longer count

    def __init__(self, rolling: int = 5) -> None:
        self.rolling = rolling
        self._rows: dict[str, dict[str, Any]] = {}

    def _row(self, conn: Connection, task: str) -> dict[str, Any]:
        row = self._rows.get(task)
        if row is None:
            found = conn.execute(select(quality_table_rm).where(quality_table_rm.c.task == task)).first()
            row = dict(found._mapping) if found is not None else {
                "task": task, "runs": 0, "scored_runs": 0, "last_score": None, "rolling_mean": None,
                "trend": None, "last_run_at": None, "last_status": None, "last_done_reason": None,
                "failing_checks": [], "last_reasons": [], "recent": [], "updated_at": None, "notification_id": 0,
            }
            self._rows[task] = row
        return row

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        if isinstance(event, RAN) and event.source not in LIVE_SOURCES:
            return  # a shadow or verification run: evidence for a decision, not the task's quality
        if isinstance(event, SCORED) and getattr(event, "source", "judge") in EVIDENCE_SOURCES:
            return
        if isinstance(event, REGISTERED):
            self.origins.remember(event.originator_id, {"name": event.name})
            task = event.name
        else:
            task = self.origins(event.originator_id).get("name", "?")
        row = self._row(conn, task)
        row["notification_id"] = notification_id
        row["updated_at"] = event.timestamp.isoformat()
        if isinstance(event, RAN):
            row["runs"] += 1
            row["last_run_at"] = event.started
            row["last_status"] = event.status
            row["last_done_reason"] = event.done_reason
        elif isinstance(event, SCORED):
            recent = [*row["recent"], float(event.score)][-2 * self.rolling:]
            window, previous = recent[-self.rolling:], recent[:-self.rolling]
            row["recent"] = recent
            row["scored_runs"] += 1
            row["last_score"] = float(event.score)
            row["rolling_mean"] = _mean(window)
            prev = _mean(previous)
            row["trend"] = None if prev is None else (row["rolling_mean"] or 0.0) - prev
            row["failing_checks"] = failing_checks(event.checks)
            row["last_reasons"] = list(event.reasons)

    def flush(self, conn: Connection) -> None:
        upsert(conn, quality_table_rm, list(self._rows.values()), ["task"])
        self.reset()

    def reset(self) -> None:
        self._rows.clear()


def quality_table(conn: Connection) -> list[TaskQuality]:
    """Every task, worst first: lowest rolling mean, then lowest last score; never-scored tasks last."""
    q = quality_table_rm.c
    unscored_last = case((q.rolling_mean.is_(None), 1), else_=0)
    rows = conn.execute(select(quality_table_rm).order_by(unscored_last, q.rolling_mean, q.last_score, q.task)).all()
    return [quality_of(r._mapping) for r in rows]


def task_quality(conn: Connection, task: str) -> TaskQuality | None:
    row = conn.execute(select(quality_table_rm).where(quality_table_rm.c.task == task)).first()
    return None if row is None else quality_of(row._mapping)

"""Events a read model could not fold: skipped, so every other event still counts, and kept here so that
`status` can say so and `doctor` can show which ones and why.

A row per (projection, notification): the event's topic and aggregate, and the error in one line. Rows of a
projection are dropped when it is rebuilt (a fixed autovault may fold them now; a still-broken one is
recorded again).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

metadata = MetaData()

problems_table = Table(
    "rm_problems",
    metadata,
    Column("projection", String(64), primary_key=True),
    Column("notification_id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("topic", String(300), nullable=False),
    Column("originator_id", String(64), nullable=False),
    Column("originator_version", Integer, nullable=False),
    Column("error", String(500), nullable=False),
    Column("recorded_at", String(40), nullable=False),
)


@dataclass(frozen=True)
class FoldProblem:
    projection: str
    notification_id: int
    topic: str
    originator_id: str
    originator_version: int
    error: str
    recorded_at: str

    @property
    def event(self) -> str:
        """The event's class name, e.g. `Task.Ran`."""
        return self.topic.rpartition(":")[2] or self.topic


def one_line(exc: BaseException, limit: int = 480) -> str:
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


def record_problem(conn: Connection, projection: str, notification: Any, exc: BaseException) -> FoldProblem:
    problem = FoldProblem(projection, int(notification.id), str(notification.topic)[:300],
                          str(notification.originator_id), int(notification.originator_version), one_line(exc),
                          dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(problems_table).values(**asdict(problem))
    conn.execute(stmt.on_conflict_do_update(index_elements=["projection", "notification_id"],
                                            set_={"error": stmt.excluded.error, "recorded_at": stmt.excluded.recorded_at}))
    return problem


def forget_problems(conn: Connection, projections: Sequence[str]) -> None:
    conn.execute(delete(problems_table).where(problems_table.c.projection.in_(list(projections))))


def fold_problems(conn: Connection, limit: int = 1000) -> list[FoldProblem]:
    """The most recent problems first."""
    rows = conn.execute(select(problems_table).order_by(problems_table.c.notification_id.desc(),
                                                        problems_table.c.projection).limit(limit)).mappings().all()
    return [FoldProblem(str(r["projection"]), int(r["notification_id"]), str(r["topic"]), str(r["originator_id"]),
                        int(r["originator_version"]), str(r["error"]), str(r["recorded_at"])) for r in rows]


def problem_count(conn: Connection) -> int:
    """Distinct events that some read model skipped."""
    return int(conn.execute(select(func.count(func.distinct(problems_table.c.notification_id)))).scalar() or 0)

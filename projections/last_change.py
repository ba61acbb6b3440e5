"""The last change on record, as read models: the newest recorded content of every changed path, and per task
the last change a cycle on that task itself made to one of its files.

The daemon asks the first on every file event (is this content already on record — a cycle's apply, or our own
`Changed` written just before a crash?); diagnosis asks the second (runs before the task's last own keep ran on
files that are gone, so their signatures are stale). Both used to scan the history; folded here, each answer is
one indexed row. `LastChangeQuery` folds what is new before it answers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import Column, String, Table, select
from sqlalchemy.engine import Connection

from domain import ids
from domain.aggregates import Task
from projections.runner import POSITION, CaughtUpQuery, Projection, metadata, upsert

paths_table = Table(
    "rm_last_changes",
    metadata,
    Column("path", String, primary_key=True),
    Column("after_hash", String(64)),  # None: deleted
    Column("position", POSITION, nullable=False),
)
own_keeps_table = Table(
    "rm_own_keeps",
    metadata,
    Column("task", String, primary_key=True),
    Column("at", String(40), nullable=False),  # ISO, UTC: when the Changed was recorded
    Column("cycle", String, nullable=False),
    Column("position", POSITION, nullable=False),
)

CHANGED: Any = Task.Changed  # type: ignore[attr-defined]


class LastChangeProjection(Projection):
    name: ClassVar[str] = "last_change"
    tables: ClassVar = (paths_table, own_keeps_table)
    handles: ClassVar = (CHANGED,)

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        upsert(conn, paths_table, [{"path": event.path, "after_hash": event.after_hash,
                                    "position": notification_id}], ["path"])
        if event.by != "cycle" or not event.cycle_id:
            return
        task = self.origins(event.originator_id).get("name")
        if task is not None and self.origins(ids.cycle_id(event.cycle_id)).get("task") == task:
            upsert(conn, own_keeps_table, [{"task": task, "at": event.timestamp.isoformat(),
                                            "cycle": str(event.cycle_id), "position": notification_id}], ["task"])


def recorded(conn: Connection, path: str, sha256: str | None) -> bool:
    """Is `sha256` the newest content on record for `path`?"""
    c = paths_table.c
    found = conn.execute(select(c.after_hash).where(c.path == path)).first()
    return found is not None and found.after_hash == sha256


def last_own_keep(conn: Connection, task: str) -> tuple[dt.datetime, str] | None:
    c = own_keeps_table.c
    found = conn.execute(select(c.at, c.cycle).where(c.task == task)).first()
    return None if found is None else (dt.datetime.fromisoformat(found.at), str(found.cycle))


class LastChangeQuery(CaughtUpQuery):
    """The read model behind `handlers.history.LastChanges`: folds what is new (`catch_up`), then answers."""

    def recorded(self, path: str, sha256: str | None) -> bool:
        return bool(self._read(lambda conn: recorded(conn, path, sha256)))

    def last_own_keep(self, task: str) -> tuple[dt.datetime, str] | None:
        """(when, cycle key) of the last change a cycle on `task` itself made to one of its files."""
        result: tuple[dt.datetime, str] | None = self._read(lambda conn: last_own_keep(conn, task))
        return result

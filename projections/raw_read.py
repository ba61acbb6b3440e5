"""The read models `status` needs, read through a plain DB-API connection (sqlite3 or psycopg), without SQLAlchemy.

What `daemon.read_models` checks with SQLAlchemy — the newest event, every read model's position and table
shape, the config on record, the skipped events — and `projections.quality.quality_table`, as plain SQL, for
`daemon.quick_status`. The tables are the ones `projections.runner`, `projections.config_record`,
`projections.problems` and `projections.quality` define; tests/test_quick_status.py holds both readers to the
same names and the same answers on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from domain.quality import TaskQuality, quality_of

EVENTS: Final = "autovault_events"
TRACKING: Final = "rm_tracking"
CONFIG_RECORD: Final = "rm_config_record"
PROBLEMS: Final = "rm_problems"
QUALITY: Final = "rm_task_quality"
QUALITY_COLUMNS: Final = ("task", "runs", "scored_runs", "last_score", "rolling_mean", "trend", "last_run_at",
                          "last_status", "last_done_reason", "failing_checks", "last_reasons", "updated_at",
                          "notification_id")
_JSON_COLUMNS: Final = frozenset({"failing_checks", "last_reasons"})
# quality_table's order: lowest rolling mean, then lowest last score; never-scored tasks last
_WORST_FIRST: Final = "CASE WHEN rolling_mean IS NULL THEN 1 ELSE 0 END, rolling_mean, last_score, task"


def last_position(cur: Any) -> int:
    cur.execute(f"SELECT MAX(id) FROM {EVENTS}")
    return int(cur.fetchone()[0] or 0)


def caught_up(cur: Any, fingerprints: Mapping[str, str], last: int) -> bool:
    """Has every read model (name → table-shape fingerprint) folded event `last`, with that shape?"""
    cur.execute(f"SELECT projection, notification_id, schema FROM {TRACKING}")
    return folded(cur.fetchall(), fingerprints, last)


def folded(tracked: Iterable[Any], fingerprints: Mapping[str, str], last: int) -> bool:
    """Given the tracking rows (name, position, fingerprint): is every read model at `last` with its shape?"""
    rows = {str(name): (int(position), str(schema)) for name, position, schema in tracked}
    return all(name in rows and rows[name][0] >= last and rows[name][1] == fp for name, fp in fingerprints.items())


def on_record(cur: Any, subjects: Mapping[str, str]) -> bool:
    """Does every subject's hash match the one on record?"""
    cur.execute(f"SELECT subject, hash FROM {CONFIG_RECORD}")
    found = {str(s): str(h) for s, h in cur.fetchall() if s in subjects}
    return found == dict(subjects)


def problem_count(cur: Any) -> int:
    cur.execute(f"SELECT COUNT(DISTINCT notification_id) FROM {PROBLEMS}")
    return int(cur.fetchone()[0] or 0)


def quality_rows(cur: Any) -> list[TaskQuality]:
    """Every task, worst first, as `projections.quality.quality_table` orders them."""
    cur.execute(f"SELECT {', '.join(QUALITY_COLUMNS)} FROM {QUALITY} ORDER BY {_WORST_FIRST}")
    return [quality_of({c: _decoded(c, v) for c, v in zip(QUALITY_COLUMNS, row, strict=True)})
            for row in cur.fetchall()]


def _decoded(column: str, value: Any) -> Any:
    """A JSON column comes back as text from SQLite and already decoded from PostgreSQL."""
    return json.loads(value) if column in _JSON_COLUMNS and isinstance(value, str | bytes) else value

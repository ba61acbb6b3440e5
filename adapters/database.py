"""The event store's database on its own: the URL resolved, an engine with the store's SQLite settings, the last
position in the history.

`adapters.eventstore.VaultStore` (the write side, an eventsourcing Application) uses the same URL rules and
pragmas; a command that only reads the read models opens this instead, without loading the library's persistence
stack (`daemon.reading`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import column, create_engine, event, func, inspect, select, table
from sqlalchemy.engine import Engine, make_url

from adapters.config_env import DEFAULT_STORE

EVENTS_TABLE = "autovault_events"  # the application's name ("autovault") + "_events": the library's naming


def prepare_url(url: str | None) -> str:
    """Resolve a SQLite file URL to an absolute path and create its folder; a bare `postgresql://` URL
    gets the installed driver (psycopg 3); other URLs pass through."""
    try:
        parsed = make_url(url or DEFAULT_STORE)
    except Exception:
        raise ValueError(f"store: {url!r} is not a database URL — fix: use sqlite:///path/to/events.db "
                         "or postgresql+psycopg://user@host:5432/db") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return parsed.render_as_string(hide_password=False)
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise ValueError(f"store: {url!r} is not a SQLite file — fix: use sqlite:///path/to/events.db")
    path = Path(database).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return parsed.set(database=str(path)).render_as_string(hide_password=False)


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes, one fsync per checkpoint
    cursor.execute("PRAGMA busy_timeout=30000")  # another process holding the write lock: wait, don't fail
    cursor.close()


def open_engine(url: str | None) -> Engine:
    """An engine on the store's database, with the pragmas the event store sets on SQLite."""
    engine = create_engine(prepare_url(url))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", sqlite_pragmas)
    return engine


def last_position(engine: Engine) -> int | None:
    """The newest event's position; None when the store has no event table yet (never opened for writing)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(EVENTS_TABLE):
            return None
        found = conn.execute(select(func.max(table(EVENTS_TABLE, column("id")).c.id))).scalar()
    return int(found or 0)

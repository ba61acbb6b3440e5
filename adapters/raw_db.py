"""The store's database through its bare DB-API driver: sqlite3 read-only, or psycopg — for a quick read
(`daemon.quick_status`) that must not pay for importing SQLAlchemy.

`connect_info` turns a store URL, as `adapters.database.prepare_url` resolved it, into what `connect` takes; it
refuses a URL with a password in it, so that what it returns may be kept in a cache file.
"""

from __future__ import annotations

import contextlib
import sqlite3
import urllib.parse
from collections.abc import Iterator
from typing import Any, Final

BUSY_TIMEOUT_S: Final = 30.0  # as the store's `PRAGMA busy_timeout`: a writer holding the lock is waited for
_POSTGRES: Final = ("postgresql", "postgres", "postgresql+psycopg")


def connect_info(prepared_url: str) -> dict[str, str] | None:
    """{"sqlite": absolute path} or {"postgresql": libpq URI}; None for a URL this cannot open or should not keep."""
    scheme, sep, rest = prepared_url.partition("://")
    if not sep:
        return None
    if scheme == "sqlite":
        path, _, query = rest.removeprefix("/").partition("?")
        return {"sqlite": path} if path.startswith("/") and not query else None
    if scheme in _POSTGRES:
        authority, _, path = rest.partition("/")
        if ":" in authority.rpartition("@")[0] or "password" in path.partition("?")[2].lower():
            return None  # a password: never written to a cache
        return {"postgresql": f"postgresql://{rest}"}
    return None


@contextlib.contextmanager
def connect(info: dict[str, str]) -> Iterator[Any]:
    """A DB-API cursor on the database `info` names; read-only on SQLite (a missing file is an error, not a new
    database)."""
    if "sqlite" in info:
        uri = f"file:{urllib.parse.quote(info['sqlite'])}?mode=ro"
        conn: Any = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
    else:
        import psycopg

        conn = psycopg.connect(info["postgresql"], autocommit=True)
    try:
        cur = conn.cursor()
        try:
            yield cur
        finally:
            cur.close()
    finally:
        conn.close()

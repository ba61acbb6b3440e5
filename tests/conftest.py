"""Shared fixtures: a real SQLite file per test, a fresh PostgreSQL schema per test.

`pg_url` uses AUTOVAULT_TEST_PG_URL (default postgresql+psycopg://root@127.0.0.1:5432/test), creates a
schema for the test and points the URL's search_path at it, so every table a test makes (events,
blobs, read models) lands there and is dropped afterwards. It skips only when AUTOVAULT_SKIP_PG=1; a
server that does not answer is a failure, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_DEFAULT = "postgresql+psycopg://root@127.0.0.1:5432/test"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file URL in a folder that does not exist yet (the store creates it)."""
    return f"sqlite:///{tmp_path / 'store' / 'events.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    if os.environ.get("AUTOVAULT_SKIP_PG") == "1":
        pytest.skip("AUTOVAULT_SKIP_PG=1")
    base = os.environ.get("AUTOVAULT_TEST_PG_URL", PG_DEFAULT)
    schema = f"t_{uuid4().hex[:16]}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        with admin.begin() as conn:
            conn.execute(text("SET lock_timeout = '20s'"))
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """The same test on a SQLite file and on PostgreSQL."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """The CLI configures structlog globally; tests that run it must not change what later tests capture."""
    yield
    import structlog

    structlog.reset_defaults()


@pytest.fixture(autouse=True, scope="session")
def _own_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The stamps `status` leaves (daemon.read_stamp) go to a folder of this run, never the user's ~/.cache."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before

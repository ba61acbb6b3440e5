"""Content-addressed blobs (outputs, contexts, diffs) in the event store's own database.

Events carry only the sha256; the text lives here once, however many events point at it. Writes are
idempotent (`INSERT … ON CONFLICT DO NOTHING`), so a retried command or a re-ingested log adds nothing.
Blobs are written before the events that name them: a crash in between leaves an unreferenced blob,
never an event whose blob is missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, MetaData, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from domain.ids import sha256_bytes

metadata = MetaData()

blobs_table = Table(
    "autovault_blobs",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("size", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
    Column("data", LargeBinary(), nullable=False),
)

_CHUNK = 500  # rows per INSERT statement: well under SQLite's bound-parameter limit


def _as_bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


class BlobStore:
    """put/get by sha256 over any SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine, checkfirst=True)

    def put(self, data: str | bytes) -> str:
        """Store `data` (text is UTF-8) and return its sha256 hex digest."""
        return self.put_many([data])[0]

    def put_many(self, items: Iterable[str | bytes]) -> list[str]:
        """Store many blobs in one transaction; returns their hashes in input order."""
        hashes: list[str] = []
        rows: dict[str, dict[str, Any]] = {}
        for item in items:
            data = _as_bytes(item)
            digest = sha256_bytes(data)
            hashes.append(digest)
            rows.setdefault(digest, {"hash": digest, "size": len(data), "data": data})
        if rows:
            values = list(rows.values())
            with self.engine.begin() as conn:
                for start in range(0, len(values), _CHUNK):
                    conn.execute(self._insert_ignoring_duplicates(), values[start:start + _CHUNK])
        return hashes

    def get(self, digest: str) -> bytes | None:
        """The bytes stored under `digest`, or None when there are none."""
        with self.engine.connect() as conn:
            row = conn.execute(select(blobs_table.c.data).where(blobs_table.c.hash == digest)).first()
        return None if row is None else bytes(row[0])

    def get_text(self, digest: str) -> str | None:
        data = self.get(digest)
        return None if data is None else data.decode("utf-8")

    def has(self, digest: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(blobs_table.c.hash).where(blobs_table.c.hash == digest)).first() is not None

    def _insert_ignoring_duplicates(self) -> Any:
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(blobs_table).on_conflict_do_nothing(index_elements=["hash"])
        if self.engine.dialect.name == "sqlite":
            return sqlite.insert(blobs_table).on_conflict_do_nothing(index_elements=["hash"])
        raise NotImplementedError(f"blob store: database {self.engine.dialect.name!r} is not supported — use SQLite or PostgreSQL")

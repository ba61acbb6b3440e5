"""What the daemon last saw of each watched file, kept in the store's database so a restart resumes.

`autovault_watch_files`: per editable file, the sha256 and the blob (in the store's blob table) of the text
last recorded — the "before" of the next human edit's diff, and how edits made while the daemon was down
are found at start. `autovault_log_offsets`: per heartbeat log, the byte offset and line number after the
last complete line ingested (and the inode, so a rotated file starts again at 0). Both are written *after*
the events they summarise: a crash in between repeats work that is idempotent (ingest dedups; a Changed
whose after-hash is already on record is not recorded again), so nothing is lost or duplicated.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, delete, insert, select
from sqlalchemy.engine import Engine

metadata = MetaData()

files_table = Table(
    "autovault_watch_files",
    metadata,
    Column("path", String(1000), primary_key=True),  # absolute
    Column("sha256", String(64), nullable=False),
    Column("blob", String(64)),  # the text in the blob table (None: too large or binary)
)

offsets_table = Table(
    "autovault_log_offsets",
    metadata,
    Column("path", String(1000), primary_key=True),
    Column("inode", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
    Column("offset", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
    Column("line", Integer, nullable=False),
)


@dataclass(frozen=True)
class Seen:
    sha256: str
    blob: str | None


@dataclass(frozen=True)
class Offset:
    inode: int
    offset: int
    line: int


class WatchState:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)

    def files(self) -> dict[str, Seen]:
        with self.engine.connect() as conn:
            return {r.path: Seen(r.sha256, r.blob) for r in conn.execute(select(files_table))}

    def set_file(self, path: str, seen: Seen | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(files_table).where(files_table.c.path == path))
            if seen is not None:
                conn.execute(insert(files_table).values(path=path, sha256=seen.sha256, blob=seen.blob))

    def offsets(self) -> dict[str, Offset]:
        with self.engine.connect() as conn:
            return {r.path: Offset(r.inode, r.offset, r.line) for r in conn.execute(select(offsets_table))}

    def set_offset(self, path: str, at: Offset) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(offsets_table).where(offsets_table.c.path == path))
            conn.execute(insert(offsets_table).values(path=path, inode=at.inode, offset=at.offset, line=at.line))

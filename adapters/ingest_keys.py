"""The ingest dedup key: one row per fact that came from outside autovault — (task, run_id) for a run,
(task, "score:<run_id>:<judge>") for a score — with a fingerprint of what it said.

The rows are written in the same transaction as the events they guard (`adapters.eventstore`), first thing in it:
the primary key makes a second writer of the same key wait for the first, then find it taken, so a log line is
recorded once however many ingests race. A key taken with another fingerprint is a conflict (reported; the first
record stays). Unlike the map the Task aggregate used to carry, nothing here is loaded to record a run.

Stores written before this table existed kept that map on the aggregate (in `Ran`/`Scored` events with source
`log`): the first ingest after the upgrade fills the table from the history, once, under the lock its marker row
takes — an ingest racing it waits for the marker, so it never misses a key the history holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from domain.aggregates import Task, run_fingerprint, score_fingerprint, score_key

metadata = MetaData()
ingested_table = Table(
    "autovault_ingested",
    metadata,
    Column("task", String(200), primary_key=True),
    Column("key", String(600), primary_key=True),
    Column("fingerprint", String(16), nullable=False),
)
MARKER = {"task": "", "key": "", "fingerprint": "filled"}  # no task is named "": the history is in the table
CHUNK = 500

NEW, DUPLICATE, CONFLICT = "new", "duplicate", "conflict"
REGISTERED: Any = Task.Registered  # type: ignore[attr-defined]
SCORED: Any = Task.Scored  # type: ignore[attr-defined]
HISTORY_EVENTS = (REGISTERED, Task.Ran, SCORED)  # what `history_claims` reads


@dataclass(frozen=True)
class Claim:
    task: str
    key: str
    fingerprint: str


def history_claims(events: Iterable[Any]) -> Iterator[Claim]:
    """The claims made by the ingested runs and scores among `events` (Task.Registered, Task.Ran, Task.Scored in
    history order: a task's Registered names it before its runs)."""
    names: dict[Any, str] = {}
    for ev in events:
        if isinstance(ev, REGISTERED):
            names.setdefault(ev.originator_id, ev.name)
            continue
        task = names.get(ev.originator_id)
        if task is None or getattr(ev, "source", None) != "log":
            continue
        if isinstance(ev, Task.Ran):
            yield Claim(task, ev.run_id, run_fingerprint(ev.__dict__))
        elif isinstance(ev, SCORED):
            yield Claim(task, score_key(ev.run_id, ev.judge), score_fingerprint(ev.score, list(ev.reasons)))


def _insert(session: Session) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(ingested_table).on_conflict_do_nothing(index_elements=["task", "key"])


class IngestKeys:
    """The `autovault_ingested` table of one store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ready = False

    def ensure(self, transaction: Callable[[], Any], history: Callable[[], Iterable[Claim]]) -> None:
        """Create the table, and fill it from `history` when no process did yet (once per store object).

        `transaction()` is the store's write transaction (a context manager giving a Session); `history()` yields
        the claims recorded events made, read in that transaction (the store's reads join the transaction open in
        this thread), while it is open."""
        if self._ready:
            return
        try:
            metadata.create_all(self.engine, checkfirst=True)
        except (OperationalError, ProgrammingError, SAIntegrityError):  # another process created it just now
            metadata.create_all(self.engine, checkfirst=True)
        with transaction() as session:
            if session.execute(_insert(session), [MARKER]).rowcount:  # first: the write lock / the marker's row lock
                self._put(session, history())
        self._ready = True

    def claim(self, session: Session, claims: Sequence[Claim]) -> list[str]:
        """Take the keys of `claims` in `session`'s transaction; per claim NEW, DUPLICATE (recorded before, or
        earlier in `claims`, with the same content) or CONFLICT (with other content)."""
        first: dict[tuple[str, str], Claim] = {}
        for c in claims:
            first.setdefault((c.task, c.key), c)
        taken = self._put(session, first.values())
        stored = self._fingerprints(session, [k for k in first if k not in taken])
        out: list[str] = []
        seen: set[tuple[str, str]] = set()
        for c in claims:
            k = (c.task, c.key)
            if k in taken and k not in seen:
                out.append(NEW)
            else:
                known = first[k].fingerprint if k in taken else stored.get(k, c.fingerprint)
                out.append(DUPLICATE if known == c.fingerprint else CONFLICT)
            seen.add(k)
        return out

    def recorded(self, task: str, key: str) -> str | None:
        """The fingerprint `key` was ingested with for `task` (None: never)."""
        with self.engine.connect() as conn:
            found = conn.execute(select(ingested_table.c.fingerprint).where(
                ingested_table.c.task == task, ingested_table.c.key == key)).scalar()
        return None if found is None else str(found)

    def _put(self, session: Session, claims: Iterable[Claim]) -> set[tuple[str, str]]:
        """Insert the claims in key order (two writers lock keys in one order: no deadlock); the keys inserted."""
        rows = sorted(({"task": c.task, "key": c.key, "fingerprint": c.fingerprint} for c in claims),
                      key=lambda r: (r["task"], r["key"]))
        done: set[tuple[str, str]] = set()
        c = ingested_table.c
        for start in range(0, len(rows), CHUNK):
            result = session.execute(_insert(session).returning(c.task, c.key), rows[start:start + CHUNK])
            done.update((str(t), str(k)) for t, k in result)
        return done

    def _fingerprints(self, session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        c = ingested_table.c
        for start in range(0, len(keys), CHUNK):
            rows = session.execute(select(c.task, c.key, c.fingerprint)
                                   .where(tuple_(c.task, c.key).in_(keys[start:start + CHUNK]))).all()
            out.update({(str(t), str(k)): str(f) for t, k, f in rows})
        return out

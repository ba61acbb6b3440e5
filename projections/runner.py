"""Fold new events into SQL read models, exactly once, on SQLite and PostgreSQL alike.

The library's ProjectionRunner needs `recorder.subscribe()`, which SQLite lacks, so this is a polling
runner. Each batch is ONE SQLAlchemy transaction that

1. claims the tracking rows (`UPDATE rm_tracking …`: a write lock on SQLite, a row lock on PostgreSQL,
   so a second runner on the same database waits instead of folding the same events twice),
2. reads the positions, selects the next notifications after the lowest one, and hands each event to
   every projection that handles its topic and has not seen it,
3. lets each projection flush what it buffered, and advances the tracking rows.

A crash anywhere rolls the whole batch back, so nothing is applied twice; a restart resumes at the
tracking position. Read-model tables live in the store's database under the `rm_` prefix.

One event a projection cannot fold (a value an older version let in, an event it cannot decode) must not
stop every later one: a failed batch is halved until the event is alone, then each projection folds it on
its own; the one that still fails skips it, and the event and the error go to `rm_problems`
(`projections.problems`: `status` counts them, `doctor` lists them). Errors of the database itself
(connection lost, locked) are not an event's fault: they are raised, and the batch is retried later.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Protocol
from uuid import UUID

import structlog
from eventsourcing.application import EventStore
from eventsourcing.persistence import ApplicationRecorder, Mapper
from eventsourcing.utils import get_topic
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, inspect, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from projections import problems


class EventSource(Protocol):
    """What the runner reads from the event store (an eventsourcing Application: `adapters.eventstore`)."""

    engine: Engine
    events: EventStore[UUID]
    recorder: ApplicationRecorder
    mapper: Mapper[UUID]

    def max_notification_id(self) -> int: ...

metadata = MetaData()  # every read model's tables, so one create_all makes them
POSITION = BigInteger().with_variant(Integer(), "sqlite")  # a notification id (SQLite: its 64-bit INTEGER)
log = structlog.get_logger("autovault.projections")
# The database failing, not the event: never a reason to skip one.
TRANSIENT: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout,
                                             MemoryError)

tracking_table = Table(
    "rm_tracking",
    metadata,
    Column("projection", String(64), primary_key=True),
    Column("notification_id", POSITION, nullable=False),
    Column("schema", String(64), nullable=False, server_default=""),  # fingerprint of the read model's tables
)


def schema_fingerprint(projection: Projection) -> str:
    """Changes when a read model's tables or its `version` change: the runner then rebuilds it from events,
    so an upgraded autovault never reads an old table shape."""
    parts = [str(projection.version)]
    for table in projection.tables:
        cols = ",".join(f"{c.name}:{c.type!r}:{c.nullable}:{c.primary_key}" for c in table.columns)
        parts.append(f"{table.name}({cols})")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


class Origins:
    """The creation event of an aggregate, by id: gives a task's name or a cycle's key and task.

    Later events carry only the aggregate id; the first event names it. Read once per id from the
    event store (not from a read model), so every projection can rebuild on its own.
    """

    def __init__(self, store: EventSource) -> None:
        self.store = store
        self._cache: dict[UUID, dict[str, Any]] = {}

    def __call__(self, originator_id: UUID) -> dict[str, Any]:
        found = self._cache.get(originator_id)
        if found is None:
            first = self.store.events.get(originator_id, lte=1)
            found = {}
            for ev in first:
                found = {k: v for k, v in ev.__dict__.items() if isinstance(v, (str, int, float, type(None)))}
            self._cache[originator_id] = found
        return found

    def remember(self, originator_id: UUID, fields: dict[str, Any]) -> None:
        self._cache.setdefault(originator_id, fields)


class Projection:
    """A read model: its tables, the event classes it folds, and how.

    `apply` runs inside the batch transaction; buffer rows and write them in `flush` to keep per-event
    work cheap. `reset` forgets buffered state (the batch rolled back or the model is rebuilt).
    """

    name: ClassVar[str]
    tables: ClassVar[Sequence[Table]]
    handles: ClassVar[Sequence[type | str]]
    version: ClassVar[int] = 1  # bump when `apply` changes meaning: the read model is rebuilt on start
    origins: Origins

    def bind(self, origins: Origins) -> None:
        self.origins = origins

    def topics(self) -> set[str]:
        """`handles` may name event classes or topic strings."""
        return {h if isinstance(h, str) else get_topic(h) for h in self.handles}

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        raise NotImplementedError

    def flush(self, conn: Connection) -> None:
        """Write what `apply` buffered; called once per batch, inside its transaction."""

    def reset(self) -> None:
        """Drop buffered state."""


class CaughtUpQuery:
    """A read model's questions: each folds what is new (`catch_up`), then answers from the tables."""

    def __init__(self, engine: Engine, catch_up: Callable[[], object]) -> None:
        self.engine = engine
        self._catch_up = catch_up
        self._lock = threading.Lock()  # one fold at a time from this process's threads

    def _read(self, query: Callable[[Connection], Any]) -> Any:
        with self._lock:
            self._catch_up()
        with self.engine.connect() as conn:
            return query(conn)


class ProjectionRunner:
    """Polls the store's notifications and folds them into the registered projections."""

    def __init__(self, store: EventSource, projections: Iterable[Projection], batch_size: int = 2000) -> None:
        self.store = store
        self.engine: Engine = store.engine
        self.projections = {p.name: p for p in projections}
        self.batch_size = batch_size
        origins = Origins(store)
        self._topics: dict[str, list[Projection]] = {}
        for p in self.projections.values():
            p.bind(origins)
            for topic in p.topics():
                self._topics.setdefault(topic, []).append(p)
        metadata.create_all(self.engine, checkfirst=True)
        problems.metadata.create_all(self.engine, checkfirst=True)
        self._upgrade_tracking()
        self._ensure_tracking(list(self.projections))
        stale = self._stale_schemas()
        if stale:
            self.rebuild(*stale)

    def positions(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tracking_table.c.projection, tracking_table.c.notification_id)
                                .where(tracking_table.c.projection.in_(list(self.projections)))).all()
        return {name: int(pos) for name, pos in rows}

    def catch_up(self, limit: int | None = None, names: Sequence[str] | None = None) -> int:
        """Fold every new notification (at most `limit`); returns how many notifications were processed
        (notifications no registered projection handles count too: the position moves past them)."""
        wanted = list(names) if names is not None else list(self.projections)
        done = 0
        positions = self.positions()
        if min(positions.get(n, 0) for n in wanted) >= self.store.max_notification_id():
            return 0  # nothing new: answer without taking the write lock (a CLI beside the daemon)
        while limit is None or done < limit:
            size = self.batch_size if limit is None else min(self.batch_size, limit - done)
            n = self._fold_batch(wanted, size)
            if n == 0:
                break
            done += n
        return done

    def rebuild(self, *names: str) -> int:
        """Empty the named read models (all when none are named) and fold them again from the first
        event, in one pass; returns the number of notifications processed."""
        wanted = list(names) or list(self.projections)
        projections = [self.projections[n] for n in wanted]
        with self.engine.begin() as conn:
            # DML first: on SQLite that opens the transaction, so the DDL below is part of it.
            for p in projections:
                conn.execute(update(tracking_table).where(tracking_table.c.projection == p.name)
                             .values(notification_id=0, schema=schema_fingerprint(p)))
            for p in projections:
                for table in reversed(p.tables):
                    table.drop(conn, checkfirst=True)
                for table in p.tables:
                    table.create(conn, checkfirst=True)
            problems.forget_problems(conn, wanted)
        for p in projections:
            p.reset()
        return self.catch_up(names=wanted)

    # ---- internals -------------------------------------------------------------------------------

    def _ensure_tracking(self, names: list[str]) -> None:
        dialect = self.engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        with self.engine.begin() as conn:
            for name in names:
                fingerprint = schema_fingerprint(self.projections[name])
                conn.execute(insert(tracking_table).values(projection=name, notification_id=0, schema=fingerprint)
                             .on_conflict_do_nothing(index_elements=["projection"]))

    def _upgrade_tracking(self) -> None:
        """Stores made before read models carried a schema fingerprint get the column (and so a rebuild)."""
        columns = {c["name"] for c in inspect(self.engine).get_columns(tracking_table.name)}
        if "schema" not in columns:
            with self.engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {tracking_table.name} ADD COLUMN schema VARCHAR(64) NOT NULL DEFAULT ''"))

    def _stale_schemas(self) -> list[str]:
        """Projections whose stored tables were made by another version of their definition."""
        t = tracking_table.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.projection, t.schema).where(t.projection.in_(list(self.projections)))).all()
        stored: dict[str, str] = {str(name): str(schema) for name, schema in rows}
        return [name for name, p in self.projections.items() if stored.get(name) != schema_fingerprint(p)]

    def _fold_batch(self, names: list[str], size: int) -> int:
        """Fold up to `size` notifications; on an event's error, halve the batch until it is alone, then skip
        it for the projection that cannot fold it."""
        try:
            return self._fold(names, size)
        except TRANSIENT:
            raise
        except Exception as exc:
            if size > 1:
                return self._fold_batch(names, size // 2)
            return self._isolate(names, exc)

    def _isolate(self, names: list[str], exc: Exception) -> int:
        """One notification failed for `names` together: fold it per projection; skip it where it fails."""
        if len(names) == 1:
            self._skip(names[0], exc)
            return 1
        for name in names:
            try:
                self._fold([name], 1)
            except TRANSIENT:
                raise
            except Exception as own:
                self._skip(name, own)
        return 1

    def _skip(self, name: str, exc: BaseException) -> None:
        """Record the problem and move `name` past its next notification, in one transaction."""
        with self.engine.begin() as conn:
            claim = tracking_table.c.projection == name
            conn.execute(update(tracking_table).where(claim).values(notification_id=tracking_table.c.notification_id))
            position = int(conn.execute(select(tracking_table.c.notification_id).where(claim)).scalar_one())
            found = self.store.recorder.select_notifications(start=position, limit=1, inclusive_of_start=False)
            if not found:
                return
            problem = problems.record_problem(conn, name, found[0], exc)
            conn.execute(update(tracking_table).where(claim).values(notification_id=found[0].id))
        log.warning("event skipped: a read model could not fold it", projection=name,
                    notification_id=problem.notification_id, event_type=problem.event, error=problem.error)

    def _fold(self, names: list[str], size: int) -> int:
        projections = [self.projections[n] for n in names]
        try:
            with self.engine.begin() as conn:
                claim = tracking_table.c.projection.in_(names)
                conn.execute(update(tracking_table).where(claim)
                             .values(notification_id=tracking_table.c.notification_id))
                positions: dict[str, int] = {
                    name: int(pos) for name, pos in conn.execute(
                        select(tracking_table.c.projection, tracking_table.c.notification_id).where(claim)).all()}
                start = min(int(positions[n]) for n in names)
                notifications = self.store.recorder.select_notifications(
                    start=start, limit=size, inclusive_of_start=False)
                if not notifications:
                    return 0
                to_event = self.store.mapper.to_domain_event
                for n in notifications:
                    event = None  # decoded once, only when some projection wants it
                    for p in self._topics.get(n.topic, ()):
                        if p.name in positions and n.id > positions[p.name]:
                            if event is None:
                                event = to_event(n)
                            p.apply(conn, event, n.id)
                for p in projections:
                    p.flush(conn)
                last = notifications[-1].id
                conn.execute(update(tracking_table).where(claim).values(notification_id=last))
                return len(notifications)
        except BaseException:
            for p in projections:
                p.reset()
            raise


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, replacing those whose `keys` already exist (one statement, many rows)."""
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    others = [c.name for c in table.columns if c.name not in keys]
    stmt = stmt.on_conflict_do_update(index_elements=list(keys),
                                      set_={name: stmt.excluded[name] for name in others})
    conn.execute(stmt, list(rows))

"""The event store: every fact about the vault, as events of Task/Cycle/Experiment/Finding aggregates.

`VaultStore` is an `eventsourcing` Application persisted through `eventsourcing_sqlalchemy`:

* URL `sqlite:///.autovault/events.db` by default (relative to the working directory; the folder is
  created on first use; WAL, `synchronous=NORMAL`), or any `postgresql+psycopg://…` URL — the switch
  is the URL, nothing else.
* Settings go through the Application's `env=` argument only: process environment variables are *not*
  read (the library would otherwise merge `os.environ`), so two stores in one process never interfere.
* Large text (outputs, contexts, diffs) goes to the content-addressed `autovault_blobs` table in the
  same database; events carry the sha256.
* Commands are collected in a `Batch` and saved with one `save()`: one transaction, one fsync. When
  another process appended to the same aggregate first, the library raises `IntegrityError`; the
  batch then reloads the aggregates and re-applies its commands (bounded retries) — so an aggregate's
  rules (`domain.aggregates.IllegalTransition`) are checked again on the state the other writer left.
* Ingested runs and scores are deduplicated by a unique key (`adapters.ingest_keys`), written in the
  transaction of the events it guards (the library's documented `recorder.transaction()`).

Only the library's public extension points are used: `application_recorder_class` with an overridden
`insert_events`/`select_notifications`, `construct_env`, `save`, `recorder.transaction()`, the snapshot
store's `put` and `Snapshot.take`. `tests/test_eventstore_library.py` checks the behaviour these rely on
against the installed version (pinned in pyproject.toml).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, Recording
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Notification, StoredEvent
from eventsourcing.utils import Environment, EnvType, get_topic
from eventsourcing_sqlalchemy.factory import SQLAlchemyFactory
from eventsourcing_sqlalchemy.recorders import SQLAlchemyApplicationRecorder
from sqlalchemy import event as sa_event
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from adapters.blobs import BlobStore
from adapters.database import prepare_url, sqlite_pragmas
from adapters.ingest_keys import CONFLICT, HISTORY_EVENTS, NEW, Claim, IngestKeys, history_claims
from domain import ids
from domain.aggregates import Cycle, Experiment, Finding, Task, run_fingerprint, score_fingerprint, score_key
from domain.ingest import IngestedRun, IngestedScore
from domain.runs import RunResult, Score

UNREGISTERED = "unregistered"  # config_hash of a task first seen in a log, before vault.yml named it

A = TypeVar("A", bound=Aggregate)
Op = Callable[[Any], int | None]  # applies commands to one aggregate; returns the version it reached, or None
Command = tuple[UUID, Callable[[], Aggregate] | None, Op, Claim | None]  # the claim: an ingest's dedup key


class VaultRecorder(SQLAlchemyApplicationRecorder):
    """The library's recorder, inserting a batch by one Core `INSERT … RETURNING id` (executemany, ids in
    parameter order) instead of one ORM object per event — same table, same `LOCK TABLE … IN EXCLUSIVE MODE`
    on PostgreSQL (ids in commit order) and NOTIFY, a fraction of the CPU per event.

    Overrides the public `insert_events` (what `EventStore.put` calls), not the library's private helpers. Like
    the library's, it joins the transaction already open in this thread (`transaction()`), so events and other
    rows (the ingest keys) commit together."""

    def insert_events(self, stored_events: Sequence[StoredEvent], *, session: Session | None = None,
                      **kwargs: Any) -> Sequence[int]:
        if kwargs.get("tracking") is not None:
            raise NotImplementedError("VaultRecorder records no tracking: autovault is not a process application")
        if session is not None:
            return self._insert(session, stored_events)
        with self.transaction(commit=True) as own:
            return self._insert(own, stored_events)

    def _insert(self, session: Session, stored_events: Sequence[StoredEvent]) -> list[int]:
        if not stored_events:
            return []
        table = self.events_record_cls.__table__
        postgres = session.get_bind().dialect.name == "postgresql"
        if postgres:
            session.execute(text(f"LOCK TABLE {table.fullname} IN EXCLUSIVE MODE"))
        rows = [{"originator_id": e.originator_id, "originator_version": e.originator_version,
                 "topic": e.topic, "state": e.state} for e in stored_events]
        result = session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
        notification_ids = [int(row[0]) for row in result]
        if postgres:
            session.execute(text(f"NOTIFY {self.channel_name}"))
        return notification_ids

    def select_notifications(self, start: int | None, limit: int, stop: int | None = None,
                             topics: Sequence[str] = (), *, inclusive_of_start: bool = True) -> list[Notification]:
        """Same contract as the library's, read with a Core SELECT (no ORM objects): the projection
        runner reads every event through here."""
        table = self.events_record_cls.__table__
        c = table.c
        q = select(c.id, c.originator_id, c.originator_version, c.topic, c.state)
        if start is not None:
            q = q.where(c.id >= start if inclusive_of_start else c.id > start)
        if stop is not None:
            q = q.where(c.id <= stop)
        if topics:
            q = q.where(c.topic.in_(list(topics)))
        q = q.order_by(c.id).limit(limit)
        with self.transaction(commit=False) as session:
            rows = session.execute(q).all()
        return [Notification(id=r[0], originator_id=r[1], originator_version=r[2], topic=r[3],
                             state=bytes(r[4]) if isinstance(r[4], memoryview) else r[4]) for r in rows]


class VaultFactory(SQLAlchemyFactory):
    """The library's SQLAlchemy factory plus SQLite pragmas on every connection, a batch insert and a
    real `close()`."""

    application_recorder_class = VaultRecorder

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        engine = self.datastore.engine
        if isinstance(engine, Engine) and engine.dialect.name == "sqlite":
            sa_event.listen(engine, "connect", sqlite_pragmas)

    def close(self) -> None:
        engine = self.datastore.engine
        if isinstance(engine, Engine):
            engine.dispose()


@dataclass(frozen=True)
class Recorded:
    """Where a command's event landed: its position in the application sequence."""

    task: str
    key: str  # run_id for runs and scores, the path for changes, the name for registrations
    notification_id: int


@dataclass(frozen=True)
class IngestCounts:
    runs: int = 0
    scores: int = 0
    duplicates: int = 0  # conflicts included
    conflicts: tuple[int, ...] = ()  # positions of items whose key was recorded before with other content


def run_fields(result: RunResult, output_hash: str, context_hash: str | None, cycle_id: str | None) -> dict[str, Any]:
    """The `Task.Ran` event fields of a run record (text replaced by hashes)."""
    return {
        "run_id": result.run_id, "started": result.started, "duration_s": result.duration_s,
        "status": result.status, "model": result.model, "options": dict(result.options),
        "prompt_tokens": result.prompt_tokens, "output_tokens": result.output_tokens,
        "thinking_tokens": result.thinking_tokens, "done_reason": result.done_reason,
        "output_hash": output_hash, "output_words": result.words, "read_hashes": dict(result.read_hashes),
        "artifacts": dict(result.artifacts), "durations": dict(result.durations), "source": result.source,
        "error": result.error, "cycle_id": cycle_id, "context_hash": context_hash, "blocks": result.blocks,
    }


def from_ingested(run: IngestedRun) -> RunResult:
    """A heartbeat-log run as a run record; its single duration becomes the `model` phase, its logged
    collector output (if any) the run's context, stored as a blob like a daemon run's."""
    return RunResult(
        run_id=run.run_id, task=run.task, started=run.started, status=run.status, model=run.model,
        options=dict(run.options), output=run.output, done_reason=run.done_reason,
        prompt_tokens=run.prompt_tokens, output_tokens=run.output_tokens, thinking_tokens=run.thinking_tokens,
        artifacts=dict.fromkeys(run.artifacts, ""), durations={"model": run.duration_s}, source="log",
        context=run.context,
    )


class Batch:
    """Commands collected in memory and saved together: one `save()`, one transaction.

    Nothing is written until `commit()`. Each command is a function re-applied to freshly loaded
    aggregates on every attempt, so a conflict with another writer is resolved by reloading.
    `commit()` returns, per command in order, the notification id of its event (None: nothing to record,
    e.g. a duplicate ingest).
    """

    def __init__(self, store: VaultStore) -> None:
        self.store = store
        self._ops: list[Command] = []
        self._blobs: list[str] = []
        self.conflicts: set[int] = set()  # ingest commands skipped because their key holds other content

    def __len__(self) -> int:
        return len(self._ops)

    def blob(self, text: str) -> str:
        """Queue `text` for the blob table; returns its hash now."""
        self._blobs.append(text)
        return ids.sha256_text(text)

    def add(self, aggregate_id: UUID, op: Op, create: Callable[[], Aggregate] | None = None,
            claim: Claim | None = None) -> int:
        """Queue a command on one aggregate (created by `create` when missing); returns its index. With `claim`,
        the command runs only when its ingest key is new (taken in the same transaction)."""
        self._ops.append((aggregate_id, create, op, claim))
        return len(self._ops) - 1

    def register(self, name: str, config_hash: str) -> int:
        def op(task: Task) -> int | None:
            if task.config_hash == config_hash:
                return task.version if task.version == 1 and task.pending_events else None
            task.reconfigure(config_hash)
            return task.version

        return self.add(ids.task_id(name), op, lambda: Task(name=name, config_hash=config_hash))

    def run(self, result: RunResult, cycle_id: str | None = None, *, ingest: bool = False) -> int:
        """Queue a `Task.Ran`; with `ingest`, a run_id the task already ingested is skipped."""
        if ingest and result.source != "log":
            result = dataclasses.replace(result, source="log")
        output_hash = self.blob(result.output)
        context_hash = self.blob(result.context) if result.context else None
        fields = run_fields(result, output_hash, context_hash, cycle_id)

        def op(task: Task) -> int | None:
            task.record_run(**fields)
            return task.version

        claim = Claim(result.task, result.run_id, run_fingerprint(fields)) if ingest else None
        return self.add(ids.task_id(result.task), op, _auto_register(result.task), claim)

    def score(self, task_name: str, score: Score, source: str = "judge", *, ingest: bool = False) -> int:
        """Queue a `Task.Scored`; with `ingest`, a (run_id, judge) the task already ingested is skipped."""
        if ingest:
            source = "log"
        checks = [dataclasses.asdict(c) for c in score.checks]

        def op(task: Task) -> int | None:
            task.scored(run_id=score.run_id, score=float(score.score), judge=score.judge,
                        reasons=list(score.reasons), checks=checks, source=source)
            return task.version

        claim = Claim(task_name, score_key(score.run_id, score.judge),
                      score_fingerprint(score.score, list(score.reasons))) if ingest else None
        return self.add(ids.task_id(task_name), op, _auto_register(task_name), claim)

    def change(self, task_name: str, path: str, before_hash: str | None, after_hash: str | None,
               diff_text: str, by: str, cycle_id: str | None = None) -> int:
        """Queue a `Task.Changed`; the diff goes to the blob table."""
        diff_hash = self.blob(diff_text) if diff_text else None

        def op(task: Task) -> int | None:
            task.change(path=path, before_hash=before_hash, after_hash=after_hash, diff_hash=diff_hash,
                        by=by, cycle_id=cycle_id)
            return task.version

        return self.add(ids.task_id(task_name), op, _auto_register(task_name))

    def commit(self) -> list[int | None]:
        if not self._ops:
            return []
        if self._blobs:
            self.store.blobs.put_many(self._blobs)
        results, conflicts = self.store._apply_and_save(self._ops)
        self.conflicts |= conflicts
        self._ops.clear()
        self._blobs.clear()
        return results


def _auto_register(name: str) -> Callable[[], Aggregate]:
    return lambda: Task(name=name, config_hash=UNREGISTERED)


class VaultStore(Application[UUID]):
    """autovault's history. Command methods take domain records; queries return aggregates.

    Read models (what people ask about) are projections: see `projections.runner`.
    """

    name = "autovault"
    # A snapshot every N events keeps a load at ≤ N events however long the history gets. Not the library's
    # `snapshotting_intervals`: it would reload the aggregate from the store for every multiple of N a save
    # crosses; the aggregate just saved *is* that state, so `_snapshot` takes it once per save.
    snapshot_every: ClassVar[dict[type[Any], int]] = {Task: 100, Cycle: 20, Experiment: 20, Finding: 20}
    retries = 12  # attempts per batch when another writer got to an aggregate first

    def __init__(self, url: str | None = None) -> None:
        self.url = prepare_url(url)
        super().__init__(env={
            "PERSISTENCE_MODULE": get_topic(VaultFactory),
            "SQLALCHEMY_URL": self.url,
            "IS_SNAPSHOTTING_ENABLED": "y",
            # Cached aggregates are fast-forwarded from the store on every get, so another writer is seen.
            "AGGREGATE_CACHE_MAXSIZE": "256",
        })
        assert isinstance(self.recorder, VaultRecorder)
        self.writer: VaultRecorder = self.recorder
        engine = self.writer.datastore.engine
        assert isinstance(engine, Engine)
        self.engine: Engine = engine
        self.blobs = BlobStore(engine)
        self.ingest_keys = IngestKeys(engine)
        self._closed = False

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Only the class defaults and the given settings: `os.environ` is deliberately not merged."""
        merged = dict(type(self).env)
        merged.update(env or {})
        return Environment(name, merged)

    # ---- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        super().close()

    def __enter__(self) -> VaultStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        pass  # the library's __del__ closes during interpreter shutdown and prints noise; close() explicitly

    def _snapshot(self, loaded: dict[UUID, Aggregate], recordings: Sequence[Recording[UUID]]) -> None:
        """Snapshot each saved aggregate whose save crossed a multiple of its interval, from memory."""
        if self.snapshots is None:
            return
        span: dict[UUID, tuple[int, int]] = {}
        for r in recordings:
            ev = r.domain_event
            lo, _ = span.get(ev.originator_id, (ev.originator_version, 0))
            span[ev.originator_id] = (lo, ev.originator_version)
        snapshots = []
        for aggregate_id, aggregate in loaded.items():
            interval = self.snapshot_every.get(type(aggregate))
            if interval is None or aggregate_id not in span:
                continue
            lo, hi = span[aggregate_id]
            if hi // interval > (lo - 1) // interval and aggregate.version == hi:
                snapshots.append(type(aggregate).Snapshot.take(aggregate))
        if snapshots:
            self.snapshots.put(snapshots)

    # ---- commands on tasks -----------------------------------------------------------------------

    def batch(self) -> Batch:
        return Batch(self)

    def register_task(self, name: str, config_hash: str) -> bool:
        """Registered on first sight, Reconfigured when the hash changed; True when an event was recorded."""
        b = self.batch()
        b.register(name, config_hash)
        return b.commit()[0] is not None

    def record_run(self, result: RunResult, cycle_id: str | None = None) -> Recorded:
        b = self.batch()
        b.run(result, cycle_id)
        return self._recorded(result.task, result.run_id, b.commit()[0])

    def record_many(self, results: Iterable[RunResult], cycle_id: str | None = None) -> list[Recorded]:
        """Many runs in one `save()` (one transaction)."""
        b = self.batch()
        items = list(results)
        for r in items:
            b.run(r, cycle_id)
        return [self._recorded(r.task, r.run_id, n) for r, n in zip(items, b.commit(), strict=True)]

    def record_scored_run(self, result: RunResult, score: Score, source: str,
                          cycle_id: str | None = None) -> Recorded:
        """A run and its score in one `save()`: a verification run, judged before it is recorded."""
        b = self.batch()
        b.run(result, cycle_id)
        b.score(result.task, score, source)
        return self._recorded(result.task, result.run_id, b.commit()[0])

    def record_score(self, task: str, score: Score, source: str = "judge") -> Recorded:
        b = self.batch()
        b.score(task, score, source)
        return self._recorded(task, score.run_id, b.commit()[0])

    def record_change(self, task: str, path: str, before_hash: str | None, after_hash: str | None,
                      diff_text: str, by: str, cycle_id: str | None = None) -> Recorded:
        b = self.batch()
        b.change(task, path, before_hash, after_hash, diff_text, by, cycle_id)
        return self._recorded(task, path, b.commit()[0])

    def ingest_run(self, run: RunResult | IngestedRun) -> Recorded | None:
        """Record a run from outside; None when this task already ingested that run_id."""
        result = from_ingested(run) if isinstance(run, IngestedRun) else run
        b = self.batch()
        b.run(result, ingest=True)
        n = b.commit()[0]
        return None if n is None else Recorded(result.task, result.run_id, n)

    def ingest_score(self, task: str | IngestedScore, score: Score | None = None) -> Recorded | None:
        """Record a score from outside; None when this (run_id, judge) was already ingested."""
        task_name, sc = _score_of(task, score)
        b = self.batch()
        b.score(task_name, sc, ingest=True)
        n = b.commit()[0]
        return None if n is None else Recorded(task_name, sc.run_id, n)

    def ingest_batch(self, items: Sequence[RunResult | IngestedRun | IngestedScore]) -> list[bool]:
        """A whole log chunk in one `save()`; per item, False when it was recorded before (or earlier in
        `items`). Runs are keyed by (task, run_id), scores by (task, run_id, judge)."""
        return self._ingest(items)[0]

    def _ingest(self, items: Sequence[RunResult | IngestedRun | IngestedScore]) -> tuple[list[bool], set[int]]:
        b = self.batch()
        for item in items:
            if isinstance(item, IngestedScore):
                b.score(*_score_of(item, None), ingest=True)
            else:
                b.run(from_ingested(item) if isinstance(item, IngestedRun) else item, ingest=True)
        return [n is not None for n in b.commit()], b.conflicts

    def ingest_many(self, items: Iterable[RunResult | IngestedRun | IngestedScore]) -> IngestCounts:
        """`ingest_batch` with counts; `conflicts` names the items whose key holds other content."""
        listed = list(items)
        new, conflicts = self._ingest(listed)
        is_score = [isinstance(i, IngestedScore) for i in listed]
        return IngestCounts(
            runs=sum(1 for s, n in zip(is_score, new, strict=True) if n and not s),
            scores=sum(1 for s, n in zip(is_score, new, strict=True) if n and s),
            duplicates=new.count(False),
            conflicts=tuple(sorted(i for i in conflicts if not new[i])),
        )

    # ---- queries ---------------------------------------------------------------------------------

    def get_task(self, name: str) -> Task | None:
        return self._get_or_none(ids.task_id(name))  # type: ignore[return-value]

    def task_at_version(self, name: str, version: int) -> Task:
        """The task as it was after its `version`-th event (a historical read)."""
        task: Aggregate = self.repository.get(ids.task_id(name), version=version)
        assert isinstance(task, Task)
        return task

    def max_notification_id(self) -> int:
        return self.recorder.max_notification_id() or 0

    def events_after(self, position: int, topics: Sequence[str], limit: int = 2000) -> list[tuple[int, Any]]:
        """Up to `limit` (position, event) pairs after `position`, in history order, of these topics (upcast)."""
        page = self.writer.select_notifications(position, limit, topics=topics, inclusive_of_start=False)
        return [(n.id, self.mapper.to_domain_event(n)) for n in page]

    # ---- cycles, experiments, findings -----------------------------------------------------------

    def get_cycle(self, key: str) -> Cycle | None:
        return self._get_or_none(ids.cycle_id(key))  # type: ignore[return-value]

    def start_cycle(self, key: str, task: str, mode: str, target: float | None, trigger: str) -> Cycle:
        """Get-or-create the cycle `key` (a second start of the same key returns the first)."""
        return self._mutate(ids.cycle_id(key), lambda c: None,
                            lambda: Cycle(key=key, task=task, mode=mode, target=target, trigger=trigger))

    def update_cycle(self, key: str, command: Callable[[Cycle], Any]) -> Cycle:
        """Apply `command` (e.g. `lambda c: c.proposed(...)`) to the cycle and save, retrying on conflict."""
        return self._mutate(ids.cycle_id(key), command)

    def get_experiment(self, key: str) -> Experiment | None:
        return self._get_or_none(ids.experiment_id(key))  # type: ignore[return-value]

    def queue_experiment(self, key: str, task: str, sweep: str, base_model: str, dataset_hash: str,
                         params: dict[str, Any], **more: Any) -> Experiment:
        """`more`: Queued's later fields (seed, trigger, data_files)."""
        return self._mutate(ids.experiment_id(key), lambda e: None, lambda: Experiment(
            key=key, task=task, sweep=sweep, base_model=base_model, dataset_hash=dataset_hash, params=params, **more))

    def update_experiment(self, key: str, command: Callable[[Experiment], Any]) -> Experiment:
        return self._mutate(ids.experiment_id(key), command)

    def get_finding(self, kind: str, subject: str) -> Finding | None:
        return self._get_or_none(ids.finding_id(kind, subject))  # type: ignore[return-value]

    def detect_finding(self, kind: str, subject: str, tasks: list[str], evidence: dict[str, Any],
                       severity: str = "warning") -> Finding:
        """Detected the first time, Redetected when it had been resolved; an open finding is left as is."""

        def reopen(f: Finding) -> None:
            if not f.open:
                f.redetect(tasks=tasks, evidence=evidence)

        return self._mutate(ids.finding_id(kind, subject), reopen, lambda: Finding(
            kind=kind, subject=subject, tasks=tasks, evidence=evidence, severity=severity))

    def resolve_finding(self, kind: str, subject: str, by_cycle: str | None, reason: str) -> Finding | None:
        if self.get_finding(kind, subject) is None:
            return None

        def resolve(f: Finding) -> None:
            if f.open:
                f.resolve(by_cycle=by_cycle, reason=reason)

        return self._mutate(ids.finding_id(kind, subject), resolve)

    # ---- internals -------------------------------------------------------------------------------

    def _get_or_none(self, aggregate_id: UUID) -> Aggregate | None:
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        assert isinstance(aggregate, Aggregate)
        return aggregate

    def _mutate(self, aggregate_id: UUID, command: Callable[[A], Any], create: Callable[[], A] | None = None) -> A:
        def op(aggregate: Any) -> int | None:
            command(aggregate)
            return None

        self._apply_and_save([(aggregate_id, create, op, None)])
        aggregate = self._get_or_none(aggregate_id)
        if aggregate is None:
            raise LookupError(f"store: no aggregate {aggregate_id}")
        return aggregate  # type: ignore[return-value]

    def _apply_and_save(self, ops: Sequence[Command]) -> tuple[list[int | None], set[int]]:
        """Load each aggregate once, apply the commands in order, save all in one `save()`.

        Returns the notification id of each command's event (None: nothing recorded) and the indexes of ingest
        commands skipped because their key holds other content. On `IntegrityError` (another writer appended to
        one of these aggregates, or took one of the ingest keys, first) everything is reloaded and re-applied.
        """
        claims = [(i, c) for i, (_, _, _, c) in enumerate(ops) if c is not None]
        if claims:
            self.ingest_keys.ensure(lambda: self.writer.transaction(commit=True), self._ingested_history)
        for attempt in range(self.retries):
            try:
                loaded, versions, conflicts, recordings = self._attempt(ops, claims)
            except IntegrityError:
                if attempt == self.retries - 1:
                    raise
                # Back off with jitter: two writers that keep reloading in lockstep keep colliding.
                time.sleep(random.uniform(0, min(0.25, 0.002 * 2 ** attempt)))
                continue
            self._snapshot(loaded, recordings)
            cache = self.repository.cache
            if cache is not None:  # the saved state is the latest: spare the next get a fast-forward
                for aggregate_id, aggregate in loaded.items():
                    cache.put(aggregate_id, aggregate)
            where = {(r.domain_event.originator_id, r.domain_event.originator_version): r.notification.id
                     for r in recordings}
            return [None if v is None else where[(a, v)] for a, v in versions], conflicts
        raise AssertionError("unreachable")

    def _attempt(self, ops: Sequence[Command], claims: list[tuple[int, Claim]]
                 ) -> tuple[dict[UUID, Aggregate], list[tuple[UUID, int | None]], set[int], list[Recording[UUID]]]:
        """One try. Ingest keys are taken first in the transaction of the events (so, on SQLite, it starts with
        the write lock); the commands whose key was taken before are skipped."""
        if not claims:
            loaded, versions = self._apply(ops, set())
            return loaded, versions, set(), self.save(*loaded.values())
        with self.writer.transaction(commit=True) as session:
            status = self.ingest_keys.claim(session, [c for _, c in claims])
            skipped = {i: s for (i, _), s in zip(claims, status, strict=True) if s != NEW}
            loaded, versions = self._apply(ops, set(skipped))
            recordings = self.save(*loaded.values())
        return loaded, versions, {i for i, s in skipped.items() if s == CONFLICT}, recordings

    def _apply(self, ops: Sequence[Command], skipped: set[int]
               ) -> tuple[dict[UUID, Aggregate], list[tuple[UUID, int | None]]]:
        loaded: dict[UUID, Aggregate] = {}
        versions: list[tuple[UUID, int | None]] = []
        for index, (aggregate_id, create, op, _) in enumerate(ops):
            if index in skipped:
                versions.append((aggregate_id, None))
                continue
            aggregate = loaded.get(aggregate_id)
            if aggregate is None:
                aggregate = self._get_or_none(aggregate_id)
                if aggregate is None:
                    if create is None:
                        raise LookupError(f"store: no aggregate {aggregate_id} to update")
                    aggregate = create()
                loaded[aggregate_id] = aggregate
            versions.append((aggregate_id, op(aggregate)))
        return loaded, versions

    def _ingested_history(self) -> Iterator[Claim]:
        """The ingest keys the recorded history holds, read in the filling transaction (the reads join the
        transaction open in this thread, as every recorder read does)."""
        topics = [get_topic(c) for c in HISTORY_EVENTS]

        def events() -> Iterator[Any]:
            start = 0
            while page := self.events_after(start, topics):
                yield from (ev for _, ev in page)
                start = page[-1][0]

        return history_claims(events())

    @staticmethod
    def _recorded(task: str, key: str, notification_id: int | None) -> Recorded:
        assert notification_id is not None
        return Recorded(task, key, notification_id)


def _score_of(task: str | IngestedScore, score: Score | None) -> tuple[str, Score]:
    if isinstance(task, IngestedScore):
        return task.task, Score(run_id=task.run_id, score=task.score, judge=task.judge, reasons=list(task.reasons))
    if score is None:
        raise TypeError("ingest_score(task, score): score is missing")
    return task, score

"""What `adapters.eventstore` relies on in the installed `eventsourcing` / `eventsourcing-sqlalchemy` (pinned in
pyproject.toml). The store overrides only public methods and uses documented extension points; these tests fail
when an upgrade changes a signature or a behaviour it builds on, before a user's history does."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import EventStore, IntegrityError, StoredEvent
from eventsourcing.utils import get_topic
from eventsourcing_sqlalchemy.recorders import SQLAlchemyApplicationRecorder
from sqlalchemy import func, select

from adapters.eventstore import VaultRecorder, VaultStore
from adapters.ingest_keys import ingested_table
from domain import ids
from domain.aggregates import Cycle, Task
from domain.runs import RunResult


def _run(run_id: str, task: str = "brief") -> RunResult:
    return RunResult(run_id=run_id, task=task, started="2026-03-18T06:30:00Z", status="ok", model="m", options={},
                     output="text", done_reason="stop", prompt_tokens=1, output_tokens=1)


def _events(store: VaultStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(store.writer.events_record_cls.__table__)).scalar_one())


def test_the_overridden_methods_keep_the_library_signatures() -> None:
    for name in ("insert_events", "select_notifications"):
        ours = inspect.signature(getattr(VaultRecorder, name)).parameters
        theirs = inspect.signature(getattr(SQLAlchemyApplicationRecorder, name)).parameters
        assert list(ours) == list(theirs), name
        assert [p.kind for p in ours.values()] == [p.kind for p in theirs.values()], name
    assert "session" in inspect.signature(SQLAlchemyApplicationRecorder.insert_events).parameters
    assert not hasattr(VaultStore, "_take_snapshots") or VaultStore._take_snapshots is Application._take_snapshots
    assert VaultStore.snapshotting_intervals == {}  # the library snapshots nothing itself: `_snapshot` does


def test_save_goes_through_our_insert_events(sqlite_url: str) -> None:
    with VaultStore(sqlite_url) as store:
        assert type(store.recorder) is VaultRecorder and store.writer is store.recorder
        with mock.patch.object(VaultRecorder, "insert_events", autospec=True,
                               side_effect=VaultRecorder.insert_events) as spy:
            store.record_run(_run("r1"))
        assert spy.call_count == 1 and spy.call_args.kwargs.get("tracking") is None
        assert isinstance(store.events, EventStore)


def test_events_saved_in_an_outer_transaction_commit_and_roll_back_with_it(store_url: str) -> None:
    """`recorder.transaction()` (documented) is joined by every event write in this thread: the ingest keys rely on
    it. (Blobs go through their own connection, so the store writes them before such a transaction opens.)"""
    with VaultStore(store_url) as store:
        store.register_task("brief", "h")
        _ingested_table(store)
        before = _events(store)
        with pytest.raises(RuntimeError), store.writer.transaction(commit=True) as session:
            session.execute(ingested_table.insert().values(task="brief", key="k", fingerprint="f"))
            store.start_cycle("inside", "brief", "cycle", None, "test")
            raise RuntimeError("roll back")
        assert _events(store) == before and store.ingest_keys.recorded("brief", "k") is None
        with store.writer.transaction(commit=True) as session:
            session.execute(ingested_table.insert().values(task="brief", key="k", fingerprint="f"))
            store.start_cycle("committed", "brief", "cycle", None, "test")
        assert _events(store) == before + 1 and store.ingest_keys.recorded("brief", "k") == "f"


def _ingested_table(store: VaultStore) -> None:
    store.ingest_keys.ensure(lambda: store.writer.transaction(commit=True), lambda: iter(()))


def test_a_unique_violation_in_the_transaction_is_the_library_integrity_error(store_url: str) -> None:
    """The store retries a batch on `eventsourcing.persistence.IntegrityError`; a taken ingest key must be one."""
    with VaultStore(store_url) as store:
        _ingested_table(store)
        row = {"task": "brief", "key": "k", "fingerprint": "f"}
        with store.writer.transaction(commit=True) as session:
            session.execute(ingested_table.insert().values(**row))
        with pytest.raises(IntegrityError), store.writer.transaction(commit=True) as session:
            session.execute(ingested_table.insert().values(**row))


def test_an_aggregate_snapshot_is_upcast_by_the_aggregate_class_version(tmp_path: Path) -> None:
    """Task v1 snapshots carried the ingest map; Cycle v1 snapshots no verdict: the aggregate's upcasters run."""
    with VaultStore(f"sqlite:///{tmp_path / 'e.db'}") as store:
        assert store.snapshots is not None
        tid, cid = ids.task_id("brief"), ids.cycle_id("c1")
        t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        for aggregate_id, topic, state in (
            (tid, get_topic(Task), {"name": "brief", "config_hash": "h", "runs": 3,
                                    "ingested": {"hb-1": "abc"}, "_created_on": t0, "_modified_on": t0}),
            (cid, get_topic(Cycle), {"key": "c1", "task": "brief", "mode": "cycle", "phase": "awaiting_approval",
                                     "delta_hash": "d", "delta_blob": None, "_created_on": t0, "_modified_on": t0}),
        ):
            snap = Aggregate.Snapshot(originator_id=aggregate_id, originator_version=20, timestamp=t0,
                                      topic=topic, state=state)
            store.snapshots.put([snap])
        task = store.get_task("brief")
        cycle = store.get_cycle("c1")
    assert task is not None and task.runs == 3 and not hasattr(task, "ingested") and task.version == 20
    assert cycle is not None and cycle.verdict is None and not cycle.kept_verdict  # verified again, not kept blind


def test_replaying_history_never_checks_the_rules(tmp_path: Path) -> None:
    """Commands check the phase; the `@event` methods they call are what replay runs, so an order a rule now
    refuses (stored before the rule, or imported) still loads."""
    with VaultStore(f"sqlite:///{tmp_path / 'e.db'}") as store:
        cid = Cycle.create_id("old")
        t0 = {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"}
        shapes: list[tuple[Any, dict[str, Any]]] = [
            (Cycle.Started, {"timestamp": t0, "originator_topic": get_topic(Cycle), "key": "old", "task": "brief",  # type: ignore[attr-defined]
                             "mode": "cycle", "target": None, "trigger": "cli"}),
            (Cycle.Discarded, {"timestamp": t0, "reason": "first"}),  # type: ignore[attr-defined]
            (Cycle.Kept, {"timestamp": t0, "applied_hashes": {}, "commit": None}),  # type: ignore[attr-defined]
        ]
        store.recorder.insert_events([StoredEvent(cid, i + 1, get_topic(cls), json.dumps(state).encode())
                                      for i, (cls, state) in enumerate(shapes)])
        cycle = store.get_cycle("old")
    assert cycle is not None and cycle.phase == "kept" and cycle.version == 3


def test_the_event_classes_keep_their_topics() -> None:
    """Public command + private `@event` method: the stored topic is the event's name, as before the rules."""
    names = ["Started", "Diagnosed", "Proposed", "Rejected", "Verified", "AwaitingApproval", "Approved", "Kept",
             "Discarded", "Failed"]
    assert [get_topic(getattr(Cycle, n)) for n in names] == [f"domain.aggregates:Cycle.{n}" for n in names]
    assert uuid.UUID(str(Cycle.create_id("x")))

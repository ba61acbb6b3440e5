"""The event store on real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from sqlalchemy import func, select, text

from adapters.blobs import blobs_table
from adapters.config_env import DEFAULT_STORE
from adapters.eventstore import UNREGISTERED, VaultStore, prepare_url
from domain import ids
from domain.aggregates import Task
from domain.ingest import IngestedRun, IngestedScore
from domain.runs import Check, RunResult, Score
from projections.defaults import default_projections
from projections.runner import ProjectionRunner
from projections.runs import task_history

ROOT = Path(__file__).resolve().parents[1]


def run(run_id: str, task: str = "morning-briefing", output: str = "## Briefing\nall quiet", **kw: Any) -> RunResult:
    fields: dict[str, Any] = dict(
        run_id=run_id,
        task=task,
        started="2026-03-18T06:30:00Z",
        status="ok",
        model="ollama:qwen3:8b",
        options={"num_predict": 300},
        output=output,
        done_reason="length",
        prompt_tokens=812,
        output_tokens=300,
        durations={"collect": 0.5, "model": 12.0},
    )
    fields.update(kw)
    return RunResult(**fields)


@pytest.fixture
def store(store_url: str) -> Iterator[VaultStore]:
    with VaultStore(store_url) as s:
        yield s


def test_register_is_idempotent_and_reconfigures_on_a_new_hash(store: VaultStore) -> None:
    assert store.register_task("blog-writer", "h1") is True
    assert store.register_task("blog-writer", "h1") is False
    assert store.register_task("blog-writer", "h2") is True
    task = store.get_task("blog-writer")
    assert task is not None
    assert (task.name, task.config_hash, task.version) == ("blog-writer", "h2", 2)
    assert store.get_task("nobody") is None


def test_run_is_appended_reloaded_and_its_text_is_in_blobs(store_url: str) -> None:
    with VaultStore(store_url) as store:
        store.register_task("morning-briefing", "h1")
        rec = store.record_run(run("r1", context="=== NOTE: a ===\nbody"), cycle_id="c-1")
        assert rec.key == "r1" and rec.notification_id == store.max_notification_id()
    with VaultStore(store_url) as again:  # a second process opening the same store
        task = again.get_task("morning-briefing")
        assert task is not None and task.runs == 1
        ran = list(again.events.get(ids.task_id("morning-briefing")))[-1]
        assert isinstance(ran, Task.Ran)
        assert (ran.run_id, ran.output_words, ran.duration_s, ran.cycle_id) == ("r1", 4, 12.5, "c-1")
        assert again.blobs.get_text(ran.output_hash) == "## Briefing\nall quiet"
        assert ran.context_hash is not None
        assert again.blobs.get_text(ran.context_hash) == "=== NOTE: a ===\nbody"


def test_historical_version_read(store: VaultStore) -> None:
    store.register_task("goal-planner", "v1")
    store.record_run(run("r1", task="goal-planner"))
    store.register_task("goal-planner", "v2")
    assert store.task_at_version("goal-planner", 1).config_hash == "v1"
    assert store.task_at_version("goal-planner", 2).runs == 1
    old: Task = store.repository.get(ids.task_id("goal-planner"), version=2)
    assert (old.config_hash, old.version) == ("v1", 2)
    assert store.get_task("goal-planner").config_hash == "v2"  # type: ignore[union-attr]


def test_snapshots_are_taken_and_ingest_dedup_survives_them(store_url: str) -> None:
    logged = [
        IngestedRun(
            task="knowledge-quiz",
            run_id=f"hb-{i}",
            started=f"2026-03-{i % 28 + 1:02d}T06:00:00Z",
            model="m",
            options={},
            duration_s=1.0,
            prompt_tokens=1,
            output_tokens=1,
            thinking_tokens=0,
            done_reason="stop",
            status="ok",
            output=f"q{i}",
        )
        for i in range(230)
    ]
    with VaultStore(store_url) as store:
        assert store.ingest_many(logged).runs == 230
        assert store.snapshots is not None
        snaps = list(store.snapshots.get(ids.task_id("knowledge-quiz")))
        assert [s.originator_version for s in snaps] == [231]  # one save crossed 100 and 200: one snapshot
        for i in range(3):  # single saves snapshot on the multiple itself
            store.ingest_run(dataclasses.replace(logged[0], run_id=f"extra-{i}"))
        assert store.get_task("knowledge-quiz").runs == 233  # type: ignore[union-attr]
        for i in range(67):
            store.record_run(run(f"d-{i}", task="knowledge-quiz"))
        snaps = list(store.snapshots.get(ids.task_id("knowledge-quiz")))
        assert [s.originator_version for s in snaps] == [231, 300]
    with VaultStore(store_url) as fresh:  # reload goes through the snapshot at 200
        task = fresh.get_task("knowledge-quiz")
        assert task is not None and task.runs == 300 and task.version == 301
        assert not hasattr(task, "ingested")  # the dedup keys are a table, not aggregate state
        keys = fresh.ingest_keys
        assert keys.recorded("knowledge-quiz", "hb-150") and keys.recorded("knowledge-quiz", "extra-2")
        assert keys.recorded("knowledge-quiz", "d-1") is None
        again = fresh.ingest_many(logged[140:160])
        assert (again.runs, again.duplicates) == (0, 20)
        assert fresh.get_task("knowledge-quiz").runs == 300  # type: ignore[union-attr]


def test_ingest_is_idempotent_by_run_id(store: VaultStore) -> None:
    line = IngestedRun(
        task="research-radar",
        run_id="hb-1",
        started="2026-03-18T06:30:00Z",
        model="m",
        options={},
        duration_s=3.0,
        prompt_tokens=10,
        output_tokens=5,
        thinking_tokens=0,
        done_reason="stop",
        status="ok",
        output="radar",
        artifacts=["Radar/2026-03-18.md"],
    )
    first = store.ingest_run(line)
    assert first is not None and first.task == "research-radar"
    assert store.ingest_run(line) is None
    score = IngestedScore(task="research-radar", run_id="hb-1", score=3, judge="output-judge", reasons=["thin"])
    assert store.ingest_score(score) is not None
    assert store.ingest_score(score) is None
    assert store.ingest_batch([line, score]) == [False, False]
    counts = store.ingest_many([line, score, run("hb-2", task="research-radar"), run("hb-2", task="research-radar")])
    assert (counts.runs, counts.scores, counts.duplicates) == (1, 0, 3)
    task = store.get_task("research-radar")
    assert task is not None and task.runs == 2 and task.config_hash == UNREGISTERED
    # a daemon run is not deduplicated: recording is a command, not an ingest
    store.record_run(run("hb-2", task="research-radar"))
    assert store.get_task("research-radar").runs == 3  # type: ignore[union-attr]


def test_blob_round_trip_is_content_addressed(store: VaultStore) -> None:
    h = store.blobs.put("ünïcode text")
    assert h == ids.sha256_text("ünïcode text")
    assert store.blobs.get_text(h) == "ünïcode text"
    raw = bytes(range(256))
    assert store.blobs.get(store.blobs.put(raw)) == raw
    hashes = store.blobs.put_many(["a", "b", "a", "ünïcode text"])
    assert hashes[0] == hashes[2] and hashes[3] == h
    assert store.blobs.get("0" * 64) is None and not store.blobs.has("0" * 64)
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(blobs_table)).scalar_one() == 4


def test_v1_ran_event_is_upcast_on_read(store: VaultStore) -> None:
    store.register_task("lesson-distiller", "h")
    v1_state = {
        "run_id": "old-1",
        "started": "2025-01-01T00:00:00Z",
        "duration_s": 2.0,
        "status": "ok",
        "model": "m",
        "options": {},
        "prompt_tokens": 1,
        "output_tokens": 2,
        "done_reason": "stop",
        "output_hash": "0" * 64,
        "output_words": 2,
        "read_hashes": {},
        "artifacts": {},
        "durations": {},
        "error": None,
        "cycle_id": None,
        "timestamp": datetime(2025, 1, 1, tzinfo=UTC),
    }
    assert "class_version" not in v1_state  # absent = version 1, as old rows were written
    store.recorder.insert_events(
        [
            StoredEvent(
                originator_id=ids.task_id("lesson-distiller"),
                originator_version=2,
                topic=get_topic(Task.Ran),
                state=store.mapper.transcoder.encode(v1_state),
            )
        ]
    )
    ran = list(store.events.get(ids.task_id("lesson-distiller")))[-1]
    assert isinstance(ran, Task.Ran)
    assert (ran.run_id, ran.thinking_tokens, ran.source, ran.context_hash) == ("old-1", 0, "daemon", None)
    assert store.get_task("lesson-distiller").runs == 1  # type: ignore[union-attr]
    # new events are written in the current shape
    store.record_run(run("new-1", task="lesson-distiller"))
    with store.engine.connect() as conn:
        state = conn.execute(text("SELECT state FROM autovault_events ORDER BY id DESC LIMIT 1")).scalar_one()
    assert store.mapper.transcoder.decode(bytes(state))["class_version"] == Task.Ran.class_version == 3
    ProjectionRunner(store, default_projections()).catch_up()  # read models fold the upcast event too
    with store.engine.connect() as conn:
        old = task_history(conn, "lesson-distiller")[-1]
    assert (old.run_id, old.source, old.words) == ("old-1", "daemon", 2)


def test_conflicting_append_from_a_second_store_is_retried(store_url: str) -> None:
    with VaultStore(store_url) as a, VaultStore(store_url) as b:
        a.register_task("blog-drafter", "h")
        seen: list[int] = []

        def interleave(task: Task) -> int | None:
            seen.append(task.version)
            if len(seen) == 1:  # b appends after a loaded the task: a's save must conflict
                b.record_run(run("from-b", task="blog-drafter"))
            task.record_run(
                run_id="from-a",
                started="s",
                duration_s=0.0,
                status="ok",
                model="m",
                options={},
                prompt_tokens=0,
                output_tokens=0,
                thinking_tokens=0,
                done_reason="stop",
                output_hash="",
                output_words=0,
                read_hashes={},
                artifacts={},
                durations={},
                source="daemon",
                error=None,
                cycle_id=None,
                context_hash=None,
                blocks=0,
            )
            return task.version

        batch = a.batch()
        batch.add(ids.task_id("blog-drafter"), interleave)
        [notification] = batch.commit()
        assert seen == [1, 2]  # the first attempt conflicted, the retry saw b's run
        task = a.get_task("blog-drafter")
        assert task is not None and task.runs == 2 and task.version == 3
        runs = [e.run_id for e in a.events.get(task.id) if isinstance(e, Task.Ran)]
        assert runs == ["from-b", "from-a"] and notification == a.max_notification_id()


CHILD = """
import sys
from adapters.eventstore import VaultStore
from domain.runs import RunResult
url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with VaultStore(url) as store:
    for i in range(n):
        store.record_run(RunResult(run_id=f"{who}-{i}", task="shared", started="s", status="ok", model="m",
                                   options={}, output=f"{who} {i}", done_reason="stop", prompt_tokens=1,
                                   output_tokens=1))
"""


def test_two_processes_appending_to_one_task_lose_nothing(store_url: str) -> None:
    with VaultStore(store_url) as store:
        store.register_task("shared", "h")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, store_url, who, "40"], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        for who in ("p", "q")
    ]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    with VaultStore(store_url) as store:
        task = store.get_task("shared")
        assert task is not None and task.runs == 80
        run_ids = [e.run_id for e in store.events.get(task.id) if isinstance(e, Task.Ran)]
        assert sorted(run_ids) == sorted([f"p-{i}" for i in range(40)] + [f"q-{i}" for i in range(40)])


def test_scores_and_changes_are_recorded(store: VaultStore) -> None:
    store.register_task("blog-writer", "h")
    store.record_run(run("r1", task="blog-writer"))
    store.record_score(
        "blog-writer",
        Score(
            "r1", 2, "output-judge", ["too short"], [Check("min_words", False, "120 < 400"), Check("truncated", True)]
        ),
    )
    rec = store.record_change("blog-writer", "prompts/blog-writer.md", "a" * 64, "b" * 64, "-old\n+new", "cycle", "c1")
    events = list(store.events.get(ids.task_id("blog-writer")))
    scored, changed = events[-2], events[-1]
    assert isinstance(scored, Task.Scored) and isinstance(changed, Task.Changed)  # type: ignore[attr-defined]
    assert scored.checks == [
        {"name": "min_words", "passed": False, "detail": "120 < 400", "hard": True},
        {"name": "truncated", "passed": True, "detail": "", "hard": True},
    ]
    assert store.blobs.get_text(changed.diff_hash) == "-old\n+new"
    assert (changed.by, changed.cycle_id, rec.notification_id) == ("cycle", "c1", store.max_notification_id())


def test_cycle_finding_and_experiment_helpers(store: VaultStore) -> None:
    c = store.start_cycle("blog-writer#1", "blog-writer", "prompt", 4.0, "score below target")
    assert store.start_cycle("blog-writer#1", "other", "x", None, "y").task == "blog-writer"
    store.update_cycle(
        "blog-writer#1", lambda cy: cy.proposed(delta_hash="d", proposer="p", lever="prompt", rationale="r", cost={})
    )
    done = store.update_cycle("blog-writer#1", lambda cy: cy.discarded(reason="no effect"))
    assert (done.phase, done.is_open, done.version) == ("discarded", False, 3) and c.version == 1
    f = store.detect_finding("interface", "blog-drafter->blog-writer", ["blog-drafter"], {"words": 120})
    assert f.open and store.detect_finding("interface", "blog-drafter->blog-writer", [], {}).version == 1
    resolved = store.resolve_finding("interface", "blog-drafter->blog-writer", "c1", "fixed")
    assert resolved is not None and not resolved.open
    assert store.detect_finding("interface", "blog-drafter->blog-writer", [], {}).open
    assert store.resolve_finding("interface", "nothing", None, "x") is None
    e = store.queue_experiment("lora-1", "knowledge-seeder", "s", "smollm2", "h", {"rank": 8})
    assert e.phase == "queued"
    assert store.update_experiment("lora-1", lambda ex: ex.started(device="cuda:0")).phase == "running"


def test_default_store_is_a_wal_sqlite_file_created_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # process environment must not steer the store: settings go through env=
    monkeypatch.setenv("PERSISTENCE_MODULE", "no.such.module")
    monkeypatch.setenv("AUTOVAULT_SQLALCHEMY_URL", "sqlite:////nonexistent/x.db")
    with VaultStore() as store:
        store.register_task("t", "h")
        assert DEFAULT_STORE.endswith(".autovault/events.db")
        assert (tmp_path / ".autovault" / "events.db").is_file()
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 1  # NORMAL


def test_a_non_file_sqlite_url_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"fix: use sqlite:///path/to/events\.db"):
        VaultStore("sqlite://")
    with pytest.raises(ValueError, match="is not a database URL — fix:"):
        VaultStore("events.db")
    assert prepare_url("postgresql://root@127.0.0.1:5432/test") == "postgresql+psycopg://root@127.0.0.1:5432/test"


def test_notifications_select_by_range_and_topic(store: VaultStore) -> None:
    store.register_task("blog-writer", "h")  # 1
    store.record_many([run(f"r{i}", task="blog-writer") for i in range(4)])  # 2..5
    store.record_score("blog-writer", Score("r0", 4, "j"))  # 6
    ran = get_topic(Task.Ran)
    assert [n.id for n in store.recorder.select_notifications(start=2, limit=10, inclusive_of_start=False)] == [3, 4, 5, 6]
    assert [n.id for n in store.recorder.select_notifications(start=1, limit=2)] == [1, 2]
    assert [n.id for n in store.notification_log.select(start=1, limit=10, stop=4, topics=[ran])] == [2, 3, 4]
    assert isinstance(store.notification_log.select(start=6, limit=1)[0].state, bytes)

"""Projections folded by the polling runner, on real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from sqlalchemy import Column, Integer, String, Table, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from adapters.eventstore import VaultStore
from domain.aggregates import Task
from domain.runs import Check, RunResult, Score
from projections.defaults import default_projections
from projections.ledger import ledger_rows
from projections.quality import quality_table, task_history, task_quality
from projections.runner import Projection, ProjectionRunner, metadata
from projections.runs import runs_table, scores_table


def result(run_id: str, task: str, done_reason: str = "stop") -> RunResult:
    return RunResult(
        run_id=run_id,
        task=task,
        started=f"2026-03-18T06:{len(run_id):02d}:00Z",
        status="ok",
        model="m",
        options={},
        output=f"text of {run_id}",
        done_reason=done_reason,
        prompt_tokens=100,
        output_tokens=50,
    )


def fill(store: VaultStore, tasks: dict[str, list[float]]) -> None:
    """Each task: one registration, then per score a run and its score (every other check fails)."""
    for name, scores in tasks.items():
        store.register_task(name, "h")
        b = store.batch()
        for i, s in enumerate(scores):
            b.run(result(f"{name}-{i}", name, "length" if s < 3 else "stop"))
            b.score(
                name,
                Score(
                    f"{name}-{i}",
                    s,
                    "output-judge",
                    [f"reason {i}"],
                    [Check("truncated", s >= 3), Check("min_words", True)],
                ),
            )
        b.commit()


SCORES: dict[str, list[float]] = {
    "blog-writer": [2, 2, 1, 2, 1, 2, 2, 1],
    "morning-briefing": [3, 4, 4, 5, 5, 4, 5, 5, 4, 5, 5],
    "goal-planner": [4, 3],
}


def dump(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in (
        runs_table,
        scores_table,
        *[
            t
            for t in metadata.sorted_tables
            if t.name.startswith("rm_") and t.name not in ("rm_runs", "rm_scores", "rm_tracking")
        ],
    ):
        out[table.name] = sorted(tuple(r) for r in conn.execute(select(table)).all())
    return out


@pytest.fixture
def store(store_url: str) -> Iterator[VaultStore]:
    with VaultStore(store_url) as s:
        yield s


def test_catch_up_builds_quality_worst_first(store: VaultStore) -> None:
    fill(store, SCORES)
    store.register_task("never-ran", "h")
    runner = ProjectionRunner(store, default_projections(rolling=5))
    assert runner.catch_up() == store.max_notification_id()
    assert runner.catch_up() == 0
    with store.engine.connect() as conn:
        table = quality_table(conn)
    assert [q.task for q in table] == ["blog-writer", "goal-planner", "morning-briefing", "never-ran"]
    bw, gp, mb, nr = table
    assert (bw.runs, bw.scored_runs, bw.last_score) == (8, 8, 1.0)
    assert bw.rolling_mean == pytest.approx((2 + 1 + 2 + 2 + 1) / 5)
    assert bw.trend == pytest.approx(1.6 - (2 + 2 + 1) / 3) and bw.direction == "-"
    assert bw.failing_checks == ("truncated",) and bw.last_done_reason == "length"
    assert mb.rolling_mean == pytest.approx(4.8) and mb.trend == pytest.approx(4.8 - 4.4) and mb.direction == "+"
    assert mb.failing_checks == () and mb.last_reasons == ("reason 10",)
    assert gp.trend is None and gp.direction == ""
    assert (nr.runs, nr.rolling_mean, nr.last_run_at) == (0, None, None)


def test_task_history_newest_first_with_scores(store: VaultStore) -> None:
    fill(store, SCORES)
    store.record_score("goal-planner", Score("goal-planner-1", 5, "second-judge"))
    ProjectionRunner(store, default_projections()).catch_up()
    with store.engine.connect() as conn:
        history = task_history(conn, "goal-planner", limit=5)
        assert task_history(conn, "nobody") == []
        assert task_quality(conn, "goal-planner").scored_runs == 3  # type: ignore[union-attr]
    assert [h.run_id for h in history] == ["goal-planner-1", "goal-planner-0"]
    assert [s.judge for s in history[0].scores] == ["output-judge", "second-judge"] and history[0].score == 5
    assert history[1].scores[0].failing == () and history[1].words == 3 and history[1].tokens == 50


def test_resume_after_restart_equals_a_one_shot_fold(store_url: str) -> None:
    with VaultStore(store_url) as store:
        fill(store, SCORES)
        total = store.max_notification_id()
        first = ProjectionRunner(store, default_projections(), batch_size=7).catch_up(limit=total // 2)
        assert first == total // 2
    with VaultStore(store_url) as store:  # a restart: new process state, same database
        fill(store, {"late-task": [2, 3]})
        runner = ProjectionRunner(store, default_projections(), batch_size=7)
        rest = runner.catch_up()
        assert first + rest == store.max_notification_id()
        assert set(runner.positions().values()) == {store.max_notification_id()}
        with store.engine.connect() as conn:
            resumed = dump(conn)
            n_runs = conn.execute(select(func.count()).select_from(runs_table)).scalar_one()
        assert n_runs == sum(len(s) for s in SCORES.values()) + 2  # nothing applied twice
        for name in runner.projections:
            runner.rebuild(name)
        with store.engine.connect() as conn:
            assert dump(conn) == resumed


def test_rebuild_refolds_one_read_model(store: VaultStore) -> None:
    fill(store, SCORES)
    runner = ProjectionRunner(store, default_projections())
    runner.catch_up()
    with store.engine.begin() as conn:
        conn.execute(runs_table.delete())
    assert runner.rebuild("runs") == store.max_notification_id()
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(runs_table)).scalar_one() == 21
        before = dump(conn)
    assert runner.rebuild() == store.max_notification_id()  # all read models, one pass
    with store.engine.connect() as conn:
        assert dump(conn) == before and len(quality_table(conn)) == 3


def test_a_read_model_made_by_an_older_definition_is_rebuilt_on_start(store: VaultStore) -> None:
    from projections.runner import tracking_table

    fill(store, SCORES)
    ProjectionRunner(store, default_projections()).catch_up()
    with store.engine.begin() as conn:
        good = dump(conn)
        conn.execute(runs_table.delete())  # what an old table shape would leave us reading
        conn.execute(tracking_table.update().where(tracking_table.c.projection == "runs").values(schema="older"))
    runner = ProjectionRunner(store, default_projections())  # start-up notices the fingerprint and refolds
    assert runner.positions()["runs"] == store.max_notification_id()
    with store.engine.connect() as conn:
        assert dump(conn) == good


counted = Table(
    "rm_test_counted", metadata, Column("notification_id", Integer, primary_key=True), Column("topic", String(200))
)


class Exploding(Projection):
    """Counts every Ran; the database fails once on the `fail_at`-th event it sees (not the event's fault, so
    the batch is rolled back and the error raised — an event's own error is skipped: test_safety_store)."""

    name: ClassVar[str] = "exploding"
    tables: ClassVar = (counted,)
    handles: ClassVar = (Task.Ran,)

    def __init__(self, fail_at: int | None) -> None:
        self.fail_at = fail_at
        self.seen = 0

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        self.seen += 1
        if self.seen == self.fail_at:
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("disk I/O error: crash mid-batch"))
        conn.execute(insert(counted).values(notification_id=notification_id, topic=type(event).__name__))


def test_a_crash_mid_batch_rolls_back_the_read_model_and_the_position(store: VaultStore) -> None:
    fill(store, SCORES)
    exploding = Exploding(fail_at=5)
    runner = ProjectionRunner(store, [*default_projections(), exploding], batch_size=10)
    with pytest.raises(OperationalError, match="crash mid-batch"):
        runner.catch_up()
    positions = runner.positions()
    with store.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(counted)).scalar_one()
        runs_before = conn.execute(select(func.count()).select_from(runs_table)).scalar_one()
    assert positions["exploding"] == positions["runs"] < store.max_notification_id()
    assert before == runs_before  # the failed batch left neither rows nor position behind
    exploding.fail_at = None
    runner.catch_up()
    with store.engine.connect() as conn:
        rows = conn.execute(select(counted.c.notification_id)).scalars().all()
    assert len(rows) == len(set(rows)) == sum(len(s) for s in SCORES.values())


def test_two_runners_on_one_database_do_not_double_apply(store_url: str) -> None:
    with VaultStore(store_url) as a, VaultStore(store_url) as b:
        fill(a, SCORES)
        ra = ProjectionRunner(a, default_projections(), batch_size=5)
        rb = ProjectionRunner(b, default_projections(), batch_size=5)
        assert ra.catch_up(limit=10) == 10
        assert rb.catch_up() + 10 == a.max_notification_id()
        assert ra.catch_up() == 0
        with a.engine.connect() as conn:
            assert task_quality(conn, "morning-briefing").runs == 11  # type: ignore[union-attr]


def test_ledger_carries_the_cycle_forward(store: VaultStore) -> None:
    store.register_task("blog-writer", "h")
    store.start_cycle("bw#1", "blog-writer", "prompt", 4.0, "score below target")
    store.update_cycle(
        "bw#1",
        lambda c: c.proposed(
            delta_hash="d1", proposer="claude", lever="prompt", rationale="ask for 600 words", cost={"usd": 0.01}
        ),
    )
    runner = ProjectionRunner(store, default_projections())
    runner.catch_up()  # the next events meet a cycle whose lever is only in the read model
    store.update_cycle(
        "bw#1",
        lambda c: c.verified(
            baseline=[2.0, 3.0],
            candidate=[4.0, 4.5],
            effect=1.75,
            interval=[0.9, 2.4],
            decision="keep",
            rule={},
            guardrails=[],
            cost={},
        ),
    )
    store.update_cycle("bw#1", lambda c: c.await_approval(paths=["prompts/blog-writer.md"]))
    store.update_cycle("bw#1", lambda c: c.kept(applied_hashes={"prompts/blog-writer.md": "e" * 64}, commit="abc"))
    store.record_change("blog-writer", "prompts/blog-writer.md", "a" * 64, "e" * 64, "+600 words", "cycle", "bw#1")
    runner.catch_up()
    with store.engine.connect() as conn:
        rows = ledger_rows(conn)
        assert [r.kind for r in ledger_rows(conn, task="blog-writer", limit=2)] == ["Kept", "Changed"]
    assert [(r.kind, r.decision) for r in rows] == [
        ("Proposed", "proposed"),
        ("Verified", "keep"),
        ("AwaitingApproval", "awaiting approval"),
        ("Kept", "kept"),
        ("Changed", "cycle"),
    ]
    kept = rows[3]
    assert (kept.cycle, kept.task, kept.lever) == ("bw#1", "blog-writer", "prompt")
    assert (kept.baseline_mean, kept.candidate_mean, kept.effect) == (2.5, 4.25, 1.75)
    assert rows[1].description == "effect +1.75 [+0.90, +2.40] over 2 samples"
    assert rows[4].description == "prompts/blog-writer.md changed by cycle" and rows[4].cycle == "bw#1"


def test_catch_up_with_nothing_new_does_not_need_the_write_lock(sqlite_url: str) -> None:
    with VaultStore(sqlite_url) as store:
        fill(store, {"goal-planner": [4, 3]})
        runner = ProjectionRunner(store, default_projections())
        runner.catch_up()
        path = store.engine.url.database
        assert path is not None
        writer = sqlite3.connect(path, timeout=0)
        try:
            writer.execute("BEGIN IMMEDIATE")  # a daemon mid-write holds the lock
            assert runner.catch_up() == 0
            with store.engine.connect() as conn:
                assert task_quality(conn, "goal-planner").runs == 2  # type: ignore[union-attr]
        finally:
            writer.rollback()
            writer.close()

"""One bad log line never breaks the store (issue 14): refused at ingest with file:line, field and fix, the good
lines kept; and an event that slipped in before (written directly, as an older version would have) is skipped
by the read model that cannot fold it and reported — status, ledger, history, doctor and the daemon go on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.utils import get_topic
from sqlalchemy import func, select

from adapters.eventstore import VaultStore
from daemon.cli import main
from domain.aggregates import Task
from handlers.ingest import IngestReport, ingest_items, ingest_path, parse_file
from projections.defaults import default_projections
from projections.problems import fold_problems
from projections.runner import ProjectionRunner
from projections.runs import runs_table, scores_table
from testbed.bad_logs import BAD_LINES, GOOD, GOOD_2, RUN, older_events, write_log


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with VaultStore(f"sqlite:///{tmp_path / 'events.db'}") as s:
        yield s


@pytest.mark.parametrize(("line", "says"), [c[1:] for c in BAD_LINES], ids=[c[0] for c in BAD_LINES])
def test_a_bad_line_is_refused_with_its_place_and_the_good_lines_are_kept(
        tmp_path: Path, store: VaultStore, line: str, says: str) -> None:
    log = write_log(tmp_path / "h.jsonl", line)
    report = ingest_path(log, store)
    assert report.runs == 2, report.errors
    (error,) = report.errors
    assert error.startswith(f"{log}:2: ") and says in error, error
    assert "\n" not in error and " — fix: " in error and len(error) < 400, error[:400]
    runner = ProjectionRunner(store, default_projections())
    runner.catch_up()
    with store.engine.connect() as conn:
        assert sorted(conn.execute(select(runs_table.c.run_id)).scalars()) == ["good-1", "good-2"]
        assert fold_problems(conn) == []


def test_at_least_28_bad_line_cases() -> None:
    assert len(BAD_LINES) >= 28 and len({c[0] for c in BAD_LINES}) == len(BAD_LINES)


def test_a_byte_order_mark_does_not_cost_the_first_line(tmp_path: Path, store: VaultStore) -> None:
    log = write_log(tmp_path / "bom.jsonl", json.dumps({**GOOD, "run_id": "good-3"}), bom=True)
    report = ingest_path(log, store)
    assert (report.runs, report.errors) == (3, [])


def test_a_line_longer_than_the_limit_is_skipped_without_reading_it_whole(tmp_path: Path, store: VaultStore) -> None:
    log = write_log(tmp_path / "long.jsonl", RUN + '"output": "' + "w " * 5000 + '"}')
    report = IngestReport()
    ingest_items(parse_file(log, report, limit=1000), store, report)
    assert report.runs == 2
    assert report.errors == [f"{log}:2: line is longer than 1,000 bytes — fix: keep output and context under 16 MB each"]


def test_a_repeated_run_id_with_other_content_is_reported_not_dropped_silently(tmp_path: Path,
                                                                              store: VaultStore) -> None:
    first = tmp_path / "a.jsonl"
    first.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "type": "score", "score": 4}) + "\n")
    assert ingest_path(first, store).runs == 1
    again = tmp_path / "b.jsonl"
    again.write_text("\n".join([
        json.dumps(GOOD),  # the same line: a duplicate, said as such
        json.dumps({**GOOD, "output": "other words"}),  # same run_id, other content: a conflict
        json.dumps({**GOOD, "type": "score", "score": 2}),  # the same score key, another score
        json.dumps({**GOOD, "type": "score", "score": 4}),  # the same score again: a duplicate
    ]) + "\n")
    report = ingest_path(again, store)
    assert (report.runs, report.scores, report.duplicates, report.conflicts) == (0, 0, 2, 2)
    assert report.errors == [
        f"{again}:2: run_id 'good-1' was already recorded with other content; the first record is kept — fix: give "
        "this line its own run_id (or remove it if it is a stale copy)",
        f"{again}:3: score of run 'good-1' by judge 'external' was already recorded with other content; the first "
        "record is kept — fix: give this line its own run_id (or remove it if it is a stale copy)",
    ]


def test_conflicts_within_one_file_are_reported_too(tmp_path: Path, store: VaultStore) -> None:
    log = tmp_path / "one.jsonl"
    log.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "model": "ollama:other"}) + "\n")
    report = ingest_path(log, store)
    assert (report.runs, report.conflicts) == (1, 1) and report.errors[0].startswith(f"{log}:2: run_id 'good-1'")


def test_cli_ingest_prints_each_refused_line_and_keeps_the_rest(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = vault(tmp_path)
    log = tmp_path / "logs.jsonl"
    log.write_text("\n".join([json.dumps(GOOD), *(c[1] for c in BAD_LINES[:10]), json.dumps(GOOD_2)]) + "\n")
    assert main(["--config", str(cfg), "ingest", str(log)]) == 1
    out, err = capsys.readouterr()
    assert "ingested 2 runs and 0 scores from 1 files (0 already recorded, 10 lines refused)" in out
    assert [line.split(": ", 1)[0] for line in err.splitlines()] == [f"{log}:{n}" for n in range(2, 12)]


# ---- events an older version let in ------------------------------------------------------------------------


def vault(tmp_path: Path, store_url: str | None = None) -> Path:
    (tmp_path / "vault" / "prompts").mkdir(parents=True, exist_ok=True)
    (tmp_path / "vault" / "prompts" / "brief.md").write_text("Summarise {context}\n")
    cfg = tmp_path / "vault.yml"
    store = store_url or f"sqlite:///{tmp_path / 'store' / 'events.db'}"
    cfg.write_text(f"vault: vault\nstore: {store}\ntasks:\n  brief:\n    prompt: prompts/brief.md\n"
                   "    model: ollama:writer\n")
    return cfg


def test_a_read_model_skips_an_event_it_cannot_fold_and_reports_it(store_url: str) -> None:
    with VaultStore(store_url) as store:
        older_events(store)
        runner = ProjectionRunner(store, default_projections(), batch_size=64)
        runner.catch_up()
        assert set(runner.positions().values()) == {store.max_notification_id()}
        with store.engine.connect() as conn:
            runs = set(conn.execute(select(runs_table.c.run_id)).scalars())
            scores = conn.execute(select(func.count()).select_from(scores_table)).scalar_one()
            problems = fold_problems(conn)
        assert {"good-a", "good-b"} <= runs and scores >= 1
        assert problems and all("\n" not in p.error and len(p.error) <= 480 for p in problems)
        assert {p.event for p in problems} <= {"Task.Ran", "Task.Scored", "Cycle.Kept"}
        assert any(p.originator_version == 1 for p in problems)  # the undecodable event is reported too
        ran = {n.id for n in store.recorder.select_notifications(1, 10_000, topics=[get_topic(Task.Ran)])}
        with store.engine.connect() as conn:
            folded = set(conn.execute(select(runs_table.c.notification_id)).scalars())
        skipped = {p.notification_id for p in problems if p.projection == "runs" and p.event == "Task.Ran"}
        assert ran == folded | skipped  # none lost silently
        before = [(p.projection, p.notification_id) for p in problems]
        runner.rebuild()  # a rebuild meets the same events and says so again, nothing more
        with store.engine.connect() as conn:
            assert sorted((p.projection, p.notification_id) for p in fold_problems(conn)) == sorted(before)


def test_status_ledger_history_and_doctor_keep_working(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = vault(tmp_path)
    with VaultStore(f"sqlite:///{tmp_path / 'store' / 'events.db'}") as store:
        older_events(store)
    for command in (["status"], ["ledger"], ["history", "brief", "--all"], ["status", "--json"]):
        assert main(["--config", str(cfg), *command]) == 0, command
    out, err = capsys.readouterr()
    assert err.count("events could not be folded") == 2  # each status says so
    assert main(["--config", str(cfg), "doctor"]) == 1
    out, _ = capsys.readouterr()
    assert "Task.Ran" in out and "Task.Scored" in out
    assert main(["--config", str(cfg), "--json", "doctor"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["skipped_events"] and all(set(p) >= {"projection", "notification_id", "event", "error"}
                                            for p in report["skipped_events"])


def test_the_daemon_starts_over_events_it_cannot_fold(tmp_path: Path) -> None:
    """What was a systemd restart loop: the daemon folds around the bad events and runs (`run --once`)."""
    from daemon.service import Options, run_service

    cfg = vault(tmp_path)
    with VaultStore(f"sqlite:///{tmp_path / 'store' / 'events.db'}") as store:
        older_events(store)
    assert run_service(Options(config=cfg, once=True, env={})) == 0

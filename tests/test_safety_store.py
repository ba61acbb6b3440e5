"""One bad log line never breaks the store (issue 14): refused at ingest with file:line, field and fix, the good
lines kept; and an event that slipped in before (written directly, as an older version would have) is skipped
by the read model that cannot fold it and reported — status, ledger, history, doctor and the daemon go on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from sqlalchemy import func, select

from adapters.eventstore import VaultStore
from daemon.cli import main
from domain.aggregates import Cycle, Task
from domain.runs import RunResult, Score
from handlers.ingest import IngestReport, ingest_items, ingest_path, parse_file
from projections import ProjectionRunner, default_projections
from projections.problems import fold_problems
from projections.runs import runs_table, scores_table

GOOD = {"type": "run", "task": "brief", "run_id": "good-1", "started": "2026-03-18T06:30:00Z", "output": "fine words",
        "duration_s": 1.5, "prompt_tokens": 10, "output_tokens": 2}
GOOD_2 = {**GOOD, "run_id": "good-2", "started": "2026-03-18T07:30:00Z"}
RUN = '{"type": "run", "task": "brief", "run_id": "bad", "started": "2026-03-18T06:30:00Z", '
SCORE = '{"type": "score", "task": "brief", "run_id": "good-1", '

# (id, the bad line, what its one-line error says after "FILE:2: ")
BAD_LINES: list[tuple[str, str, str]] = [
    ("nan-duration", RUN + '"duration_s": NaN}', "NaN is not a number a run can have"),
    ("infinity-duration", RUN + '"duration_s": Infinity}', "Infinity is not a number a run can have"),
    ("minus-infinity-tokens", RUN + '"prompt_tokens": -Infinity}', "-Infinity is not a number a run can have"),
    ("float-overflow", RUN + '"duration_s": 1e400}', "1e400 overflows to infinity"),
    ("41-digit-tokens", RUN + '"prompt_tokens": ' + "9" * 41 + "}", "a 41-digit integer is out of range"),
    ("4300-digit-int", RUN + '"output_tokens": ' + "1" * 5000 + "}", "a 5000-digit integer is out of range"),
    ("negative-tokens", RUN + '"output_tokens": -5}', "output_tokens: -5 is outside 0–1e+08"),
    ("tokens-beyond-bound", RUN + '"thinking_tokens": 1000000000000}', "thinking_tokens: 1000000000000 is outside"),
    ("negative-duration", RUN + '"duration_s": -1.0}', "duration_s: -1.0 is outside"),
    ("duration-beyond-bound", RUN + '"duration_s": 1e300}', "duration_s: 1e+300 is outside"),
    ("nan-score", SCORE + '"score": NaN}', "NaN is not a number a run can have"),
    ("41-digit-score", SCORE + '"score": ' + "4" * 41 + "}", "a 41-digit integer is out of range"),
    ("score-out-of-range", SCORE + '"score": 0.5}', "score: 0.5 is outside 1–5"),
    ("option-nan", RUN + '"options": {"temperature": NaN}}', "NaN is not a number a run can have"),
    ("option-41-digits", RUN + '"options": {"seed": ' + "7" * 41 + "}}", "a 41-digit integer is out of range"),
    ("options-deep", RUN + '"options": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}', "nested 7 levels deep"),
    ("nested-100000", "[" * 100_000 + "]" * 100_000, "nested deeper than 6 levels"),
    ("nested-5000-objects", '{"a":' * 5000 + "1" + "}" * 5000, "nested deeper than 6 levels"),
    ("duplicate-key", RUN + '"output": "a", "output": "b"}', "output: given twice in one object"),
    ("task-too-long", RUN.replace('"brief"', '"' + "t" * 300 + '"') + '"output": "x"}', "task: 'tttttt"),
    ("task-not-a-name", RUN.replace('"brief"', '"Morning Brief!"') + '"output": "x"}', "is not a task name"),
    ("run-id-too-long", RUN.replace('"bad"', '"' + "r" * 500 + '"') + '"output": "x"}', "run_id: 500 characters"),
    ("started-not-a-time", RUN.replace("2026-03-18T06:30:00Z", "yesterday") + '"output": "x"}',
     "started: 'yesterday' is not an ISO 8601 time"),
    ("model-too-long", RUN + '"model": "' + "m" * 1000 + '"}', "model: 1000 characters, more than 200"),
    ("status-too-long", RUN + '"status": "' + "s" * 50 + '"}', "status: 50 characters, more than 20"),
    ("nul-in-output", RUN + '"output": "a\\u0000b"}', "output: contains a NUL character"),
    ("lone-surrogate", RUN + '"output": "\\ud800"}', "output: contains a lone surrogate"),
    ("artifact-not-text", RUN + '"artifacts": [{"path": "x"}]}', "artifacts[0]: expected a string"),
    ("reason-not-text", SCORE + '"score": 3, "reasons": [["nested"]]}', "reasons[0]: expected a string"),
    ("type-not-text", '{"type": 5, "task": "brief"}', "type: expected 'run' or 'score', got 5"),
    ("not-an-object", '"just a string"', "expected a JSON object"),
    ("truncated-line", RUN + '"output": "cut off', "not JSON"),
]


def write_log(path: Path, bad: str, *, bom: bool = False) -> Path:
    """good-1, the bad line, good-2: the bad line is line 2."""
    text = "\n".join([json.dumps(GOOD), bad, json.dumps(GOOD_2)]) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", errors="surrogatepass"))
    return path


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


def run(run_id: str, **kw: Any) -> RunResult:
    fields: dict[str, Any] = {"run_id": run_id, "task": "brief", "started": "2026-03-18T06:30:00Z", "status": "ok",
                              "model": "ollama:writer", "options": {}, "output": "some words", "done_reason": "stop",
                              "prompt_tokens": 5, "output_tokens": 2, "durations": {"model": 1.0}, "source": "log"}
    fields.update(kw)
    return RunResult(**fields)


def older_events(store: VaultStore) -> list[str]:
    """Good runs around events this version refuses at the door; returns what each bad one is."""
    store.record_run(run("good-a"))
    bad = {
        "tokens-41-digits": run("tokens-41-digits", prompt_tokens=10**41),
        "duration-nan": run("duration-nan", durations={"model": math.nan}),
        "words-41-digits": run("words-41-digits", output_tokens=-(10**41)),
        "long-model": run("long-model", model="m" * 5000),
        "long-run-id-" + "x" * 300: run("long-run-id-" + "x" * 300),
    }
    for r in bad.values():
        store.record_run(r)
    store.record_score("brief", Score(run_id="good-a", score=math.nan, judge="j1"))
    store.record_score("brief", Score(run_id="good-a", score=10**41, judge="j2"))
    store.recorder.insert_events([  # cannot even be decoded
        StoredEvent(originator_id=uuid4(), originator_version=1, topic=get_topic(Task.Ran), state=b'{"not": "a run"'),
        StoredEvent(originator_id=uuid4(), originator_version=2, topic=get_topic(Cycle.Kept),  # type: ignore[attr-defined]
                    state=b"\x00\x01"),
    ])
    store.record_run(run("good-b"))
    store.record_score("brief", Score(run_id="good-b", score=4.0, judge="j1"))
    return [*bad, "score-nan", "score-41-digits", "undecodable-run", "undecodable-cycle"]


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

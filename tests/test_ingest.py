"""The heartbeat JSONL format: every refused line says file:line, the field and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.eventstore import VaultStore
from domain import ids
from domain.aggregates import Task
from domain.ingest import IngestedRun, IngestedScore, IngestError, parse_line, run_id_for

RUN = {"type": "run", "task": "morning-briefing", "started": "2026-03-18T06:30:00Z", "output": "hello"}


def test_run_without_id_gets_a_stable_one() -> None:
    a = parse_line(json.dumps(RUN), "h.jsonl:1")
    b = parse_line(json.dumps(dict(reversed(list(RUN.items())))), "h.jsonl:9")
    assert isinstance(a, IngestedRun) and isinstance(b, IngestedRun)
    assert a.run_id == b.run_id == run_id_for("morning-briefing", "2026-03-18T06:30:00Z")
    assert a.done_reason == "stop" and a.status == "ok" and a.model == "unknown" and a.context == ""


def test_run_context_is_parsed_and_stored_as_a_blob(tmp_path: Path) -> None:
    note = "Note: Knowledge/kv-cache.md\n---\ntitle: KV Cache\n---\n\n## Key Facts\n- one fact\n"
    run = parse_line(json.dumps({**RUN, "run_id": "hb-1", "context": note}), "h.jsonl:1")
    assert isinstance(run, IngestedRun) and run.context == note
    with VaultStore(f"sqlite:///{tmp_path / 'events.db'}") as store:
        assert store.ingest_run(run) is not None
        ran = list(store.events.get(ids.task_id("morning-briefing")))[-1]
        assert isinstance(ran, Task.Ran) and ran.context_hash == ids.sha256_text(note)
        assert store.blobs.get_text(ran.context_hash) == note
        plain = parse_line(json.dumps({**RUN, "run_id": "hb-2"}), "h.jsonl:2")
        assert isinstance(plain, IngestedRun) and store.ingest_run(plain) is not None
        last = list(store.events.get(ids.task_id("morning-briefing")))[-1]
        assert isinstance(last, Task.Ran) and last.run_id == "hb-2" and last.context_hash is None


def test_score_finds_its_run_by_started() -> None:
    s = parse_line(json.dumps({"type": "score", "task": "morning-briefing", "started": RUN["started"], "score": 3}),
                   "h.jsonl:2")
    assert isinstance(s, IngestedScore)
    assert s.run_id == run_id_for("morning-briefing", RUN["started"]) and s.score == 3.0 and s.judge == "external"


@pytest.mark.parametrize("line", ["", "   ", "# a comment"])
def test_blank_and_comment_lines_are_skipped(line: str) -> None:
    assert parse_line(line, "h.jsonl:1") is None


@pytest.mark.parametrize(("line", "expected"), [
    ("{not json", "h.jsonl:4: not JSON"),
    ("[1, 2]", "h.jsonl:4: expected a JSON object"),
    ('{"type": "beat"}', "h.jsonl:4: type: expected 'run' or 'score', got 'beat'"),
    ('{"type": "run", "started": "x"}', "h.jsonl:4: task: missing — fix: add \"task\""),
    ('{"type": "run", "task": 7, "started": "x"}', "h.jsonl:4: task: expected a string, got 7"),
    ('{"type": "run", "task": "t"}', "h.jsonl:4: started: missing"),
    ('{"type": "run", "task": "t", "started": "x", "output_tokens": "many"}', "h.jsonl:4: output_tokens: expected an integer"),
    ('{"type": "run", "task": "t", "started": "x", "duration_s": true}', "h.jsonl:4: duration_s: expected an integer or a number"),
    ('{"type": "run", "task": "t", "started": "x", "context": ["a"]}', "h.jsonl:4: context: expected a string"),
    ('{"type": "score", "task": "t", "score": 3}', "h.jsonl:4: run_id: missing"),
    ('{"type": "score", "task": "t", "run_id": "r", "score": 9}', "h.jsonl:4: score: 9.0 is outside 1–5"),
    ('{"type": "score", "task": "t", "run_id": "r", "score": "good"}', "h.jsonl:4: score: expected an integer or a number"),
])
def test_refused_lines_name_the_place_the_field_and_the_fix(line: str, expected: str) -> None:
    with pytest.raises(IngestError) as err:
        parse_line(line, "h.jsonl:4")
    message = str(err.value)
    assert message.startswith(expected)
    assert "\n" not in message and "fix:" in message

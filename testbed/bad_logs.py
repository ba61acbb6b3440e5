"""Bad heartbeat lines and events an older version let in: what the store must refuse or skip, never be broken by.

`BAD_LINES` are lines `autovault ingest` must refuse, one line each naming file:line, the field and the fix, keeping
the good lines around them (`write_log` puts one between two good runs); `older_events` writes events this version
refuses at the door straight into a store, as an older version would have, for the read models to skip.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from uuid import uuid4

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from adapters.eventstore import VaultStore
from domain.aggregates import Cycle, Task
from domain.runs import RunResult, Score

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

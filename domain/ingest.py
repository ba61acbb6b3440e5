"""The heartbeat JSONL format: runs and scores produced outside autovault, one object per line.

    {"type": "run", "task": "morning-briefing", "run_id": "hb-1" (optional), "started": "2026-03-18T06:30:00Z",
     "model": "ollama:qwen3:8b", "options": {"num_predict": 300}, "duration_s": 12.3, "prompt_tokens": 812,
     "output_tokens": 300, "thinking_tokens": 0, "done_reason": "length", "status": "ok", "output": "...",
     "artifacts": ["Briefings/2026-03-18.md"], "context": "..." (optional)}
    {"type": "score", "task": "morning-briefing", "run_id": "hb-1" (or "started" of the run), "score": 3,
     "judge": "output-judge", "reasons": ["truncated mid-section"]}

A run without `run_id` gets one derived from the line's canonical JSON, so ingesting the same line twice
is one event. A score without `run_id` points at its run through `task` + `started`. A run's optional
`context` is the collector output its prompt carried: stored with the run, it lets a good run become a
training example (the prompt it answered, not just the answer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid5

from domain.ids import NAMESPACE


class IngestError(ValueError):
    """One line of a log that cannot be used; `str()` names the file, the line, the field and the fix."""


@dataclass(frozen=True)
class IngestedRun:
    task: str
    run_id: str
    started: str
    model: str
    options: dict[str, Any]
    duration_s: float
    prompt_tokens: int
    output_tokens: int
    thinking_tokens: int
    done_reason: str
    status: str
    output: str
    artifacts: list[str] = field(default_factory=list)
    context: str = ""


@dataclass(frozen=True)
class IngestedScore:
    task: str
    run_id: str
    score: float
    judge: str
    reasons: list[str] = field(default_factory=list)


def run_id_for(task: str, started: str) -> str:
    """The id a run gets when its log line has none: stable for the same task and start time."""
    return str(uuid5(NAMESPACE, f"run:{task}:{started}"))


def parse_line(text: str, where: str) -> IngestedRun | IngestedScore | None:
    """Parse one JSONL line; blank lines and `#` comments give None."""
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return None
    try:
        obj = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise IngestError(
            f"{where}: not JSON ({exc.msg} at column {exc.colno}) — fix: one JSON object per line"
        ) from None
    if not isinstance(obj, dict):
        raise IngestError(f"{where}: expected a JSON object — fix: one object per line with a 'type' field")
    kind = obj.get("type")
    if kind == "run":
        return _run(obj, where)
    if kind == "score":
        return _score(obj, where)
    raise IngestError(f'{where}: type: expected \'run\' or \'score\', got {kind!r} — fix: add "type": "run" or "score"')


def _need(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, example: str) -> Any:
    if key not in obj:
        raise IngestError(f'{where}: {key}: missing — fix: add "{key}": {example}')
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise IngestError(f"{where}: {key}: expected {_kind_name(kind)}, got {value!r:.40} — fix: use e.g. {example}")
    return value


def _opt(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any, where: str) -> Any:
    if obj.get(key) is None:
        return default
    return _need(obj, key, kind, where, repr(default))


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {"str": "a string", "int": "an integer", "float": "a number", "dict": "an object", "list": "a list"}.get(
            k.__name__, k.__name__
        )
        for k in kinds
    )


def _run(obj: dict[str, Any], where: str) -> IngestedRun:
    task = _need(obj, "task", str, where, '"morning-briefing"')
    started = _need(obj, "started", str, where, '"2026-03-18T06:30:00Z"')
    run_id = _opt(obj, "run_id", str, None, where) or run_id_for(task, started)
    artifacts = _opt(obj, "artifacts", list, [], where)
    return IngestedRun(
        task=task,
        run_id=run_id,
        started=started,
        model=_opt(obj, "model", str, "unknown", where),
        options=_opt(obj, "options", dict, {}, where),
        duration_s=float(_opt(obj, "duration_s", (int, float), 0.0, where)),
        prompt_tokens=int(_opt(obj, "prompt_tokens", int, 0, where)),
        output_tokens=int(_opt(obj, "output_tokens", int, 0, where)),
        thinking_tokens=int(_opt(obj, "thinking_tokens", int, 0, where)),
        done_reason=_opt(obj, "done_reason", str, "stop", where),
        status=_opt(obj, "status", str, "ok", where),
        output=_opt(obj, "output", str, "", where),
        artifacts=[str(a) for a in artifacts],
        context=_opt(obj, "context", str, "", where),
    )


def _score(obj: dict[str, Any], where: str) -> IngestedScore:
    task = _need(obj, "task", str, where, '"morning-briefing"')
    run_id = _opt(obj, "run_id", str, None, where)
    if run_id is None:
        if "started" not in obj:
            raise IngestError(f'{where}: run_id: missing — fix: add the run\'s "run_id" or its "started" time')
        run_id = run_id_for(task, _need(obj, "started", str, where, '"2026-03-18T06:30:00Z"'))
    score = float(_need(obj, "score", (int, float), where, "4"))
    if not 1 <= score <= 5:
        raise IngestError(f"{where}: score: {score} is outside 1–5 — fix: scores are 1 (broken) to 5 (excellent)")
    reasons = _opt(obj, "reasons", list, [], where)
    return IngestedScore(
        task=task,
        run_id=run_id,
        score=score,
        judge=_opt(obj, "judge", str, "external", where),
        reasons=[str(r) for r in reasons],
    )

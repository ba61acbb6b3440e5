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

Every value is checked here, at the door, because whatever passes is stored forever and folded by every
read model on every rebuild: numbers must be finite and within bounds a real run can reach, text must fit
the read models' columns and be storable (no NUL, no lone surrogate), nesting is shallow, a key appears
once. A refused line is one `IngestError` naming the place, the field and the fix; the other lines of
the file are unaffected.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import uuid5

from domain.config_fields import TASK_NAME
from domain.ids import NAMESPACE

MAX_LINE_CHARS: Final = 32 * 1024 * 1024  # one run with a 16 MB output and a 16 MB context
MAX_TEXT_CHARS: Final = 16 * 1024 * 1024  # output, context
MAX_DEPTH: Final = 6  # the line's object is depth 1; options {"stop": ["x"]} reaches 3
MAX_INT_DIGITS: Final = 19  # int64; more digits overflow every SQL integer column
MAX_TOKENS: Final = 100_000_000
MAX_SECONDS: Final = 10_000_000.0  # ~115 days
MAX_ITEMS: Final = 10_000  # artifacts, reasons, option keys
# Columns of the read models (`projections.runs`): a longer value breaks a PostgreSQL insert.
MAX_CHARS: Final = {"task": 100, "run_id": 200, "started": 40, "model": 200, "status": 20, "done_reason": 40,
                    "judge": 200, "artifact": 1000, "reason": 4000, "option": 10_000}


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
    where: str = field(default="", compare=False)  # file:line, for reports about this line after parsing


@dataclass(frozen=True)
class IngestedScore:
    task: str
    run_id: str
    score: float
    judge: str
    reasons: list[str] = field(default_factory=list)
    where: str = field(default="", compare=False)


def run_id_for(task: str, started: str) -> str:
    """The id a run gets when its log line has none: stable for the same task and start time."""
    return str(uuid5(NAMESPACE, f"run:{task}:{started}"))


class _Refused(ValueError):
    """Raised from inside json.loads hooks; becomes an IngestError with the line's place."""


def parse_line(text: str, where: str) -> IngestedRun | IngestedScore | None:
    """Parse one JSONL line; blank lines and `#` comments give None."""
    stripped = text.lstrip("\ufeff").strip()  # a byte-order mark opens some editors' files
    if not stripped or stripped.startswith("#"):
        return None
    if len(stripped) > MAX_LINE_CHARS:
        raise IngestError(f"{where}: line is {len(stripped) // 1_048_576} MB, over the "
                          f"{MAX_LINE_CHARS // 1_048_576} MB limit — fix: keep output and context under 16 MB each")
    obj = _decode(stripped, where)
    if not isinstance(obj, dict):
        raise IngestError(f"{where}: expected a JSON object — fix: one object per line with a 'type' field")
    kind = obj.get("type")
    if kind == "run":
        return _run(obj, where)
    if kind == "score":
        return _score(obj, where)
    raise IngestError(f"{where}: type: expected 'run' or 'score', got {_show(kind)} — fix: add \"type\": \"run\" or \"score\"")


def _decode(text: str, where: str) -> Any:
    try:
        obj = json.loads(text, parse_constant=_no_constant, parse_int=_bounded_int, parse_float=_finite_float,
                         object_pairs_hook=_unique_keys)
    except _Refused as e:
        raise IngestError(f"{where}: {e}") from None
    except RecursionError:
        raise IngestError(f"{where}: nested deeper than {MAX_DEPTH} levels — fix: keep runs and scores flat "
                          "(options one level deep)") from None
    except json.JSONDecodeError as exc:
        raise IngestError(
            f"{where}: not JSON ({exc.msg} at column {exc.colno}) — fix: one JSON object per line"
        ) from None
    depth = _depth(obj)
    if depth > MAX_DEPTH:
        raise IngestError(f"{where}: nested {depth} levels deep, more than {MAX_DEPTH} — fix: keep runs and scores "
                          "flat (options one level deep)")
    return obj


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number a run can have — fix: write a finite number, or leave the field out")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"a {len(digits.lstrip('-'))}-digit integer is out of range — fix: write a number below 10^18")
    return int(digits)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"{text[:40]} overflows to infinity — fix: write a finite number")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"{_clip(key)}: given twice in one object — fix: keep one {_clip(key)!r}")
        out[key] = value
    return out


def _depth(obj: Any) -> int:
    """Nesting depth without recursion (a hostile line must not exhaust the stack here either)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _show(value: Any) -> str:
    return _clip(repr(value))


def _need(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, example: str) -> Any:
    if key not in obj:
        raise IngestError(f'{where}: {key}: missing — fix: add "{key}": {example}')
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise IngestError(f"{where}: {key}: expected {_kind_name(kind)}, got {_show(value)} — fix: use e.g. {example}")
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


def _text(value: str, key: str, where: str, limit: int) -> str:
    """Text that fits its column and can be stored as UTF-8 in SQLite and PostgreSQL alike."""
    if len(value) > limit:
        raise IngestError(f"{where}: {key}: {len(value)} characters, more than {limit} — fix: shorten it")
    if "\x00" in value:
        raise IngestError(f"{where}: {key}: contains a NUL character (\\u0000) — fix: remove it; "
                          "text with NUL cannot be stored")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise IngestError(f"{where}: {key}: contains a lone surrogate (an unpaired \\ud800-\\udfff escape) — fix: "
                          "write valid UTF-8 text") from None
    return value


def _count(obj: dict[str, Any], key: str, where: str, limit: float, kind: type | tuple[type, ...]) -> Any:
    value = _opt(obj, key, kind, 0, where)
    if not 0 <= value <= limit:
        raise IngestError(f"{where}: {key}: {_show(value)} is outside 0–{limit:g} — fix: write the real "
                          f"{'seconds' if key == 'duration_s' else 'count'} (0 when unknown)")
    return value


def _strings(obj: dict[str, Any], key: str, where: str, limit: int) -> list[str]:
    items = _opt(obj, key, list, [], where)
    if len(items) > MAX_ITEMS:
        raise IngestError(f"{where}: {key}: {len(items)} items, more than {MAX_ITEMS} — fix: list fewer")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise IngestError(f"{where}: {key}[{i}]: expected a string, got {_show(item)} — fix: quote it")
        out.append(_text(str(item), f"{key}[{i}]", where, limit))
    return out


def _options(obj: dict[str, Any], where: str) -> dict[str, Any]:
    options = _opt(obj, "options", dict, {}, where)
    if len(options) > MAX_ITEMS:
        raise IngestError(f"{where}: options: {len(options)} keys, more than {MAX_ITEMS} — fix: log the model options only")
    stack: list[tuple[str, Any]] = [(f"options.{k}", v) for k, v in options.items()]
    while stack:
        name, value = stack.pop()
        if isinstance(value, str):
            _text(value, name, where, MAX_CHARS["option"])
        elif isinstance(value, dict):
            stack.extend((f"{name}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{name}[{i}]", v) for i, v in enumerate(value))
    return options


def _started(value: str, key: str, where: str) -> str:
    _text(value, key, where, MAX_CHARS["started"])
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise IngestError(f"{where}: {key}: {_show(value)} is not an ISO 8601 time — fix: write e.g. "
                          '"2026-03-18T06:30:00Z"') from None
    return value


def _task(obj: dict[str, Any], where: str) -> str:
    task = _need(obj, "task", str, where, '"morning-briefing"')
    if len(task) > MAX_CHARS["task"] or not TASK_NAME.fullmatch(task):
        raise IngestError(f"{where}: task: {_show(task)} is not a task name (lowercase letters, digits and '-', at most "
                          f"{MAX_CHARS['task']}) — fix: use the task's name from vault.yml")
    return task


def _run(obj: dict[str, Any], where: str) -> IngestedRun:
    task = _task(obj, where)
    started = _need(obj, "started", str, where, '"2026-03-18T06:30:00Z"')
    run_id = _opt(obj, "run_id", str, None, where)
    model = _opt(obj, "model", str, "unknown", where)
    options = _options(obj, where)
    duration = float(_count(obj, "duration_s", where, MAX_SECONDS, (int, float)))
    tokens = {k: int(_count(obj, k, where, MAX_TOKENS, int))
              for k in ("prompt_tokens", "output_tokens", "thinking_tokens")}
    done_reason = _opt(obj, "done_reason", str, "stop", where)
    status = _opt(obj, "status", str, "ok", where)
    output = _opt(obj, "output", str, "", where)
    artifacts = _strings(obj, "artifacts", where, MAX_CHARS["artifact"])
    context = _opt(obj, "context", str, "", where)
    for key, value in (("model", model), ("done_reason", done_reason), ("status", status)):
        _text(value, key, where, MAX_CHARS[key])
    _text(output, "output", where, MAX_TEXT_CHARS)
    _text(context, "context", where, MAX_TEXT_CHARS)
    _started(started, "started", where)
    if run_id is not None:
        _text(run_id, "run_id", where, MAX_CHARS["run_id"])
    return IngestedRun(
        task=task, run_id=run_id or run_id_for(task, started), started=started, model=model, options=options,
        duration_s=duration, done_reason=done_reason, status=status, output=output, artifacts=artifacts,
        context=context, where=where, **tokens,
    )


def _score(obj: dict[str, Any], where: str) -> IngestedScore:
    task = _task(obj, where)
    run_id = _opt(obj, "run_id", str, None, where)
    if run_id is None:
        if "started" not in obj:
            raise IngestError(f'{where}: run_id: missing — fix: add the run\'s "run_id" or its "started" time')
        started = _need(obj, "started", str, where, '"2026-03-18T06:30:00Z"')
        run_id = run_id_for(task, _started(started, "started", where))
    _text(run_id, "run_id", where, MAX_CHARS["run_id"])
    score = float(_need(obj, "score", (int, float), where, "4"))
    if not 1 <= score <= 5:
        raise IngestError(f"{where}: score: {score} is outside 1–5 — fix: scores are 1 (broken) to 5 (excellent)")
    judge = _text(_opt(obj, "judge", str, "external", where), "judge", where, MAX_CHARS["judge"])
    reasons = _strings(obj, "reasons", where, MAX_CHARS["reason"])
    return IngestedScore(task=task, run_id=run_id, score=score, judge=judge, reasons=reasons, where=where)

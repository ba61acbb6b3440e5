"""A delta as JSON and back: the whole change is kept in the blob store, the Proposed event holds its hash."""

from __future__ import annotations

import json
from typing import Any

from domain.delta import Delta, FileEdit


def delta_to_dict(delta: Delta, before: dict[str, str | None] | None = None) -> dict[str, Any]:
    """JSON-ready; `before` (path → text the delta was made against) lets a later verify rebuild the baseline."""
    return {
        "task": delta.task, "lever": delta.lever, "description": delta.description, "rationale": delta.rationale,
        "proposer": delta.proposer, "signatures": list(delta.signatures), "tasks": list(delta.tasks),
        "meta": dict(delta.meta),
        "edits": [{"path": e.path, "before_hash": e.before_hash, "after": e.after, "in_config": e.in_config}
                  for e in delta.edits],
        "before": dict(before or {}),
    }


def delta_from_dict(data: dict[str, Any]) -> tuple[Delta, dict[str, str | None]]:
    edits = tuple(FileEdit(path=e["path"], before_hash=e["before_hash"], after=e["after"],
                           in_config=bool(e.get("in_config", False))) for e in data["edits"])
    delta = Delta(task=data["task"], lever=data["lever"], description=data["description"],
                  rationale=data["rationale"], edits=edits, proposer=data["proposer"],
                  signatures=tuple(data.get("signatures", ())), tasks=tuple(data.get("tasks", ())),
                  meta=dict(data.get("meta", {})))
    return delta, dict(data.get("before", {}))


def delta_json(delta: Delta, before: dict[str, str | None] | None = None) -> str:
    return json.dumps(delta_to_dict(delta, before), sort_keys=True, ensure_ascii=False)


def delta_from_json(text: str) -> tuple[Delta, dict[str, str | None]]:
    return delta_from_dict(json.loads(text))

"""Training-data edits: rebalance a dominant class, append mined examples. Lines not touched stay byte-identical."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from handlers.diagnose_static import parse_jsonl


def _answer(obj: Mapping[str, Any]) -> str:
    for key in ("completion", "output", "response", "answer"):
        if key in obj:
            return str(obj[key])
    return json.dumps(obj, sort_keys=True)


def drop_surplus(texts: Mapping[str, str], label_field: str, label: str, max_share: float
                 ) -> tuple[dict[str, str], int] | None:
    """Remove the fewest examples of `label` that bring its share to `max_share` or below, thinnest first
    (answers repeated most often, then the shortest, then the latest). Returns (changed files, removed)."""
    rows = [(path, line, obj) for path, text in sorted(texts.items()) for line, obj in parse_jsonl(text)
            if obj is not None]
    total = len(rows)
    mine = [r for r in rows if str(r[2].get(label_field)) == label]
    repeats = Counter(_answer(r[2]) for r in mine)
    k = 0
    while k < len(mine) and (len(mine) - k) > max_share * (total - k) + 1e-9:
        k += 1
    if k == 0 or k >= len(mine):
        return None
    order = sorted(mine, key=lambda r: (-repeats[_answer(r[2])], len(_answer(r[2])), -rows.index(r)))
    drop = {(p, ln) for p, ln, _ in order[:k]}
    out: dict[str, str] = {}
    for path, text in texts.items():
        lines = text.split("\n")
        kept = [ln for i, ln in enumerate(lines, start=1) if (path, i) not in drop]
        if len(kept) != len(lines):
            out[path] = "\n".join(kept)
    return out, k


def append_examples(text: str, examples: list[dict[str, Any]]) -> str | None:
    """JSONL with the examples appended (their `source` provenance key left out)."""
    if not examples:
        return None
    body = text if not text or text.endswith("\n") else text + "\n"
    lines = [json.dumps({k: v for k, v in ex.items() if k != "source"}, ensure_ascii=False) for ex in examples]
    return body + "\n".join(lines) + "\n"


__all__ = ["append_examples", "drop_surplus"]

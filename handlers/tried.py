"""What was already tried on a task since its last kept change: every proposal that reached verification, who
made it, what it changed and how it ended — read from the cycle events themselves (no read-model lag inside a
loop). A proposer shown this list does not propose the same idea again, and the proposer chain
(`handlers.proposers.chain`) gives the next turn to another proposer after a discard.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from eventsourcing.utils import get_topic

from domain.aggregates import Cycle
from domain.checks import clip

_ENDS = {"Kept": "kept", "Discarded": "discarded", "Failed": "failed", "AwaitingApproval": "awaiting_approval"}


def tried(store: Any, task: str, since: dt.datetime | None = None, limit: int = 8) -> tuple[dict[str, Any], ...]:
    """The last `limit` proposals on `task` made after `since` (None: ever), oldest first: {cycle, proposer,
    lever, description, effect, outcome, reason}. () when the store cannot answer."""
    events: dict[str, Any] = {name: getattr(Cycle, name) for name in ("Started", "Proposed", "Verified", *_ENDS)}
    topics = {get_topic(cls): name for name, cls in events.items()}
    mine: dict[Any, str] = {}  # cycle id -> key, for the task's cycles
    out: dict[Any, dict[str, Any]] = {}
    try:
        start = 1
        while page := store.recorder.select_notifications(start, 1000, topics=list(topics)):
            for n in page:
                name = topics[n.topic]
                ev: Any = store.mapper.to_domain_event(n)
                cid = ev.originator_id
                if name == "Started":
                    if ev.task == task and (since is None or ev.timestamp > since):
                        mine[cid] = ev.key
                elif cid in mine and name == "Proposed":
                    out[cid] = {"cycle": mine[cid], "proposer": ev.proposer, "lever": ev.lever,
                                "description": clip(ev.description or ev.rationale, 160), "effect": None,
                                "outcome": "proposed", "reason": ""}
                elif cid in out and name == "Verified":
                    out[cid]["effect"] = round(float(ev.effect), 3)
                    out[cid]["outcome"] = "verified"
                    out[cid]["reason"] = clip(str((ev.detail or {}).get("reason", "")), 160)
                elif cid in out and name in _ENDS:
                    out[cid]["outcome"] = _ENDS[name]
                    reason = getattr(ev, "reason", "") or getattr(ev, "error", "")
                    out[cid]["reason"] = clip(str(reason), 160) if reason else out[cid]["reason"]
            start = page[-1].id + 1
    except Exception:  # a refinement: a store that cannot answer leaves the evidence without it
        return ()
    return tuple(out.values())[-limit:]


__all__ = ["tried"]

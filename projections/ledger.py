"""The ledger: every change to the vault and every step of every cycle, one readable row each.

Rows carry forward what the cycle decided so far (lever, baseline/candidate means, effect), so a
`Kept` row reads on its own: which lever, how much better, on what evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Column, Float, Index, String, Table, select
from sqlalchemy.engine import Connection

from domain.aggregates import Cycle, Task
from projections.runner import POSITION, Projection, metadata, upsert

ledger_table = Table(
    "rm_ledger",
    metadata,
    Column("notification_id", POSITION, primary_key=True,
           autoincrement=False),
    Column("at", String(40), nullable=False),
    Column("kind", String(40), nullable=False),  # Changed | Proposed | Verified | AwaitingApproval | Kept | …
    Column("cycle", String(200)),
    Column("task", String(200), nullable=False),
    Column("lever", String(200)),
    Column("baseline_mean", Float),
    Column("candidate_mean", Float),
    Column("effect", Float),
    Column("decision", String(40), nullable=False),
    Column("description", String, nullable=False),
    Index("rm_ledger_task_idx", "task", "notification_id"),
    Index("rm_ledger_cycle_idx", "cycle", "notification_id"),
)

CHANGED: Any = Task.Changed  # type: ignore[attr-defined]
CYCLE_EVENTS: dict[Any, str] = {
    Cycle.Proposed: "proposed",
    Cycle.Verified: "",  # the Verified event names its own decision
    Cycle.AwaitingApproval: "awaiting approval",  # type: ignore[attr-defined]
    Cycle.Approved: "approved",  # type: ignore[attr-defined]
    Cycle.Kept: "kept",  # type: ignore[attr-defined]
    Cycle.Discarded: "discarded",  # type: ignore[attr-defined]
    Cycle.Failed: "failed",  # type: ignore[attr-defined]
}
CARRIED = ("lever", "baseline_mean", "candidate_mean", "effect")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _describe(event: Any) -> str:
    name = type(event).__name__
    if name == "Proposed":
        return f"{event.proposer}: {event.rationale}"
    if name == "Verified":
        lo, hi = [*list(event.interval), None, None][:2]
        span = f" [{lo:+.2f}, {hi:+.2f}]" if lo is not None and hi is not None else ""
        guard = f"; guardrails: {', '.join(event.guardrails)}" if event.guardrails else ""
        return f"effect {event.effect:+.2f}{span} over {len(event.candidate)} samples{guard}"
    if name == "AwaitingApproval":
        return "needs approval before any of it runs: " + ", ".join(event.paths)
    if name == "Approved":
        return f"approved by {event.by}: verified now, sandboxed"
    if name == "Kept":
        commit = f" (commit {event.commit[:12]})" if event.commit else ""
        return f"applied {len(event.applied_hashes)} file(s){commit}"
    if name == "Discarded":
        return str(event.reason)
    if name == "Failed":
        return str(event.error)
    return name


class LedgerProjection(Projection):
    name: ClassVar[str] = "ledger"
    tables: ClassVar = (ledger_table,)
    handles: ClassVar = (CHANGED, *CYCLE_EVENTS)

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._carried: dict[str, dict[str, Any]] = {}

    def _carry(self, conn: Connection, cycle: str) -> dict[str, Any]:
        known = self._carried.get(cycle)
        if known is None:
            c = ledger_table.c
            last = conn.execute(select(c.lever, c.baseline_mean, c.candidate_mean, c.effect)
                                .where(c.cycle == cycle).order_by(c.notification_id.desc()).limit(1)).first()
            known = dict(last._mapping) if last is not None else dict.fromkeys(CARRIED)
            self._carried[cycle] = known
        return known

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        row: dict[str, Any] = {"notification_id": notification_id, "at": event.timestamp.isoformat(),
                               "kind": type(event).__name__}
        if isinstance(event, CHANGED):
            row.update(cycle=event.cycle_id, task=self.origins(event.originator_id).get("name", "?"),
                       lever=None, baseline_mean=None, candidate_mean=None, effect=None, decision=event.by,
                       description=f"{event.path} changed by {event.by}")
            self._rows.append(row)
            return
        origin = self.origins(event.originator_id)
        cycle = str(origin.get("key", event.originator_id))
        carried = self._carry(conn, cycle)
        if row["kind"] == "Proposed":
            carried["lever"] = event.lever
        elif row["kind"] == "Verified":
            carried.update(baseline_mean=_mean(list(event.baseline)), candidate_mean=_mean(list(event.candidate)),
                           effect=float(event.effect))
        decision = event.decision if row["kind"] == "Verified" else CYCLE_EVENTS[type(event)]
        row.update(cycle=cycle, task=str(origin.get("task", "?")), decision=decision,
                   description=_describe(event), **carried)
        self._rows.append(row)

    def flush(self, conn: Connection) -> None:
        upsert(conn, ledger_table, self._rows, ["notification_id"])
        self.reset()

    def reset(self) -> None:
        self._rows.clear()
        self._carried.clear()


@dataclass(frozen=True)
class LedgerRow:
    notification_id: int
    at: str
    kind: str
    cycle: str | None
    task: str
    lever: str | None
    baseline_mean: float | None
    candidate_mean: float | None
    effect: float | None
    decision: str
    description: str


def ledger_rows(conn: Connection, task: str | None = None, limit: int | None = None) -> list[LedgerRow]:
    """Ledger rows in the order they happened (optionally one task's, optionally the last `limit`)."""
    c = ledger_table.c
    q = select(ledger_table)
    if task is not None:
        q = q.where(c.task == task)
    q = q.order_by(c.notification_id.desc())
    if limit is not None:
        q = q.limit(limit)
    rows = conn.execute(q).all()
    return [LedgerRow(**{k: getattr(r, k) for k in LedgerRow.__dataclass_fields__}) for r in reversed(rows)]

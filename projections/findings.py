"""`rm_findings`: one row per Finding aggregate (kind, subject), folded from Detected/Redetected/Resolved.

What `autovault findings` lists and what `handlers.findings.refresh_findings` diffs against: the open keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, Column, Index, Integer, String, Table, select
from sqlalchemy.engine import Connection

from domain.aggregates import Finding
from projections.runner import POSITION, Projection, metadata, upsert

findings_table = Table(
    "rm_findings",
    metadata,
    Column("kind", String(60), primary_key=True),
    Column("subject", String(500), primary_key=True),
    Column("tasks", JSON, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("severity", String(20), nullable=False),
    Column("open", Boolean, nullable=False),
    Column("detected_at", String(40), nullable=False),  # the latest Detected / Redetected
    Column("resolved_at", String(40)),
    Column("by_cycle", String(200)),
    Column("reason", String),
    Column("detections", Integer, nullable=False),
    Column("notification_id", POSITION, nullable=False),
    Index("rm_findings_open_idx", "open", "kind"),
)

DETECTED: Any = Finding.Detected  # type: ignore[attr-defined]
REDETECTED: Any = Finding.Redetected  # type: ignore[attr-defined]
RESOLVED: Any = Finding.Resolved  # type: ignore[attr-defined]


class FindingsProjection(Projection):
    name: ClassVar[str] = "findings"
    tables: ClassVar = (findings_table,)
    handles: ClassVar = (DETECTED, REDETECTED, RESOLVED)

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}

    def _row(self, conn: Connection, key: tuple[str, str]) -> dict[str, Any] | None:
        row = self._rows.get(key)
        if row is None:
            c = findings_table.c
            found = conn.execute(select(findings_table).where(c.kind == key[0], c.subject == key[1])).first()
            if found is not None:
                row = self._rows[key] = dict(found._mapping)
        return row

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        at = event.timestamp.isoformat()
        if isinstance(event, DETECTED):
            key = (event.kind, event.subject)
            before = self._row(conn, key)
            self._rows[key] = {
                "kind": event.kind, "subject": event.subject, "tasks": list(event.tasks),
                "evidence": dict(event.evidence), "severity": event.severity, "open": True, "detected_at": at,
                "resolved_at": None, "by_cycle": None, "reason": None,
                "detections": (before["detections"] if before else 0) + 1, "notification_id": notification_id}
            return
        origin = self.origins(event.originator_id)
        key = (str(origin.get("kind", "?")), str(origin.get("subject", "?")))
        row = self._row(conn, key)
        if row is None:  # the Detected event was before this projection's start: rebuild from origins
            row = self._rows[key] = {
                "kind": key[0], "subject": key[1], "tasks": [], "evidence": {},
                "severity": str(origin.get("severity", "warning")), "open": True, "detected_at": at,
                "resolved_at": None, "by_cycle": None, "reason": None, "detections": 1,
                "notification_id": notification_id}
        if isinstance(event, REDETECTED):
            row.update(tasks=list(event.tasks), evidence=dict(event.evidence), open=True, detected_at=at,
                       resolved_at=None, by_cycle=None, reason=None, detections=row["detections"] + 1)
        else:
            row.update(open=False, resolved_at=at, by_cycle=event.by_cycle, reason=event.reason)
        row["notification_id"] = notification_id

    def flush(self, conn: Connection) -> None:
        upsert(conn, findings_table, list(self._rows.values()), ["kind", "subject"])
        self.reset()

    def reset(self) -> None:
        self._rows.clear()


@dataclass(frozen=True)
class FindingRow:
    kind: str
    subject: str
    tasks: tuple[str, ...]
    evidence: dict[str, Any]
    severity: str
    open: bool
    detected_at: str
    resolved_at: str | None
    by_cycle: str | None
    reason: str | None
    detections: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.subject)

    @property
    def state(self) -> str:
        return "open" if self.open else "resolved"


_ORDER = {"error": 0, "warning": 1, "info": 2}


def findings(conn: Connection, open_only: bool = False) -> list[FindingRow]:
    """Findings, open before resolved, then by severity (errors first), kind and subject."""
    q = select(findings_table)
    if open_only:
        q = q.where(findings_table.c.open.is_(True))
    rows = [FindingRow(kind=r.kind, subject=r.subject, tasks=tuple(r.tasks), evidence=dict(r.evidence),
                       severity=r.severity, open=bool(r.open), detected_at=r.detected_at, resolved_at=r.resolved_at,
                       by_cycle=r.by_cycle, reason=r.reason, detections=r.detections)
            for r in conn.execute(q).all()]
    return sorted(rows, key=lambda f: (not f.open, _ORDER.get(f.severity, 3), f.kind, f.subject))


def open_keys(conn: Connection, kinds: Iterable[str] | None = None) -> set[tuple[str, str]]:
    """(kind, subject) of every open finding, optionally of some kinds only."""
    c = findings_table.c
    q = select(c.kind, c.subject).where(c.open.is_(True))
    if kinds is not None:
        q = q.where(c.kind.in_(list(kinds)))
    return {(k, s) for k, s in conn.execute(q).all()}


def finding_summary(kind: str, subject: str, evidence: dict[str, Any]) -> str:
    """One line a person can act on; falls back to the subject when the evidence is not the usual shape."""
    ev = evidence
    try:
        if kind == "too_small_for_consumer":
            return "; ".join(
                f"{s['measure']} {s['observed']} < {s['required']}" if s["measure"] != "sections"
                else f"missing {', '.join(s['missing'])}" for s in ev["shortfalls"])
        if kind == "outputs_never_written":
            return f"{', '.join(ev['patterns'])} not written for {ev['runs_without_outputs']} runs"
        if kind == "blocks_without_parser":
            seen = "in output" if ev.get("blocks_seen") else "declared"
            return f"blocks {ev['regex']!r} {seen}, no postprocess, {ev['runs_without_outputs']} runs without outputs"
        if kind == "low_after_upstream_change":
            return f"score {ev['baseline']} -> {ev['scores_after']} after {ev['producer']} changed {ev['path']}"
        if kind == "orphan_input":
            return f"nothing produces {ev['glob']} and no file matches"
        if kind == "unread_output":
            return f"no task reads {ev['pattern']}"
        if kind == "stale_output":
            return f"same artifact content for {ev['runs']} runs"
        if kind == "dependency_cycle":
            return " -> ".join([*ev["cycle"], ev["cycle"][0]])
    except (KeyError, TypeError, IndexError):
        pass
    return subject

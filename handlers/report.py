"""`autovault report`: quality over time per task, the changes marked, the regimes the change-point test found,
and each task's latest audit verdict — as one PNG and a self-contained HTML page (the PNG inlined, no server).

This module assembles what to draw; drawing is an adapter (`adapters.report_render`) behind `Renderer`.
A change is drawn at the time it was recorded, or — when that lies outside the gap between the runs scored just
before and after it in the history (logs ingested days late, an imported history) — in the middle of that gap.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from eventsourcing.utils import get_topic

from domain.aggregates import Audit
from handlers.audit import AuditDeps, audit
from projections.report_panels import Marker, Panel, Regime, marker_time, parse_time

OPENED: Any = Audit.Opened  # type: ignore[attr-defined]
CONCLUDED: Any = Audit.Concluded  # type: ignore[attr-defined]


class Renderer(Protocol):
    def png(self, panels: Sequence[Panel], path: Path, title: str) -> None: ...

    def html(self, panels: Sequence[Panel], png: Path, path: Path, title: str) -> None: ...


def latest_audits(deps: AuditDeps) -> dict[str, dict[str, Any]]:
    """task -> its latest recorded audit: key, verdict, suspect, and the bisect's conclusion when there is one."""
    out: dict[str, dict[str, Any]] = {}
    by_id: dict[Any, str] = {}
    for _, ev in deps.history.read(topics=[get_topic(OPENED), get_topic(CONCLUDED)]):
        if isinstance(ev, OPENED):
            by_id[ev.originator_id] = ev.task
            out[ev.task] = {"key": ev.key, "verdict": ev.verdict, "culprit": ev.suspect}
        elif ev.originator_id in by_id and out.get(by_id[ev.originator_id]):
            found = out[by_id[ev.originator_id]]
            found["verdict"] = f"bisect: {ev.verdict}"
            found["culprit"] = ev.culprit
    return out


def panel(deps: AuditDeps, task: str, recorded: dict[str, Any] | None, since: int = 0) -> Panel:
    r = audit(deps, task, since=since, record=False, rescore=False)
    culprit = (recorded or {}).get("culprit") or (r.suspect.position if r.suspect else None)
    markers = [Marker(marker_time(c, r.series), c.position, c.kind, f"#{c.position} {c.summary}", c.position == culprit)
               for c in r.timeline if c.position > since]
    regimes = []
    if r.segmentation is not None and r.series:
        cuts = [0, *(r.score_index(s.index) for s in r.segmentation.shifts), len(r.series)]
        for a, b in itertools.pairwise(cuts):
            if b > a:
                pts = r.series[a:b]
                regimes.append(Regime(parse_time(pts[0].at), parse_time(pts[-1].at), sum(p.score for p in pts) / len(pts)))
    verdict = recorded["verdict"] if recorded else r.verdict
    return Panel(task, [(parse_time(p.at), p.score) for p in r.series], markers, regimes, verdict,
                 recorded["key"] if recorded else None, [c.as_dict() for c in r.changes])


def report(deps: AuditDeps, renderer: Renderer, out_dir: Path, tasks: Sequence[str], *, since: int = 0) -> dict[str, Any]:
    """Write `quality.png` and `report.html` into `out_dir`; returns their paths and each task's verdict."""
    out_dir.mkdir(parents=True, exist_ok=True)
    audits = latest_audits(deps)
    panels = [panel(deps, t, audits.get(t), since) for t in tasks]
    png, html = out_dir / "quality.png", out_dir / "report.html"
    title = f"autovault — quality over time ({deps.config.source.name}, up to #{deps.history.last_position()})"
    renderer.png(panels, png, title)
    renderer.html(panels, png, html, title)
    return {"png": str(png), "html": str(html),
            "tasks": [{"task": p.task, "scores": len(p.points), "changes": len(p.markers), "verdict": p.verdict,
                       "audit": p.audit} for p in panels]}

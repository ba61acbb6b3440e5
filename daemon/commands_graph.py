"""`autovault graph | findings`: the vault's pipeline as a drawing, and the interface findings on record."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape

from adapters.config_loader import load_config
from daemon.bootstrap import Services, bootstrap, register_tasks
from daemon.dataflow import current_findings, dataflow_for, findings_runner, refresh_after_events
from daemon.output import print_json, table
from projections.findings import FindingRow, findings
from projections.graph_render import to_dot, to_mermaid, to_png, to_text

FORMATS = ("text", "dot", "mermaid", "png")
RENDER: dict[str, Callable[..., str]] = {"text": to_text, "dot": to_dot, "mermaid": to_mermaid}


def _services(args: argparse.Namespace) -> Services:
    svc = bootstrap(load_config(Path(args.config)))
    register_tasks(svc.store, svc.config)
    svc.projections.catch_up()
    return svc


def cmd_graph(args: argparse.Namespace) -> int:
    with _services(args) as svc:
        if args.task:
            svc.config.task(args.task)  # unknown task: a KeyError naming the known ones
        graph = dataflow_for(svc).graph
        found = current_findings(svc)
        if args.json:
            print_json({**graph.as_dict(), "findings": [
                {"kind": f.kind, "subject": f.subject, "tasks": list(f.tasks), "severity": f.severity}
                for f in found]})
            return 0
        if args.format == "png":
            out = to_png(graph, Path(args.output or "graph.png"), args.task, found)
            print(f"wrote {out}")
            return 0
        text = RENDER[args.format](graph, args.task, found)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0


def cmd_findings(args: argparse.Namespace) -> int:
    with _services(args) as svc:
        refresh_after_events(svc)
        findings_runner(svc.store).catch_up()
        with svc.engine_connect() as conn:
            rows = findings(conn, open_only=args.open)
    if args.json:
        print_json(rows)
        return 0
    table("findings" + (" (open)" if args.open else ""), ["kind", "subject", "tasks", "severity", "state", "evidence"], [
        tuple(escape(str(c)) for c in (r.kind, r.subject, ", ".join(r.tasks), r.severity,
                                         r.state + (f" by {r.by_cycle}" if r.by_cycle else ""), evidence_summary(r)))
        for r in rows
    ], caption=f"{sum(r.open for r in rows)} open, {sum(not r.open for r in rows)} resolved")
    return 0


def evidence_summary(row: FindingRow) -> str:
    """One line a person can act on; falls back to the subject when the evidence is not the usual shape."""
    ev: dict[str, Any] = row.evidence
    try:
        if row.kind == "too_small_for_consumer":
            return "; ".join(
                f"{s['measure']} {s['observed']} < {s['required']}" if s["measure"] != "sections"
                else f"missing {', '.join(s['missing'])}" for s in ev["shortfalls"])
        if row.kind == "outputs_never_written":
            return f"{', '.join(ev['patterns'])} not written for {ev['runs_without_outputs']} runs"
        if row.kind == "blocks_without_parser":
            seen = "in output" if ev.get("blocks_seen") else "declared"
            return f"blocks {ev['regex']!r} {seen}, no postprocess, {ev['runs_without_outputs']} runs without outputs"
        if row.kind == "low_after_upstream_change":
            return f"score {ev['baseline']} -> {ev['scores_after']} after {ev['producer']} changed {ev['path']}"
        if row.kind == "orphan_input":
            return f"nothing produces {ev['glob']} and no file matches"
        if row.kind == "unread_output":
            return f"no task reads {ev['pattern']}"
        if row.kind == "stale_output":
            return f"same artifact content for {ev['runs']} runs"
        if row.kind == "dependency_cycle":
            return " -> ".join([*ev["cycle"], ev["cycle"][0]])
    except (KeyError, TypeError, IndexError):
        pass
    return row.subject


def add_parsers(sub: Any) -> None:
    c = sub.add_parser("graph", help="the pipeline: tasks, artifacts, sizes, mismatched edges in red")
    c.add_argument("--format", choices=FORMATS, default="text")
    c.add_argument("--task", default=None, help="only this task's upstream and downstream")
    c.add_argument("--output", "-o", default=None, help="write here (png: default graph.png)")

    c = sub.add_parser("findings", help="interface mismatches, dead outputs and other data-flow findings")
    c.add_argument("--open", action="store_true", help="open findings only")
    for name in ("graph", "findings"):  # `--json` after the command too
        sub.choices[name].add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                                       help="machine-readable output")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "graph": cmd_graph,
    "findings": cmd_findings,
}

"""`autovault graph | findings`: the vault's pipeline as a drawing, and the interface findings on record."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from rich.markup import escape

from daemon.bootstrap import Services, diagnose_deps
from daemon.dataflow import current_findings, dataflow_for, findings_runner, refresh_after_events
from daemon.open_vault import open_vault
from daemon.output import print_json, progress_bar, table
from handlers.evidence import SignatureNote
from handlers.open_signatures import file_signatures
from projections.findings import finding_summary, findings
from projections.graph_render import to_dot, to_mermaid, to_png, to_text

RENDER: dict[str, Callable[..., str]] = {"text": to_text, "dot": to_dot, "mermaid": to_mermaid}



def cmd_graph(args: argparse.Namespace) -> int:
    with open_vault(args.config) as svc:
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
    with open_vault(args.config) as svc:
        refresh_after_events(svc)
        findings_runner(svc).catch_up()
        with svc.engine_connect() as conn:
            rows = findings(conn, open_only=args.open)
        files = _file_findings(svc)
    if args.json:
        print_json([*rows, *({"kind": n.name, "subject": task, "tasks": [task], "severity": n.severity, "open": True,
                              "source": n.source, "summary": n.summary, "evidence": n.evidence}
                             for task, n in files)])
        return 0
    table("findings" + (" (open)" if args.open else ""), ["kind", "subject", "tasks", "severity", "state", "evidence"], [
        *(tuple(escape(str(c)) for c in (r.kind, r.subject, ", ".join(r.tasks), r.severity,
                                           r.state + (f" by {r.by_cycle}" if r.by_cycle else ""),
                                           finding_summary(r.kind, r.subject, r.evidence))) for r in rows),
        *(tuple(escape(str(c)) for c in (n.name, task, task, n.severity, f"open ({n.source})", n.summary))
          for task, n in files),
    ], caption=f"{sum(r.open for r in rows) + len(files)} open ({len(files)} in the task files: lint, data audit, "
               f"measured collector), {sum(not r.open for r in rows)} resolved")
    return 0


def _file_findings(svc: Services) -> list[tuple[str, SignatureNote]]:
    """What each enabled task's files show before any run (`handlers.open_signatures.file_signatures`): they stay open
    until a change to the files makes them go."""
    names = [n for n, t in svc.config.tasks.items() if t.enabled]
    deps = diagnose_deps(svc)
    out: list[tuple[str, SignatureNote]] = []
    with progress_bar() as progress:
        bar = progress.add_task("measuring collectors", total=len(names))
        for name in names:
            out += [(name, n) for n in file_signatures(name, deps)]
            progress.advance(bar)
    return out

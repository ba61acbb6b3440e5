"""`autovault status`, `tasks` and `history`: the read models, as a table or JSON.

These only read, so they open the vault with `daemon.read_models.open_read_models` (the database alone when the
write side has nothing to do) and import nothing of the cycle, the model clients or rich for `--json`;
`status --signatures` diagnoses, so it opens the vault in full. `status` is often answered before any of this,
by `daemon.quick_status`, which shares `show_status` with it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from daemon.output import fmt_score, fmt_trend, print_json, table, to_jsonable
from domain.quality import TaskQuality


def cmd_status(args: argparse.Namespace) -> int:
    if getattr(args, "as_of", None):
        from daemon.commands_audit import status_as_of

        return status_as_of(args)
    from daemon.open_vault import open_vault
    from daemon.read_models import open_read_models
    from projections.problems import problem_count
    from projections.quality import quality_table

    with open_vault(args.config) if args.signatures else open_read_models(args.config) as svc:
        with svc.engine_connect() as conn:
            rows = [q for q in quality_table(conn) if q.task in svc.config.tasks]
            skipped = problem_count(conn)
        sigs = _signatures(svc, [q.task for q in rows]) if args.signatures else None
    return show_status(args, rows, skipped, sigs)


def show_status(args: argparse.Namespace, rows: list[TaskQuality], skipped: int,
                sigs: dict[str, Any] | None) -> int:
    """Print the quality rows (with each task's signatures when `sigs` is given), worst first."""
    if skipped:
        print(f"autovault: {skipped} events could not be folded into the read models and were skipped — see "
              "`autovault doctor`", file=sys.stderr)
    if args.json:
        print_json([{**_asdict(q), **({"signatures": sigs.get(q.task, [])} if sigs is not None else {})} for q in rows])
        return 0
    columns = ["task", "rolling", "last", "trend", "runs", "last done", "failing checks"]
    if sigs is not None:
        columns.append("signatures")
    body = []
    for q in rows:
        row: list[Any] = [q.task, fmt_score(q.rolling_mean), fmt_score(q.last_score), fmt_trend(q.trend), q.runs,
                          q.last_done_reason or "", ", ".join(q.failing_checks)]
        if sigs is not None:
            row.append(", ".join(s.name for s in sigs.get(q.task, [])))
        body.append(row)
    table("task quality, worst first", columns, body, caption=_caption(rows))
    return 0


def _signatures(svc: Any, names: list[str]) -> dict[str, Any]:
    from daemon.commands import signatures_of

    return signatures_of(svc, names)


def _caption(rows: list[Any]) -> str:
    scored = [q.rolling_mean for q in rows if q.rolling_mean is not None]
    if not scored:
        return "no scores yet: `autovault ingest LOGS` or `autovault run-task --all`"
    return f"{len(rows)} tasks, mean rolling score {sum(scored) / len(scored):.2f}"


def _asdict(obj: Any) -> dict[str, Any]:
    value = to_jsonable(obj)
    assert isinstance(value, dict)
    return value


def cmd_tasks(args: argparse.Namespace) -> int:
    from daemon.open_vault import read_config

    cfg = read_config(args.config)
    if args.json:
        print_json({name: t.model_dump(exclude_defaults=True) for name, t in cfg.tasks.items()})
        return 0
    table(f"tasks in {cfg.source}", ["task", "model", "schedule", "collect", "inputs", "outputs"], [
        (name, t.model, t.schedule or "", t.collect or "", ", ".join(t.inputs), ", ".join(t.outputs))
        for name, t in cfg.tasks.items()
    ])
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from daemon.read_models import open_read_models
    from projections.runs import task_history

    with open_read_models(args.config) as svc:
        svc.config.task(args.task)
        with svc.engine_connect() as conn:
            rows = task_history(conn, args.task, args.limit, cycle=args.cycle, live_only=not args.all)
    if args.json:
        print_json(rows)
        return 0
    table(f"{args.task}: last {len(rows)} runs", ["started", "model", "status", "done", "tokens", "words", "score",
                                                   "failing", "source", "cycle"], [
        (r.started, r.model, r.status, r.done_reason, r.tokens, r.words, fmt_score(r.score),
         ", ".join(r.scores[-1].failing) if r.scores else "", r.source, r.cycle_id or "")
        for r in rows
    ])
    return 0

"""`autovault cycle | verify | approve | reject | loop | ledger`: the improvement cycle from the command line."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable
from typing import Any

from daemon.bootstrap import cycle_deps, reloader
from daemon.open_vault import open_vault
from daemon.output import fmt_score, print_json, table
from handlers.cycle import (
    CycleResult,
    approve_cycle,
    reject_cycle,
    run_cycle,
    verify_cycle,
)
from handlers.loop import LoopReport, run_loop
from projections.ledger import LedgerRow, ledger_rows
from projections.quality import quality_table

TSV_COLUMNS = ("cycle", "task", "lever", "baseline", "candidate", "effect", "decision", "description")



def _say(args: argparse.Namespace) -> Callable[[str], None]:
    quiet = getattr(args, "json", False)
    return (lambda _m: None) if quiet else (lambda m: print(f"  · {m}", file=sys.stderr, flush=True))


def _result_json(r: CycleResult) -> dict[str, Any]:
    v = r.verification
    return {"cycle": r.key, "task": r.task, "outcome": r.outcome, "reason": r.reason, "commit": r.commit,
            "delta": None if r.delta is None else {"description": r.delta.description, "lever": r.delta.lever,
                                                   "proposer": r.delta.proposer, "paths": r.delta.paths,
                                                   "content_hash": r.delta.content_hash},
            "diff": r.diff, "rejected": r.rejected,
            "verification": None if v is None else {"effect": v.decision.effect, "interval": list(v.decision.interval),
                                                    "inputs": v.decision.n_inputs, "reason": v.decision.reason,
                                                    "noise_floor": v.noise_floor, "guardrails": v.guardrails}}


def _print_result(r: CycleResult, as_json: bool, *, show_diff: bool = False) -> None:
    if as_json:
        print_json(_result_json(r))
        return
    print(f"cycle {r.key} [{r.task}]: {r.outcome} — {r.reason}")
    for line in r.rejected:
        print(f"  rejected {line}")
    if r.delta is not None:
        print(f"  delta: {r.delta.description} ({r.delta.lever}, by {r.delta.proposer})")
    if show_diff and r.diff:
        print(r.diff, end="" if r.diff.endswith("\n") else "\n")


_EXIT = {"kept": 0, "proposed": 0, "awaiting_approval": 0, "discarded": 0, "nothing": 0, "failed": 1}


def cmd_cycle(args: argparse.Namespace) -> int:
    with open_vault(args.config) as svc:
        svc.config.task(args.task)
        r = run_cycle(cycle_deps(svc, _say(args)), args.task, propose_only=args.propose_only)
        svc.projections.catch_up()
    _print_result(r, args.json, show_diff=args.propose_only or r.outcome == "awaiting_approval")
    if args.propose_only and r.outcome == "proposed" and not args.json:
        print(f"apply it by hand (or not), then `autovault verify {r.key}`; or `autovault verify {r.key}` now")
    return _EXIT.get(r.outcome, 1)


def cmd_verify(args: argparse.Namespace) -> int:
    with open_vault(args.config) as svc:
        r = _guard(lambda: verify_cycle(cycle_deps(svc, _say(args)), args.cycle_id))
        svc.projections.catch_up()
    _print_result(r, args.json)
    return _EXIT.get(r.outcome, 1)


def cmd_approve(args: argparse.Namespace) -> int:
    with open_vault(args.config) as svc:
        r = _guard(lambda: approve_cycle(cycle_deps(svc, _say(args)), args.cycle_id))
        svc.projections.catch_up()
    _print_result(r, args.json)
    return 0 if r.kept else 1


def cmd_reject(args: argparse.Namespace) -> int:
    with open_vault(args.config) as svc:
        r = _guard(lambda: reject_cycle(svc.store, args.cycle_id))
        svc.projections.catch_up()
    _print_result(r, args.json)
    return 0


def _guard(body: Callable[[], CycleResult]) -> CycleResult:
    from daemon.errors import UserError

    try:
        return body()
    except ValueError as e:
        raise UserError(str(e)) from None


def cmd_loop(args: argparse.Namespace) -> int:
    with open_vault(args.config) as svc:
        research = svc.config.research
        target = args.target if args.target is not None else research.target
        patience = args.patience if args.patience is not None else research.patience
        jobs = args.jobs if args.jobs is not None else research.jobs
        with svc.engine_connect() as conn:
            quality = {q.task: q.rolling_mean for q in quality_table(conn)}
        quality = {t: quality.get(t) for t in svc.config.tasks}
        say = _say(args)

        def shown(r: CycleResult) -> None:
            if not args.json:
                print(f"[{r.task}] {r.outcome}{f': {r.delta.description}' if r.delta else ''} — {r.reason}", flush=True)

        report = run_loop(cycle_deps(svc, say), quality, target=target, patience=patience,
                          max_cycles=args.max_cycles, jobs=jobs, on_result=shown, reload=reloader(svc, say),
                          catch_up=svc.projections.catch_up)
        svc.projections.catch_up()
    _print_loop(report, args.json)
    return 1 if any(r.outcome == "failed" for r in report.results) and report.kept == 0 else 0


def _print_loop(report: LoopReport, as_json: bool) -> None:
    if as_json:
        print_json({"stopped": report.stopped, "kept": report.kept, "cycles": [_result_json(r) for r in report.results],
                    "quality": {t: {"before": report.before[t], "after": report.after[t]} for t in report.before}})
        return
    kept_by: dict[str, int] = {}
    for r in report.results:
        kept_by[r.task] = kept_by.get(r.task, 0) + (1 if r.kept else 0)
    table("quality before / after the loop (after: verified candidate mean of kept deltas)",
          ["task", "before", "after", "cycles", "kept"],
          [(t, fmt_score(report.before[t]), fmt_score(report.after[t]),
            sum(1 for r in report.results if r.task == t), kept_by.get(t, 0))
           for t in sorted(report.before, key=lambda t: (report.before[t] is None, report.before[t] or 0.0, t))],
          caption=f"{len(report.results)} cycles, {report.kept} kept; stopped: {report.stopped}")


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def ledger_tsv_rows(rows: list[LedgerRow], descriptions: dict[str, str] | None = None) -> list[list[str]]:
    """One row per cycle outcome (Kept/Discarded/Failed/AwaitingApproval) in results.tsv's spirit; the
    description is the delta's own one-liner when the cycle proposed one, else what the outcome says."""
    descriptions = descriptions or {}
    final = ("Kept", "Discarded", "Failed", "AwaitingApproval")
    out = []
    for r in rows:
        if r.kind not in final:
            continue
        out.append([r.cycle or "", r.task, r.lever or "", _fmt(r.baseline_mean), _fmt(r.candidate_mean),
                    _fmt(r.effect), r.decision, " ".join(descriptions.get(r.cycle or "", r.description).split())])
    return out


def cmd_ledger(args: argparse.Namespace) -> int:
    with open_vault(args.config) as svc, svc.engine_connect() as conn:
        rows = ledger_rows(conn, args.task, args.limit)
        descriptions = svc.cycles.descriptions() if args.tsv else {}
    if args.json:
        print_json(rows)
    elif args.tsv:
        w = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
        w.writerow(TSV_COLUMNS)
        w.writerows(ledger_tsv_rows(rows, descriptions))
    else:
        table("ledger", ["at", "cycle", "task", "kind", "lever", "base", "cand", "effect", "decision", "description"], [
            (r.at[:19], r.cycle or "", r.task, r.kind, r.lever or "", fmt_score(r.baseline_mean),
             fmt_score(r.candidate_mean), "" if r.effect is None else f"{r.effect:+.2f}", r.decision, r.description)
            for r in rows])
    return 0

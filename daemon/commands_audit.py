"""`autovault audit | replay | revert | report | export | import`, and `status --as-of`: auditing from history."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.bootstrap import Services, audit_deps, bootstrap, cycle_deps
from daemon.open_vault import open_vault
from daemon.output import fmt_score, fmt_trend, print_json, table, to_jsonable
from domain.aggregates import Audit, Task, Vault
from domain.when import parse_point
from handlers.audit import AuditDeps, AuditReport, audit
from projections.defaults import default_projections
from projections.ledger import ledger_rows
from projections.quality import quality_table
from projections.score_series import scored_tasks

if TYPE_CHECKING:
    from handlers.bisect import BisectResult
    from projections.as_of import AsOf

DIFF_LINES = 60  # per change in the terminal; --full-diff (and --json) show all


def _user_error(message: str) -> Exception:
    from daemon.errors import UserError

    return UserError(message)



def _say(args: argparse.Namespace) -> Callable[[str], None]:
    quiet = getattr(args, "json", False)
    return (lambda _m: None) if quiet else (lambda m: print(f"  · {m}", file=sys.stderr, flush=True))


def position_of(deps: AuditDeps, text: str | None, option: str, default: int) -> int:
    """A `--since/--until/--as-of` value as an event position."""
    if text is None:
        return default
    try:
        point = parse_point(text, dt.datetime.now().astimezone(), option=option)
    except ValueError as e:
        raise _user_error(str(e)) from None
    if point.position is not None:
        return point.position
    assert point.time is not None
    return deps.history.position_at(point.time)


# ---- audit -----------------------------------------------------------------------------------------------------


def cmd_audit(args: argparse.Namespace) -> int:
    from handlers.bisect import bisect  # each command imports what it alone needs: a CLI start stays short

    with open_vault(args.config) as svc:
        svc.config.task(args.task)
        deps = audit_deps(svc, _say(args))
        since = position_of(deps, args.since, "--since", 0)
        until = position_of(deps, args.until, "--until", deps.history.last_position())
        r = audit(deps, args.task, since=since, until=until)
        found = None
        if args.bisect and r.shift is not None and r.changes:
            found = bisect(deps, cycle_deps(svc, _say(args)).verify, r)
        svc.projections.catch_up()
    if args.json:
        print_json({**r.as_dict(), "bisect": found.as_dict() if found else None})
        return 0
    _print_audit(r, args.full_diff)
    if found is not None:
        _print_bisect(found)
    elif args.bisect:
        print("bisect: nothing to bisect (no drop, or no change in its window)")
    return 0


def _print_audit(r: AuditReport, full: bool) -> None:
    print(f"audit {r.key} [{r.task}]: {len(r.series)} live scores in #{r.since}..#{r.until}, noise floor {r.floor:.2f}")
    if r.segmentation is not None:
        for s in r.segmentation.shifts:
            print(f"  shift at score {s.index}: {s.before:.2f} → {s.after:.2f} ({s.change:+.2f}, p={s.p_value:.3f}, "
                  f"location {s.span[0]}–{s.span[1]})")
    if r.window is not None:
        table(f"changes between #{r.window[0]} and #{r.window[1]}", ["#", "recorded", "kind", "by", "what"], [
            (c.position, c.at[:19], "/".join(c.kinds or (c.kind,)), c.by, c.summary) for c in r.changes])
        for c in r.changes:
            diff = r.diffs.get(c.position, "")
            if not diff:
                continue
            lines = diff.splitlines()
            shown = lines if full else lines[:DIFF_LINES]
            print(f"--- change #{c.position} ({c.summary})")
            print("\n".join(shown))
            if len(shown) < len(lines):
                print(f"… {len(lines) - len(shown)} more lines (--full-diff, or --json)")
    for d in r.drift:
        shift = "not measured" if d.shift is None else f"{d.shift:+.2f} on {d.anchors} anchor runs"
        print(f"judge change #{d.position}: {shift} — {d.note}")
    for note in r.notes:
        print(f"note: {note}")
    print(f"verdict: {r.verdict}")


def _print_bisect(b: BisectResult) -> None:
    if b.steps:
        table("bisect", ["step", "state as of", "regressed", "effect of going back", "runs"], [
            (s.step, f"#{s.tested}", "yes" if s.regressed else "no", f"{s.effect:+.2f}", s.key)
            for s in b.steps])
    for c in b.skipped:
        print(f"not bisected (no vault file changed): #{c.position} {c.summary}")
    print(f"bisect: {b.verdict}")


# ---- replay / status --as-of --------------------------------------------------------------------------------


def _as_of(svc: Services, position: int) -> AsOf:
    from projections.as_of import AsOf

    return AsOf(svc.store, default_projections(svc.config.research.rolling), position)


def cmd_replay(args: argparse.Namespace) -> int:
    with open_vault(args.config) as svc:
        deps = audit_deps(svc)
        position = position_of(deps, args.until, "--until", deps.history.last_position())
        with _as_of(svc, position) as past, past.connect() as conn:
            quality = quality_table(conn)
            ledger = ledger_rows(conn, None, args.ledger)
        when = _time_at(deps, past.position)
    if args.json:
        print_json({"position": past.position, "time": when, "events_folded": past.folded,
                    "quality": to_jsonable(quality), "ledger": to_jsonable(ledger)})
        return 0
    print(f"as of #{past.position} ({when or 'an empty history'}): {past.folded} events folded, live read models untouched")
    _quality_table(quality, f"task quality as of #{past.position}, worst first")
    if ledger:
        table(f"ledger as of #{past.position} (last {len(ledger)})", ["#", "at", "task", "kind", "decision", "description"],
              [(r.notification_id, r.at[:19], r.task, r.kind, r.decision, r.description) for r in ledger])
    return 0


def status_as_of(args: argparse.Namespace) -> int:
    """`status --as-of T`: the quality table folded up to T, in a private read model."""
    with open_vault(args.config) as svc:
        deps = audit_deps(svc)
        position = position_of(deps, args.as_of, "--as-of", deps.history.last_position())
        with _as_of(svc, position) as past, past.connect() as conn:
            rows = quality_table(conn)
    if args.json:
        print_json(to_jsonable(rows))
        return 0
    _quality_table(rows, f"task quality as of #{past.position}, worst first")
    return 0


def _quality_table(rows: list[Any], title: str) -> None:
    table(title, ["task", "rolling", "last", "trend", "runs", "last done", "failing checks"], [
        (q.task, fmt_score(q.rolling_mean), fmt_score(q.last_score), fmt_trend(q.trend), q.runs,
         q.last_done_reason or "", ", ".join(q.failing_checks)) for q in rows])


def _time_at(deps: AuditDeps, position: int) -> str | None:
    when = deps.history.timestamp_of(position)
    return when.isoformat() if when else None


# ---- revert -----------------------------------------------------------------------------------------------------


def cmd_revert(args: argparse.Namespace) -> int:
    from adapters.git import merge3
    from daemon.commands_cycle import _print_result
    from handlers.revert import RevertRefused, find_change, revert

    with open_vault(args.config) as svc:
        deps = audit_deps(svc, _say(args))
        task, position, audit_key = _resolve_change(deps, args.change, args.task)
        change = find_change(deps, task, position)
        try:
            result = revert(cycle_deps(svc, _say(args)), deps, task, change, merge3, audit=audit_key)
        except RevertRefused as e:
            raise _user_error(str(e)) from None
        svc.projections.catch_up()
    _print_result(result, args.json, show_diff=True)
    return 0 if result.outcome in ("kept", "awaiting_approval") else 1


def _resolve_change(deps: AuditDeps, ref: str, task: str | None) -> tuple[str, int, str | None]:
    """(task, position, audit key) of `#1234`, `1234` or an audit key (its culprit, or the change it named)."""
    raw = ref.strip().removeprefix("#")
    if raw.isdigit():
        position = int(raw)
        return (task or _task_at(deps, position)), position, None
    found = deps.history.aggregate(Audit.create_id(ref))
    if not isinstance(found, Audit):
        raise _user_error(f"revert {ref!r}: not a change position (#1234) nor an audit key — fix: `autovault audit "
                          "TASK` lists changes with their positions")
    culprit = found.culprit if found.culprit is not None else found.suspect
    if culprit is None:
        raise _user_error(f"audit {ref} named no change — fix: run `autovault audit {found.task} --bisect`, or "
                          "revert a change by its position")
    return found.task, int(culprit), ref


def _task_at(deps: AuditDeps, position: int) -> str:
    for _, ev in deps.history.read(after=position - 1, upto=position):
        if isinstance(ev, Task.Changed):  # type: ignore[attr-defined]
            task = deps.history.aggregate(ev.originator_id)
            if isinstance(task, Task):
                return str(task.name)
        if isinstance(ev, Vault.Reconfigured):  # type: ignore[attr-defined]
            named = sorted({s.split(".", 1)[1] for s in ev.changed if s.startswith(("task.", "judge."))})
            if len(named) == 1:
                return named[0]
            raise _user_error(f"#{position} is a vault.yml change of {', '.join(named) or 'shared settings'} — fix: "
                              "name the task whose verification decides with --task")
    raise _user_error(f"#{position} is not a change — fix: `autovault audit TASK` lists changes with their positions")


# ---- report, export, import ----------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from adapters.report_render import MatplotlibReport  # matplotlib costs every other command a second to import
    from handlers.report import report

    with open_vault(args.config) as svc:
        deps = audit_deps(svc)
        with svc.engine_connect() as conn:
            scored = scored_tasks(conn)
        tasks = args.task or [t for t in svc.config.tasks if t in scored] or list(svc.config.tasks)
        for t in tasks:
            svc.config.task(t)
        since = position_of(deps, args.since, "--since", 0)
        out = Path(args.out) if args.out else svc.config.source.resolve().parent / ".autovault" / "report"
        written = report(deps, MatplotlibReport(), out, tasks, since=since)
    if args.json:
        print_json(written)
        return 0
    for t in written["tasks"]:
        print(f"{t['task']}: {t['verdict']}")
    print(f"wrote {written['png']} and {written['html']} (open the HTML in a browser; it needs no server)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from adapters.history_io import export_history

    with open_vault(args.config) as svc:
        counts = export_history(svc.store, Path(args.file))
    if args.json:
        print_json({"file": args.file, **to_jsonable(counts)})
    else:
        print(f"exported {counts.events} events and {counts.blobs} blobs (up to #{counts.last_position}) to {args.file}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from adapters.config_loader import load_config
    from adapters.history_io import HistoryFileError, import_history

    path = Path(args.file)
    if not path.is_file():
        raise _user_error(f"import {path}: no such file — fix: pass a file made by `autovault export`")
    cfg = load_config(Path(args.config))
    svc = bootstrap(cfg)
    try:
        counts = import_history(svc.store, path)
        svc.projections.catch_up()
    except HistoryFileError as e:
        raise _user_error(str(e)) from None
    finally:
        svc.close()
    if args.json:
        print_json({"file": args.file, **to_jsonable(counts)})
    else:
        print(f"imported {counts.events} events and {counts.blobs} blobs (up to #{counts.last_position}) from {path}")
    return 0


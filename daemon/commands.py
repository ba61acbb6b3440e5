"""What each `autovault` command does: load, call handlers, print a table or JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from adapters.backends.retirement import CURRENT_DEFAULT, anthropic_models, retiring
from adapters.config_loader import ConfigError, check_config, load_config
from daemon.bootstrap import Services, bootstrap, register_tasks
from daemon.dataflow import refresh_after_events
from daemon.output import fmt_score, fmt_trend, print_json, progress_bar, table
from domain.config import VaultConfig
from handlers.diagnose import SignatureNote, all_findings, open_signatures
from handlers.ingest import IngestReport, ingest_path
from handlers.tasks import TaskOutcome, judge, run_and_judge, run_from_view
from projections.problems import problem_count
from projections.quality import quality_table
from projections.runs import task_history


class UserError(Exception):
    """Something the user can fix; printed as one line, exit status 2."""


def dispatch(args: argparse.Namespace, extra: Sequence[Mapping[str, Callable[[argparse.Namespace], int]]] = ()) -> int:
    table_ = dict(COMMANDS)
    for more in extra:
        table_.update(more)
    handler = table_[args.command]
    try:
        return handler(args)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    except (FileNotFoundError, KeyError) as exc:
        raise UserError(str(exc).strip("'\"")) from None


def _config(args: argparse.Namespace) -> VaultConfig:
    return load_config(Path(args.config))


def _services(args: argparse.Namespace) -> Services:
    svc = bootstrap(_config(args))
    register_tasks(svc.store, svc.config)
    svc.projections.catch_up()
    return svc


# ---- check ---------------------------------------------------------------------------------------

def cmd_check(args: argparse.Namespace) -> int:
    path = Path(args.path or args.config)
    problems = check_config(path)
    if args.json:
        print_json({"file": str(path), "ok": not problems, "problems": [str(p) for p in problems]})
    elif problems:
        for p in problems:
            print(p, file=sys.stderr)
    else:
        cfg = load_config(path)
        for warning in model_warnings(cfg):
            print(warning, file=sys.stderr)
        print(f"{path}: ok — {len(cfg.tasks)} tasks, vault {cfg.root}, store {cfg.store}")
    return 1 if problems else 0


def model_warnings(cfg: VaultConfig) -> list[str]:
    """Configured Anthropic models that the installed client says retire: a warning, the vault still runs."""
    specs = [cfg.judge.model, *(t.model for t in cfg.tasks.values()),
             *(m for t in cfg.tasks.values() for m in t.candidates)]
    names = anthropic_models(specs, cfg.backends.anthropic.model)
    return [f"{cfg.source}: warning: anthropic model {name} reaches end of life on {date} — fix: set "
            f"backends.anthropic.model (and any anthropic:{name} task model) to a current model, e.g. {CURRENT_DEFAULT}"
            for name, date in retiring(names).items()]


# ---- ingest --------------------------------------------------------------------------------------

def cmd_ingest(args: argparse.Namespace) -> int:
    with _services(args) as svc:
        total = IngestReport()
        for raw in args.paths:
            report = ingest_path(Path(raw), svc.store)
            total.files += report.files
            total.runs += report.runs
            total.scores += report.scores
            total.duplicates += report.duplicates
            total.errors.extend(report.errors)
        svc.projections.catch_up()
        detected, resolved = refresh_after_events(svc)
    if args.json:
        print_json(total)
    else:
        for line in total.errors:
            print(line, file=sys.stderr)
        print(f"ingested {total.runs} runs and {total.scores} scores from {total.files} files "
              f"({total.duplicates} already recorded, {len(total.errors)} lines refused)")
        _print_findings_change(detected, resolved)
    return 1 if total.errors else 0


# ---- status, tasks, history ----------------------------------------------------------------------

def cmd_status(args: argparse.Namespace) -> int:
    if getattr(args, "as_of", None):
        from daemon.commands_audit import status_as_of

        return status_as_of(args)
    with _services(args) as svc:
        with svc.engine_connect() as conn:
            rows = [q for q in quality_table(conn) if q.task in svc.config.tasks]
            skipped = problem_count(conn)
        sigs = _signatures(svc, [q.task for q in rows]) if args.signatures else {}
    if skipped:
        print(f"autovault: {skipped} events could not be folded into the read models and were skipped — see "
              "`autovault doctor`", file=sys.stderr)
    if args.json:
        print_json([{**_asdict(q), **({"signatures": sigs.get(q.task, [])} if args.signatures else {})} for q in rows])
        return 0
    columns = ["task", "rolling", "last", "trend", "runs", "last done", "failing checks"]
    if args.signatures:
        columns.append("signatures")
    body = []
    for q in rows:
        row: list[Any] = [q.task, fmt_score(q.rolling_mean), fmt_score(q.last_score), fmt_trend(q.trend), q.runs,
                          q.last_done_reason or "", ", ".join(q.failing_checks)]
        if args.signatures:
            row.append(", ".join(s.name for s in sigs.get(q.task, [])))
        body.append(row)
    table("task quality, worst first", columns, body, caption=_caption(rows))
    return 0


def _caption(rows: list[Any]) -> str:
    scored = [q.rolling_mean for q in rows if q.rolling_mean is not None]
    if not scored:
        return "no scores yet: `autovault ingest LOGS` or `autovault run-task --all`"
    return f"{len(rows)} tasks, mean rolling score {sum(scored) / len(scored):.2f}"


def _asdict(obj: Any) -> dict[str, Any]:
    from daemon.output import to_jsonable

    value = to_jsonable(obj)
    assert isinstance(value, dict)
    return value


def cmd_tasks(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.json:
        print_json({name: t.model_dump(exclude_defaults=True) for name, t in cfg.tasks.items()})
        return 0
    table(f"tasks in {cfg.source}", ["task", "model", "schedule", "collect", "inputs", "outputs"], [
        (name, t.model, t.schedule or "", t.collect or "", ", ".join(t.inputs), ", ".join(t.outputs))
        for name, t in cfg.tasks.items()
    ])
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    with _services(args) as svc:
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


# ---- run-task, judge, signatures -----------------------------------------------------------------

def _task_names(svc: Services, task: str | None, every: bool) -> list[str]:
    if every:
        return [n for n, t in svc.config.tasks.items() if t.enabled]
    assert task is not None
    svc.config.task(task)
    return [task]


def cmd_run_task(args: argparse.Namespace) -> int:
    outcomes: list[TaskOutcome] = []
    with _services(args) as svc:
        names = _task_names(svc, args.task, args.all)
        with progress_bar() as progress:
            bar = progress.add_task("running tasks", total=len(names))
            for name in names:
                progress.update(bar, description=f"running {name}")
                outcomes.append(run_and_judge(
                    name, config=svc.config, runner=svc.runner, store=svc.store, complete=svc.models.complete,
                    history=svc.history, read_text=svc.read_vault_text, shadow=args.shadow,
                    judge_it=not args.no_judge))
                svc.projections.catch_up()
                progress.advance(bar)
        detected, resolved = refresh_after_events(svc)
    _print_outcomes(outcomes, args.json)
    if not args.json:
        _print_findings_change(detected, resolved)
    return 0 if all(o.run.status == "ok" for o in outcomes) else 1


def _print_findings_change(detected: list[Any], resolved: list[tuple[str, str]]) -> None:
    for f in detected:
        print(f"finding detected: {f.kind} {f.subject}")
    for kind, subject in resolved:
        print(f"finding resolved: {kind} {subject}")


def _print_outcomes(outcomes: list[TaskOutcome], as_json: bool) -> None:
    if as_json:
        print_json([{"task": o.run.task, "run_id": o.run.run_id, "status": o.run.status, "error": o.run.error,
                     "done_reason": o.run.done_reason, "words": o.run.words, "seconds": o.run.duration_s,
                     "score": o.judged.score.score if o.judged else None,
                     "failing": o.judged.score.failing if o.judged else [],
                     "judge_failure": o.judged.llm_failure if o.judged else None} for o in outcomes])
        return
    table("runs", ["task", "status", "done", "words", "s", "score", "failing checks / error"], [
        (o.run.task, o.run.status, o.run.done_reason, o.run.words, f"{o.run.duration_s:.1f}",
         fmt_score(o.judged.score.score) if o.judged else "", o.run.error or (", ".join(o.judged.score.failing) if o.judged else ""))
        for o in outcomes
    ])


def cmd_judge(args: argparse.Namespace) -> int:
    results = []
    with _services(args) as svc:
        for name in _task_names(svc, args.task, args.all):
            views = svc.history.views(name, 1)
            if not views:
                continue
            run = run_from_view(views[-1])
            judged = judge(run, svc.config, svc.models.complete, svc.history, svc.read_vault_text)
            svc.store.record_score(name, judged.score)
            results.append((name, run.run_id, judged))
        svc.projections.catch_up()
    if args.json:
        print_json([{"task": n, "run_id": r, "score": j.score.score, "reasons": j.score.reasons,
                     "judge_failure": j.llm_failure} for n, r, j in results])
    else:
        table("judged", ["task", "run", "score", "contract", "llm", "reasons"], [
            (n, r[:12], fmt_score(j.score.score), fmt_score(j.contract_score),
             fmt_score(j.llm_score) if j.llm_failure is None else f"failed: {j.llm_failure}", "; ".join(j.score.reasons[:3]))
            for n, r, j in results
        ])
    return 0


def _signatures(svc: Services, names: list[str]) -> dict[str, list[SignatureNote]]:
    """Each task's open signatures: runs since its last kept change, script lints, the data audit, its collector
    measured in a shadow, data-flow findings (`handlers.diagnose.open_signatures`); a bar while collectors run."""
    found: dict[str, list[SignatureNote]] = {}
    findings = all_findings(svc)
    with progress_bar() as progress:
        bar = progress.add_task("reading signatures", total=len(names))
        for name in names:
            progress.update(bar, description=f"signatures of {name}")
            found[name] = open_signatures(name, svc, findings=findings)
            progress.advance(bar)
    return found


def cmd_signatures(args: argparse.Namespace) -> int:
    with _services(args) as svc:
        if args.task:
            svc.config.task(args.task)
        found = _signatures(svc, [args.task] if args.task else list(svc.config.tasks))
    if args.json:
        print_json(found)
        return 0
    table("failure signatures", ["task", "signature", "severity", "lever", "from", "evidence"], [
        (task, s.name, s.severity, s.lever, s.source, s.summary) for task, sigs in found.items() for s in sigs
    ], caption="from: runs (since the task's last kept change), lint, audit, trace (collector measured), finding")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "check": cmd_check,
    "ingest": cmd_ingest,
    "status": cmd_status,
    "tasks": cmd_tasks,
    "history": cmd_history,
    "run-task": cmd_run_task,
    "judge": cmd_judge,
    "signatures": cmd_signatures,
}

"""What each `autovault` command does: load, call handlers, print a table or JSON."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from adapters.backends.retirement import CURRENT_DEFAULT, anthropic_models, retiring
from adapters.config_loader import check_config, load_config
from daemon.bootstrap import Services, diagnose_deps
from daemon.dataflow import refresh_after_events
from daemon.open_vault import open_vault
from daemon.output import fmt_score, print_json, progress_bar, table
from domain.config import VaultConfig
from handlers.evidence import SignatureNote
from handlers.ingest import IngestReport, ingest_path
from handlers.open_signatures import all_findings, open_signatures
from handlers.tasks import TaskOutcome, judge, run_and_judge, run_from_view

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
        for warning in [*model_warnings(cfg), *secret_warnings(path)]:
            print(warning, file=sys.stderr)
        print(f"{path}: ok — {len(cfg.tasks)} tasks, vault {cfg.root}, store {cfg.store}")
    return 1 if problems else 0


_URL_PASSWORD = re.compile(r"://[^/\s:@]+:[^@\s/]+@")


def secret_warnings(path: Path) -> list[str]:
    """A password written into vault.yml is in every copy of its history (events, blobs, exports)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [f"{path}:{n}: warning: a URL carries a password, and vault.yml's text is kept in the history — fix: "
            "move it to AUTOVAULT_STORE / OLLAMA_HOST in the service's environment, or to ~/.pgpass"
            for n, line in enumerate(lines, 1) if _URL_PASSWORD.search(line)]


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
    with open_vault(args.config) as svc:
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


# ---- run-task, judge, signatures -----------------------------------------------------------------

def _task_names(svc: Services, task: str | None, every: bool) -> list[str]:
    if every:
        return [n for n, t in svc.config.tasks.items() if t.enabled]
    assert task is not None
    svc.config.task(task)
    return [task]


def cmd_run_task(args: argparse.Namespace) -> int:
    outcomes: list[TaskOutcome] = []
    with open_vault(args.config) as svc:
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
    with open_vault(args.config) as svc:
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


def signatures_of(svc: Services, names: list[str]) -> dict[str, list[SignatureNote]]:
    """Each task's open signatures: runs since its last kept change, script lints, the data audit, its collector
    measured in a shadow, data-flow findings (`handlers.open_signatures.open_signatures`); a bar while collectors run."""
    found: dict[str, list[SignatureNote]] = {}
    deps = diagnose_deps(svc)
    findings = all_findings(deps)
    with progress_bar() as progress:
        bar = progress.add_task("reading signatures", total=len(names))
        for name in names:
            progress.update(bar, description=f"signatures of {name}")
            found[name] = open_signatures(name, deps, findings=findings)
            progress.advance(bar)
    return found


def cmd_signatures(args: argparse.Namespace) -> int:
    with open_vault(args.config) as svc:
        if args.task:
            svc.config.task(args.task)
        found = signatures_of(svc, [args.task] if args.task else list(svc.config.tasks))
    if args.json:
        print_json(found)
        return 0
    table("failure signatures", ["task", "signature", "severity", "lever", "from", "evidence"], [
        (task, s.name, s.severity, s.lever, s.source, s.summary) for task, sigs in found.items() for s in sigs
    ], caption="from: runs (since the task's last kept change), lint, audit, trace (collector measured), finding")
    return 0

"""What the weekly quality gate reports on (`handlers.policies.write_quality_report`), read from the read models:
kept and discarded deltas of the week (the ledger), tasks whose mean score fell against the week before (scored
runs), and the next fixes (the strongest signatures of up to five tasks, worst first)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from daemon.scheduler import parse_started
from domain.quality import TaskQuality
from handlers import policies
from projections.ledger import ledger_rows
from projections.quality import quality_table
from projections.runs import scored_runs

if TYPE_CHECKING:
    from daemon.bootstrap import Services

REGRESSION = 0.25  # a drop of the weekly mean score by more than this is a regression
MAX_TASKS = 5  # tasks with signatures whose fixes are listed
FIXES_PER_TASK = 3


def week_facts(svc: Services, since: dt.datetime) -> policies.WeekFacts:
    """The facts of the week that began at `since` (regressions compare it with the seven days before)."""
    with svc.engine_connect() as conn:
        rows = [r for r in ledger_rows(conn) if (parse_started(r.at, since) or since) >= since]
        scored = scored_runs(conn)
        quality = [q for q in quality_table(conn) if q.task in svc.config.tasks]
    kept = [policies.KeptDelta(r.cycle or "", r.task, r.lever or "", r.effect, r.description)
            for r in rows if r.kind == "Kept"]
    discarded = sum(1 for r in rows if r.kind == "Discarded")
    return policies.WeekFacts(kept, regressions(scored, since), next_fixes(svc, quality), discarded)


def regressions(scored: list[tuple[str, float, str]], since: dt.datetime) -> list[tuple[str, float, float]]:
    """(task, last week's mean, this week's mean) of every task scored in both weeks whose mean fell."""
    this: dict[str, list[float]] = {}
    last: dict[str, list[float]] = {}
    for task, score, started in scored:
        at = parse_started(started, since)
        if at is None or at < since - dt.timedelta(days=7):
            continue
        (this if at >= since else last).setdefault(task, []).append(score)
    out = []
    for task in sorted(set(this) & set(last)):
        a, b = sum(last[task]) / len(last[task]), sum(this[task]) / len(this[task])
        if b < a - REGRESSION:
            out.append((task, a, b))
    return out


def next_fixes(svc: Services, quality: list[TaskQuality]) -> list[policies.Fix]:
    """Up to `MAX_TASKS` tasks with signatures (in the quality table's order), their strongest few each
    (`handlers.weekly` picks the top three of these)."""
    from handlers.tasks import task_signatures
    from projections.globs import overlaps

    fixes, worst = [], 0
    for q in quality:
        sigs = task_signatures(q.task, config=svc.config, history=svc.history, read_text=svc.read_vault_text,
                               reads=overlaps)
        fixes += [policies.Fix(q.task, q.rolling_mean, s.name, s.lever, s.summary) for s in sigs[:FIXES_PER_TASK]]
        worst += bool(sigs)
        if worst >= MAX_TASKS:
            break
    return fixes

"""Diagnose: pick the bottleneck task and pack the evidence a proposer needs — bounded, no raw logs.

`diagnose(task, deps)` returns an `Evidence` (`handlers.evidence`): the task's signatures (from runs, its
collector measured in a shadow or its script's lints, the data audit and open data-flow findings:
`handlers.open_signatures`), failing checks, short excerpts of its last runs, its vault.yml block, the full
texts (with sha256) of every file a fix may edit, its neighbours on the data-flow graph
(`handlers.evidence_parts`), mined training examples (`handlers.mining`), the model pool ranked
(`handlers.candidates`) and what was already tried (`handlers.tried`). Named without a task, it takes the
bottleneck (`handlers.ranking`). deps: a `DiagnoseDeps` (`handlers.diagnose_deps`).
"""

from __future__ import annotations

from typing import Any

from domain.checks import clip, is_truncated
from domain.signatures import SEVERITY_RANK
from handlers import candidates, mining
from handlers.collector_trace import collector_evidence
from handlers.diagnose_deps import DiagnoseDeps
from handlers.evidence import Evidence, fmt_score
from handlers.evidence_parts import (
    EXCERPT_RUNS,
    check_details,
    config_block,
    excerpt,
    file_text,
    input_headings,
    model_stats,
    neighbours,
    script_inputs,
    short_consumers,
    vault_files,
)
from handlers.open_signatures import (
    RUNS,
    audit_notes,
    data_audit,
    finding_note,
    lint_notes,
    note,
    run_signatures,
    task_findings,
)
from handlers.ranking import history_mean, rank_tasks, rolling_scores
from handlers.since_change import current_history, last_own_change

MINE_RUNS = 500  # past runs mining looks through: good runs can be old, the window only bounds the read


def diagnose(task: str | None, deps: DiagnoseDeps) -> Evidence:
    """The evidence pack for `task` (None: the bottleneck)."""
    why = "named"
    if task is None:
        ranked = rank_tasks(deps)
        if not ranked:
            raise LookupError("no task needs work: every task is at target with no signature")
        worst = ranked[0]
        task, why = worst.task, f"worst rolling score {fmt_score(worst.score)} with {list(worst.signatures)}"
    cfg = deps.config
    tc = cfg.task(task)
    read = deps.read_vault_text
    views = current_history(deps, task).views(task, RUNS)
    run_scores = deps.history.scores(task)
    score = rolling_scores(deps).get(task) or history_mean(deps.history, task)
    if why == "named":
        why = f"named by the caller (rolling score {fmt_score(score)})"

    files = vault_files(cfg, tc, read)
    sigs = [note(s, "runs") for s in run_signatures(task, deps)]
    measured, collector = collector_evidence(task, deps)  # the collector traced in a shadow
    sigs += [n for n in measured if not any(s.name == n.name for s in sigs)] if measured is not None else \
        lint_notes(tc, read)
    audit, data_texts = data_audit(cfg, tc)
    if audit is not None:
        sigs += audit_notes(audit)
        for path, text in data_texts.items():
            files[path] = file_text(path, text, "data")
    sigs += [finding_note(f) for f in task_findings(deps, task) if not any(s.name == f.kind for s in sigs)]
    sigs.sort(key=lambda s: -SEVERITY_RANK.get(s.severity, 1))

    mined: tuple[dict[str, Any], ...] = ()
    balance: dict[str, Any] = {}
    if audit is not None and data_texts and (audit.too_few or audit.imbalanced):
        past = deps.history.views(task, MINE_RUNS)
        sigs, mined, balance = mining.data_plans(cfg.root, tc, read(tc.prompt), past, run_scores, audit, data_texts,
                                                 sigs)
    failing = sorted({c for v in views for c in v.failing})
    reasons = _judge_reasons(deps, task)
    upstream, downstream = neighbours(cfg, task, views, deps.history)
    involved = [task, *short_consumers(sigs)]
    for other in involved[1:]:  # both ends of a mismatch: the consumer's prompt may be what has to change
        rel = cfg.tasks[other].prompt if other in cfg.tasks else None
        if rel and rel not in files and (cfg.root / rel).is_file():
            files[rel] = file_text(rel, read(rel), "consumer-prompt")
    return Evidence(
        task=task, tasks=tuple(dict.fromkeys(involved)), why=why, score=score,
        config_name=cfg.source.name, config_block=config_block(cfg, task),
        config=tc.model_dump(mode="json", exclude_defaults=True),
        signatures=tuple(sigs), failing_checks=tuple(failing), judge_reasons=tuple(reasons),
        runs=tuple(excerpt(v, run_scores.get(v.run_id)) for v in views[-EXCERPT_RUNS:]),
        model_stats=(stats := model_stats(views, run_scores, tc)),
        upstream=tuple(upstream), downstream=tuple(downstream), files=files,
        script_inputs=script_inputs(cfg.root, files), input_headings=input_headings(cfg.root, tc),
        data_audit=audit.as_dict() if audit is not None else None,
        mined=mined, balance=balance,
        editable=tuple(cfg.research.editable), approve=tuple(cfg.research.approve),
        output_tokens_complete=tuple(v.output_tokens for v in views
                                     if v.ok and not is_truncated(v.done_reason) and v.output_tokens),
        collector=collector, candidates=candidates.for_evidence(task, tc.model_dump(mode="json"), stats, sigs, deps),
        check_details=check_details(views, tc), tried=_tried(deps, task),
    )


def _tried(deps: DiagnoseDeps, task: str) -> tuple[dict[str, Any], ...]:
    return () if deps.cycles is None else deps.cycles.tried(task, last_own_change(deps, task))


def _judge_reasons(deps: DiagnoseDeps, task: str) -> list[str]:
    if deps.quality is None:
        return []
    try:
        reasons = deps.quality.last_reasons(task)
    except Exception:  # the judge's words are a bonus: an unreadable read model leaves them out
        return []
    return [clip(r) for r in reasons][:5]


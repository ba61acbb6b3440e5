"""Which task to work on: tasks ranked worst first, by lowest rolling score, then the most severe signatures."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from statistics import fmean

from domain.signatures import SEVERITY_RANK
from handlers.diagnose_deps import DiagnoseDeps
from handlers.open_signatures import all_findings, open_signatures
from handlers.tasks import History


@dataclass(frozen=True)
class Ranked:
    task: str
    score: float | None
    signatures: tuple[str, ...]
    severity: int  # sum of signature severities

    @property
    def key(self) -> tuple[float, int, str]:
        return (self.score if self.score is not None else 5.0, -self.severity, self.task)


def rolling_scores(deps: DiagnoseDeps) -> dict[str, float]:
    """task -> rolling mean from the quality read model; {} without one."""
    return {} if deps.quality is None else deps.quality.rolling_means()


def rank_tasks(deps: DiagnoseDeps, *, exclude: Iterable[str] = ()) -> list[Ranked]:
    """Enabled tasks with something to fix (below target, or showing a signature or a finding, e.g. a producer
    too thin for its consumer whose own score is fine), worst first."""
    cfg = deps.config
    scores = rolling_scores(deps)
    if not scores:
        scores = {t: s for t in cfg.tasks if (s := history_mean(deps.history, t)) is not None}
    skip = set(exclude)
    out = []
    found = all_findings(deps)
    for name, task in cfg.tasks.items():
        if not task.enabled or name in skip:
            continue
        sigs = open_signatures(name, deps, measured=False, findings=found)
        score = scores.get(name)
        if not sigs and (score is None or score >= cfg.research.target):
            continue
        severity = sum(SEVERITY_RANK.get(s.severity, 1) for s in sigs)
        out.append(Ranked(name, score, tuple(s.name for s in sigs), severity))
    return sorted(out, key=lambda r: r.key)


def choose_bottleneck(deps: DiagnoseDeps, *, exclude: Iterable[str] = ()) -> str | None:
    ranked = rank_tasks(deps, exclude=exclude)
    return ranked[0].task if ranked else None


def history_mean(history: History, task: str) -> float | None:
    """The mean of the task's last five scores in the run history, where no read model says better."""
    values = list(history.scores(task).values())[-5:]
    return round(fmean(values), 3) if values else None


__all__ = ["Ranked", "choose_bottleneck", "history_mean", "rank_tasks", "rolling_scores"]

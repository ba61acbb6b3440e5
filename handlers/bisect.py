"""Bisect an audit's window: which change, rebuilt and run, brings the drop?

The window's changes c₁ … c_m that touch vault files or vault.yml are ordered; state S_i is the vault as of c_i
(S₀: just before c₁), rebuilt from the events and blobs (`handlers.rebuild`) and laid over a shadow copy of the
live vault. Each test is the cycle's own verification (`handlers.verify.verify`): S_i as the baseline, S₀ as the
candidate, on the same paired inputs, judged by today's judge, decided by the acceptance rule — "keep" means S₀ is
measurably better than S_i, i.e. the regression is present in S_i.

The judge and the model servers are today's (the live `judge` and `backends`): a judge or backend change is
listed by the audit (and a judge change measured by `handlers.drift`) but cannot show in a bisect step.

First S_m is tested (does the drop reproduce at all, with the judge held fixed?); then a binary search keeps a
bracket (S_lo fine, S_hi regressed) until hi = lo + 1: c_hi is the change that brought the drop. ⌈log₂ m⌉ + 1
verifications in all. Every step is an `Audit.Bisected` event, the answer an `Audit.Concluded`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.config_loader import ConfigError
from domain.acceptance import decide
from domain.aggregates import Audit
from handlers.audit import AuditDeps, AuditReport, task_changes, vault_at
from handlers.rebuild import RebuildError, VaultAt
from handlers.verify import Verification, candidate_arm, verify
from handlers.verify_arms import Arm
from handlers.verify_deps import VerifyDeps
from projections.changes import Change


@dataclass
class BisectStep:
    step: int
    index: int  # i of the state S_i tested
    tested: int  # position of c_i (the last change S_i holds)
    regressed: bool
    effect: float
    interval: tuple[float, float]
    reason: str
    key: str  # the verification's cycle key: `autovault history TASK --cycle KEY` shows its runs

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "index": self.index, "tested": self.tested, "regressed": self.regressed,
                "effect": self.effect, "interval": list(self.interval), "reason": self.reason, "runs": self.key}


@dataclass
class BisectResult:
    culprit: Change | None
    verdict: str
    steps: list[BisectStep] = field(default_factory=list)
    skipped: list[Change] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"culprit": self.culprit.as_dict() if self.culprit else None, "verdict": self.verdict,
                "steps": [s.as_dict() for s in self.steps], "skipped": [c.as_dict() for c in self.skipped]}


class _States:
    """S_i as verification arms, built once each."""

    def __init__(self, deps: VerifyDeps, vault: VaultAt, positions: Sequence[int]) -> None:
        self.deps, self.vault, self.positions = deps, vault, positions
        self._arms: dict[int, Arm] = {}

    def arm(self, i: int) -> Arm:
        """S_i over a copy of the live vault: only the files that differ from the live ones are laid over it."""
        if i not in self._arms:
            at = self.positions[i]
            files = {p: t for p, t in self.vault.files_at(at).items() if t != self.vault.live(p)}
            self._arms[i] = candidate_arm(self.deps, files, self.vault.config_at(at))
        return self._arms[i]


def bisect(audit_deps: AuditDeps, verify_deps: VerifyDeps, report: AuditReport) -> BisectResult:
    """Name the change of `report`'s window that brought the drop (see the module docstring)."""
    candidates = [c for c in report.changes if c.touches_files]
    skipped = [c for c in report.changes if not c.touches_files]
    if not candidates:
        return _concluded(audit_deps, report.key, BisectResult(
            None, "nothing to bisect: no change in the window touched a vault file or vault.yml", [], skipped))
    vault = vault_at(audit_deps, task_changes(audit_deps, report.task))
    positions = [candidates[0].position - 1, *(c.position for c in candidates)]
    states = _States(verify_deps, vault, positions)
    result = BisectResult(None, "", [], skipped)
    try:
        m = len(candidates)
        first = _test(audit_deps, verify_deps, report, states, m, result, lo=0, hi=m)
        if not first.regressed:
            result.verdict = (f"the drop does not reproduce on the rebuilt vault — the state after the window against "
                              f"the one before it: {first.reason}. The recorded vault files do not explain it: look at "
                              "the judge, the model server or the data the task reads")
            return _concluded(audit_deps, report.key, result)
        lo, hi = 0, m
        while hi - lo > 1:
            mid = (lo + hi) // 2
            step = _test(audit_deps, verify_deps, report, states, mid, result, lo=lo, hi=hi)
            lo, hi = (lo, mid) if step.regressed else (mid, hi)
        culprit = candidates[hi - 1]
        proof = next(s for s in result.steps if s.index == hi)
        result.culprit = culprit
        result.verdict = (f"#{culprit.position} {culprit.summary}: the vault just before it scores {proof.effect:+.2f} "
                          f"better on paired inputs ({proof.reason})")
    except (RebuildError, ConfigError) as e:
        result.verdict = f"bisect stopped: {' '.join(str(e).split())}"
    except Exception as e:  # a crash is on the record too, as one line
        error = f"{type(e).__name__}: {' '.join(str(e).split())}"[:500]
        batch = audit_deps.store.batch()
        batch.add(Audit.create_id(report.key), lambda a: a.failed(error=error))
        batch.commit()
        result.verdict = f"bisect failed: {error}"
        return result
    return _concluded(audit_deps, report.key, result)


def _test(audit_deps: AuditDeps, verify_deps: VerifyDeps, report: AuditReport, states: _States, i: int,
          result: BisectResult, *, lo: int, hi: int) -> BisectStep:
    n = len(result.steps)
    key = f"{report.key}/b{n}"
    audit_deps.progress(f"{report.task}: bisect step {n}: the vault as of #{states.positions[i]} against "
                        f"#{states.positions[0]}")
    v: Verification = verify(verify_deps, report.task, states.arm(i), states.arm(0), cycle=key)
    # The question is "is S_i worse?", not "is S₀ worth keeping?": a shorter S₀ at equal score is no evidence.
    d = decide(v.baseline, v.candidate, v.rule, guardrails_regressed=v.guardrails, simpler=False)
    regressed = d.verdict == "keep"
    step = BisectStep(n, i, states.positions[i], regressed, d.effect, d.interval, d.reason, key)
    result.steps.append(step)
    good, bad = (lo, i) if regressed else (i, hi)
    detail = {"samples": {"baseline": v.baseline, "candidate": v.candidate}, "reason": d.reason,
              "noise_floor": v.noise_floor, "guardrails": v.guardrails, "runs": key}
    batch = audit_deps.store.batch()
    batch.add(Audit.create_id(report.key), lambda a: a.bisected(
        step=n, tested=states.positions[i], good=good - 1, bad=bad - 1, verdict="regressed" if regressed else "fine",
        effect=d.effect, interval=list(d.interval), rule=v.rule_record(), detail=detail))
    batch.commit()
    return step


def _concluded(deps: AuditDeps, key: str, result: BisectResult) -> BisectResult:
    culprit = result.culprit.position if result.culprit else None
    batch = deps.store.batch()
    batch.add(Audit.create_id(key), lambda a: a.concluded(culprit=culprit, verdict=result.verdict,
                                                          reason="bisect"))
    batch.commit()
    return result

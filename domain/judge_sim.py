"""A simulated 1–5 judge of known noise, to measure the acceptance rule itself (tests and the benchmark).

Why simulate: the rule's error rates (how often noise is kept, how often a real gain is missed) cannot be
read off one real verification; they are a property of the rule under a known truth. The noise model is
what LLM judges show: integer scores, run-to-run noise, inputs that are easier or harder for both arms,
and a delta that helps some inputs more than others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from domain.acceptance import Decision, Rule, SequentialPlan, decide

Scores = dict[str, list[float]]


@dataclass(frozen=True)
class SimulatedJudge:
    """score = clip(round(base + input effect + delta·[candidate] + per-input delta spread + run noise), 1, 5)."""

    base: float = 3.0
    input_sd: float = 0.5  # input-level random effect shared by both arms (the cluster)
    effect_sd: float = 0.2  # how much the true delta varies from input to input
    run_sd: float = 0.7  # run-to-run noise of output + judge, per run
    runs: int = 1  # runs per input and arm (averaged: the input is the unit)

    def draw(self, rng: np.random.Generator, first: int, n: int, effect: float) -> tuple[Scores, Scores]:
        """Scores for inputs ``first .. first+n-1`` in both arms, true mean difference ``effect`` (latent)."""
        level = self.base + rng.normal(0.0, self.input_sd, size=(n, 1))
        delta = effect + rng.normal(0.0, self.effect_sd, size=(n, 1))
        base = _score(level + rng.normal(0.0, self.run_sd, size=(n, self.runs)))
        cand = _score(level + delta + rng.normal(0.0, self.run_sd, size=(n, self.runs)))
        ids = [f"in{first + i:04d}" for i in range(n)]
        return (
            {k: row.tolist() for k, row in zip(ids, base, strict=True)},
            {k: row.tolist() for k, row in zip(ids, cand, strict=True)},
        )


def run_sequential(
    judge: SimulatedJudge,
    rule: Rule,
    plan: SequentialPlan,
    effect: float,
    rng: np.random.Generator,
    *,
    simpler: bool = False,
) -> Decision:
    """The verifier's loop against the simulated judge: run a batch, decide, run more while "more"."""
    baseline: Scores = {}
    candidate: Scores = {}
    batch = plan.first_batch()
    while True:
        b, c = judge.draw(rng, len(baseline), batch, effect)
        baseline.update(b)
        candidate.update(c)
        decision = decide(baseline, candidate, rule, simpler=simpler)
        batch = plan.next_batch(decision)
        if batch == 0:
            return decision


def _score(latent: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(latent), 1, 5)

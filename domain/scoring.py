"""From checks to a 1–5 score, and how the contract score and the LLM judge's score combine.

The contract score is deterministic so that replaying the same checks gives the same number:
start at 5, subtract the penalty of every failed check (hard checks by the table below, soft checks a
flat 0.25), floor at 1. Penalties are sized so that one fatal failure (failed run, empty output) reaches
the floor alone, a broken format or an overflowed context costs two points, and cosmetic misses cost less.

| failed check            | penalty |
| ----------------------- | ------- |
| failed, empty           | 4       |
| blocks, json_schema     | 2       |
| context_overflow        | 2       |
| truncated, min_words    | 1.5     |
| distinct_from_previous  | 1.5     |
| sections, forbid        | 1       |
| placeholder_leak        | 1       |
| code_fences             | 1       |
| max_words               | 0.5     |
| any other hard check    | 1       |
| any soft check          | 0.25    |
"""

from __future__ import annotations

from collections.abc import Iterable

from domain.runs import Check

TOP, FLOOR = 5.0, 1.0
PENALTY: dict[str, float] = {
    "failed": 4.0,
    "empty": 4.0,
    "blocks": 2.0,
    "json_schema": 2.0,
    "context_overflow": 2.0,
    "truncated": 1.5,
    "min_words": 1.5,
    "distinct_from_previous": 1.5,
    "sections": 1.0,
    "forbid": 1.0,
    "placeholder_leak": 1.0,
    "code_fences": 1.0,
    "max_words": 0.5,
}
HARD_DEFAULT = 1.0
SOFT_PENALTY = 0.25


def penalty(check: Check) -> float:
    """What one failed check costs; a passed check costs nothing."""
    if check.passed:
        return 0.0
    if not check.hard:
        return SOFT_PENALTY
    return PENALTY.get(check.name, HARD_DEFAULT)


def score_from_checks(checks: Iterable[Check]) -> tuple[float, list[str]]:
    """The contract score and one reason per failed check, worst first (`"truncated (-1.5): …"`)."""
    checks = list(checks)
    failed = sorted((c for c in checks if not c.passed), key=lambda c: (-penalty(c), c.name))
    score = max(FLOOR, TOP - sum(penalty(c) for c in failed))
    if not failed:
        return TOP, [f"all {len(checks)} checks passed"]
    reasons = [f"{c.name} (-{penalty(c):g}{'' if c.hard else ', advisory'}): {c.detail}" for c in failed]
    return score, reasons


def clamp(score: float) -> float:
    return min(TOP, max(FLOOR, score))


def combine(contract_score: float, llm_score: float | None, llm_weight: float) -> float:
    """Weighted mean of the two judges; the contract score alone when the LLM judge gave no score.

    The caller records in the reasons that the LLM part was missing (see `handlers.judge`)."""
    if llm_score is None:
        return clamp(contract_score)
    weight = min(1.0, max(0.0, llm_weight))
    return clamp((1.0 - weight) * clamp(contract_score) + weight * clamp(llm_score))

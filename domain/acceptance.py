"""Deciding whether a verified delta is kept: a paired, input-clustered, seeded bootstrap rule.

Why this shape (docs/cycle.md, "Decisions"): LLM outputs and LLM judges are noisy, and a
single-run "candidate scored higher" keeps noise as progress. So:

- the unit is the *input* (one collected context run through both arms); several runs of one input are
  averaged first, so repeated runs never pass for independent evidence (the cluster bootstrap);
- effect = mean over inputs of (candidate − baseline); interval = percentile bootstrap over inputs,
  drawn from ``Generator(PCG64(seed))`` so a recorded decision replays bit for bit;
- keep when effect ≥ min_effect AND the interval's lower bound > 0 AND no guardrail regressed; discard
  early when the interval lies below 0 (clearly worse) or when the upper bound of a narrower *futility*
  interval (``futility_confidence``) < min_effect (not good enough: most deltas are noise, and they
  should leave after the first look, not run to the cap); otherwise ask for more inputs, and at the cap
  discard ("unclear is not a keep"). ``futility_confidence = confidence`` gives the one-interval rule;
- a simpler candidate (shorter prompt, simpler script) is kept at equal score: its interval lies above
  −simplicity_tolerance (no worse than the equal band; within ±tolerance is the plain "equal" case);
- a task's noise floor (from an A/A comparison) bounds min_effect from below;
- a hard check that regressed vetoes a keep: any net regression when nothing is noisy, a significant one (a
  one-sided sign test over the inputs where the arms disagree) when something is.

Defaults below are the ones measured by ``tests/test_acceptance.py`` and ``benchmarks/bench_acceptance.py``
against a simulated 1–5 judge (run noise sd 0.7, input effect sd 0.5, one run per input and arm).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np

from domain.runs import Check

Verdict = Literal["keep", "discard", "more"]

# Measured defaults (see module docstring); ResearchConfig's samples / max_samples / min_effect mirror them.
START_INPUTS = 24  # research.samples: the first look; fewer inputs cannot tell +0.5 from judge noise
STEP_INPUTS = 24  # inputs added per "more": looks at 24, 48, 72, 96
MIN_INPUTS = 24  # no verdict but a veto below this (the percentile bootstrap is too narrow on few inputs)
MAX_INPUTS = 96  # research.max_samples: the cap, where unclear is discarded
MIN_EFFECT = 0.3  # research.min_effect, on the 1–5 judge scale
CONFIDENCE = 0.98  # per look: four looks at 0.95 each keep noise 4.3 % of the time, at 0.98 2.5 %
FUTILITY_CONFIDENCE = 0.8  # early "not good enough" on a narrower interval: noise leaves after 40 inputs, not 65
GUARDRAIL_ALPHA = 0.05  # a noisy task's hard check vetoes only on a significant regression
FASTER_RATIO = 0.75  # a candidate collector taking at most this share of the baseline's time is noted as faster
MIN_COLLECT_S = 0.02  # below this a collector's time is scheduling noise, not its work


@dataclass(frozen=True)
class ArmSamples:
    """Scores per input id for both arms, as recorded in the ``Verified`` event."""

    baseline: Mapping[str, tuple[float, ...]]
    candidate: Mapping[str, tuple[float, ...]]

    @classmethod
    def of(cls, baseline: Mapping[str, Sequence[float]], candidate: Mapping[str, Sequence[float]]) -> ArmSamples:
        return cls(_checked("baseline", baseline), _checked("candidate", candidate))

    def paired(self) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """Input ids present in both arms (sorted, so dict order never changes a decision) and their diffs."""
        ids = tuple(sorted(set(self.baseline) & set(self.candidate)))
        diffs = tuple(_mean(self.candidate[i]) - _mean(self.baseline[i]) for i in ids)
        return ids, diffs

    def unpaired(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.baseline) ^ set(self.candidate)))

    def as_dict(self) -> dict[str, dict[str, list[float]]]:
        return {
            "baseline": {k: list(v) for k, v in sorted(self.baseline.items())},
            "candidate": {k: list(v) for k, v in sorted(self.candidate.items())},
        }


@dataclass(frozen=True)
class Rule:
    """Everything the decision depends on besides the scores; recorded so replay is exact."""

    min_effect: float = MIN_EFFECT
    confidence: float = CONFIDENCE
    futility_confidence: float = FUTILITY_CONFIDENCE
    resamples: int = 2000
    seed: int = 0
    min_inputs: int = MIN_INPUTS
    max_inputs: int = MAX_INPUTS
    noise_floor: float | None = None
    simplicity_tolerance: float = 0.1

    def __post_init__(self) -> None:
        problems = [
            msg
            for bad, msg in (
                (not (math.isfinite(self.min_effect) and self.min_effect >= 0), "min_effect must be ≥ 0"),
                (not 0.5 <= self.confidence < 1, "confidence must be in [0.5, 1), e.g. 0.98"),
                (
                    not 0.5 <= self.futility_confidence <= self.confidence,
                    "futility_confidence must be in [0.5, confidence]",
                ),
                (self.resamples < 2000, "resamples must be ≥ 2000 for a stable percentile interval"),
                (self.min_inputs < 2, "min_inputs must be ≥ 2 (one input has no spread)"),
                (self.max_inputs < self.min_inputs, "max_inputs must be ≥ min_inputs"),
                (self.noise_floor is not None and not self.noise_floor >= 0, "noise_floor must be ≥ 0 or None"),
                (not self.simplicity_tolerance >= 0, "simplicity_tolerance must be ≥ 0"),
            )
            if bad
        ]
        if problems:
            raise ValueError(f"acceptance rule: {'; '.join(problems)} (got {self})")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"acceptance rule: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class Decision:
    """A verdict with everything needed to show, record and replay it.

    ``interval`` is the percentile bootstrap interval at ``rule.confidence`` (the keep test);
    ``futility_upper`` the upper bound at ``rule.futility_confidence`` (the early "not good enough" test).
    """

    verdict: Verdict
    reason: str
    effect: float
    interval: tuple[float, float]
    futility_upper: float
    n_inputs: int
    inputs: tuple[str, ...]
    diffs: tuple[float, ...]
    unpaired: tuple[str, ...]
    rule: dict[str, Any]
    vetoes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the ``Verified`` event."""
        out = asdict(self)
        for key in ("interval", "inputs", "diffs", "unpaired", "vetoes"):
            out[key] = list(out[key])
        return out


def decide(
    baseline: Mapping[str, Sequence[float]],
    candidate: Mapping[str, Sequence[float]],
    rule: Rule,
    *,
    guardrails_regressed: Sequence[str] = (),
    simpler: bool = False,
) -> Decision:
    """Keep, discard or ask for more inputs, from scores paired by input id (runs of one input averaged)."""
    floor = rule.noise_floor
    if floor is not None and rule.min_effect < floor:
        raise ValueError(
            f"acceptance rule: min_effect {rule.min_effect:g} is below the task's noise floor {floor:.3g} "
            f"(A/A comparison); set research.min_effect ≥ {floor:.3g} (effective_min_effect) or measure the floor again"
        )
    samples = ArmSamples.of(baseline, candidate)
    ids, diffs = samples.paired()
    unpaired = samples.unpaired()
    if not ids:
        raise ValueError(
            f"acceptance: no input has scores in both arms (baseline {sorted(samples.baseline)[:5]}, "
            f"candidate {sorted(samples.candidate)[:5]}); run both arms on the same inputs"
        )
    effect = math.fsum(diffs) / len(diffs)
    means = bootstrap_means(diffs, rule.resamples, rule.seed)
    bounds = _Bounds(
        *percentile_interval(means, rule.confidence), percentile_interval(means, rule.futility_confidence)[1]
    )
    vetoes = tuple(guardrails_regressed)
    verdict, why = _verdict(rule, len(ids), effect, bounds, vetoes, simpler)
    if unpaired:
        more = "…" if len(unpaired) > 3 else ""
        why += f"; ignored {len(unpaired)} unpaired input(s): {', '.join(unpaired[:3])}{more}"
    return Decision(
        verdict,
        why,
        effect,
        (bounds.lo, bounds.hi),
        bounds.futile,
        len(ids),
        ids,
        diffs,
        unpaired,
        rule.as_dict(),
        vetoes,
    )


@dataclass(frozen=True)
class _Bounds:
    lo: float
    hi: float
    futile: float  # upper bound of the narrower futility interval


def _verdict(
    rule: Rule, n: int, effect: float, b: _Bounds, vetoes: tuple[str, ...], simpler: bool
) -> tuple[Verdict, str]:
    """The rule itself, in the order it is checked: veto, too few, keep, early discard, cap, more."""
    ci = f"{rule.confidence:.1%} interval [{b.lo:+.3f}, {b.hi:+.3f}] over {n} inputs"
    tol = rule.simplicity_tolerance
    if vetoes:
        return "discard", f"guardrail regressed: {', '.join(vetoes)} (a veto, whatever the effect {effect:+.3f})"
    if n < rule.min_inputs:
        return "more", f"{n} of at least {rule.min_inputs} inputs paired: too few to judge (effect {effect:+.3f})"
    if effect >= rule.min_effect and b.lo > 0:
        return "keep", f"effect {effect:+.3f} ≥ min_effect {rule.min_effect:g} and {ci} excludes 0"
    if simpler and b.lo >= -tol:
        band = "within" if b.hi <= tol else "not below"
        return "keep", f"equal score, simpler: {ci} is {band} the equal band ±{tol:g}"
    if b.hi < (-tol if simpler else 0.0):
        return "discard", f"clearly worse: effect {effect:+.3f}, {ci} lies below {-tol if simpler else 0:g}"
    futile_at = -tol if simpler else rule.min_effect
    if b.futile < futile_at:
        what = "equal band" if simpler else "min_effect"
        return "discard", (
            f"not good enough: effect {effect:+.3f}, {rule.futility_confidence:.0%} upper bound {b.futile:+.3f} "
            f"< {what} {futile_at:g} over {n} inputs"
        )
    if n >= rule.max_inputs:
        return (
            "discard",
            f"unclear at the cap of {rule.max_inputs} inputs, and unclear is not a keep: effect {effect:+.3f}, {ci}",
        )
    return "more", f"unclear: effect {effect:+.3f}, {ci}; adding inputs (cap {rule.max_inputs})"


def bootstrap_means(diffs: Sequence[float], resamples: int, seed: int) -> np.ndarray:
    """Means of ``resamples`` resamples of the inputs, vectorised as one (resamples × n) index draw."""
    values = np.asarray(diffs, dtype=np.float64)
    rng = np.random.Generator(np.random.PCG64(seed))
    idx = rng.integers(0, values.size, size=(resamples, values.size))
    means: np.ndarray = values[idx].mean(axis=1)
    return means


def percentile_interval(means: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bootstrap_interval(diffs: Sequence[float], confidence: float, resamples: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over inputs."""
    return percentile_interval(bootstrap_means(diffs, resamples, seed), confidence)


def noise_floor(
    aa_baseline: Mapping[str, Sequence[float]],
    aa_candidate: Mapping[str, Sequence[float]],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    at_inputs: int | None = None,
) -> float:
    """The smallest mean effect a verification can tell from noise, from an A/A comparison.

    Both arms run the *same* configuration on the same inputs, so every difference is noise. The floor is
    the half-width of the A/A bootstrap interval of the mean paired difference: an effect smaller than it
    sits inside the interval pure noise produces. Given ``at_inputs`` (usually the rule's ``max_inputs``)
    the half-width is rescaled by sqrt(n_aa / at_inputs) to the size of a full verification, so a short A/A
    does not set a floor the verifier could beat by adding inputs.
    """
    ids, diffs = ArmSamples.of(aa_baseline, aa_candidate).paired()
    if len(ids) < 2:
        raise ValueError(f"noise floor: need ≥ 2 inputs scored in both A/A arms, got {len(ids)}")
    lo, hi = bootstrap_interval(diffs, confidence, resamples, seed)
    half = (hi - lo) / 2
    return half * math.sqrt(len(ids) / at_inputs) if at_inputs else half


def effective_min_effect(rule: Rule) -> float:
    """The min_effect a rule can honestly use: never below the task's recorded noise floor."""
    return max(rule.min_effect, rule.noise_floor or 0.0)


@dataclass(frozen=True)
class SequentialPlan:
    """How many inputs to run: ``start`` first, then ``step`` more per "more" verdict, up to ``cap``.

    The verifier loops: run ``first_batch()`` inputs → decide → while "more", run ``next_batch(d)`` more.
    ``cap`` must equal the rule's ``max_inputs`` so the last look is the one that discards "unclear".
    """

    start: int = START_INPUTS
    step: int = STEP_INPUTS
    cap: int = MAX_INPUTS

    def __post_init__(self) -> None:
        if not 1 <= self.start <= self.cap or self.step < 1:
            raise ValueError(f"sequential plan: need 1 ≤ start ≤ cap and step ≥ 1 (got {self})")

    def first_batch(self) -> int:
        return self.start

    def next_batch(self, decision: Decision) -> int:
        """More inputs to run (0 once decided); jumps straight to the rule's min_inputs when below it."""
        if decision.verdict != "more":
            return 0
        n = decision.n_inputs
        cap = min(self.cap, int(decision.rule["max_inputs"]))
        more = min(max(self.step, int(decision.rule["min_inputs"]) - n), cap - n)
        if more <= 0:
            raise ValueError(f"sequential plan: cap {self.cap} reached at {n} inputs but the rule still says 'more'")
        return more


def acceptance_for(
    samples: int, max_samples: int, min_effect: float, *, seed: int, noise_floor: float | None = None
) -> tuple[Rule, SequentialPlan]:
    """The rule and plan for a task from ``research.samples / max_samples / min_effect``.

    ``samples`` is the first batch, the fewest inputs that may decide, and the step; ``max_samples`` the cap.
    """
    rule = Rule(min_effect=min_effect, seed=seed, min_inputs=samples, max_inputs=max_samples, noise_floor=noise_floor)
    return rule, SequentialPlan(start=samples, step=samples, cap=max_samples)


def design_for(samples: int, max_samples: int, min_effect: float, *, noisy: bool, seed: int,
               floor: float | None) -> tuple[Rule, SequentialPlan]:
    """The rule and plan for a task: the configured counts when nothing is noisy (no LLM in the judge, and an
    A/A spread of zero), else raised to at least START_INPUTS / MAX_INPUTS; min_effect raised to the noise floor,
    never below it. `floor=None` is the first look, before the A/A comparison."""
    start, cap = samples, max(max_samples, samples)
    if noisy or (floor or 0.0) > 0:
        start, cap = max(start, START_INPUTS), max(cap, MAX_INPUTS)
    return acceptance_for(max(start, 2), max(cap, 2), max(min_effect, floor or 0.0), seed=seed, noise_floor=floor)


def sign_test(worse: int, discordant: int) -> float:
    """One-sided p of at least `worse` of `discordant` coin flips going one way (1.0 with no flips)."""
    if not discordant:
        return 1.0
    return math.fsum(math.comb(discordant, k) for k in range(worse, discordant + 1)) / 2**discordant


def guardrail_regressions(base: Mapping[str, Sequence[Check]], cand: Mapping[str, Sequence[Check]], *,
                          exact: bool = True, alpha: float = GUARDRAIL_ALPHA) -> list[str]:
    """Hard checks that regressed, e.g. 'sections (2 of 9 inputs pass → fail, 0 fail → pass)'.

    Exact (no noise): any net regression (more inputs pass → fail than fail → pass) is real. Noisy: a check
    that flips at random must not veto a real gain, so the regression must pass a one-sided sign test over
    the inputs where the arms disagree (p < `alpha`). An input whose baseline produced nothing (`empty` or
    `failed`) is skipped: checks on no output pass vacuously."""
    worse: dict[str, int] = {}
    better: dict[str, int] = {}
    for day in sorted(set(base) & set(cand)):
        was = {c.name: c.passed for c in base[day] if c.hard}
        if not (was.get("empty", True) and was.get("failed", True)):
            continue  # no baseline output: its other checks passed vacuously, nothing can regress from them
        for c in cand[day]:
            if not c.hard or c.name not in was:
                continue
            if was[c.name] and not c.passed:
                worse[c.name] = worse.get(c.name, 0) + 1
            elif not was[c.name] and c.passed:
                better[c.name] = better.get(c.name, 0) + 1
    n = len(set(base) & set(cand))
    out = []
    for name, w in sorted(worse.items()):
        b = better.get(name, 0)
        if w > b and (exact or sign_test(w, w + b) < alpha):
            out.append(f"{name} ({w} of {n} inputs pass → fail, {b} fail → pass)")
    return out


def collect_ratio(base: Mapping[str, float], cand: Mapping[str, float]) -> float:
    """Median over inputs of candidate / baseline collector seconds (inf when nothing is comparable)."""
    ratios = sorted(cand[d] / base[d] for d in set(base) & set(cand) if base[d] >= MIN_COLLECT_S)
    return ratios[len(ratios) // 2] if ratios else math.inf


def faster(base: Mapping[str, float], cand: Mapping[str, float]) -> bool:
    """The seed's fork storm fix: same output, a much quicker collector (noted, not decisive)."""
    return collect_ratio(base, cand) <= FASTER_RATIO


def _checked(arm: str, scores: Mapping[str, Sequence[float]]) -> dict[str, tuple[float, ...]]:
    out: dict[str, tuple[float, ...]] = {}
    for key, runs in scores.items():
        values = tuple(float(v) for v in runs)
        if not values or not all(math.isfinite(v) for v in values):
            raise ValueError(
                f"acceptance: {arm} scores for input {key!r} must be a non-empty list of finite numbers, got {list(runs)!r}"
            )
        out[str(key)] = values
    return out


def _mean(values: tuple[float, ...]) -> float:
    return math.fsum(values) / len(values)

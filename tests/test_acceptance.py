"""The acceptance rule, measured: error rates against a simulated judge of known noise, and each branch."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from domain.acceptance import (
    ArmSamples,
    Decision,
    Rule,
    SequentialPlan,
    acceptance_for,
    decide,
    effective_min_effect,
    noise_floor,
)
from domain.judge_sim import SimulatedJudge, run_sequential

TRIALS = 400
JUDGE = SimulatedJudge()  # 1–5 integers, run noise sd 0.7, input effect sd 0.5, one run per input and arm


def _keep_rate(effect: float, salt: int, *, simpler: bool = False) -> tuple[float, float]:
    """Share of seeded sequential verifications kept, and mean inputs used, with the default rule and plan."""
    keeps, used = 0, 0
    for trial in range(TRIALS):
        rng = np.random.Generator(np.random.PCG64([salt, trial]))
        rule = Rule(seed=trial)
        d = run_sequential(JUDGE, rule, SequentialPlan(), effect, rng, simpler=simpler)
        assert d.verdict in ("keep", "discard")
        keeps += d.verdict == "keep"
        used += d.n_inputs
    return keeps / TRIALS, used / TRIALS


def test_pure_noise_delta_is_discarded_in_at_least_95_percent_of_trials() -> None:
    kept, _ = _keep_rate(0.0, salt=1)
    assert 1 - kept >= 0.95, f"false keeps {kept:.1%}"


def test_real_half_point_effect_is_kept_in_at_least_90_percent_of_trials() -> None:
    kept, used = _keep_rate(0.5, salt=2)
    assert kept >= 0.90, f"true keeps {kept:.1%}"
    assert used < Rule().max_inputs  # the sequential plan stops early on a clear gain


def test_a_worse_delta_is_never_kept() -> None:
    kept, used = _keep_rate(-0.5, salt=3)
    assert kept == 0
    assert used < 30  # clearly worse leaves at the first look


def _scores(values: list[float], prefix: str = "in") -> dict[str, list[float]]:
    return {f"{prefix}{i:03d}": [v] for i, v in enumerate(values)}


def _gain(
    n: int, shift: float, spread: float = 0.5, seed: int = 0
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    rng = np.random.default_rng(seed)
    base = rng.normal(3.0, 0.5, n)
    cand = base + shift + rng.normal(0.0, spread, n)
    return _scores(base.tolist()), _scores(cand.tolist())


def test_clear_gain_is_kept_with_reason_and_interval() -> None:
    base, cand = _gain(30, 0.8)
    d = decide(base, cand, Rule())
    assert d.verdict == "keep"
    assert d.interval[0] > 0 and d.effect >= 0.3
    assert d.interval[0] <= d.effect <= d.interval[1]
    assert "excludes 0" in d.reason


def test_guardrail_regression_vetoes_a_clear_gain() -> None:
    base, cand = _gain(30, 0.8)
    d = decide(base, cand, Rule(), guardrails_regressed=["expect.sections", "requires.min_words"])
    assert d.verdict == "discard"
    assert d.vetoes == ("expect.sections", "requires.min_words")
    assert "guardrail regressed: expect.sections" in d.reason


def test_simpler_candidate_at_equal_score_is_kept_and_the_same_scores_without_simplicity_are_not() -> None:
    base, cand = _gain(40, 0.0, spread=0.1)
    simple = decide(base, cand, Rule(), simpler=True)
    assert simple.verdict == "keep"
    assert simple.reason.startswith("equal score, simpler")
    assert simple.interval[0] >= -0.1 and simple.interval[1] <= 0.1
    assert decide(base, cand, Rule()).verdict == "discard"  # equal score alone is not good enough


def test_simpler_candidate_that_scores_worse_is_discarded() -> None:
    base, cand = _gain(40, -0.6, spread=0.3)
    d = decide(base, cand, Rule(), simpler=True)
    assert d.verdict == "discard"
    assert d.reason.startswith("clearly worse")


def test_simpler_candidate_with_a_guardrail_regression_is_vetoed() -> None:
    base, cand = _gain(40, 0.0, spread=0.1)
    assert decide(base, cand, Rule(), simpler=True, guardrails_regressed=["expect.forbid"]).verdict == "discard"


def test_simpler_candidate_that_costs_half_a_point_is_never_kept() -> None:
    """Simplicity is no back door: a simulated simpler delta that costs half a point is never kept."""
    kept, _ = _keep_rate(-0.5, salt=4, simpler=True)
    assert kept == 0


def test_replay_of_recorded_scores_and_rule_gives_an_identical_decision() -> None:
    base, cand = _gain(35, 0.25, seed=7)
    rule = Rule(seed=1234)
    first = decide(base, cand, rule)
    recorded = json.loads(json.dumps({"samples": ArmSamples.of(base, cand).as_dict(), "decision": first.as_dict()}))
    shuffled = {k: recorded["samples"]["baseline"][k] for k in reversed(list(recorded["samples"]["baseline"]))}
    again = decide(shuffled, recorded["samples"]["candidate"], Rule.from_dict(recorded["decision"]["rule"]))
    assert again == first
    assert again.as_dict() == recorded["decision"]


def test_the_seed_is_what_makes_the_interval_reproducible() -> None:
    base, cand = _gain(35, 0.25, seed=7)
    a = decide(base, cand, Rule(seed=1))
    b = decide(base, cand, Rule(seed=2))
    assert a.effect == b.effect
    assert a.interval != b.interval


def test_unpaired_inputs_are_ignored_and_named() -> None:
    base, cand = _gain(30, 0.8)
    paired = decide(base, cand, Rule())
    base_extra = {**base, "only-baseline": [1.0]}
    cand_extra = {**cand, "only-candidate": [5.0, 5.0]}
    d = decide(base_extra, cand_extra, Rule())
    assert d.unpaired == ("only-baseline", "only-candidate")
    assert "ignored 2 unpaired input(s)" in d.reason
    assert (d.effect, d.interval, d.diffs, d.n_inputs) == (
        paired.effect,
        paired.interval,
        paired.diffs,
        paired.n_inputs,
    )


def test_several_runs_of_one_input_count_as_one_input() -> None:
    base = {f"in{i}": [3.0, 3.0, 3.0] for i in range(24)}
    cand = {f"in{i}": [4.0, 3.0, 5.0] if i % 2 else [3.0, 4.0] for i in range(24)}
    d = decide(base, cand, Rule())
    assert d.n_inputs == 24
    assert d.diffs[d.inputs.index("in1")] == 1.0 and d.diffs[d.inputs.index("in0")] == 0.5
    assert d.effect == pytest.approx(0.75)


def test_too_few_inputs_ask_for_more() -> None:
    base, cand = _gain(5, 2.0)
    d = decide(base, cand, Rule())
    assert d.verdict == "more"
    assert "too few" in d.reason


def test_clearly_worse_is_discarded_at_the_first_look() -> None:
    base, cand = _gain(24, -0.7)
    d = decide(base, cand, Rule())
    assert d.verdict == "discard" and d.reason.startswith("clearly worse")


def test_a_small_gain_below_min_effect_is_discarded_as_not_good_enough() -> None:
    base, cand = _gain(60, 0.05, spread=0.2)
    d = decide(base, cand, Rule())
    assert d.interval[1] > 0
    assert d.verdict == "discard" and d.reason.startswith("not good enough")


def test_unclear_is_more_before_the_cap_and_discard_at_it() -> None:
    diffs = [1.0, -1.0] * 12 + [1.0] * 3  # effect +0.11 over 27 inputs: neither good nor clearly not
    base = _scores([3.0] * len(diffs))
    cand = _scores([3.0 + x for x in diffs])
    rule = Rule(futility_confidence=0.975)
    assert decide(base, cand, rule).verdict == "more"
    at_cap = decide(base, cand, dataclasses.replace(rule, max_inputs=len(diffs)))
    assert at_cap.verdict == "discard"
    assert "unclear is not a keep" in at_cap.reason


def test_min_effect_below_the_noise_floor_is_refused() -> None:
    base, cand = _gain(30, 0.8)
    rule = Rule(min_effect=0.1, noise_floor=0.25)
    with pytest.raises(ValueError, match=r"min_effect 0.1 is below the task's noise floor 0.25"):
        decide(base, cand, rule)
    assert effective_min_effect(rule) == 0.25
    fixed = dataclasses.replace(rule, min_effect=effective_min_effect(rule))
    assert decide(base, cand, fixed).verdict == "keep"


def test_noise_floor_from_an_aa_comparison_matches_the_judge_noise() -> None:
    rng = np.random.Generator(np.random.PCG64(5))
    a1, a2 = JUDGE.draw(rng, 0, 60, 0.0)  # A/A: the same configuration in both arms
    floor = noise_floor(a1, a2)
    diffs = np.array([a2[k][0] - a1[k][0] for k in a1])
    expected = 1.96 * diffs.std() / np.sqrt(len(diffs))
    assert floor == pytest.approx(expected, rel=0.15)
    at_cap = noise_floor(a1, a2, at_inputs=Rule().max_inputs)
    assert at_cap < floor  # a bigger verification resolves smaller effects
    assert at_cap <= Rule().min_effect  # the defaults respect the simulated judge's floor


def test_noise_floor_of_identical_arms_is_zero() -> None:
    a = _scores([3.0, 4.0, 2.0, 5.0])
    assert noise_floor(a, a) == 0.0


def test_sequential_plan_batches() -> None:
    plan = SequentialPlan(start=3, step=10, cap=40)
    rule = Rule(min_inputs=24, max_inputs=40)
    assert plan.first_batch() == 3

    def decision(n: int, verdict: str = "more") -> Decision:
        return Decision(verdict, "", 0.0, (0.0, 0.0), 0.0, n, (), (), (), rule.as_dict())  # type: ignore[arg-type]

    assert plan.next_batch(decision(3)) == 21  # straight to min_inputs
    assert plan.next_batch(decision(24)) == 10
    assert plan.next_batch(decision(34)) == 6  # never past the cap
    assert plan.next_batch(decision(30, "keep")) == 0
    assert plan.next_batch(decision(30, "discard")) == 0
    with pytest.raises(ValueError, match="cap"):
        plan.next_batch(decision(40))


def test_acceptance_for_maps_research_numbers() -> None:
    rule, plan = acceptance_for(24, 96, 0.3, seed=9, noise_floor=0.2)
    assert (rule.min_inputs, rule.max_inputs, rule.min_effect, rule.seed, rule.noise_floor) == (24, 96, 0.3, 9, 0.2)
    assert (plan.start, plan.step, plan.cap) == (24, 24, 96)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"min_effect": -0.1}, "min_effect must be ≥ 0"),
        ({"confidence": 1.0}, "confidence must be in"),
        ({"resamples": 100}, "resamples must be ≥ 2000"),
        ({"min_inputs": 1}, "min_inputs must be ≥ 2"),
        ({"min_inputs": 50, "max_inputs": 40}, "max_inputs must be ≥ min_inputs"),
        ({"futility_confidence": 0.99}, "futility_confidence must be in"),
        ({"noise_floor": -1.0}, "noise_floor must be ≥ 0"),
    ],
)
def test_bad_rule_is_refused_with_the_field_named(change: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rule(**change)  # type: ignore[arg-type]


def test_unknown_rule_field_in_a_recorded_event_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown field"):
        Rule.from_dict({**Rule().as_dict(), "alpha": 0.05})


@pytest.mark.parametrize("bad", [[], [float("nan")], [3.0, float("inf")]])
def test_bad_scores_are_refused_with_the_input_named(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="candidate scores for input 'x'"):
        decide({"x": [3.0]}, {"x": bad}, Rule())


def test_no_paired_input_is_refused() -> None:
    with pytest.raises(ValueError, match="no input has scores in both arms"):
        decide({"a": [3.0]}, {"b": [4.0]}, Rule())

"""Verify a delta: baseline and candidate arms in shadow workspaces, on the same inputs, judged, decided.

How an arm comparison is run (see docs/cycle.md and `domain.acceptance`):

- **Inputs.** Input k is the task as it would have run on day `anchor − k` (its collector gets that date
  in AUTOVAULT_DATE), with model seed `k` when the task does not fix one. The baseline's run of input k
  collects the context once; that context is *frozen* and handed to every other run of input k
  (`context_override`), so both arms see the same data. Only when the delta changes the collector itself
  (its script, its command line or its output cap) does the candidate collect on its own, with the same
  date. Scores are paired by input id (the date).
- **Samples mapping.** `research.samples` counts *inputs per look* (first batch, fewest inputs that may
  decide, and the step); `research.max_samples` is the cap. When nothing is noisy — contract-only judging
  (`judge.llm_weight: 0`) and an A/A comparison with zero spread (the task's model gives outputs of equal
  score whatever the seed) — a score difference is exact, so the configured counts are used as they are
  (vault.yml's default 3/9). With an LLM in the judge, or any A/A spread, the counts are raised to at least
  `acceptance.START_INPUTS`/`MAX_INPUTS` (24/96), the smallest design measured to keep noise out under
  realistic noise; the first look of a noisy task simply continues to 24 inputs. The counts used are
  recorded in the `Verified` rule.
- **Noise floor.** An A/A comparison: the baseline's first look is run a second time with other model
  seeds on the same frozen contexts; `acceptance.noise_floor` of that pair (rescaled to the cap) is the
  task's floor. It is cached per (task, baseline key: task config + judge config + hashes of the files
  the baseline read) — a cycle on an unchanged task reuses it — and min_effect is raised to it.
- **Outputs.** A run that ends ok but writes none of the task's declared `outputs` fails an extra hard
  check, `outputs_written` (−1): the judge reads only the model's text, and a missing postprocessor shows
  only here.
- **Candidate pools.** When the delta changes a task's `candidates`, the arms run the runs that change hands:
  a dropped model (baseline) against the remaining pool (candidate), an added model (candidate) against the
  pool it joins (baseline); input k runs the (k mod n)-th model of each side.
- **Guardrails.** Per hard check, count inputs where it passes on baseline and fails on candidate, and
  the reverse (an input whose baseline produced nothing — `empty` or `failed` — is skipped: checks on no output
  pass vacuously). Without noise a net regression vetoes a keep, whatever the mean effect; on a noisy task the
  regression must also pass a one-sided sign test (p < 0.05) so a check flipping at random cannot veto a
  real gain.
- **Simplicity.** A delta whose edited vault files are all the task's prompt or scripts and hold fewer words
  in total (a shorter prompt, a simpler script) is `simpler`: equal score keeps it. So is a changed collector
  that is measurably cheaper (`handlers.collector_cost`): both collectors run interleaved on the first look's
  inputs, and the CPU seconds of each one's process tree (wait4: user + sys, children included — not wall
  time, which load decides) must be ≤ 0.75× the baseline's on more pairs than a one-sided sign test allows by
  chance (p < 0.05) — the seed's sed fork storm → one awk pass. The measurement is in `Verified.detail`
  (`collector_cost`). Training data is not weighed here: its deltas are decided by the data contract
  (`handlers.verify_data`).
- Both arms are judged against the *baseline's* contract and rubric: a delta cannot win by loosening
  its own `expect`. That contract includes what the task's consumers `require` of its output (min_words,
  sections), so raising an upstream size to meet a downstream need counts as an improvement.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.acceptance import (
    Decision,
    Rule,
    SequentialPlan,
    collect_ratio,
    decide,
    design_for,
    faster,
    guardrail_regressions,
)
from domain.config import VaultConfig
from domain.ids import sha256_text
from handlers.verify_arms import Arm, ArmRun, Cost, Verifier, input_dates, mirror_dirs, shadow_text
from handlers.verify_delta import load_config_text, simpler, task_scripts
from handlers.verify_deps import VerifyDeps


@dataclass
class Verification:
    decision: Decision
    rule: Rule
    baseline: dict[str, list[float]]
    candidate: dict[str, list[float]]
    guardrails: list[str]
    simpler: bool
    noise_floor: float
    noise_key: str
    noise_measured: bool
    cost: Cost
    inputs: list[str]
    notes: list[str] = field(default_factory=list)
    collector_cost: dict[str, Any] | None = None  # the paired CPU measurement of a changed collector
    data_rule: dict[str, Any] | None = None  # a training-data delta, decided by its audit (no runs, no Rule)
    audit: dict[str, Any] | None = None  # that audit before and after

    @property
    def verdict(self) -> str:
        return self.decision.verdict

    def rule_record(self) -> dict[str, Any]:
        """The `Verified` event's rule: the acceptance Rule (replayable with `decide`), or the data-audit rule."""
        return dict(self.data_rule) if self.data_rule is not None else self.rule.as_dict()

    def detail(self) -> dict[str, Any]:
        """What the `Verified` event records beyond its fixed fields: enough to replay the decision."""
        out: dict[str, Any] = {
            "samples": {"baseline": self.baseline, "candidate": self.candidate},
            "reason": self.decision.reason, "n_inputs": self.decision.n_inputs, "inputs": self.inputs,
            "simpler": self.simpler, "noise_floor": self.noise_floor, "noise_key": self.noise_key,
            "noise_measured": self.noise_measured, "notes": self.notes,
        }
        if self.collector_cost is not None:
            out["collector_cost"] = self.collector_cost
        if self.audit is not None:
            out["audit"] = self.audit
        return out


def llm_judged(config: VaultConfig) -> bool:
    return bool(config.judge.model) and config.judge.llm_weight > 0


def plan_for(config: VaultConfig, *, seed: int, floor: float | None) -> tuple[Rule, SequentialPlan]:
    """The samples mapping of the module docstring (`domain.acceptance.design_for`): an LLM in the judge makes a
    task noisy. `floor=None` is the first look (before the A/A)."""
    r = config.research
    return design_for(r.samples, r.max_samples, r.min_effect, noisy=llm_judged(config), seed=seed, floor=floor)


def seed_of(key: str) -> int:
    """A stable 32-bit seed from a cycle key: the bootstrap replays bit for bit."""
    return int(sha256_text(key)[:8], 16)


def verify(deps: VerifyDeps, task: str, baseline: Arm, candidate: Arm, *, cycle: str,
           anchor: dt.date | None = None) -> Verification:
    """Run both arms on the same inputs, `plan` inputs at a time, until the rule decides; never touches live files."""
    t0 = time.perf_counter()
    anchor = anchor or dt.date.today()
    v = Verifier(deps, task, baseline, candidate, anchor, cycle)
    seed = seed_of(cycle)
    live_root = deps.config.root
    with deps.workspaces(live_root) as bws, deps.workspaces(live_root) as cws:
        mirror_dirs(live_root, bws.root)
        mirror_dirs(live_root, cws.root)
        bws.overlay(baseline.files)
        cws.overlay(candidate.files)
        base = ArmRun(bws, v.base_task, models=v.base_models)
        cand = ArmRun(cws, v.cand_task, models=v.cand_models)
        rule, plan = plan_for(deps.config, seed=seed, floor=None)
        days = input_dates(anchor, 0, plan.first_batch())
        v.run_inputs(base, cand, days, 0)
        floor, key, measured = v.noise_floor(base, days, rule)
        rule, plan = plan_for(deps.config, seed=seed, floor=floor)
        notes: list[str] = []
        if rule.min_effect > deps.config.research.min_effect:
            notes.append(f"min_effect raised from {deps.config.research.min_effect:g} to the noise floor {floor:.3g}")
        eligible = task_scripts(v.base_task) | task_scripts(v.cand_task)
        is_simpler = simpler({p: shadow_text(bws, p) for p in candidate.files}, candidate.files, eligible)
        cost = v.collector_cost(base, cand, days) if set(candidate.files) <= eligible else None
        if cost is not None:
            notes.append(cost.note())
            is_simpler = is_simpler or cost.cheaper  # an equal score from a measurably cheaper collector
        while True:
            exact = not llm_judged(deps.config) and floor == 0
            vetoes = guardrail_regressions(base.checks, cand.checks, exact=exact)
            decision = decide(base.scores, cand.scores, rule, guardrails_regressed=vetoes, simpler=is_simpler)
            more = plan.next_batch(decision)
            if more == 0:
                break
            n = len(base.scores)
            new_days = input_dates(anchor, n, more)
            v.run_inputs(base, cand, new_days, n)
    v.cost.seconds = time.perf_counter() - t0
    if v.own_collector and faster(base.collect_s, cand.collect_s):  # recorded, never decisive: timing is noisy
        ratio = collect_ratio(base.collect_s, cand.collect_s)
        notes.append(f"collector faster: median {ratio:.2f}× the baseline's time")
    return Verification(decision=decision, rule=rule, baseline=base.scores, candidate=cand.scores,
                        guardrails=list(vetoes), simpler=is_simpler, noise_floor=floor, noise_key=key,
                        noise_measured=measured, cost=v.cost, inputs=sorted(base.scores), notes=notes,
                        collector_cost=cost.as_dict() if cost is not None else None)


def candidate_arm(deps: VerifyDeps, files: Mapping[str, str | None], config_text: str | None) -> Arm:
    """The candidate: its files, and its config (the live one, or `config_text` validated against a shadow
    that holds those files). Raises ConfigError when the candidate config does not validate."""
    if config_text is None:
        return Arm(files, deps.config)
    with deps.workspaces(deps.config.root) as ws:
        ws.overlay(files)
        cfg = load_config_text(config_text, deps.config, ws.root, deps.env, load=deps.load_config)
    return Arm(files, cfg)


"""Running the two arms of a verification: each in its own shadow workspace, input k as the task would have run
on day `anchor − k` (model seed k unless the task fixes one), the baseline collecting each input's context once
and the candidate running on that frozen context unless the delta changed its collector. Every run is judged
against the baseline's contract, scored, and recorded. Also here: the A/A twin that measures the task's noise
floor, and the paired CPU measurement of a changed collector (see `handlers.verify` for the whole design).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from adapters.workspace import DEFAULT_EXCLUDE
from domain.acceptance import Rule, noise_floor
from domain.config import TaskConfig, VaultConfig
from domain.ids import sha256_text
from domain.runs import Check, RunResult
from domain.scoring import FLOOR, penalty
from handlers.collector_cost import CollectorCost, compare_collectors
from handlers.judge import JudgeResult, judge_run
from handlers.ports import Workspace
from handlers.verify_delta import collector_changed, pool_slots, verification_contract
from handlers.verify_deps import VerifyDeps

AA_SEED_OFFSET = 1_000_003  # the A/A twin of input k runs with seed k + this


@dataclass
class Cost:
    """What a step spent: model calls (task and judge), tokens, wall seconds."""

    model_calls: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    runs: int = 0

    def add_run(self, run: RunResult, judged: JudgeResult) -> None:
        self.runs += 1
        self.model_calls += 1 if "model" in run.durations else 0
        self.model_calls += judged.cost.calls
        self.prompt_tokens += run.prompt_tokens + judged.cost.prompt_tokens
        self.output_tokens += run.output_tokens + judged.cost.output_tokens

    def as_dict(self) -> dict[str, float]:
        return {"model_calls": self.model_calls, "prompt_tokens": self.prompt_tokens,
                "output_tokens": self.output_tokens, "seconds": round(self.seconds, 3), "runs": self.runs}


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: files laid over a shadow copy of the vault, and the config to run with."""

    files: Mapping[str, str | None]  # vault-relative path -> text (None deletes)
    config: VaultConfig


@dataclass
class ArmRun:
    """An arm being run: its shadow, its task, and per input (the date) its scores, checks and collector time."""

    ws: Workspace
    task: TaskConfig
    scores: dict[str, list[float]] = field(default_factory=dict)
    checks: dict[str, list[Check]] = field(default_factory=dict)
    collect_s: dict[str, float] = field(default_factory=dict)  # seconds the collector took, per input
    models: list[str] = field(default_factory=list)  # a pool delta: the models this arm's inputs cycle through


class Verifier:
    """Runs and judges the inputs of one verification; holds the frozen contexts and what was spent."""

    def __init__(self, deps: VerifyDeps, name: str, baseline: Arm, candidate: Arm, anchor: dt.date,
                 cycle: str) -> None:
        self.deps, self.name, self.anchor, self.cycle = deps, name, anchor, cycle
        self.base_task = baseline.config.task(name)
        self.cand_task = candidate.config.task(name)
        self.contract = verification_contract(baseline.config, name)  # both arms: the baseline's contract
        self.cost = Cost()
        self.contexts: dict[str, str] = {}
        self.read_hashes: dict[str, str] = {}
        self.edited = [p for p in candidate.files]
        self.own_collector = collector_changed(self.base_task, self.cand_task, self.edited)
        self.base_models, self.cand_models = pool_slots(self.base_task.candidates, self.cand_task.candidates)
        previous_n = self.contract.expect.distinct_from_previous
        self.previous = deps.history.previous_outputs(name, previous_n) if previous_n else []
        rubric_path = self.contract.rubric or deps.config.judge.rubric
        self.rubric = deps.read_text(rubric_path) or None

    def _options_task(self, task: TaskConfig, seed: int) -> TaskConfig:
        if task.options.seed is not None:
            return task
        return task.model_copy(update={"options": task.options.model_copy(update={"seed": seed})})

    def _pool_task(self, arm: ArmRun, k: int) -> TaskConfig:
        """A candidate-pool delta: input k runs the (k mod n)-th model of the slots that change hands."""
        models = arm.models
        if not models:
            return arm.task
        return arm.task.model_copy(update={"model": models[k % len(models)]})

    def run_one(self, arm: ArmRun, k: int, day: str, label: str, seed_offset: int = 0,
                collect: bool = False) -> tuple[float, list[Check]]:
        """One run of input k in an arm's shadow, judged; `collect` runs the collector instead of the frozen context."""
        task = self._options_task(self._pool_task(arm, k), k + seed_offset)
        override = None if collect else self.contexts.get(day)
        rid = f"verify-{self.cycle[:24]}-{label}-{day}-{seed_offset}-{uuid.uuid4().hex[:8]}"
        run = self.deps.runner.run(self.name, task, date=day, shadow=arm.ws, source="verify",
                                   context_override=override, run_id=rid)
        if collect and "collect" in run.durations:
            arm.collect_s.setdefault(day, run.durations["collect"])
        if collect and day not in self.contexts:
            self.contexts[day] = run.context
            if not self.read_hashes:
                self.read_hashes = dict(run.read_hashes)
        judged = judge_run(run, self.contract, self.deps.config.judge, self.deps.complete, self.previous,
                           self.rubric)
        self.cost.add_run(run, judged)
        score, checks = float(judged.score.score), list(judged.score.checks)
        written = outputs_check(run, self.contract)
        if written is not None:
            checks.append(written)
            score = max(FLOOR, score - penalty(written))
        self.deps.record(run, dataclasses.replace(judged.score, score=score, checks=checks), self.cycle)
        return score, checks

    def run_inputs(self, base: ArmRun, cand: ArmRun, days: list[str], first: int) -> None:
        for i, day in enumerate(days):
            k = first + i
            self.deps.progress(f"{self.name}: input {day} ({k + 1})")
            s, c = self.run_one(base, k, day, "base", collect=True)
            base.scores[day], base.checks[day] = [s], c
            s, c = self.run_one(cand, k, day, "cand", collect=self.own_collector)
            cand.scores[day], cand.checks[day] = [s], c

    def baseline_key(self) -> str:
        body = {"name": self.name, "task": self.base_task.model_dump(mode="json"),
                "contract": self.contract.expect.model_dump(mode="json"),
                "judge": self.deps.config.judge.model_dump(mode="json"),
                "reads": dict(sorted(self.read_hashes.items()))}
        return sha256_text(json.dumps(body, sort_keys=True, default=str))

    def noise_floor(self, base: ArmRun, days: list[str], rule: Rule) -> tuple[float, str, bool]:
        """The task's floor: cached for this baseline, or measured now by an A/A twin of the first look."""
        key = self.baseline_key()
        cached = self.deps.floor_cache(self.name, key)
        if cached is not None:
            return cached, key, False
        twin: dict[str, list[float]] = {}
        for k, day in enumerate(days):
            self.deps.progress(f"{self.name}: A/A {day}")
            score, _ = self.run_one(base, k, day, "aa", seed_offset=AA_SEED_OFFSET)
            twin[day] = [score]
        floor = noise_floor({d: base.scores[d] for d in days}, twin, resamples=rule.resamples, seed=rule.seed,
                            at_inputs=rule.max_inputs)
        return floor, key, True

    def collector_cost(self, base: ArmRun, cand: ArmRun, days: list[str]) -> CollectorCost | None:
        """A changed collector's CPU cost against the baseline's, on the first look's inputs (see collector_cost)."""
        if not (self.own_collector and self.base_task.collect and self.cand_task.collect):
            return None
        runner = self.deps.runner
        self.deps.progress(f"{self.name}: measuring both collectors' CPU time")
        return compare_collectors((base.ws.root, self.base_task.collect), (cand.ws.root, self.cand_task.collect),
                                  days, task=self.name, timeout=max(self.base_task.timeout, self.cand_task.timeout),
                                  confine=self.deps.confine, base_env=runner.base_env,
                                  passthrough=tuple(runner.env_passthrough))


def input_dates(anchor: dt.date, start: int, count: int) -> list[str]:
    return [(anchor - dt.timedelta(days=k)).isoformat() for k in range(start, start + count)]


def mirror_dirs(live: Path, shadow: Path) -> None:
    """Empty folders of the live vault, made in the shadow too: the shadow copies files only, and a script
    writing into an existing empty folder (`cat > Notes/$DATE.md`) must not fail there alone."""
    for dirpath, dirnames, _ in os.walk(live):
        dirnames[:] = [d for d in dirnames if d not in DEFAULT_EXCLUDE and not Path(dirpath, d).is_symlink()]
        for d in dirnames:
            (shadow / Path(dirpath, d).relative_to(live)).mkdir(parents=True, exist_ok=True)


def shadow_text(ws: Workspace, rel: str) -> str | None:
    """A file's text in a shadow, None when it is not there."""
    try:
        return ws.read_text(rel)
    except (FileNotFoundError, IsADirectoryError):
        return None


def outputs_check(run: RunResult, task: TaskConfig) -> Check | None:
    """Did an ok run write a file its `outputs` declare? The judge reads the model's text; a task whose
    postprocessor is missing (or whose tool was removed) writes nothing, and only this check sees it."""
    if not task.outputs or run.status != "ok":
        return None
    return Check("outputs_written", bool(run.artifacts),
                 f"{len(run.artifacts)} declared output file(s) written ({', '.join(task.outputs)})")


__all__ = ["AA_SEED_OFFSET", "Arm", "ArmRun", "Cost", "Verifier", "input_dates", "mirror_dirs", "outputs_check",
           "shadow_text"]

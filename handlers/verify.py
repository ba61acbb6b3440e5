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

import dataclasses
import datetime as dt
import json
import math
import os
import re
import shlex
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from adapters.config_loader import ConfigError, load_config
from adapters.workspace import DEFAULT_EXCLUDE, ShadowWorkspace
from domain.acceptance import (
    MAX_INPUTS,
    START_INPUTS,
    Decision,
    Rule,
    SequentialPlan,
    acceptance_for,
    decide,
    noise_floor,
)
from domain.config import BlockSpec, TaskConfig, VaultConfig
from domain.ids import sha256_text
from domain.runs import Check, RunResult, Score
from domain.scoring import FLOOR, penalty
from handlers.collector_cost import CollectorCost, compare_collectors
from handlers.judge import JudgeResult, judge_run
from handlers.tasks import consumers_of
from projections.globs import overlaps

AA_SEED_OFFSET = 1_000_003  # the A/A twin of input k runs with seed k + this
GUARDRAIL_ALPHA = 0.05  # a noisy task's hard check vetoes only on a significant regression


class Runner(Protocol):
    def run(self, task_name: str, task: TaskConfig, *, date: dt.date | str | None = None,
            shadow: bool | ShadowWorkspace = False, source: str = "cli", context_override: str | None = None,
            run_id: str | None = None) -> RunResult: ...


class History(Protocol):
    def previous_outputs(self, task: str, n: int, *, exclude: str | None = None) -> list[str]: ...


FloorCache = Callable[[str, str], float | None]  # (task, baseline key) -> recorded floor, or None
RecordRun = Callable[[RunResult, Score, str], None]  # (arm run, the score its decision used, cycle key)


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


@dataclass(frozen=True)
class VerifyDeps:
    config: VaultConfig  # the live config: judge settings, research settings, the live vault root
    runner: Runner
    complete: Callable[..., Any] | None  # the judge's model call (None: contract checks only)
    history: History
    read_text: Callable[[str | None], str]  # live vault file text, for the rubric
    record: RecordRun  # every arm run on the record (bootstrap wires the store)
    floor_cache: FloorCache = lambda _task, _key: None
    env: Mapping[str, str] = field(default_factory=dict)
    progress: Callable[[str], None] = lambda _msg: None


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
    """The samples mapping of the module docstring; min_effect is raised to the floor, never below it.

    `floor=None` is the first look (before the A/A): the configured counts, or the raised ones under an LLM judge."""
    r = config.research
    start, cap = r.samples, max(r.max_samples, r.samples)
    if llm_judged(config) or (floor or 0.0) > 0:
        start, cap = max(start, START_INPUTS), max(cap, MAX_INPUTS)
    min_effect = max(r.min_effect, floor or 0.0)
    rule, plan = acceptance_for(max(start, 2), max(cap, 2), min_effect, seed=seed, noise_floor=floor)
    return rule, plan


def seed_of(key: str) -> int:
    """A stable 32-bit seed from a cycle key: the bootstrap replays bit for bit."""
    return int(sha256_text(key)[:8], 16)


def input_dates(anchor: dt.date, start: int, count: int) -> list[str]:
    return [(anchor - dt.timedelta(days=k)).isoformat() for k in range(start, start + count)]


# ---- candidate configs --------------------------------------------------------------------------------


def load_config_text(text: str, live: VaultConfig, root: Path, env: Mapping[str, str]) -> VaultConfig:
    """Validate vault.yml text as if it sat where the live one does, but with its vault folder at `root`
    (a shadow holding the delta's other files), so a config naming a file the same delta creates is valid.
    Raises ConfigError naming the live vault.yml. Writes only in a temp folder and in `root`."""
    cfg_dir, vault = live.source.resolve().parent, live.root.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="autovault-config-"))
    made: Path | None = None
    try:
        if cfg_dir == vault or vault in cfg_dir.parents:  # vault.yml inside the vault: the same place in `root`
            folder = root / cfg_dir.relative_to(vault)
            if not folder.exists():
                folder.mkdir(parents=True)
                made = folder
            path = folder / f".autovault-check-{uuid.uuid4().hex}.yml"
        else:  # the vault below or beside vault.yml's folder: a symlink at the vault's relative place
            parts = Path(os.path.relpath(vault, cfg_dir)).parts
            ups = next((i for i, part in enumerate(parts) if part != ".."), len(parts))
            base = tmp.joinpath(*[f"u{i}" for i in range(ups)])
            base.mkdir(parents=True, exist_ok=True)
            link = tmp.joinpath(*parts[ups:])
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(root, target_is_directory=True)
            path = base / live.source.name
        path.write_text(text, encoding="utf-8")
        try:
            return load_config(path, dict(env))
        except ConfigError as e:
            raise ConfigError([dataclasses.replace(p, file=str(live.source)) if p.file == str(path) else p
                               for p in e.problems]) from None
        finally:
            path.unlink(missing_ok=True)
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


BULLET_BLOCKS = r"^\s*(?:[-*+]|\d+[.)])\s+\S"  # what `requires.min_facts` counts (domain.checks.count_bullets)


def verification_contract(config: VaultConfig, name: str) -> TaskConfig:
    """The task as judged in verification: its own `expect`, plus what its consumers `require` of its output
    (more words, sections, more fact bullets) — so a delta that feeds a starving downstream task shows as an
    improvement. Facts become a bullet-block minimum: raised on the task's own block clause when that counts
    bullets, added when it has none (a clause of another kind cannot say it, and is left as it is)."""
    task = config.task(name)
    needs = consumers_of(config, name, overlaps).values()
    words = [r.min_words for r in needs if r.min_words is not None]
    sections = [s for r in needs for s in r.sections if s not in task.expect.sections]
    facts = max((r.min_facts for r in needs if r.min_facts is not None), default=0)
    blocks = _fact_blocks(task.expect.blocks, facts)
    if not words and not sections and blocks is task.expect.blocks:
        return task
    least = max([*words, task.expect.min_words or 0])
    expect = task.expect.model_copy(update={"min_words": least or None, "blocks": blocks,
                                            "sections": [*task.expect.sections, *dict.fromkeys(sections)]})
    return task.model_copy(update={"expect": expect})


def _fact_blocks(blocks: BlockSpec | None, facts: int) -> BlockSpec | None:
    if not facts:
        return blocks
    if blocks is None:
        return BlockSpec(regex=BULLET_BLOCKS, min=facts)
    counts_bullets = bool(re.search(blocks.regex, "- a fact", re.MULTILINE)) and not re.search(
        blocks.regex, "a line of prose", re.MULTILINE)
    if not counts_bullets or blocks.min >= facts:
        return blocks
    return blocks.model_copy(update={"min": facts, "max": None if blocks.max is None else max(blocks.max, facts)})


def pool_slots(base: Sequence[str], cand: Sequence[str]) -> tuple[list[str], list[str]]:
    """For a candidate-pool delta, the models each arm runs: the runs that change hands. Dropping a model
    compares it with the pool that takes over its runs; adding one compares it with the pool it joins.
    Equal pools: ([], []) — both arms run the task's `model`."""
    if list(base) == list(cand):
        return [], []
    removed = [m for m in base if m not in cand]
    added = [m for m in cand if m not in base]
    return (removed or list(base)), (added or list(cand))


def task_scripts(task: TaskConfig) -> set[str]:
    """The files whose size the simplicity criterion weighs: the prompt, the collector, the postprocessor."""
    return {task.prompt} | command_paths(task.collect) | command_paths(task.postprocess)


def command_paths(command: str | None) -> set[str]:
    """The words of a script command line that may be vault files (the script and its file arguments)."""
    if not command:
        return set()
    try:
        return {t for t in shlex.split(command) if not t.startswith("-")}
    except ValueError:
        return set()


def collector_paths(task: TaskConfig) -> set[str]:
    return command_paths(task.collect)


def collector_changed(base: TaskConfig, cand: TaskConfig, edited: Sequence[str]) -> bool:
    if (base.collect, base.output_cap) != (cand.collect, cand.output_cap):
        return True
    return bool(collector_paths(base) & set(edited))


def simpler(before: Mapping[str, str | None], after: Mapping[str, str | None],
            eligible: set[str] | None = None) -> bool:
    """Fewer words across the edited vault files, all of them the task's prompt or scripts (`eligible`); a
    delta that only edits config, or that edits anything else (training data, other tasks' files), is not."""
    if not after or (eligible is not None and not set(after) <= eligible):
        return False
    words = sum(len((before.get(p) or "").split()) for p in after)
    return sum(len((t or "").split()) for t in after.values()) < words


# ---- running the arms ---------------------------------------------------------------------------------


@dataclass
class _ArmRun:
    ws: ShadowWorkspace
    task: TaskConfig
    scores: dict[str, list[float]] = field(default_factory=dict)
    checks: dict[str, list[Check]] = field(default_factory=dict)
    collect_s: dict[str, float] = field(default_factory=dict)  # seconds the collector took, per input
    models: list[str] = field(default_factory=list)  # a pool delta: the models this arm's inputs cycle through


class _Verifier:
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

    def _pool_task(self, arm: _ArmRun, k: int) -> TaskConfig:
        """A candidate-pool delta: input k runs the (k mod n)-th model of the slots that change hands."""
        models = arm.models
        if not models:
            return arm.task
        return arm.task.model_copy(update={"model": models[k % len(models)]})

    def run_one(self, arm: _ArmRun, k: int, day: str, label: str, seed_offset: int = 0,
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

    def run_inputs(self, base: _ArmRun, cand: _ArmRun, days: list[str], first: int) -> None:
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


def verify(deps: VerifyDeps, task: str, baseline: Arm, candidate: Arm, *, cycle: str,
           anchor: dt.date | None = None) -> Verification:
    """Run both arms on the same inputs, `plan` inputs at a time, until the rule decides; never touches live files."""
    t0 = time.perf_counter()
    anchor = anchor or dt.date.today()
    v = _Verifier(deps, task, baseline, candidate, anchor, cycle)
    seed = seed_of(cycle)
    live_root = deps.config.root
    with ShadowWorkspace.create(live_root) as bws, ShadowWorkspace.create(live_root) as cws:
        mirror_dirs(live_root, bws.root)
        mirror_dirs(live_root, cws.root)
        bws.overlay(baseline.files)
        cws.overlay(candidate.files)
        base = _ArmRun(bws, v.base_task, models=v.base_models)
        cand = _ArmRun(cws, v.cand_task, models=v.cand_models)
        rule, plan = plan_for(deps.config, seed=seed, floor=None)
        days = input_dates(anchor, 0, plan.first_batch())
        v.run_inputs(base, cand, days, 0)
        floor, key, measured = _noise_floor(v, base, days, rule)
        rule, plan = plan_for(deps.config, seed=seed, floor=floor)
        notes: list[str] = []
        if rule.min_effect > deps.config.research.min_effect:
            notes.append(f"min_effect raised from {deps.config.research.min_effect:g} to the noise floor {floor:.3g}")
        eligible = task_scripts(v.base_task) | task_scripts(v.cand_task)
        is_simpler = simpler({p: _read(bws, p) for p in candidate.files}, candidate.files, eligible)
        cost = _collector_cost(v, base, cand, days) if set(candidate.files) <= eligible else None
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
        notes.append(f"collector faster: median {collect_ratio(base.collect_s, cand.collect_s):.2f}× the baseline's time")
    return Verification(decision=decision, rule=rule, baseline=base.scores, candidate=cand.scores,
                        guardrails=list(vetoes), simpler=is_simpler, noise_floor=floor, noise_key=key,
                        noise_measured=measured, cost=v.cost, inputs=sorted(base.scores), notes=notes,
                        collector_cost=cost.as_dict() if cost is not None else None)


def _collector_cost(v: _Verifier, base: _ArmRun, cand: _ArmRun, days: list[str]) -> CollectorCost | None:
    """A changed collector's CPU cost against the baseline's, on the first look's inputs (see collector_cost)."""
    if not (v.own_collector and v.base_task.collect and v.cand_task.collect):
        return None
    runner = v.deps.runner
    v.deps.progress(f"{v.name}: measuring both collectors' CPU time")
    return compare_collectors((base.ws.root, v.base_task.collect), (cand.ws.root, v.cand_task.collect), days,
                              task=v.name, timeout=max(v.base_task.timeout, v.cand_task.timeout),
                              base_env=getattr(runner, "base_env", os.environ),
                              passthrough=tuple(getattr(runner, "env_passthrough", ())))


def mirror_dirs(live: Path, shadow: Path) -> None:
    """Empty folders of the live vault, made in the shadow too: the shadow copies files only, and a script
    writing into an existing empty folder (`cat > Notes/$DATE.md`) must not fail there alone."""
    for dirpath, dirnames, _ in os.walk(live):
        dirnames[:] = [d for d in dirnames if d not in DEFAULT_EXCLUDE and not Path(dirpath, d).is_symlink()]
        for d in dirnames:
            (shadow / Path(dirpath, d).relative_to(live)).mkdir(parents=True, exist_ok=True)


def _read(ws: ShadowWorkspace, rel: str) -> str | None:
    try:
        return ws.read_text(rel)
    except (FileNotFoundError, IsADirectoryError):
        return None


def _noise_floor(v: _Verifier, base: _ArmRun, days: list[str], rule: Rule) -> tuple[float, str, bool]:
    """The task's floor: cached for this baseline, or measured now by an A/A twin of the first look."""
    key = v.baseline_key()
    cached = v.deps.floor_cache(v.name, key)
    if cached is not None:
        return cached, key, False
    twin: dict[str, list[float]] = {}
    for k, day in enumerate(days):
        v.deps.progress(f"{v.name}: A/A {day}")
        score, _ = v.run_one(base, k, day, "aa", seed_offset=AA_SEED_OFFSET)
        twin[day] = [score]
    floor = noise_floor({d: base.scores[d] for d in days}, twin, resamples=rule.resamples, seed=rule.seed,
                        at_inputs=rule.max_inputs)
    return floor, key, True


def guardrail_regressions(base: Mapping[str, Sequence[Check]], cand: Mapping[str, Sequence[Check]], *,
                          exact: bool = True, alpha: float = GUARDRAIL_ALPHA) -> list[str]:
    """Hard checks that regressed, e.g. 'sections (2 of 9 inputs pass → fail, 0 fail → pass)'.

    Exact (no noise): any net regression (more inputs pass → fail than fail → pass) is real. Noisy: a check
    that flips at random must not veto a real gain, so the regression must pass a one-sided sign test over
    the inputs where the arms disagree (p < `alpha`)."""
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


FASTER_RATIO = 0.75  # a candidate collector taking at most this share of the baseline's time is noted as faster
MIN_COLLECT_S = 0.02  # below this a collector's time is scheduling noise, not its work


def collect_ratio(base: Mapping[str, float], cand: Mapping[str, float]) -> float:
    """Median over inputs of candidate / baseline collector seconds (inf when nothing is comparable)."""
    ratios = sorted(cand[d] / base[d] for d in set(base) & set(cand) if base[d] >= MIN_COLLECT_S)
    return ratios[len(ratios) // 2] if ratios else math.inf


def faster(base: Mapping[str, float], cand: Mapping[str, float]) -> bool:
    """The seed's fork storm fix: same output, a much quicker collector (noted, not decisive)."""
    return collect_ratio(base, cand) <= FASTER_RATIO


def outputs_check(run: RunResult, task: TaskConfig) -> Check | None:
    """Did an ok run write a file its `outputs` declare? The judge reads the model's text; a task whose
    postprocessor is missing (or whose tool was removed) writes nothing, and only this check sees it."""
    if not task.outputs or run.status != "ok":
        return None
    return Check("outputs_written", bool(run.artifacts),
                 f"{len(run.artifacts)} declared output file(s) written ({', '.join(task.outputs)})")


def sign_test(worse: int, discordant: int) -> float:
    """One-sided p of at least `worse` of `discordant` coin flips going one way."""
    return math.fsum(math.comb(discordant, k) for k in range(worse, discordant + 1)) / 2**discordant


def candidate_arm(deps: VerifyDeps, files: Mapping[str, str | None], config_text: str | None) -> Arm:
    """The candidate: its files, and its config (the live one, or `config_text` validated against a shadow
    that holds those files). Raises ConfigError when the candidate config does not validate."""
    if config_text is None:
        return Arm(files, deps.config)
    with ShadowWorkspace.create(deps.config.root) as ws:
        ws.overlay(files)
        cfg = load_config_text(config_text, deps.config, ws.root, deps.env)
    return Arm(files, cfg)


__all__ = ["Arm", "ConfigError", "Cost", "Verification", "VerifyDeps", "candidate_arm", "guardrail_regressions",
           "load_config_text", "plan_for", "simpler", "verify"]

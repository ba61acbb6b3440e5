"""Fine-tuning experiments as events: plan one on a task's `training` section, queue it, run it under a device
lease, record its steps, resume it after a crash.

    plan_experiment(config, task, …) -> Plan       reads the data, checks the params (one-line errors)
    queue(store, plan) -> key                       Experiment.Queued
    run_experiment(deps, key) -> Outcome            lease → Started → Stepped/Checkpointed … → Finished | Failed
    interrupted(rows, leases) -> [key]              running on record, nobody holding its device: resume these

A run is resumable: the job checkpoints every `checkpoint_every` steps into the experiment's folder and records
`Checkpointed(step, sha256)`; running the same key again (`Started(resumed_from=step)`) continues from there
with the same batches, optimizer state and RNG, so the crash costs at most the steps since the checkpoint.
The training data is re-read at run time and must still have the hashes `Queued` recorded; otherwise the run
fails naming the file (re-queue to train on the new data).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from domain.config import TaskConfig, VaultConfig
from domain.ids import sha256_text
from gpu.base_model import ModelLoadError, gguf_for
from gpu.data import DataError, Dataset, read_dataset, split, subset
from gpu.job import JobResult, JobSpec
from gpu.lora import StepSummary, Stop
from gpu.params import ParamsError, TrainParams, parse_params
from projections import globs


class ExperimentError(ValueError):
    """An experiment cannot be planned or run; one line naming vault.yml's field (or the file) and the fix."""


class ExperimentStore(Protocol):
    def queue_experiment(self, key: str, task: str, sweep: str, base_model: str, dataset_hash: str,
                         params: dict[str, Any], **more: Any) -> Any: ...
    def update_experiment(self, key: str, command: Callable[[Any], Any]) -> Any: ...
    def get_experiment(self, key: str) -> Any: ...


class Executor(Protocol):
    """Runs a job somewhere (this process, a Ray cluster) and reports back through `report`."""

    name: str

    def run(self, spec: JobSpec, report: Any) -> JobResult: ...


class Leases(Protocol):
    def acquire(self, device: str, holder: str, experiment: str) -> bool: ...
    def release(self, device: str, holder: str) -> None: ...
    def renew(self, device: str, holder: str) -> None: ...
    def held(self, device: str) -> tuple[str, str] | None: ...  # (holder, experiment) of a live lease


@dataclass(frozen=True)
class Plan:
    key: str
    task: str
    sweep: str
    base_model: str
    params: TrainParams
    seed: int
    trigger: str
    dataset: Dataset


@dataclass
class ExperimentDeps:
    config: VaultConfig
    store: ExperimentStore
    executor: Executor
    leases: Leases
    experiments: Path  # artifact folder (gpu.paths.experiments_dir)
    device: str = "cpu"
    threads: int = 2
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    progress: Callable[[str], None] = lambda _m: None
    on_step: Callable[[StepSummary], None] = lambda _s: None  # a progress bar, besides the events
    on_instance: Callable[[int, float], None] = lambda _i, _l: None  # a sweep's pruner (may raise Stop)


@dataclass
class Outcome:
    key: str
    outcome: str  # finished | failed | pruned | busy
    reason: str = ""
    result: JobResult | None = None


def new_key(task: str) -> str:
    return f"{task}-lora-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def training_files(root: Path, task: TaskConfig) -> list[str]:
    assert task.training is not None
    found = {p.relative_to(root).as_posix() for g in globs.to_pathlib(task.training.data) for p in root.glob(g)
             if p.is_file()}
    return sorted(found)


def base_model_of(name: str, task: TaskConfig) -> str:
    """training.base_model, else the task's model when it is embedded (its adapter, if any, dropped)."""
    assert task.training is not None
    spec = task.training.base_model or task.model
    if not spec.startswith("embedded:"):
        raise ExperimentError(f"tasks.{name}.training.base_model: {spec!r} cannot be fine-tuned here — fix: set it "
                              "to embedded:smollm2-135m (or embedded:/path/to/model.gguf)")
    from gpu.paths import split_spec

    return "embedded:" + split_spec(spec.partition(":")[2])[0]


def plan_experiment(config: VaultConfig, task: str, *, overrides: Mapping[str, Any] | None = None,
                    seed: int = 0, sweep: str = "", trigger: str = "cli", key: str | None = None) -> Plan:
    """Everything an experiment needs, checked now: a task with training data, known params, a trainable base."""
    tc = config.task(task)
    where = f"{config.source.name}: tasks.{task}.training"
    if tc.training is None:
        raise ExperimentError(f"{config.source.name}: tasks.{task} has no `training` section — fix: add "
                              "training: {data: data/<task>.jsonl} with chat or prompt/completion lines")
    files = training_files(config.root, tc)
    if not files:
        raise ExperimentError(f"{where}.data: {tc.training.data!r} matches no file in the vault — fix: point it at "
                              "the JSONL training files")
    try:
        dataset = read_dataset(config.root, files)
        raw = {**tc.training.params, **(overrides or {})}
        probe = parse_params(raw, n_train=len(dataset.examples))
        params = parse_params(raw, n_train=len(split(dataset, probe.heldout)[0]))
    except DataError as e:
        raise ExperimentError(str(e)) from None
    except ParamsError as e:
        raise ExperimentError(f"{where}.params.{e}") from None
    base = base_model_of(task, tc)
    try:
        gguf_for(base, config.backends.embedded.model_path)
    except ModelLoadError as e:
        raise ExperimentError(f"{where}.base_model: {e}") from None
    return Plan(key or new_key(task), task, sweep, base, params, seed, trigger, dataset)


def queue(store: ExperimentStore, plan: Plan) -> str:
    store.queue_experiment(plan.key, plan.task, plan.sweep, plan.base_model, plan.dataset.hash,
                           plan.params.as_dict(), seed=plan.seed, trigger=plan.trigger,
                           data_files=dict(plan.dataset.files))
    return plan.key


class EventReporter:
    """Job reports → Experiment events (and the caller's progress hooks)."""

    def __init__(self, deps: ExperimentDeps, key: str) -> None:
        self.deps, self.key = deps, key

    def step(self, s: StepSummary) -> None:
        self.deps.store.update_experiment(self.key, lambda e: e.stepped(
            step=s.step, loss=round(s.loss, 6), lr=s.lr, tokens=s.tokens, seconds=round(s.seconds, 4)))
        self.deps.leases.renew(self.deps.device, self.deps.holder)
        self.deps.on_step(s)

    def checkpoint(self, step: int, sha256: str) -> None:
        self.deps.store.update_experiment(self.key, lambda e: e.checkpointed(step=step, sha256=sha256))

    def instance(self, index: int, loss: float) -> None:
        self.deps.on_instance(index, loss)


def job_spec(deps: ExperimentDeps, key: str, exp: Any, queued: Any) -> JobSpec:
    """The job of a queued experiment, from its Queued event; the data must still be what was queued."""
    config = deps.config
    tc = config.task(exp.task)
    now = read_dataset(config.root, sorted(queued.data_files)) if queued.data_files else None
    if now is None or now.files != dict(queued.data_files):
        changed = sorted(p for p in queued.data_files if now is None or now.files.get(p) != queued.data_files[p])
        raise ExperimentError(f"training data changed since the experiment was queued ({', '.join(changed)}) — "
                              f"fix: queue a new experiment (`autovault train {exp.task}`)")
    raw = dict(queued.params)
    merge = raw.pop("merge", None)  # a merge experiment (handlers.experiments_sweep.merge_sweep) trains nothing
    params = parse_params(raw)
    train_split, held = split(now, params.heldout)
    train = subset(train_split, params.subset, queued.seed)
    gguf = gguf_for(queued.base_model, config.backends.embedded.model_path)
    return JobSpec(key=key, base_gguf=str(gguf), train=tuple(train), heldout=tuple(held), params=params.as_dict(),
                   seed=int(queued.seed), out_dir=str(deps.experiments / key), cache_dir=str(deps.experiments),
                   expect=tc.expect.model_dump(mode="json"), threads=deps.threads, device=deps.device, merge=merge)


def run_experiment(deps: ExperimentDeps, key: str, queued: Any) -> Outcome:
    """Run (or resume) one experiment under the device's lease. `queued`: its Queued event (see queued_event)."""
    exp = deps.store.get_experiment(key)
    if exp is None:
        raise ExperimentError(f"no experiment {key!r}; see `autovault experiments`")
    if not exp.is_open:
        return Outcome(key, exp.phase, f"already {exp.phase}")
    if not deps.leases.acquire(deps.device, deps.holder, key):
        held = deps.leases.held(deps.device)
        return Outcome(key, "busy", f"device {deps.device} is leased to {held[1] if held else 'another run'}")
    try:
        try:
            spec = job_spec(deps, key, exp, queued)
        except (ExperimentError, DataError, ModelLoadError, ParamsError) as e:
            return _failed(deps, key, str(e))
        resumed = int(exp.step) if exp.phase == "running" and exp.checkpoint else 0
        deps.store.update_experiment(key, lambda e: e.started(device=f"{deps.executor.name}:{deps.device}",
                                                               lease=deps.holder, resumed_from=resumed))
        deps.progress(f"{key}: training {spec.params['steps']} steps on {len(spec.train)} examples"
                      + (f" (resumed at step {resumed})" if resumed else ""))
        try:
            result = deps.executor.run(spec, EventReporter(deps, key))
        except Stop as e:
            reason = str(e) or "stopped early"
            deps.store.update_experiment(key, lambda ex: ex.pruned(reason=reason))
            return Outcome(key, "pruned", reason)
        except Exception as e:  # every failure is an event; the daemon goes on
            return _failed(deps, key, f"{type(e).__name__}: {' '.join(str(e).split())}"[:500])
        deps.store.update_experiment(key, lambda e: e.finished(
            metric=result.metric, losses=[round(x, 5) for x in result.losses], duration_s=round(result.duration_s, 3),
            artifact=result.artifacts.get("gguf"), metrics=result.metrics, artifacts=result.artifacts))
        return Outcome(key, "finished", f"held-out loss {result.metric:.4f}", result)
    finally:
        deps.leases.release(deps.device, deps.holder)


def _failed(deps: ExperimentDeps, key: str, error: str) -> Outcome:
    deps.store.update_experiment(key, lambda e: e.failed(error=error) if e.is_open else None)
    return Outcome(key, "failed", error)


def queued_event(store: Any, key: str) -> Any:
    """The Queued event of an experiment (its plan: params, seed, data hashes)."""
    from domain import ids

    events = list(store.events.get(ids.experiment_id(key), lte=1))
    if not events:
        raise ExperimentError(f"no experiment {key!r}; see `autovault experiments`")
    return events[0]


def interrupted(rows: Iterable[Any], leases: Leases, device: str) -> list[str]:
    """Experiments to (re)run, oldest first: queued ones, and running ones whose device nobody holds now."""
    held = leases.held(device)
    busy = held[1] if held else None
    return [r.key for r in rows if r.phase == "queued" or (r.phase == "running" and r.key != busy)]


def plan_key(dataset_hash: str, base_model: str, params: Mapping[str, Any], seed: int) -> str:
    """What an experiment tried (data, base, params, seed): the daemon does not queue the same one twice."""
    body = json.dumps([dataset_hash, base_model, dict(sorted(params.items())), int(seed)], sort_keys=True, default=str)
    return sha256_text(body)


__all__ = [
    "EventReporter",
    "Executor",
    "ExperimentDeps",
    "ExperimentError",
    "Leases",
    "Outcome",
    "Plan",
    "interrupted",
    "job_spec",
    "plan_experiment",
    "queue",
    "queued_event",
    "run_experiment",
    "training_files",
]

"""Sweeps: Optuna searches a task's LoRA hyperparameters; every trial is an Experiment on the record.

The study lives in the event store's own database (Optuna's RDB storage on the same SQLite file or PostgreSQL
URL), named `autovault:<sweep>`, so a sweep interrupted by a crash continues where it stopped (`load_if_exists`)
and its trials sit beside the events that describe them. Sampler: TPE, seeded. Pruner: Optuna's WilcoxonPruner —
each trial reports its held-out loss per example (the instances, the same examples for every trial), and a
trial whose losses are significantly worse than the best trial's by a paired signed-rank test is stopped before
its export and evaluation (`Pruned`). The search space: rank, alpha (as a multiple of rank), lr, steps and the
share of training data (`--space key=a,b,c` for a list, `key=lo:hi` for a log-uniform range).

Merges: `merge_sweep` queues one experiment per TIES/DARE density over several finished adapters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpu.lora import Stop
from handlers.experiments import (
    ExperimentDeps,
    ExperimentError,
    Outcome,
    plan_experiment,
    queue,
    queued_event,
    run_experiment,
)

DEFAULT_SPACE: dict[str, Any] = {"rank": [4, 8, 16], "alpha_x": [1, 2], "lr": (5e-5, 1e-3), "subset": [0.5, 1.0]}
DENSITIES = (0.1, 0.3, 0.5, 0.7)


@dataclass
class SweepReport:
    sweep: str
    trials: list[Outcome] = field(default_factory=list)
    best: str | None = None  # experiment key of the lowest held-out loss

    @property
    def finished(self) -> list[Outcome]:
        return [t for t in self.trials if t.outcome == "finished"]


def parse_space(items: Sequence[str]) -> dict[str, Any]:
    """`rank=4,8,16` → a list to choose from; `lr=1e-4:1e-3` → a log-uniform range."""
    space = dict(DEFAULT_SPACE)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ExperimentError(f"--space {item!r} — fix: write key=a,b,c or key=lo:hi")
        try:
            if ":" in value:
                lo, hi = (float(v) for v in value.split(":", 1))
                if not 0 < lo < hi:
                    raise ValueError
                space[key] = (lo, hi)
            else:
                space[key] = [float(v) if any(c in v for c in ".e") else int(v) for v in value.split(",")]
        except ValueError:
            raise ExperimentError(f"--space {item!r}: numbers expected — fix: key=a,b,c or key=lo:hi with 0 < lo < hi")\
                from None
    return space


def suggest(trial: Any, space: Mapping[str, Any]) -> dict[str, Any]:
    """One trial's parameters; `alpha_x` becomes alpha = alpha_x × rank."""
    params: dict[str, Any] = {}
    for key, choices in space.items():
        if isinstance(choices, tuple):
            params[key] = trial.suggest_float(key, choices[0], choices[1], log=True)
        else:
            params[key] = trial.suggest_categorical(key, list(choices))
    if "alpha_x" in params:
        params["alpha"] = float(params.pop("alpha_x")) * float(params.get("rank", 8))
    return params


def storage(url: str) -> Any:
    """Optuna's RDB storage on the event store's database (SQLite waits for the write lock instead of failing)."""
    import optuna

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(url=url, engine_kwargs=kwargs)


def run_sweep(deps: ExperimentDeps, task: str, *, trials: int, store_url: str, space: Mapping[str, Any] | None = None,
              sweep: str | None = None, seed: int = 0, prune: bool = True,
              on_trial: Callable[[Outcome], None] = lambda _o: None) -> SweepReport:
    import optuna

    name = sweep or f"{task}-sweep"
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.WilcoxonPruner(p_threshold=0.1) if prune else optuna.pruners.NopPruner()
    study = optuna.create_study(study_name=f"autovault:{name}", storage=storage(store_url), direction="minimize",
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    report = SweepReport(name)

    def objective(trial: Any) -> float:
        params = suggest(trial, space or DEFAULT_SPACE)
        plan = plan_experiment(deps.config, task, overrides=params, seed=seed, sweep=name,
                               trigger=f"sweep:{name}#{trial.number}")
        key = queue(deps.store, plan)
        trial.set_user_attr("experiment", key)

        def instance(index: int, loss: float) -> None:
            trial.report(loss, index)
            if trial.should_prune():
                raise Stop(f"pruned by WilcoxonPruner after {index + 1} held-out example(s)")

        trial_deps = _with_instance(deps, instance)
        outcome = run_experiment(trial_deps, key, queued_event(deps.store, key))
        report.trials.append(outcome)
        on_trial(outcome)
        if outcome.outcome == "pruned":
            raise optuna.TrialPruned(outcome.reason)
        if outcome.result is None:
            raise ExperimentError(f"trial {trial.number} ({key}) {outcome.outcome}: {outcome.reason}")
        return float(outcome.result.metric)

    study.optimize(objective, n_trials=trials, catch=(ExperimentError,))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    if done:
        report.best = str(min(done, key=lambda t: float(t.value or 0.0)).user_attrs.get("experiment"))
    return report


def _with_instance(deps: ExperimentDeps, hook: Callable[[int, float], None]) -> ExperimentDeps:
    import dataclasses

    return dataclasses.replace(deps, on_instance=hook)


def merge_sweep(deps: ExperimentDeps, task: str, sources: Sequence[str], *, method: str = "ties",
                densities: Sequence[float] = DENSITIES, sweep: str | None = None, seed: int = 0) -> SweepReport:
    """One merge experiment per density over finished adapters; the best by held-out loss is reported."""
    from gpu.merge import METHODS

    if method not in METHODS:
        raise ExperimentError(f"--method {method!r} — fix: one of {', '.join(METHODS)}")
    for key in sources:
        exp = deps.store.get_experiment(key)
        if exp is None or exp.phase not in ("finished", "verified", "kept", "discarded"):
            raise ExperimentError(f"adapter {key!r} is not a finished experiment — fix: name finished ones "
                                  "(`autovault experiments`)")
    name = sweep or f"{task}-merge-{method}"
    report = SweepReport(name)
    dirs = [str(deps.experiments / k / "peft") for k in sources]
    for density in densities:
        merge = {"method": method, "density": float(density), "sources": dirs, "weights": [1.0] * len(dirs),
                 "adapters": list(sources)}
        plan = plan_experiment(deps.config, task, overrides={"steps": 1}, seed=seed, sweep=name,
                               trigger=f"merge:{method}:{density}")
        deps.store.queue_experiment(plan.key, plan.task, plan.sweep, plan.base_model, plan.dataset.hash,
                                    {**plan.params.as_dict(), "merge": merge}, seed=plan.seed, trigger=plan.trigger,
                                    data_files=dict(plan.dataset.files))
        outcome = run_experiment(deps, plan.key, queued_event(deps.store, plan.key))
        report.trials.append(outcome)
    done = [t for t in report.trials if t.result is not None]
    if done:
        report.best = min(done, key=lambda t: float(t.result.metric if t.result else 0)).key
    return report


__all__ = ["DEFAULT_SPACE", "DENSITIES", "SweepReport", "merge_sweep", "parse_space", "run_sweep", "suggest"]

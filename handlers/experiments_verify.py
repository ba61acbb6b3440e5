"""Keep or discard a trained adapter by what it does to the task, not by its loss.

The adapter becomes an ordinary delta — vault.yml's `tasks.<task>.model` pointing at it
(`embedded:<base>+lora:<experiment key>`, one surgical `adapters.yaml_edit` edit) — and goes through an
ordinary improvement cycle (`handlers.cycle.run_cycle`, mode `experiment`): the adapted model runs the task on
paired inputs against the task's current model in shadow copies, the acceptance rule decides, a keep is
applied atomically over the hash of vault.yml it was made against (and committed when the vault is a git
repository), approval rules apply as to any delta. The experiment records which cycle verified it and how
(`Verified`), then `Kept` or `Discarded`; a delta waiting for approval leaves it `verified`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.atomic import sha256_file
from adapters.yaml_edit import YamlEditError, set_value
from domain.delta import Delta, FileEdit
from gpu.paths import adapter_file, with_adapter
from handlers.cycle import CycleDeps, CycleResult, run_cycle
from handlers.experiments import ExperimentError


@dataclass
class AdapterEvidence:
    """What the cycle's Diagnosed event records for an adapter verification."""

    experiment: str
    task: str
    metrics: dict[str, Any]
    signatures: list[str] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        return [self.task]


def adapter_delta(config: Any, task: str, key: str, base_model: str, metrics: dict[str, Any]) -> Delta:
    """vault.yml with the task's model pointing at the adapter of experiment `key`."""
    source: Path = config.source
    text = source.read_text(encoding="utf-8")
    old = config.task(task).model
    new = with_adapter(base_model, key)
    try:
        after = set_value(text, ["tasks", task, "model"], new)
    except YamlEditError as e:
        raise ExperimentError(f"{source.name}: tasks.{task}.model cannot be edited: {e}") from None
    loss = metrics.get("heldout_loss")
    base = metrics.get("base_heldout_loss")
    why = (f"LoRA adapter from experiment {key}: held-out loss {base:.3f} → {loss:.3f}"
           if isinstance(loss, float) and isinstance(base, float) else f"LoRA adapter from experiment {key}")
    return Delta(task=task, lever="model", description=f"{task}: model {old} → {new}", rationale=why,
                 edits=(FileEdit(source.name, sha256_file(source), after, in_config=True),), proposer="experiment",
                 tasks=(task,), meta={"experiment": key})


def verify_adapter(deps: CycleDeps, store: Any, experiments: Path, key: str) -> CycleResult:
    """Run the adapter's cycle and record its verdict on the experiment."""
    exp = store.get_experiment(key)
    if exp is None:
        raise ExperimentError(f"no experiment {key!r}; see `autovault experiments`")
    if exp.phase != "finished":
        raise ExperimentError(f"experiment {key} is {exp.phase}; only a finished experiment can be verified")
    if not adapter_file(experiments, key).is_file():
        raise ExperimentError(f"experiment {key}: its adapter {adapter_file(experiments, key)} is missing — fix: "
                              f"train again (`autovault train {exp.task}`)")
    from handlers.experiments import queued_event

    queued = queued_event(store, key)
    metrics = _metrics(store, key)
    delta = adapter_delta(deps.verify.config, exp.task, key, queued.base_model, metrics)
    evidence = AdapterEvidence(key, exp.task, metrics)
    cycle_deps = dataclasses.replace(deps, diagnose=lambda _t: evidence, proposers=[("experiment", lambda _e: [delta])])
    result = run_cycle(cycle_deps, exp.task, mode="experiment", trigger=f"experiment:{key}")
    record_verdict(store, key, result)
    return result


def record_verdict(store: Any, key: str, result: CycleResult) -> None:
    v = result.verification
    effect = float(v.decision.effect) if v is not None else None
    decision = v.verdict if v is not None else result.outcome
    store.update_experiment(key, lambda e: e.verified(cycle=result.key, decision=decision, effect=effect,
                                                      reason=result.reason))
    if result.outcome == "kept":
        store.update_experiment(key, lambda e: e.kept(reason=f"cycle {result.key}: {result.reason}"))
    elif result.outcome != "awaiting_approval":
        store.update_experiment(key, lambda e: e.discarded(reason=f"cycle {result.key}: {result.reason}"))


def _metrics(store: Any, key: str) -> dict[str, Any]:
    """The Finished event's metrics (the aggregate keeps only its phase)."""
    from domain import ids

    found: dict[str, Any] = {}
    for ev in store.events.get(ids.experiment_id(key)):
        if type(ev).__name__ == "Finished":
            found = dict(ev.metrics)
    return found


__all__ = ["AdapterEvidence", "adapter_delta", "record_verdict", "verify_adapter"]

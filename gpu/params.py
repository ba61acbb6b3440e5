"""Hyperparameters of one LoRA experiment: vault.yml's `training.params`, checked, with CPU-sized defaults.

The budget is a fixed number of optimizer steps (autoresearch's fixed budget): two experiments that differ
only in `lr` spend the same compute, so their held-out losses compare. `epochs` (the seed's knob) is accepted
and turned into steps over the training split, so a vault written for an epoch-based trainer keeps working.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# vault.yml spellings of the seed's trainer → ours
ALIASES = {"lora_rank": "rank", "learning_rate": "lr", "lora_alpha": "alpha", "lora_dropout": "dropout",
           "batch": "batch_size", "max_steps": "steps"}
MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class ParamsError(ValueError):
    """A training parameter is unknown or out of range; the message names the key and the fix."""


@dataclass(frozen=True)
class TrainParams:
    steps: int = 60
    rank: int = 8
    alpha: float = 16.0
    lr: float = 2e-4
    batch_size: int = 4
    max_len: int = 256  # tokens per example (prompt + completion); longer examples are cut from the left
    dropout: float = 0.0
    warmup: int = 5
    weight_decay: float = 0.0
    heldout: float = 0.2  # share of examples held out for the metric (at least one when there are two)
    subset: float = 1.0  # share of the training split used (a sweep's data-subset axis)
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    log_every: int = 5  # a Stepped event every N steps
    checkpoint_every: int = 20  # a resumable checkpoint every N steps
    eval_generate: int = 4  # held-out prompts generated greedily for the contract pass rate (0: none)
    max_new_tokens: int = 96

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["targets"] = list(self.targets)
        return out

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def _check(p: TrainParams) -> None:
    rules = [
        (p.steps >= 1, "steps", "a whole number of optimizer steps ≥ 1, e.g. 60"),
        (1 <= p.rank <= 256, "rank", "a LoRA rank between 1 and 256, e.g. 8"),
        (p.alpha > 0, "alpha", "a positive scale, e.g. 2 × rank"),
        (0 < p.lr < 1, "lr", "a learning rate between 0 and 1, e.g. 2e-4"),
        (p.batch_size >= 1, "batch_size", "examples per step ≥ 1"),
        (16 <= p.max_len <= 8192, "max_len", "tokens per example between 16 and 8192"),
        (0 <= p.dropout < 1, "dropout", "a probability below 1"),
        (p.warmup >= 0, "warmup", "steps ≥ 0"),
        (0 <= p.heldout < 1, "heldout", "a share below 1, e.g. 0.2"),
        (0 < p.subset <= 1, "subset", "a share in (0, 1]"),
        (p.log_every >= 1 and p.checkpoint_every >= 1, "log_every", "≥ 1"),
        (p.eval_generate >= 0 and p.max_new_tokens >= 1, "eval_generate", "≥ 0 prompts, max_new_tokens ≥ 1"),
        (bool(p.targets) and set(p.targets) <= set(MODULES), "targets",
         f"a list of projection names from {', '.join(MODULES)}"),
    ]
    for ok, key, fix in rules:
        if not ok:
            raise ParamsError(f"{key}: {getattr(p, key)!r} is out of range — fix: {fix}")


def parse_params(raw: Mapping[str, Any], *, n_train: int | None = None) -> TrainParams:
    """`training.params` (+ CLI/sweep overrides) → TrainParams; `epochs` becomes steps when `n_train` is known."""
    fields = {f.name: f for f in dataclasses.fields(TrainParams)}
    values: dict[str, Any] = {}
    epochs = None
    for key, value in raw.items():
        name = ALIASES.get(key, key)
        if name == "epochs":
            epochs = _number(key, value, int)
            continue
        if name not in fields:
            known = ", ".join(sorted([*fields, "epochs", *ALIASES]))
            raise ParamsError(f"{key}: unknown training parameter — fix: use one of {known}")
        if name == "targets":
            items = value.split(",") if isinstance(value, str) else list(value)
            values[name] = tuple(str(t).strip() for t in items if str(t).strip())
            continue
        kind = type(fields[name].default)
        values[name] = _number(key, value, int if kind is int else float)
    if epochs is not None and "steps" not in values:
        if epochs < 1:
            raise ParamsError(f"epochs: {epochs} — fix: a whole number ≥ 1")
        batch = int(values.get("batch_size", TrainParams.batch_size))
        values["steps"] = max(1, epochs * math.ceil(max(1, n_train or batch) / batch))
    params = TrainParams(**values)
    _check(params)
    return params


def _number(key: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool):
        raise ParamsError(f"{key}: {value!r} is not a number — fix: write a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParamsError(f"{key}: {value!r} is not a number — fix: write a number") from None
    if kind is int:
        if not number.is_integer():
            raise ParamsError(f"{key}: {value!r} must be a whole number")
        return int(number)
    return number


__all__ = ["MODULES", "ParamsError", "TrainParams", "parse_params"]

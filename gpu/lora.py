"""LoRA training with peft: a fixed number of steps, seeded, summarised every few steps, resumable.

Everything that decides the result is a function of (data, params, seed): the batches come from a seeded
schedule (`gpu.data.batches`), the adapter initialisation from the seeded torch generator. A checkpoint holds
the adapter weights, the optimizer and scheduler state and the torch RNG state, so a run resumed from step N
after a crash ends with the same adapter as one that never stopped (tests/test_gpu_train.py checks this).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu.encode import Encoded, collate, pad_id
from gpu.params import TrainParams

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class StepSummary:
    step: int  # steps done so far
    loss: float  # mean training loss over the steps since the previous summary
    lr: float
    tokens: int  # tokens processed since the previous summary (padding excluded)
    seconds: float  # wall time of those steps


@dataclass
class TrainOutcome:
    losses: list[float]  # per step, from the first step (resumed runs include the restored history)
    tokens: int  # tokens processed in this process
    seconds: float  # wall time of the steps run in this process
    steps_run: int  # steps run in this process (fewer than params.steps after a resume)
    trainable: int  # adapter parameters


class Stop(Exception):
    """Raised by a step callback to end training early (a sweep pruning it, a shutdown)."""


def lora_config(params: TrainParams) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=params.rank, lora_alpha=params.alpha,  # type: ignore[arg-type]  # peft reads it as a float lora_dropout=params.dropout,
                      target_modules=list(params.targets), bias="none", task_type="CAUSAL_LM")


def attach(model: Any, params: TrainParams, seed: int) -> Any:
    """The base model wrapped with a fresh adapter, initialised from `seed`."""
    import torch
    from peft import get_peft_model

    torch.manual_seed(seed)
    return get_peft_model(model, lora_config(params))


def schedule(params: TrainParams) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    def factor(step: int) -> float:
        if step < params.warmup:
            return (step + 1) / (params.warmup + 1)
        span = max(1, params.steps - params.warmup)
        progress = min(1.0, (step - params.warmup) / span)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def train(peft_model: Any, data: Sequence[Encoded], order: Sequence[Sequence[int]], params: TrainParams, *,
          pad: int | None = None, tokenizer: Any = None, checkpoint_dir: Path | None = None,
          on_step: Callable[[StepSummary], None] = lambda _s: None,
          on_checkpoint: Callable[[int, str], None] = lambda _n, _h: None,
          device: str = "cpu") -> TrainOutcome:
    """Run the steps `order` lists (one list of example indices per step), resuming from a checkpoint in
    `checkpoint_dir` when there is one."""
    import torch

    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule(params))
    pad_token = pad if pad is not None else pad_id(tokenizer)
    losses: list[float] = []
    start = 0
    ckpt = checkpoint_dir / CHECKPOINT if checkpoint_dir is not None else None
    if ckpt is not None and ckpt.is_file():
        start, losses = _restore(ckpt, peft_model, opt, sched)
    peft_model.train()
    window: list[float] = []
    tokens = window_tokens = 0
    t0 = t_window = time.perf_counter()
    for step in range(start, params.steps):
        batch = {k: v.to(device) for k, v in collate([data[i] for i in order[step]], pad_token).items()}
        out = peft_model(**batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss = float(out.loss.detach())
        losses.append(loss)
        window.append(loss)
        n = int(batch["attention_mask"].sum())
        tokens += n
        window_tokens += n
        done = step + 1
        if done % params.log_every == 0 or done == params.steps:
            now = time.perf_counter()
            on_step(StepSummary(done, sum(window) / len(window), float(sched.get_last_lr()[0]), window_tokens,
                                now - t_window))
            window, window_tokens, t_window = [], 0, now
        if ckpt is not None and (done % params.checkpoint_every == 0) and done < params.steps:
            on_checkpoint(done, _save(ckpt, peft_model, opt, sched, done, losses))
    peft_model.eval()
    return TrainOutcome(losses, tokens, time.perf_counter() - t0, params.steps - start,
                        sum(p.numel() for p in trainable))


def adapter_state(peft_model: Any) -> dict[str, Any]:
    """The active adapter's LoRA weights, keyed as peft saves them."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(peft_model, adapter_name=peft_model.active_adapter)
    return {k: v.detach().clone() for k, v in state.items()}


def _save(path: Path, peft_model: Any, opt: Any, sched: Any, step: int, losses: list[float]) -> str:
    import torch

    state = {"step": step, "losses": list(losses), "adapter": adapter_state(peft_model), "opt": opt.state_dict(),
             "sched": sched.state_dict(), "rng": torch.get_rng_state()}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    tmp.replace(path)
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _restore(path: Path, peft_model: Any, opt: Any, sched: Any) -> tuple[int, list[float]]:
    import torch
    from peft import set_peft_model_state_dict

    state = torch.load(path, map_location="cpu", weights_only=False)
    set_peft_model_state_dict(peft_model, state["adapter"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    torch.set_rng_state(state["rng"])
    return int(state["step"]), list(state["losses"])


__all__ = ["StepSummary", "Stop", "TrainOutcome", "adapter_state", "attach", "lora_config", "train"]

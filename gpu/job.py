"""One experiment as a self-contained job: load the base → measure it → train LoRA → export GGUF + Modelfile →
check the export against peft → measure the adapter. Runs wherever an executor puts it (this process, a
Ray worker); everything it needs is in the `JobSpec`, everything it learned in the `JobResult`.

Metric (what experiments are ranked by, lower is better): the mean loss over the answer tokens of each
held-out example (`gpu.data.split`: the same examples for every experiment on the same data). Also recorded:
the base model's held-out loss, the per-example losses (a sweep pairs them), the contract pass rate of greedy
answers to held-out prompts with and without the adapter (llama.cpp, the task's `expect`), the export's
parity with peft, steps/s and tokens/s.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from domain.checks import contract_checks
from domain.config import Expect
from gpu import llama_side, parity, torch_side
from gpu.base_model import load_base
from gpu.data import Example, batches
from gpu.encode import encode, pad_id, prompt_text
from gpu.gguf_lora import modelfile, write_gguf_lora
from gpu.lora import StepSummary, TrainOutcome, adapter_state, attach, train
from gpu.merge import merge_params, merged_model
from gpu.params import TrainParams
from gpu.paths import ADAPTER_FILE


class Reporter(Protocol):
    def step(self, summary: StepSummary) -> None: ...
    def checkpoint(self, step: int, sha256: str) -> None: ...
    def instance(self, index: int, loss: float) -> None: ...  # may raise gpu.lora.Stop (a sweep prunes)


class Quiet:
    """A reporter that records nothing (benchmarks, one-off checks)."""

    def step(self, summary: StepSummary) -> None: ...
    def checkpoint(self, step: int, sha256: str) -> None: ...
    def instance(self, index: int, loss: float) -> None: ...


@dataclass(frozen=True)
class JobSpec:
    key: str
    base_gguf: str
    train: tuple[Example, ...]
    heldout: tuple[Example, ...]
    params: dict[str, Any]  # TrainParams.as_dict()
    seed: int
    out_dir: str
    cache_dir: str | None = None  # where the dequantized base is cached (the experiments folder)
    expect: dict[str, Any] | None = None  # the task's contract, for the pass rate
    threads: int = 2
    device: str = "cpu"
    merge: dict[str, Any] | None = None  # instead of training: {method, density, sources (peft dirs), weights}


@dataclass
class JobResult:
    metric: float
    losses: list[float]
    duration_s: float
    metrics: dict[str, Any]
    artifacts: dict[str, str]  # name -> sha256
    files: dict[str, bytes] = field(default_factory=dict)  # filled only by remote executors


def params_of(spec: JobSpec) -> TrainParams:
    raw = dict(spec.params)
    raw["targets"] = tuple(raw.get("targets", TrainParams.targets))
    return TrainParams(**raw)


def run_job(spec: JobSpec, report: Reporter) -> JobResult:
    import torch

    t0 = time.perf_counter()
    torch.set_num_threads(spec.threads)
    params = params_of(spec)
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = load_base(Path(spec.base_gguf), Path(spec.cache_dir) if spec.cache_dir else None, device=spec.device)
    tok = base.tokenizer
    train_set = [encode(tok, e, params.max_len) for e in spec.train]
    held_set = [encode(tok, e, params.max_len) for e in spec.heldout]
    base_losses = [torch_side.example_loss(base.model, e) for e in held_set]
    if spec.merge is not None:
        sources, weights, method, density = merge_params(spec.merge)
        model = merged_model(base.model, sources, weights, method, density, spec.seed)
        outcome = TrainOutcome([], 0, 0.0, 0, 0)
    else:
        model = attach(base.model, params, spec.seed)
        order = batches(len(train_set), params.batch_size, params.steps, spec.seed)
        outcome = train(model, train_set, order, params, pad=pad_id(tok), checkpoint_dir=out, on_step=report.step,
                        on_checkpoint=report.checkpoint, device=spec.device)
    held_losses = []
    for i, e in enumerate(held_set):
        loss = torch_side.example_loss(model, e)
        held_losses.append(loss)
        report.instance(i, loss)
    if not held_losses and not outcome.losses:
        raise ValueError("nothing to measure: no held-out examples and no training steps")
    metric = llama_side.mean(held_losses) if held_losses else llama_side.mean(outcome.losses[-params.log_every:])
    artifacts = export(model, spec, params, out)
    metrics: dict[str, Any] = {
        "heldout_loss": metric, "heldout_losses": held_losses, "base_heldout_loss": llama_side.mean(base_losses),
        "train_loss": outcome.losses[-1] if outcome.losses else None, "train_examples": len(train_set),
        "heldout_examples": len(held_set),
        "steps_per_s": outcome.steps_run / outcome.seconds if outcome.seconds else None,
        "tokens_per_s": outcome.tokens / outcome.seconds if outcome.seconds else None,
        "trainable_params": outcome.trainable, "device": spec.device,
    }
    probe = list(spec.heldout) or list(spec.train)[:2]
    texts = [prompt_text(tok, e.prompt) + e.target for e in probe[:3]]
    check = parity.compare(model, tok, base.gguf, texts, [e.prompt for e in probe[:3]], adapter=out / ADAPTER_FILE,
                           max_tokens=params.max_len, new_tokens=min(parity.NEW_TOKENS, params.max_new_tokens),
                           threads=spec.threads)
    metrics["export_parity"] = check.as_dict()
    if params.eval_generate and spec.expect is not None and spec.heldout:
        prompts = list(spec.heldout)[:params.eval_generate]
        metrics["pass_rate"] = pass_rate(base.gguf, out / ADAPTER_FILE, tok, prompts, spec, params)
        metrics["base_pass_rate"] = pass_rate(base.gguf, None, tok, prompts, spec, params)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    artifacts["metrics"] = _sha(out / "metrics.json")
    with contextlib.suppress(FileNotFoundError):
        (out / "checkpoint.pt").unlink()  # finished: the adapter is the result, the optimizer state is not
    return JobResult(metric, outcome.losses, time.perf_counter() - t0, metrics, artifacts)


def export(model: Any, spec: JobSpec, params: TrainParams, out: Path) -> dict[str, str]:
    """peft adapter folder, GGUF LoRA, Modelfile, loss plot; returns name -> sha256."""
    peft_dir = out / "peft"
    if peft_dir.exists():
        shutil.rmtree(peft_dir)
    model.save_pretrained(peft_dir)
    alpha = float(model.peft_config[model.active_adapter].lora_alpha)
    write_gguf_lora(out / ADAPTER_FILE, adapter_state(model), model.config, alpha, name=spec.key)
    (out / "Modelfile").write_text(modelfile(Path(spec.base_gguf), ADAPTER_FILE))
    weights = next(peft_dir.rglob("adapter_model.safetensors"))
    return {"peft": _sha(weights), "gguf": _sha(out / ADAPTER_FILE), "modelfile": _sha(out / "Modelfile")}


def pass_rate(gguf: Path, adapter: Path | None, tokenizer: Any, examples: Sequence[Example], spec: JobSpec,
              params: TrainParams) -> float:
    """Share of held-out prompts whose greedy answer (llama.cpp) passes every hard check of the contract."""
    expect = Expect.model_validate(spec.expect)
    llama = llama_side.open_llama(gguf, adapter=adapter, n_ctx=params.max_len + params.max_new_tokens + 64,
                                  threads=spec.threads)
    try:
        passed = 0
        stop = [int(tokenizer.eos_token_id)]
        for e in examples:
            ids = tokenizer(prompt_text(tokenizer, e.prompt), add_special_tokens=False)["input_ids"][-params.max_len:]
            text = tokenizer.decode(llama_side.greedy(llama, ids, params.max_new_tokens, stop))
            passed += all(c.passed for c in contract_checks(text, expect, []) if c.hard)
        return passed / len(examples)
    finally:
        llama.close()


def _sha(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


__all__ = ["JobResult", "JobSpec", "Quiet", "Reporter", "export", "params_of", "run_job"]

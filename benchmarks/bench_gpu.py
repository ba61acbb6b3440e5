"""`make bench-gpu`: the LoRA step's speed on this machine — steps/s, tokens/s and model FLOPs utilisation.

On a GPU (CUDA): bf16 autocast, MFU against the device's dense bf16 peak from `gpu.flops.PEAKS` (by device
name; AUTOVAULT_PEAK_TFLOPS overrides); the target is ≥ 40 %. On a CPU: fp32, MFU against the best fp32
matmul rate measured on the same threads just before (a CPU has no datasheet peak worth trusting).
The step is the real one: SmolLM2-135M from its GGUF, LoRA on q/k/v/o, batches of the example vault's training
data padded to a fixed length so every step does the same work. Warm-up steps are not timed.

    python -m benchmarks.bench_gpu [--steps 6] [--batch 4] [--seq 128] [--rank 8] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_gpu")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)

    import torch

    from gpu.base_model import gguf_for, load_base
    from gpu.data import read_dataset
    from gpu.encode import Encoded, collate, encode, pad_id
    from gpu.flops import count_step_flops, gpu_peak, measure_cpu_peak, mfu
    from gpu.lora import attach
    from gpu.params import parse_params
    from gpu.paths import experiments_dir

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch.set_num_threads(args.threads)
    cache = experiments_dir(ROOT / "vault.yml", "sqlite:///.autovault/events.db", os.environ)
    base = load_base(gguf_for("embedded:smollm2-135m"), cache, device=device)
    vault = ROOT / "examples" / "seed-vault"
    data = read_dataset(vault, ["data/planner.jsonl", "data/deepener.jsonl"])
    pad = pad_id(base.tokenizer)
    encoded = [encode(base.tokenizer, e, args.seq) for e in data.examples]
    fixed = [Encoded(e.ids + [pad] * (args.seq - len(e.ids)), e.labels + [-100] * (args.seq - len(e.labels)))
             for e in encoded]
    params = parse_params({"rank": args.rank, "alpha": 2 * args.rank})
    model = attach(base.model, params, 0)
    model.train()
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
    flops = count_step_flops(model)
    tokens_per_step = args.batch * args.seq
    step_flops = flops.per_step(tokens_per_step, args.seq)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else _null()

    def step(i: int) -> None:
        rows = [fixed[(i * args.batch + j) % len(fixed)] for j in range(args.batch)]
        batch = {k: v.to(device) for k, v in collate(rows, pad).items()}
        batch["attention_mask"] = torch.ones_like(batch["attention_mask"])  # same work every step
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(args.warmup):
        step(i)
    _sync(device)
    t0 = time.perf_counter()
    for i in range(args.steps):
        step(args.warmup + i)
    _sync(device)
    seconds = time.perf_counter() - t0
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(0)
        peak = gpu_peak(name, os.environ)
        peak_note = f"{name} dense bf16 peak {peak} TFLOP/s (datasheet)" if peak else f"{name}: no peak known"
    else:
        name = f"CPU, {args.threads} threads"
        peak = measure_cpu_peak(args.threads)
        peak_note = f"measured fp32 matmul peak {peak * 1000:.1f} GFLOP/s"
    rate = step_flops * args.steps / seconds
    util = mfu(rate, peak)
    print(f"bench-gpu: LoRA r={args.rank} on SmolLM2-135M, {device} ({name})")
    print(f"  batch {args.batch} × {args.seq} tokens, {args.steps} timed steps in {seconds:.2f} s")
    print(f"  steps/s   {args.steps / seconds:.3f}")
    print(f"  tokens/s  {tokens_per_step * args.steps / seconds:.1f}")
    print(f"  FLOPs/step {step_flops / 1e9:.1f} G (frozen {flops.frozen_params / 1e6:.1f} M, "
          f"LoRA {flops.lora_params / 1e6:.2f} M weights)")
    print(f"  achieved  {rate / 1e12:.4f} TFLOP/s; {peak_note}")
    print(f"  MFU       {'n/a' if util is None else f'{util:.1%}'}" + (" (target ≥ 40 %)" if device != "cpu" else ""))
    return 0


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


if __name__ == "__main__":
    sys.exit(main())

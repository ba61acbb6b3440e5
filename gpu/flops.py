"""Model FLOPs utilisation of a LoRA step: the FLOPs the step must do, over what the device could do.

FLOPs per trained token (PaLM's accounting, adapted to LoRA): the frozen matmuls run forward (2N) and pass
gradients back to their inputs (2N) but compute no weight gradient, so 4·N_frozen; the adapter's own weights
train fully, 6·N_lora; attention's score and value products, 12·L·s·d (forward 4·L·s·d, backward twice that).
N counts the weights of linear layers (the tied output projection included); embedding lookups are not matmuls.

Peaks: a GPU's dense bf16 tensor-core peak from the vendor's datasheet, looked up by device name (`PEAKS`;
AUTOVAULT_PEAK_TFLOPS overrides); a CPU has no datasheet figure worth trusting, so its peak is *measured*: the
best rate of a large fp32 matmul on the same threads.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from NVIDIA/AMD datasheets. Longest key first wins.
PEAKS: dict[str, float] = {
    "H200": 989.4,
    "H100 SXM": 989.4,
    "H100 NVL": 835.0,
    "H100 PCIE": 756.0,
    "H100": 756.0,  # an unnamed H100 form factor: the lower (PCIe) figure, so MFU is never overstated
    "GH200": 989.4,
    "B200": 2250.0,
    "A100": 312.0,
    "A800": 312.0,
    "L40S": 362.1,
    "L40": 181.0,
    "L4": 121.0,
    "A10G": 70.0,
    "A10": 125.0,
    "RTX 6000 ADA": 364.2,
    "RTX 4090": 165.2,
    "RTX 3090": 71.0,
    "MI300X": 1307.4,
    "MI250X": 383.0,
    "RX 9070 XT": 195.0,
}


@dataclass(frozen=True)
class StepFlops:
    frozen_params: int  # weights of frozen linear layers
    lora_params: int  # trainable adapter weights
    layers: int
    hidden: int

    def per_token(self, seq_len: int) -> float:
        return 4.0 * self.frozen_params + 6.0 * self.lora_params + 12.0 * self.layers * seq_len * self.hidden

    def per_step(self, tokens: int, seq_len: int) -> float:
        return tokens * self.per_token(seq_len)


def count_step_flops(model: Any) -> StepFlops:
    """Count a peft-wrapped causal LM's linear weights: frozen ones and LoRA ones."""
    import torch

    frozen = lora = 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        n = module.weight.numel()
        if "lora_" in name:
            lora += n
        elif not module.weight.requires_grad:
            frozen += n
    cfg = model.config
    return StepFlops(frozen, lora, int(cfg.num_hidden_layers), int(cfg.hidden_size))


def gpu_peak(name: str, env: Mapping[str, str] | None = None) -> float | None:
    """TFLOP/s for a device name such as 'NVIDIA H100 80GB HBM3'; None when unknown (no MFU then)."""
    override = (env or {}).get("AUTOVAULT_PEAK_TFLOPS")
    if override:
        return float(override)
    upper = name.upper()
    for key in sorted(PEAKS, key=len, reverse=True):
        if key in upper:
            return PEAKS[key]
    return None


def measure_cpu_peak(threads: int, size: int = 1024, seconds: float = 1.0) -> float:
    """The best fp32 matmul rate (TFLOP/s) this CPU reaches on `threads` threads: the CPU's practical peak."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        torch.mm(a, b)  # warm the kernels
        best = 0.0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            torch.mm(a, b)
            dt = time.perf_counter() - t0
            best = max(best, 2.0 * size**3 / dt)
        return best / 1e12
    finally:
        torch.set_num_threads(before)


def mfu(flops_per_s: float, peak_tflops: float | None) -> float | None:
    return None if not peak_tflops else flops_per_s / (peak_tflops * 1e12)


__all__ = ["PEAKS", "StepFlops", "count_step_flops", "gpu_peak", "measure_cpu_peak", "mfu"]

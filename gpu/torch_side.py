"""The torch side of every comparison: next-token losses, per-example held-out losses and greedy tokens of a
(peft-wrapped or plain) causal LM. Greedy is an argmax loop over the model's logits, like `gpu.llama_side`:
`generate()` would apply whatever generation config the checkpoint carries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gpu.encode import IGNORE, Encoded


def token_losses(model: Any, ids: Sequence[int]) -> list[float]:
    """-log p(ids[i+1] | ids[:i+1]) for every position."""
    import torch

    with torch.no_grad():
        x = torch.tensor([list(ids)], device=_device(model))
        logits = model(input_ids=x).logits[0, :-1].double()
        nll = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="none")
    return [float(v) for v in nll]


def example_loss(model: Any, example: Encoded) -> float:
    """Mean loss over the answer tokens of one example (the held-out metric's unit)."""
    import torch

    with torch.no_grad():
        x = torch.tensor([example.ids], device=_device(model))
        y = torch.tensor([example.labels], device=_device(model))
        logits = model(input_ids=x).logits[0, :-1].double()
        target = y[0, 1:]
        keep = target != IGNORE
        if not bool(keep.any()):
            return float("nan")
        return float(torch.nn.functional.cross_entropy(logits[keep], target[keep]))


def margins(model: Any, ids: Sequence[int], start: int) -> list[tuple[int, float]]:
    """(argmax, top-1 minus top-2 logit) of the next-token prediction at every position from `start`."""
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([list(ids)], device=_device(model))).logits[0, start:].double()
        top = torch.topk(logits, 2, dim=-1)
    return [(int(i[0]), float(v[0] - v[1])) for i, v in zip(top.indices, top.values, strict=True)]


def greedy(model: Any, ids: Sequence[int], max_new: int, stop: Sequence[int] = ()) -> list[int]:
    import torch

    out: list[int] = []
    stops = set(stop)
    with torch.no_grad():
        x = torch.tensor([list(ids)], device=_device(model))
        result = model(input_ids=x, use_cache=True)
        for _ in range(max_new):
            token = int(result.logits[0, -1].argmax())
            if token in stops:
                break
            out.append(token)
            result = model(input_ids=torch.tensor([[token]], device=x.device), past_key_values=result.past_key_values,
                           use_cache=True)
    return out


def _device(model: Any) -> Any:
    return next(model.parameters()).device


__all__ = ["example_loss", "greedy", "margins", "token_losses"]

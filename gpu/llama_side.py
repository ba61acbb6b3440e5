"""The llama.cpp side of every comparison: next-token losses and greedy tokens from the GGUF the embedded
backend runs, with or without a LoRA adapter. Greedy decoding is done here step by step on the raw logits
(argmax, no sampler, no repeat penalty), so a difference from torch is the models', never the samplers'."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def open_llama(gguf: Path, *, adapter: Path | None = None, n_ctx: int = 1024, threads: int = 2,
               logits_all: bool = True) -> Any:
    from llama_cpp import Llama

    kwargs: dict[str, Any] = {"lora_path": str(adapter)} if adapter is not None else {}
    return Llama(model_path=str(gguf), n_ctx=n_ctx, n_threads=threads, logits_all=logits_all, verbose=False,
                 **kwargs)


def token_losses(llama: Any, ids: Sequence[int]) -> list[float]:
    """-log p(ids[i+1] | ids[:i+1]) for every position (the model needs `logits_all=True`)."""
    import numpy as np

    llama.reset()
    llama.eval(list(ids))
    logits = np.asarray(llama.scores[: len(ids) - 1], dtype=np.float64)
    top = logits.max(axis=1, keepdims=True)
    logz = (top[:, 0] + np.log(np.exp(logits - top).sum(axis=1)))
    picked = logits[np.arange(len(ids) - 1), np.asarray(ids[1:])]
    return [float(v) for v in (logz - picked)]


def argmaxes(llama: Any, ids: Sequence[int], start: int) -> list[int]:
    """The next-token argmax at every position from `start`, teacher-forced on `ids`."""
    import numpy as np

    llama.reset()
    llama.eval(list(ids))
    return [int(i) for i in np.asarray(llama.scores[start:len(ids)]).argmax(axis=1)]


def greedy(llama: Any, ids: Sequence[int], max_new: int, stop: Sequence[int] = ()) -> list[int]:
    import numpy as np

    llama.reset()
    llama.eval(list(ids))
    out: list[int] = []
    stops = set(stop) | {llama.token_eos()}
    for _ in range(max_new):
        token = int(np.argmax(llama.scores[llama.n_tokens - 1]))
        if token in stops:
            break
        out.append(token)
        llama.eval([token])
    return out


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else float("nan")


__all__ = ["argmaxes", "greedy", "mean", "open_llama", "token_losses"]

"""Is the torch model the model llama.cpp runs? Checked before training is trusted, and again after export.

- Tokens: the transformers tokenizer and llama.cpp tokenize the same texts to the same ids.
- Loss: the mean next-token loss of both on the same ids (vault text) agrees within `LOSS_TOLERANCE` nats.
  torch runs the exactly dequantized Q4_1 weights in fp32; llama.cpp multiplies Q4_1 blocks with 8-bit
  quantized activations, which moves the loss by thousandths of a nat (measured: 3.038 vs 3.040 on vault text).
- Greedy: torch decodes `new_tokens` greedily from each prompt; llama.cpp, fed the same prefix at every step,
  must pick the same token — except where torch's top two candidates are within `TIE_MARGIN` nats of each
  other, a tie that the 8-bit activations may break either way. A free-running comparison would part at
  the first such tie and compare unrelated text after it; teacher forcing checks every step.

The same functions compare a peft adapter in torch with its GGUF export in llama.cpp (`adapter=`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu import llama_side, torch_side
from gpu.encode import prompt_text

LOSS_TOLERANCE = 0.05  # nats per token
# nats between torch's top two logits below which either pick is the same model: the base model alone (no
# adapter) differed from llama.cpp at 10 of 128 greedy steps on 8 training prompts, all at margins ≤ 0.212
TIE_MARGIN = 0.25
NEW_TOKENS = 16


@dataclass
class Parity:
    torch_loss: float
    llama_loss: float
    tokens_equal: bool
    steps: int  # greedy steps compared
    same: int  # steps where llama.cpp picked torch's token
    ties: int  # differing steps that were ties (within TIE_MARGIN)
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def loss_gap(self) -> float:
        return abs(self.torch_loss - self.llama_loss) if self.torch_loss == self.torch_loss else 0.0

    @property
    def real_differences(self) -> int:
        return self.steps - self.same - self.ties

    @property
    def ok(self) -> bool:
        return self.tokens_equal and self.loss_gap <= LOSS_TOLERANCE and self.real_differences == 0

    def as_dict(self) -> dict[str, Any]:
        return {"torch_loss": round(self.torch_loss, 4), "llama_loss": round(self.llama_loss, 4),
                "loss_gap": round(self.loss_gap, 4), "tokens_equal": self.tokens_equal, "greedy_steps": self.steps,
                "greedy_same": self.same, "greedy_ties": self.ties, "ok": self.ok}

    def why(self) -> str:
        if self.ok:
            return "ok"
        parts = []
        if not self.tokens_equal:
            parts.append("the tokenizers disagree")
        if self.loss_gap > LOSS_TOLERANCE:
            parts.append(f"loss {self.torch_loss:.3f} (torch) vs {self.llama_loss:.3f} (llama.cpp)")
        if self.real_differences:
            parts.append(f"llama.cpp picks another greedy token at {self.real_differences} of {self.steps} steps")
        return "; ".join(parts)


def compare(model: Any, tokenizer: Any, gguf: Path, texts: Sequence[str], prompts: Sequence[Sequence[dict[str, str]]],
            *, adapter: Path | None = None, max_tokens: int = 256, new_tokens: int = NEW_TOKENS,
            threads: int = 2) -> Parity:
    """Losses on `texts` and greedy steps on chat `prompts`, torch model against llama.cpp (+ adapter)."""
    llama = llama_side.open_llama(gguf, adapter=adapter, n_ctx=max(512, max_tokens + new_tokens + 64),
                                  threads=threads)
    try:
        tokens_equal = True
        t_losses: list[float] = []
        l_losses: list[float] = []
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
            theirs = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)[:max_tokens]
            tokens_equal = tokens_equal and list(ids) == list(theirs)
            if len(ids) >= 2:
                t_losses += torch_side.token_losses(model, ids)
                l_losses += llama_side.token_losses(llama, ids)
        steps = same = ties = 0
        samples = []
        stop = [int(tokenizer.eos_token_id)] if tokenizer.eos_token_id is not None else []
        for messages in prompts:
            ids = tokenizer(prompt_text(tokenizer, messages), add_special_tokens=False)["input_ids"][-max_tokens:]
            ours = torch_side.greedy(model, ids, new_tokens, stop)
            seq = [*ids, *ours]
            picks = torch_side.margins(model, seq, len(ids) - 1)[:len(ours)]
            theirs = llama_side.argmaxes(llama, seq, len(ids) - 1)[:len(ours)]
            for (token, margin), other in zip(picks, theirs, strict=True):
                steps += 1
                same += int(token == other)
                ties += int(token != other and margin < TIE_MARGIN)
            samples.append({"text": tokenizer.decode(ours), "differ": {i: round(m, 3) for i, ((t, m), o) in
                                                                     enumerate(zip(picks, theirs, strict=True)) if t != o}})
        return Parity(llama_side.mean(t_losses) if t_losses else float("nan"),
                      llama_side.mean(l_losses) if l_losses else float("nan"), tokens_equal, steps, same, ties, samples)
    finally:
        llama.close()


__all__ = ["LOSS_TOLERANCE", "NEW_TOKENS", "TIE_MARGIN", "Parity", "compare"]

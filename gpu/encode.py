"""Examples → token ids and labels, through the model's own chat template (the one llama.cpp applies at
inference), with the loss only on the assistant's answer.

Labels are the input ids themselves (prompt tokens and padding masked with -100): the model shifts them by one
internally. Shifting them here as well would train every position on the token two ahead — one of the ways a
first loss comes out absurdly high.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gpu.data import Example

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    labels: list[int]  # IGNORE on prompt tokens

    @property
    def trained(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


def prompt_text(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    """The chat-formatted prompt, ending where the assistant's answer begins."""
    return str(tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))


def encode(tokenizer: Any, example: Example, max_len: int) -> Encoded:
    """Prompt + answer tokens; longer than `max_len` → cut from the left, so the answer is kept."""
    head = prompt_text(tokenizer, example.prompt)
    full = str(tokenizer.apply_chat_template([*example.prompt, {"role": "assistant", "content": example.target}],
                                             tokenize=False))
    if not full.startswith(head):  # a template that rewrites earlier turns: fall back to plain concatenation
        full = head + example.target + (tokenizer.eos_token or "")
    head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    n_head = _common_prefix(head_ids, ids)
    labels = [IGNORE] * n_head + ids[n_head:]
    if len(ids) > max_len:
        ids, labels = ids[-max_len:], labels[-max_len:]
    return Encoded(list(ids), labels)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors: input_ids, attention_mask, labels."""
    import torch

    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.ids)
        ids[i, :n] = torch.tensor(e.ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pad_id(tokenizer: Any) -> int:
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


__all__ = ["IGNORE", "Encoded", "collate", "encode", "pad_id", "prompt_text"]

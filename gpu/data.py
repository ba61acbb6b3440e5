"""A task's training data: JSONL files of chat or completion examples, read strictly and split reproducibly.

Two shapes per line (both become chat messages, since the embedded backend always talks through the model's
chat template, and training must see what inference sees):
- chat: `{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}` — the last message must
  be the assistant's; it is what the model learns (earlier turns are the prompt);
- completion: `{"prompt": "...", "completion": "..."}` — one user turn, one assistant turn.

The held-out split depends on the data only (examples ordered by their content hash), so every experiment and
every sweep trial on the same data is measured on the same held-out examples: their losses pair up.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from domain.ids import sha256_text

ROLES = ("system", "user", "assistant")


class DataError(ValueError):
    """A training file cannot be used; the message names the file, the line, the field and the fix."""


@dataclass(frozen=True)
class Example:
    messages: tuple[tuple[str, str], ...]  # (role, content); the last one is the assistant's target
    source: str  # "data/planner.jsonl:3"

    @property
    def prompt(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages[:-1]]

    @property
    def target(self) -> str:
        return self.messages[-1][1]

    @property
    def key(self) -> str:
        return sha256_text(json.dumps(self.messages))


@dataclass(frozen=True)
class Dataset:
    examples: tuple[Example, ...]
    files: dict[str, str]  # vault-relative path -> sha256 of the bytes read

    @property
    def hash(self) -> str:
        """The data's identity: the files' hashes (the same data under another glob is the same dataset)."""
        return sha256_text(json.dumps(sorted(self.files.values())))


def parse_line(text: str, where: str) -> Example | None:
    """One JSONL line → Example; blank lines → None; anything else malformed → DataError."""
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not JSON ({e.msg}) — fix: one JSON object per line") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: a JSON {type(obj).__name__}, not an object — fix: one JSON object per line")
    if "messages" in obj:
        return Example(_messages(obj["messages"], where), where)
    prompt, completion = obj.get("prompt"), obj.get("completion")
    if not isinstance(prompt, str) or not isinstance(completion, str):
        missing = "prompt" if not isinstance(prompt, str) else "completion"
        raise DataError(f"{where}: field {missing!r} missing or not a string — fix: write "
                        '{"prompt": "...", "completion": "..."} or {"messages": [...]}')
    if not completion.strip():
        raise DataError(f"{where}: field 'completion' is empty — fix: give the answer the model should learn")
    return Example((("user", prompt), ("assistant", completion)), where)


def _messages(raw: object, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or len(raw) < 2:
        raise DataError(f"{where}: field 'messages' must list at least a user and an assistant message")
    out = []
    for i, m in enumerate(raw):
        role = m.get("role") if isinstance(m, dict) else None
        content = m.get("content") if isinstance(m, dict) else None
        if role not in ROLES or not isinstance(content, str):
            raise DataError(f"{where}: messages[{i}] needs a role ({'/'.join(ROLES)}) and a string content")
        out.append((str(role), content))
    if out[-1][0] != "assistant" or not out[-1][1].strip():
        raise DataError(f"{where}: the last message must be a non-empty assistant message (what is learned)")
    return tuple(out)


def read_dataset(root: Path, paths: Sequence[str]) -> Dataset:
    """Every example of the given vault-relative JSONL files, in file order."""
    examples: list[Example] = []
    files: dict[str, str] = {}
    for rel in sorted(paths):
        data = (root / rel).read_bytes()
        files[rel] = hashlib.sha256(data).hexdigest()
        for i, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
            ex = parse_line(line, f"{rel}:{i}")
            if ex is not None:
                examples.append(ex)
    if not examples:
        raise DataError(f"{', '.join(sorted(paths)) or 'training.data'}: no examples — fix: add JSONL lines")
    return Dataset(tuple(examples), files)


def split(dataset: Dataset, heldout: float) -> tuple[list[Example], list[Example]]:
    """(train, held-out): the held-out share taken in content-hash order, at least one when there are two."""
    ordered = sorted(dataset.examples, key=lambda e: (e.key, e.source))
    n = len(ordered)
    k = 0 if heldout <= 0 or n < 2 else min(n - 1, max(1, round(n * heldout)))
    held = {id(e) for e in ordered[:k]}
    return [e for e in dataset.examples if id(e) not in held], [e for e in dataset.examples if id(e) in held]


def subset(train: Sequence[Example], share: float, seed: int) -> list[Example]:
    """A seeded share of the training split (a sweep's data-subset axis); all of it at share 1."""
    if share >= 1:
        return list(train)
    order = list(train)
    random.Random(seed).shuffle(order)
    return order[:max(1, math.ceil(len(order) * share))]


def batches(n: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Example indices for every step: seeded epochs of a shuffled order, so a resumed run sees the same batches."""
    rng = random.Random(seed)
    out: list[list[int]] = []
    order: list[int] = []
    while len(out) < steps:
        batch: list[int] = []
        while len(batch) < batch_size:
            if not order:
                order = list(range(n))
                rng.shuffle(order)
            batch.append(order.pop())
        out.append(batch)
    return out


__all__ = ["DataError", "Dataset", "Example", "batches", "parse_line", "read_dataset", "split", "subset"]

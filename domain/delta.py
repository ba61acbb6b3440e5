"""A delta: one concrete, reviewable change to vault files, made against known file hashes.

Every lever (prompt edit, config knob, model swap, candidate pool, script fix, postprocessor, training
data) becomes file edits in the end: knob and model changes are edits of vault.yml's task block or of a
config file. Keeping one shape means one path through verify, apply, approval and the ledger.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from domain.ids import sha256_text

Lever = Literal["prompt", "config", "script", "model", "candidates", "postprocess", "data", "mixed"]


@dataclass(frozen=True)
class FileEdit:
    """Replace (or create, when `before_hash` is None) one vault file; `after` None deletes it."""

    path: str  # relative to the vault root (or to vault.yml's folder when `in_config` is True)
    before_hash: str | None
    after: str | None
    in_config: bool = False  # the edit is to vault.yml itself (knobs, model swaps, candidate pools)

    @property
    def after_hash(self) -> str | None:
        return None if self.after is None else sha256_text(self.after)


@dataclass(frozen=True)
class Delta:
    task: str
    lever: Lever
    description: str  # one line for the ledger: "morning-briefing: num_predict 300→600, think false"
    rationale: str  # why the proposer believes it helps (signature evidence)
    edits: tuple[FileEdit, ...]
    proposer: str
    signatures: tuple[str, ...] = ()  # what it is meant to fix
    tasks: tuple[str, ...] = ()  # every task whose behaviour it may change (producer and consumer)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """Identity of the change itself (not of who proposed it or why): never verify the same delta twice."""
        body = [(e.path, e.in_config, e.before_hash, e.after_hash) for e in sorted(self.edits, key=lambda e: e.path)]
        return sha256_text(json.dumps(body, sort_keys=True))

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.edits]

    def is_noop(self, current: dict[str, str | None]) -> bool:
        """True when every edit would leave its file as it is (`current`: path → text now)."""
        return all(current.get(e.path) == e.after for e in self.edits)


def unified_diff(path: str, before: str | None, after: str | None) -> str:
    return "".join(difflib.unified_diff(
        (before or "").splitlines(keepends=True), (after or "").splitlines(keepends=True),
        fromfile=f"a/{path}" if before is not None else "/dev/null",
        tofile=f"b/{path}" if after is not None else "/dev/null",
    ))


def delta_diff(delta: Delta, current: dict[str, str | None]) -> str:
    """The whole delta as one unified diff against `current` texts (what a human reviews)."""
    return "".join(unified_diff(e.path, current.get(e.path), e.after) for e in delta.edits)

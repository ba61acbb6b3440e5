"""The baseline a delta is made against, as one hash: what verifying it starts from that a kept delta can change
— each task's block of vault.yml as loaded, and the bytes of its own files (its prompt and the vault files its
command lines name).

Dedup is per (delta, baseline): a delta discarded against one baseline may well help once another kept delta
changed it (a prompt edit that failed under `num_predict: 300` may pass under 600), so it is refused again only
while its baseline is what it was. The delta's content hash already covers the files it edits; this covers the
rest of what its tasks read that a cycle can change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from domain.config import VaultConfig
from domain.ids import sha256_bytes, sha256_text
from handlers.verify_delta import task_scripts

MAX_BYTES = 4 * 1024 * 1024  # a vault file bigger than this is not a prompt or a script: its size stands in


def baseline_hash(config: VaultConfig, tasks: Iterable[str]) -> str:
    parts: dict[str, object] = {}
    root = config.root.resolve()
    for name in sorted(set(tasks)):
        tc = config.tasks.get(name)
        if tc is None:
            parts[name] = None
            continue
        files = {rel: _digest(root, rel) for rel in sorted(task_scripts(tc)) if rel}
        parts[name] = {"config": tc.model_dump(mode="json"), "files": {k: v for k, v in files.items() if v}}
    return sha256_text(json.dumps(parts, sort_keys=True, default=str))


def _digest(root: Path, rel: str) -> str | None:
    """The sha256 of a vault file named `rel` (None: not a file inside the vault, e.g. `python3` or `/bin/sh`)."""
    try:
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        size = path.stat().st_size
        return f"size:{size}" if size > MAX_BYTES else sha256_bytes(path.read_bytes())
    except (OSError, ValueError):
        return None

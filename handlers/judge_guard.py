"""A delta may never weaken the judge: what the vault is measured by stays what it was.

Verification judges both arms by the baseline's contract, so a delta cannot win by loosening its own
`expect`; but a kept delta would then apply the looser contract live, and every later cycle would be judged
by it. So an edit that changes any of these is refused as out of scope, whatever it claims to fix:
- every top-level key of vault.yml but `tasks`: the judge, the research settings (threshold, target, samples,
  max_samples, min_effect, editable, approve, …), proposers, backends, sandbox, store, vault, logs;
- a task's `expect`, `requires`, `rubric`, `outputs` (what it promises its consumers), `enabled`, and its
  `training` block but the hyperparameters (`params`) — the data audit's contract;
- adding or removing a task;
- the text of a rubric file (`judge.rubric`, every task's `rubric`).
Stricter counts too: a contract changes by a human's hand, where it is recorded as theirs.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from adapters.config_yaml import YamlSyntaxError, compose_yaml
from domain.config import VaultConfig
from domain.delta import Delta

PROTECTED_TASK_KEYS = ("expect", "requires", "rubric", "outputs", "enabled")
TRAINING_FREE = ("params",)  # the only part of `training` a delta may tune


def parse(text: str) -> dict[str, Any]:
    """vault.yml text as plain data; ValueError (one line) when it is not a YAML mapping."""
    try:
        data = compose_yaml(text).data
    except YamlSyntaxError as e:
        raise ValueError(f"not valid YAML (line {e.line}): {e.message}") from None
    except Exception as e:  # untrusted text (a proposal): whatever the parser refuses, the edit is refused
        raise ValueError(f"not readable as YAML ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise ValueError("not a YAML mapping")
    return data


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _training(task: Mapping[str, Any]) -> Any:
    block = task.get("training")
    if not isinstance(block, Mapping):
        return block
    return {k: v for k, v in block.items() if k not in TRAINING_FREE}


def config_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The judging settings an edit of vault.yml changes: 'judge', 'research', 'tasks.brief.expect', …"""
    out = [str(k) for k in sorted(set(before) | set(after), key=str) if k != "tasks" and before.get(k) != after.get(k)]
    old, new = before.get("tasks"), after.get("tasks")
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return [*out, "tasks"] if old != new else out
    out += [f"tasks.{name} ({'added' if name in new else 'removed'})" for name in sorted(set(old) ^ set(new), key=str)]
    for name in sorted(set(old) & set(new), key=str):
        a, b = _mapping(old[name]), _mapping(new[name])
        out += [f"tasks.{name}.{key}" for key in PROTECTED_TASK_KEYS if a.get(key) != b.get(key)]
        if _training(a) != _training(b):
            out.append(f"tasks.{name}.training")
    return out


def text_changes(before: str, after: str) -> list[str]:
    """`config_changes` of two vault.yml texts; ValueError when either is not a YAML mapping."""
    return config_changes(parse(before), parse(after))


def rubric_paths(data: Mapping[str, Any]) -> set[str]:
    """Vault-relative rubric files vault.yml names (the judge's and every task's)."""
    named = [_mapping(data.get("judge")).get("rubric")]
    named += [_mapping(t).get("rubric") for t in _mapping(data.get("tasks")).values()]
    return {posixpath.normpath(p) for p in named if isinstance(p, str) and p}


def judge_problems(delta: Delta, config: VaultConfig) -> list[str]:
    """Every way the delta would change how the vault is judged (empty when it would not)."""
    name = config.source.name
    try:
        live = parse(config.source.read_text(encoding="utf-8")) if config.source.is_file() else {}
    except (OSError, ValueError):
        live = {}
    problems: list[str] = []
    for edit in delta.edits:
        if edit.in_config:
            try:
                changed = config_changes(live, parse(edit.after)) if edit.after is not None else [f"{name} (deleted)"]
            except ValueError as e:
                changed = [f"{name} ({e})"]
            if changed:
                problems.append(f"{name} edit changes {', '.join(changed)}: a delta may never change how the vault "
                                "is judged (contracts, rubrics, the judge, research or sandbox settings)")
        elif posixpath.normpath(edit.path) in rubric_paths(live):
            problems.append(f"{edit.path} is a judge rubric: a delta may never change how the vault is judged")
    return problems


__all__ = ["PROTECTED_TASK_KEYS", "config_changes", "judge_problems", "parse", "rubric_paths", "text_changes"]

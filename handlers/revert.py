"""Revert a change: its inverse delta, verified and applied like any cycle's delta.

The inverse is made against the live files, not against the change's own "after": later edits stay. Per file,
a three-way merge takes the live text ("ours") from the change's after-text (the base) to its before-text
("theirs"); a file untouched since is simply restored, a later edit that overlaps the change makes the revert
refuse with a one-line reason (a human decides then). The delta then goes through `handlers.cycle.run_cycle`
unchanged — scope, the dedup of verified deltas, paired verification, approval for `research.approve` paths,
atomic apply against the live hashes, git commit — recorded as a cycle whose trigger names the change. Its
`Task.Changed` events say `by: revert`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain.aggregates import Audit
from domain.delta import Delta, FileEdit, Lever
from domain.ids import sha256_text
from handlers.audit import AuditDeps, task_changes, vault_at
from handlers.cycle import CycleDeps, CycleResult, run_cycle
from handlers.rebuild import RebuildError, VaultAt
from handlers.verify_delta import command_paths
from projections.changes import Change
from projections.globs import matches

Merge = Callable[[str, str, str], str | None]  # (base, ours, theirs) -> merged text, None on a conflict


class RevertRefused(ValueError):
    """The change cannot be inverted against the live files (a one-line reason)."""


@dataclass(frozen=True)
class RevertEvidence:
    """What the revert cycle's Diagnosed event records instead of signatures."""

    task: str
    change: dict[str, Any]
    reason: str
    signatures: tuple[str, ...] = ()

    @property
    def tasks(self) -> list[str]:
        return [self.task]


def find_change(deps: AuditDeps, task: str, position: int) -> Change:
    for c in task_changes(deps, task):
        if c.position == position:
            return c
    raise KeyError(f"no change of {task} at #{position}; `autovault audit {task}` lists its changes with positions")


def lever_of(deps: AuditDeps, task: str, paths: list[str]) -> Lever:
    t = deps.config.tasks.get(task)
    if t is None or len(paths) != 1:
        return "mixed"
    path = paths[0]
    if path == deps.config.source.name:
        return "config"
    if t.training is not None and matches(t.training.data, path):
        return "data"
    if path in command_paths(t.collect) | command_paths(t.postprocess):
        return "script"
    return "prompt"


def inverse_delta(deps: AuditDeps, task: str, change: Change, merge: Merge, why: str = "") -> Delta:
    """The edits that undo `change` on top of the live files (see the module docstring)."""
    vault = vault_at(deps, task_changes(deps, task))
    config_file = deps.config.source.name
    edits: list[FileEdit] = []
    targets = _targets(vault, change, config_file)
    for path, (after, before) in targets.items():
        live = deps.live_config() if path == config_file else deps.live_text(path)
        restored = _restore(path, after, before, live, merge)
        if restored == live:
            continue
        edits.append(FileEdit(path, sha256_text(live) if live is not None else None, restored,
                              in_config=path == config_file))
    if not edits:
        raise RevertRefused(f"#{change.position} is already undone in the live files: nothing to revert")
    paths = [e.path for e in edits]
    return Delta(task=task, lever=lever_of(deps, task, paths), description=f"revert #{change.position}: {change.summary}",
                 rationale=why or f"undo change #{change.position} ({change.kind}, by {change.by})",
                 edits=tuple(edits), proposer="revert", tasks=(task,),
                 meta={"revert_of": change.position, "kind": change.kind})


def _targets(vault: VaultAt, change: Change, config_file: str) -> dict[str, tuple[str | None, str | None]]:
    """path -> (its text just after the change, its text just before), vault.yml included."""
    out: dict[str, tuple[str | None, str | None]] = {}
    try:
        for f in change.files:
            if f.path == config_file:
                continue
            out[f.path] = (vault.text(f.path, f.after), vault.text(f.path, f.before))
        if any(s.name == "file" for s in change.sections) or any(f.path == config_file for f in change.files):
            after = vault.config_at(change.position)
            before = vault.config_at(change.position - 1)
            if after is None or before is None:
                after = after if after is not None else vault.live_config
                before = before if before is not None else vault.live_config
            out[config_file] = (after, before)
    except RebuildError as e:
        raise RevertRefused(f"cannot rebuild what #{change.position} changed: {e}") from None
    return out


def _restore(path: str, after: str | None, before: str | None, live: str | None, merge: Merge) -> str | None:
    if live == after:
        return before
    if after is None or before is None or live is None:
        raise RevertRefused(f"{path} was created or deleted by the change and has changed since: revert it by hand")
    merged = merge(after, live, before)
    if merged is None:
        raise RevertRefused(f"{path}: a later edit overlaps the change, so it does not revert cleanly — edit it by hand")
    return merged


def revert(cycle_deps: CycleDeps, audit_deps: AuditDeps, task: str, change: Change, merge: Merge, *,
           reason: str = "", audit: str | None = None) -> CycleResult:
    """Undo `change` through one improvement cycle on `task` (verification decides, approval rules apply); with
    `audit`, the audit that named the change gets an `Audit.Reverted` naming the cycle."""
    delta = inverse_delta(audit_deps, task, change, merge, reason or (f"audit {audit} named it" if audit else ""))
    evidence = RevertEvidence(task, change.as_dict(), delta.rationale)
    deps = dataclasses.replace(cycle_deps, diagnose=lambda _task: evidence, proposers=[("revert", lambda _ev: [delta])])
    result = run_cycle(deps, task, mode="revert", trigger=f"revert:#{change.position}")
    if audit is not None:
        batch = audit_deps.store.batch()
        batch.add(Audit.create_id(audit), lambda a: a.reverted(cycle=result.key, outcome=result.outcome,
                                                               reason=result.reason))
        batch.commit()
    return result

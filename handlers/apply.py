"""Apply a kept delta to the live vault: in scope, against the hashes it was made on, atomically, recorded.

Order of refusals (each one line, recorded by the cycle): a path that escapes the vault, a path outside
`research.editable` (vault.yml edits, `in_config=True`, are allowed but must name vault.yml itself), an edit
that would change how the vault is judged (`handlers.judge_guard`: contracts, rubrics, judge, research), a
live file whose hash is no longer the delta's `before_hash` (a human edited it: never overwrite), and a
candidate vault.yml that no longer validates. Then the files, the git commit (when the vault lives in a git
repository; its message names the cycle) and the events — a `Task.Changed(by="cycle", cycle_id)` per file
and task, with its diff in the blob table, and the cycle's `Kept` — are one unit: one journaled
`adapters.atomic.apply_files` call whose journal carries the events to record (`handlers.apply_journal`), so
a kill at any step is finished or rolled back as a whole by the next command's recovery.

When vault.yml sits outside the vault folder, the apply root is the closest folder holding both (the
journal lives there; `apply_root(config)` is what `recover_applies` is called on).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from adapters.atomic import HashConflict, PathEscape, Step, apply_files, safe_path, sha256_file
from domain.config import VaultConfig
from domain.delta import Delta, FileEdit, unified_diff
from handlers.apply_journal import (
    ApplyPlan,
    ChangeRecord,
    GitPlan,
    RecordStore,
    apply_root,
    commit_plan,
    record_plan,
    task_versions,
)
from handlers.executable import code_paths
from handlers.judge_guard import judge_problems
from handlers.ports import Outside
from handlers.verify_delta import load_config_text
from projections.globs import matches


class OutOfScope(ValueError):
    """The delta touches a path it may not: outside the vault, or not editable."""


@dataclass(frozen=True)
class Applied:
    hashes: dict[str, str | None]  # path as in the delta -> new sha256 (None: deleted)
    commit: str | None
    commit_error: str | None = None  # the files were written, git refused the commit (said in the cycle's result)


def edit_location(config: VaultConfig, edit: FileEdit) -> Path:
    """The absolute file an edit names; raises OutOfScope for an escape or an in_config edit of another file."""
    try:
        if edit.in_config:
            target = safe_path(config.source.resolve().parent, edit.path)
            if target != config.source.resolve():
                raise OutOfScope(f"{edit.path}: an in_config edit must name {config.source.name} itself")
            return target
        return safe_path(config.root, edit.path)
    except PathEscape as e:
        raise OutOfScope(f"path escape: {e}") from None


def plain_path(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and "\\" not in path and all(p not in ("", ".", "..") for p in parts)


def scope_problems(delta: Delta, config: VaultConfig) -> list[str]:
    """Every reason the delta may not touch the vault; empty when it may."""
    problems: list[str] = []
    for edit in delta.edits:
        try:
            edit_location(config, edit)
        except OutOfScope as e:
            problems.append(str(e))
            continue
        if not edit.in_config and not plain_path(edit.path):  # globs match the text: 'data/../x' is not data/**
            problems.append(f"{edit.path!r} is not a plain vault-relative path (no '..', '.', '//' or leading '/')")
            continue
        if not edit.in_config and not any(matches(g, edit.path) for g in config.research.editable):
            problems.append(f"{edit.path} is not editable (research.editable: {', '.join(config.research.editable)})")
    return problems or judge_problems(delta, config)  # a delta may never weaken the judge (handlers.judge_guard)


def approval_paths(delta: Delta, config: VaultConfig) -> list[str]:
    """What in the delta adds or changes code that will run (`research.approve` paths, command lines, files
    they name, anything that looks like code: `handlers.executable`): the delta waits for `autovault approve`
    before any of it runs, verification included."""
    return code_paths(delta, config)


def live_texts(delta: Delta, config: VaultConfig) -> dict[str, str | None]:
    """path -> current live text (None: no such file) for each edit."""
    out: dict[str, str | None] = {}
    for edit in delta.edits:
        path = edit_location(config, edit)
        out[edit.path] = path.read_text(encoding="utf-8") if path.is_file() else None
    return out


def stale_paths(delta: Delta, config: VaultConfig) -> list[str]:
    """Edits whose live file no longer has the hash the delta was made against."""
    return [e.path for e in delta.edits if sha256_file(edit_location(config, e)) != e.before_hash]


def split_edits(delta: Delta) -> tuple[dict[str, str | None], str | None]:
    """(vault files -> new text, new vault.yml text or None)."""
    files = {e.path: e.after for e in delta.edits if not e.in_config}
    config_text = next((e.after for e in delta.edits if e.in_config), None)
    return files, config_text


def check_candidate_config(delta: Delta, config: VaultConfig, env: Mapping[str, str], outside: Outside,
                           on_step: Step | None = None) -> None:
    """A vault.yml edit must still validate with the delta's other files in place (ConfigError otherwise)."""
    files, config_text = split_edits(delta)
    if config_text is None:
        return
    with outside.workspaces(config.root) as ws:
        if on_step is not None:
            on_step("shadow")
        ws.overlay(files)
        load_config_text(config_text, config, ws.root, env, load=outside.load_config)


def apply_delta(
    delta: Delta,
    config: VaultConfig,
    store: RecordStore,
    cycle: str,
    outside: Outside,
    *,
    env: Mapping[str, str] | None = None,
    git: bool = True,
    on_written: Callable[[str], None] | None = None,
    on_step: Step | None = None,
) -> Applied:
    """Write the delta to the live vault and record it. Raises OutOfScope, HashConflict or ConfigError and writes
    nothing then; an error while writing rolls the written files back; an error while recording leaves the
    journal for the next recovery (the files stay new). `outside` gives the shadow that validates a vault.yml
    edit and the git that commits (`git=False`: no commit). `on_step(name)` is called at every step."""
    problems = scope_problems(delta, config)
    if problems:
        raise OutOfScope("; ".join(problems))
    root = apply_root(config)
    for edit in delta.edits:  # a clear error before the journal is even staged
        path = edit_location(config, edit)
        actual = sha256_file(path)
        if actual != edit.before_hash:
            raise HashConflict(edit.path, edit.before_hash, actual)
    check_candidate_config(delta, config, env or {}, outside, on_step)
    plan = apply_plan(delta, config, store, cycle, outside.git.repo_root(config.root) if git else None, root)
    rel_of = {e.path: edit_location(config, e).relative_to(root).as_posix() for e in delta.edits}
    changes = {rel_of[e.path]: (e.before_hash, e.after) for e in delta.edits}
    outcome: dict[str, str | None] = {}

    step = on_step or (lambda _name: None)

    def finish(_written: dict[str, str | None]) -> None:
        outcome["commit"], outcome["error"] = commit_plan(plan, root, outside.git)
        step("committed-git")
        record_plan(store, plan, outcome["commit"])
        step("recorded")

    written = apply_files(root, changes, on_written=on_written, plan=plan.to_json(), finish=finish, on_step=on_step)
    hashes = {e.path: written[rel_of[e.path]] for e in delta.edits}
    return Applied(hashes, outcome.get("commit"), outcome.get("error"))


def apply_plan(delta: Delta, config: VaultConfig, store: RecordStore, cycle: str, repo: Path | None,
               root: Path) -> ApplyPlan:
    """What the apply must record: a Changed per file and task (diffs against the live texts), the cycle's Kept,
    the git commit."""
    before = live_texts(delta, config)
    tasks = tuple(delta.tasks or (delta.task,))
    changes = tuple(ChangeRecord(e.path, e.before_hash, e.after_hash, unified_diff(e.path, before[e.path], e.after),
                                 tasks) for e in delta.edits)
    git_plan = None
    if repo is not None:
        needle = f"cycle {cycle}"
        git_plan = GitPlan(os.path.relpath(repo, root), tuple(os.path.relpath(edit_location(config, e), root)
                                                              for e in delta.edits),
                           f"autovault: {delta.description}\n\n{needle}\nlever {delta.lever}, proposer {delta.proposer}",
                           needle)
    by = "revert" if delta.meta.get("revert_of") is not None else "cycle"  # handlers.revert: an inverse delta
    return ApplyPlan(cycle=cycle, by=by, changes=changes, versions=task_versions(store, tasks), git=git_plan)


__all__ = ["Applied", "HashConflict", "OutOfScope", "apply_delta", "apply_plan", "apply_root", "approval_paths",
           "check_candidate_config", "edit_location", "live_texts", "scope_problems", "split_edits", "stale_paths"]

"""Apply a kept delta to the live vault: in scope, against the hashes it was made on, atomically, recorded.

Order of refusals (each one line, recorded by the cycle): a path that escapes the vault, a path outside
`research.editable` (vault.yml edits, `in_config=True`, are allowed but must name vault.yml itself), a
live file whose hash is no longer the delta's `before_hash` (a human edited it: never overwrite), and a
candidate vault.yml that no longer validates. Then every file is written by one `adapters.atomic.apply_files`
call (journaled: a crash leaves each file old or new and `recover` rolls forward), each file gets a
`Task.Changed(by="cycle", cycle_id)` with its diff in the blob table, and — when the vault lives in a git
repository — the files are committed with a message naming the cycle.

When vault.yml sits outside the vault folder, the apply root is the closest folder holding both (the
journal lives there; `apply_root(config)` is what `recover` must be called on).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from adapters.atomic import HashConflict, PathEscape, apply_files, safe_path, sha256_file
from adapters.git import GitError, commit_paths, repo_root
from adapters.workspace import ShadowWorkspace
from domain.config import VaultConfig
from domain.delta import Delta, FileEdit, unified_diff
from handlers.verify import load_config_text
from projections.globs import matches


class OutOfScope(ValueError):
    """The delta touches a path it may not: outside the vault, or not editable."""


class ChangeStore(Protocol):
    def batch(self) -> Any: ...


@dataclass(frozen=True)
class Applied:
    hashes: dict[str, str | None]  # path as in the delta -> new sha256 (None: deleted)
    commit: str | None
    commit_error: str | None = None  # the files were written, git refused the commit (said in the cycle's result)


def apply_root(config: VaultConfig) -> Path:
    """Where the journal lives: the vault root, or the folder holding both it and vault.yml."""
    root, cfg_dir = config.root.resolve(), config.source.resolve().parent
    return Path(os.path.commonpath([root, cfg_dir]))


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


def scope_problems(delta: Delta, config: VaultConfig) -> list[str]:
    """Every reason the delta may not touch the vault; empty when it may."""
    problems: list[str] = []
    for edit in delta.edits:
        try:
            edit_location(config, edit)
        except OutOfScope as e:
            problems.append(str(e))
            continue
        if not edit.in_config and not any(matches(g, edit.path) for g in config.research.editable):
            problems.append(f"{edit.path} is not editable (research.editable: {', '.join(config.research.editable)})")
    return problems


def approval_paths(delta: Delta, config: VaultConfig) -> list[str]:
    """Paths of the delta matching `research.approve` (`vault.yml` there gates config edits too): the delta
    waits for `autovault approve`."""
    return [e.path for e in delta.edits if any(matches(g, e.path) for g in config.research.approve)]


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


def check_candidate_config(delta: Delta, config: VaultConfig, env: Mapping[str, str]) -> None:
    """A vault.yml edit must still validate with the delta's other files in place (ConfigError otherwise)."""
    files, config_text = split_edits(delta)
    if config_text is None:
        return
    with ShadowWorkspace.create(config.root) as ws:
        ws.overlay(files)
        load_config_text(config_text, config, ws.root, env)


def apply_delta(
    delta: Delta,
    config: VaultConfig,
    store: ChangeStore,
    cycle: str,
    *,
    env: Mapping[str, str] | None = None,
    git: bool = True,
    on_written: Callable[[str], None] | None = None,
) -> Applied:
    """Write the delta to the live vault. Raises OutOfScope, HashConflict or ConfigError and writes nothing then."""
    problems = scope_problems(delta, config)
    if problems:
        raise OutOfScope("; ".join(problems))
    root = apply_root(config)
    for edit in delta.edits:  # a clear error before the journal is even staged
        path = edit_location(config, edit)
        actual = sha256_file(path)
        if actual != edit.before_hash:
            raise HashConflict(edit.path, edit.before_hash, actual)
    check_candidate_config(delta, config, env or {})
    before = live_texts(delta, config)
    rel_of = {e.path: edit_location(config, e).relative_to(root).as_posix() for e in delta.edits}
    changes = {rel_of[e.path]: (e.before_hash, e.after) for e in delta.edits}
    written = apply_files(root, changes, on_written=on_written)
    hashes = {e.path: written[rel_of[e.path]] for e in delta.edits}
    batch = store.batch()
    for e in delta.edits:
        diff = unified_diff(e.path, before[e.path], e.after)
        for task in delta.tasks or (delta.task,):
            batch.change(task, e.path, e.before_hash, hashes[e.path], diff, "cycle", cycle)
    batch.commit()
    commit = None
    commit_error = None
    if git:
        repo = repo_root(config.root)
        if repo is not None:
            try:
                commit = commit_paths(repo, [edit_location(config, e) for e in delta.edits],
                                      f"autovault: {delta.description}\n\ncycle {cycle}\nlever {delta.lever}, "
                                      f"proposer {delta.proposer}")
            except GitError as e:  # the files are written and recorded: a failed commit must not unkeep them
                commit_error = " ".join(str(e).split())[:300]
    return Applied(hashes, commit, commit_error)


__all__ = ["Applied", "HashConflict", "OutOfScope", "apply_delta", "apply_root", "approval_paths",
           "check_candidate_config", "edit_location", "live_texts", "scope_problems", "split_edits", "stale_paths"]

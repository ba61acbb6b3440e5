"""Every change that could move one task's quality, folded from the events: what an audit lists and bisects.

Sources, in history order:
- `Task.Changed` — a vault file the task reads changed: `by` human (an edit), cycle (a kept delta), revert.
- `Vault.Reconfigured` — vault.yml as loaded changed; the changed sections say what: the task's own block
  (model, candidates and options → `model`; training → `data`; anything else → `config`), `backends` →
  `backend`, `judge`, the task's rubric or contract (`judge.<task>`) → `judge`, other shared sections →
  `config`. Another task's block alone is not this task's change.
- `Task.Reconfigured` — only for histories from before vault.yml versions were recorded (no diff then).

One edit of vault.yml can be on record twice — the daemon's `Changed(vault.yml)` (who and the file diff) and
the `Vault.Reconfigured` of loading it (which sections) — in either order; both name the same file hash and
are merged into one change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from domain.aggregates import Task, Vault
from domain.config import TaskConfig
from domain.delta import unified_diff
from projections.globs import matches

CHANGED: Any = Task.Changed  # type: ignore[attr-defined]
RECONFIGURED: Any = Task.Reconfigured  # type: ignore[attr-defined]
VAULT_CONFIGURED: Any = Vault.Configured  # type: ignore[attr-defined]
VAULT_RECONFIGURED: Any = Vault.Reconfigured  # type: ignore[attr-defined]
HANDLES = (CHANGED, RECONFIGURED, VAULT_CONFIGURED, VAULT_RECONFIGURED)

KINDS = ("edit", "delta", "revert", "config", "model", "backend", "data", "judge")
MODEL_FIELDS = ("model", "candidates", "options")
SHARED_SECTIONS = {"backends": "backend", "judge": "judge", "research": "config", "proposers": "config",
                   "paths": "config"}
ReadBlob = Callable[[str], str | None]


@dataclass(frozen=True)
class FileChange:
    path: str
    before: str | None  # sha256 of the text before (None: the file did not exist)
    after: str | None  # sha256 after (None: deleted)
    diff_hash: str | None = None


@dataclass(frozen=True)
class SectionChange:
    name: str
    before: str | None  # sha256 of the section's canonical text (blob store)
    after: str | None


@dataclass(frozen=True)
class Change:
    position: int
    at: str  # when it was recorded (ISO, UTC)
    kind: str
    by: str  # human | cycle | revert | config (a vault.yml version first loaded by a command or the daemon)
    summary: str
    files: tuple[FileChange, ...] = ()
    sections: tuple[SectionChange, ...] = ()
    cycle: str | None = None
    kinds: tuple[str, ...] = field(default=())  # every kind it is, most telling first

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([f.path for f in self.files]))

    @property
    def touches_files(self) -> bool:
        """Something a rebuilt vault can show: a vault file or vault.yml changed."""
        return bool(self.files) or any(s.name == "file" for s in self.sections)

    def as_dict(self) -> dict[str, Any]:
        return {"position": self.position, "at": self.at, "kind": self.kind, "kinds": list(self.kinds or (self.kind,)),
                "by": self.by, "summary": self.summary, "paths": list(self.paths), "cycle": self.cycle,
                "sections": [s.name for s in self.sections if s.name != "file"],
                "files": [{"path": f.path, "before": f.before, "after": f.after} for f in self.files]}


@dataclass(frozen=True)
class PathRoles:
    """What each vault path is to one task (from its config): how a human edit of it is classified."""

    config_file: str
    rubric: str | None
    data: tuple[str, ...]  # globs: training data and inputs

    @classmethod
    def of(cls, task: TaskConfig | None, config_file: str, judge_rubric: str | None) -> PathRoles:
        if task is None:
            return cls(config_file, judge_rubric, ())
        data = [*task.inputs, *([task.training.data] if task.training is not None else [])]
        return cls(config_file, task.rubric or judge_rubric, tuple(data))

    def kind_of(self, path: str, by: str) -> str:
        if by in ("cycle", "revert"):
            return "delta" if by == "cycle" else "revert"
        if path == self.config_file:
            return "config"
        if self.rubric is not None and path == self.rubric:
            return "judge"
        if any(matches(g, path) for g in self.data):
            return "data"
        return "edit"


def fold_changes(events: Iterable[tuple[int, Any]], task: str, roles: PathRoles, read_blob: ReadBlob) -> list[Change]:
    """The task's changes in history order. `events`: (position, event) of the task's Task events and the Vault
    events, in position order."""
    out: list[Change] = []
    named: dict[tuple[str, str], int] = {}  # (path, text hash) -> index in `out` of the change that named it
    sections: dict[str, str] | None = None
    for position, ev in events:
        at = ev.timestamp.isoformat()
        if isinstance(ev, CHANGED):
            change = _file_change(position, at, ev, roles)
            keys = [(ev.path, ev.after_hash)] if ev.after_hash else []
        elif isinstance(ev, VAULT_CONFIGURED | VAULT_RECONFIGURED):
            old, sections = sections, dict(ev.sections)
            if old is None or isinstance(ev, VAULT_CONFIGURED):
                continue  # the first version on record is the baseline, not a change
            found = _config_change(position, at, task, old, sections, list(ev.changed), read_blob)
            if found is None:
                continue
            change = found
            keys = [(roles.config_file, ev.text_hash)] + [
                (s.name.removeprefix("rubric:"), s.after) for s in change.sections if s.name.startswith("rubric:") and s.after]
        elif isinstance(ev, RECONFIGURED) and sections is None:
            out.append(Change(position, at, "config", "config", f"{task}: its vault.yml block changed "
                              f"(config {ev.config_hash[:12]}; no diff: recorded before vault.yml versions were kept)"))
            continue
        else:
            continue
        seen = next((named[k] for k in keys if k in named), None)
        if seen is not None and bool(out[seen].files) != bool(change.files):
            out[seen] = _merged(out[seen], change)
            continue
        named.update(dict.fromkeys(keys, len(out)))
        out.append(change)
    return out


def _file_change(position: int, at: str, ev: Any, roles: PathRoles) -> Change:
    kind = roles.kind_of(ev.path, ev.by)
    verb = {"delta": "kept delta", "revert": "revert"}.get(kind, f"{ev.by} edit")
    what = "created" if ev.before_hash is None else "deleted" if ev.after_hash is None else "changed"
    summary = f"{verb}: {ev.path} {what}" + (f" (cycle {ev.cycle_id})" if ev.cycle_id else "")
    return Change(position, at, kind, ev.by, summary, (FileChange(ev.path, ev.before_hash, ev.after_hash, ev.diff_hash),),
                  cycle=ev.cycle_id, kinds=(kind,))


def _merged(first: Change, second: Change) -> Change:
    """One vault.yml edit recorded twice: who and the file diff from the `Changed`, what from the sections."""
    filed, loaded = (first, second) if first.files else (second, first)
    kinds = tuple(dict.fromkeys([*filed.kinds, *loaded.kinds]))
    kind = filed.kind if filed.kind in ("delta", "revert") else loaded.kind
    what = loaded.summary.split(": ", 1)[-1]
    return replace(filed, kind=kind, kinds=kinds, sections=loaded.sections,
                   summary=f"{filed.summary.split(':', 1)[0]}: {what}")


def _config_change(position: int, at: str, task: str, old: dict[str, str], new: dict[str, str],
                   changed: Sequence[str], read_blob: ReadBlob) -> Change | None:
    own = (f"task.{task}", f"judge.{task}")
    if own[0] not in old:
        return None  # the task's first appearance: nothing of it changed
    relevant = [s for s in changed if s in SHARED_SECTIONS or s in own]
    if not relevant and changed != ["file"]:
        return None
    kinds: list[str] = []
    words: list[str] = []
    shown = list(relevant)
    for name in relevant:
        if name == own[0]:
            fields = _changed_fields(read_blob, old.get(name), new.get(name))
            kinds += _task_kinds(fields)
            words.append(f"{task} {', '.join(fields) or 'block'}")
        elif name == own[1]:
            kinds.append("judge")
            judged = _changed_fields(read_blob, old.get(name), new.get(name))
            words.append(f"{task} judging ({', '.join(judged) or 'identity'})")
            rubric = f"rubric:{_json(read_blob, new.get(name)).get('rubric')}"
            if rubric in changed:
                shown.append(rubric)  # the rubric's own text diff, not only its hash
        else:
            kinds.append(SHARED_SECTIONS[name])
            words.append(name)
    order = ("model", "backend", "data", "judge", "config")
    kinds = sorted(set(kinds) or {"config"}, key=order.index)
    summary = f"vault.yml: {', '.join(dict.fromkeys(words))} changed" if words else "vault.yml edited (no setting changed)"
    shown += ["file"] if "file" in changed else []
    return Change(position, at, kinds[0], "config", summary,
                  sections=tuple(SectionChange(n, old.get(n), new.get(n)) for n in shown), kinds=tuple(kinds))


def _changed_fields(read_blob: ReadBlob, before: str | None, after: str | None) -> list[str]:
    old, new = _json(read_blob, before), _json(read_blob, after)
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _json(read_blob: ReadBlob, digest: str | None) -> dict[str, Any]:
    text = read_blob(digest) if digest else None
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _task_kinds(fields: Sequence[str]) -> list[str]:
    kinds = []
    if any(f in MODEL_FIELDS for f in fields):
        kinds.append("model")
    if "training" in fields:
        kinds.append("data")
    if any(f in ("expect", "rubric") for f in fields):
        kinds.append("judge")
    if any(f not in (*MODEL_FIELDS, "training", "expect", "rubric") for f in fields):
        kinds.append("config")
    return kinds


def change_diff(change: Change, read_blob: ReadBlob) -> str:
    """The change as a unified diff: file diffs from the blob store (or rebuilt from the texts it holds),
    config sections diffed from their recorded texts."""
    parts: list[str] = []
    for f in change.files:
        text = read_blob(f.diff_hash) if f.diff_hash else None
        if text is None:
            before = read_blob(f.before) if f.before else None
            after = read_blob(f.after) if f.after else None
            text = unified_diff(f.path, before, after) if (before is not None or f.before is None) and (
                after is not None or f.after is None) else f"{f.path}: changed ({_short(f.before)} → {_short(f.after)}; " \
                                                           "no diff on record)\n"
        parts.append(text)
    for s in change.sections:
        if s.name == "file" and change.files:
            continue  # the file diff above says it already
        label = "vault.yml" if s.name == "file" else f"vault.yml[{s.name}]"
        before = read_blob(s.before) if s.before else None
        after = read_blob(s.after) if s.after else None
        parts.append(unified_diff(label, before, after))
    return "".join(parts)


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "none"

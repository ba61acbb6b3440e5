"""A kept delta as one recoverable unit: its files and the events that say so, both or neither.

The journal of `adapters.atomic.apply_files` carries an `ApplyPlan`: every `Task.Changed` to record (path,
hashes, diff, tasks), the cycle whose `Kept` closes it, the task versions before the apply (so a recovery can
tell whether the events were recorded: they are the Changed events after those versions), and the git commit
to make. The events are recorded in one `save()` after the files (and the commit) — so a kill at any step
leaves either a journal to finish, or the whole record.

`recover_applies(root, store, git)` runs in `bootstrap`, so in every command that opens the vault: per journal no
live process holds, an uncommitted one is dropped (nothing was touched); a committed one whose events are
on record is dropped; otherwise its files are rolled forward and its events recorded — or, when a file was
edited since the kill, every file is rolled back and the cycle fails with a one-line reason. Never half.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from adapters.atomic import Journal, Recovery, journal_home, open_journals, settle, sweep_lock_files
from adapters.git import GitError
from domain import ids
from domain.aggregates import Task
from handlers.ports import Git

if TYPE_CHECKING:
    from domain.config import VaultConfig

log = structlog.get_logger("autovault.apply")
CHANGED: Any = Task.Changed  # type: ignore[attr-defined]


def apply_root(config: VaultConfig) -> Path:
    """Where the journal lives (`adapters.atomic.journal_home`) for this vault and its vault.yml."""
    return journal_home(config.root, config.source.parent)


class RecordStore(Protocol):
    """What recording and recovering an apply needs from the event store."""

    @property
    def events(self) -> Any: ...

    def batch(self) -> Any: ...

    def get_task(self, name: str) -> Any: ...

    def get_cycle(self, key: str) -> Any: ...


@dataclass(frozen=True)
class ChangeRecord:
    path: str  # as the delta names it (vault-relative, or vault.yml for an in-config edit)
    before: str | None
    after: str | None
    diff: str
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class GitPlan:
    """Paths relative to the apply root, so a vault moved between a kill and its recovery still commits."""

    repo: str
    paths: tuple[str, ...]
    message: str
    needle: str  # a line of the message only this apply's commit has (finds it after a kill)


@dataclass(frozen=True)
class ApplyPlan:
    cycle: str | None
    by: str  # cycle | revert
    changes: tuple[ChangeRecord, ...]
    versions: dict[str, int]  # task -> its version before the apply
    kept: bool = True  # record Cycle.Kept(applied_hashes, commit)
    git: GitPlan | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApplyPlan:
        git = data.get("git")
        return cls(cycle=data.get("cycle"), by=str(data.get("by", "cycle")),
                   changes=tuple(ChangeRecord(c["path"], c["before"], c["after"], c["diff"], tuple(c["tasks"]))
                                 for c in data["changes"]),
                   versions={str(k): int(v) for k, v in data.get("versions", {}).items()},
                   kept=bool(data.get("kept", True)),
                   git=None if not git else GitPlan(git["repo"], tuple(git["paths"]), git["message"], git["needle"]))

    @property
    def hashes(self) -> dict[str, str]:
        """Cycle.Kept's applied_hashes: path -> new sha256 ('' for a deleted file)."""
        return {c.path: c.after or "" for c in self.changes}

    @property
    def label(self) -> str:
        return self.cycle or ", ".join(c.path for c in self.changes)


def task_versions(store: RecordStore, tasks: Sequence[str]) -> dict[str, int]:
    out = {}
    for name in dict.fromkeys(tasks):
        task = store.get_task(name)
        out[name] = int(task.version) if task is not None else 0
    return out


def commit_plan(plan: ApplyPlan, root: Path, git: Git, *, recovering: bool = False) -> tuple[str | None, str | None]:
    """(commit, error): commit the applied files; a recovery first looks for the commit a killed apply made."""
    if plan.git is None:
        return None, None
    repo = root / plan.git.repo
    try:
        if recovering:
            found = git.find_commit(repo, plan.git.needle)
            if found is not None:
                return found, None
        return git.commit_paths(repo, [root / p for p in plan.git.paths], plan.git.message), None
    except GitError as e:  # the files are written: a failed commit must not unkeep them
        return None, " ".join(str(e).split())[:300]


def record_plan(store: RecordStore, plan: ApplyPlan, commit: str | None) -> None:
    """Every Changed of the apply and the cycle's Kept, in one save."""
    batch = store.batch()
    for change in plan.changes:
        for task in change.tasks:
            batch.change(task, change.path, change.before, change.after, change.diff, plan.by, plan.cycle)
    if plan.kept and plan.cycle is not None and store.get_cycle(plan.cycle) is not None:
        hashes = plan.hashes

        def kept(cycle: Any) -> int | None:
            if cycle.phase == "kept":
                return None
            if not cycle.kept_verdict:  # another writer ended the cycle first; the files changed all the same
                log.warning("files applied but the cycle's Kept is refused", cycle=plan.cycle, phase=cycle.phase)
                return None
            cycle.kept(applied_hashes=hashes, commit=commit)
            return int(cycle.version)

        batch.add(ids.cycle_id(plan.cycle), kept)
    batch.commit()


def plan_recorded(store: RecordStore, plan: ApplyPlan) -> bool:
    """Are the plan's events in the store? They are saved together, so its first Changed tells."""
    first = plan.changes[0]
    task = first.tasks[0]
    for event in store.events.get(ids.task_id(task), gt=plan.versions.get(task, 0)):
        if isinstance(event, CHANGED) and event.path == first.path and event.after_hash == first.after \
                and event.cycle_id == plan.cycle and event.by == plan.by:
            return True
    return False


@dataclass
class RecoveryReport:
    """What the start of a command found and did about applies a kill interrupted."""

    finished: list[str] = field(default_factory=list)  # plans whose files were completed and events recorded
    rolled_back: list[str] = field(default_factory=list)  # plans undone because a file was edited since
    recorded_before: list[str] = field(default_factory=list)  # killed after the record: only the journal went
    files: Recovery = field(default_factory=Recovery)  # journals without a plan (and discarded ones)
    pending: list[str] = field(default_factory=list)  # could not be settled now (e.g. the store failed)
    orphans: list[str] = field(default_factory=list)  # shadow workspaces of killed processes, removed

    @property
    def anything(self) -> bool:
        f = self.files
        return bool(self.finished or self.rolled_back or self.pending or self.orphans or f.rolled_forward
                    or f.rolled_back or f.conflicts or f.discarded)

    def lines(self) -> list[str]:
        out = [f"finished an interrupted apply: {x}" for x in self.finished]
        out += [f"rolled back an interrupted apply (a file was edited since): {x}" for x in self.rolled_back]
        out += [f"dropped an uncommitted journal: {x}" for x in self.files.discarded]
        out += [f"left for later (the store failed): {x}" for x in self.pending]
        out += [f"rolled forward: {x}" for x in self.files.rolled_forward]
        out += [f"rolled back: {x}" for x in self.files.rolled_back]
        out += [f"edited since the crash, left alone: {x}" for x in self.files.conflicts]
        out += [f"removed an orphaned shadow workspace: {x}" for x in self.orphans]
        return out


def recover_applies(root: Path, store: RecordStore, git: Git, *,
                    on_written: Callable[[str], None] | None = None) -> RecoveryReport:
    """Settle every journal under `root` that no live process holds (see the module docstring); `git` finds or
    makes the commit of an apply killed before it committed."""
    report = RecoveryReport()
    with open_journals(root) as journals:
        for journal in journals:
            plan = ApplyPlan.from_json(journal.plan) if journal.committed and journal.plan else None
            if plan is None or not plan.changes:
                settle(journal, report.files)
                continue
            try:
                _settle_plan(journal, plan, store, git, report, on_written)
            except Exception as e:
                log.warning("interrupted apply not settled; retried by the next command", journal=journal.path.name,
                            error=f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
                report.pending.append(plan.label)
    sweep_lock_files(root)
    for line in report.lines():
        log.warning(line)
    return report


def _settle_plan(journal: Journal, plan: ApplyPlan, store: RecordStore, git: Git, report: RecoveryReport,
                 on_written: Callable[[str], None] | None) -> None:
    if plan_recorded(store, plan):
        journal.close(remove=True)
        report.recorded_before.append(plan.label)
        return
    edited = [p for p, state in journal.states().items() if state == "other"]
    if edited and journal.can_roll_back():
        journal.roll_back()
        _fail_cycle(store, plan, f"interrupted apply rolled back: {', '.join(edited)} changed since; a human edit is "
                                 "never overwritten")
        journal.close(remove=True)
        report.rolled_back.append(plan.label)
        return
    journal.roll_forward(on_written=on_written)
    commit, _ = commit_plan(plan, journal.base, git, recovering=True)
    record_plan(store, plan, commit)
    journal.close(remove=True)
    report.finished.append(plan.label)


def _fail_cycle(store: RecordStore, plan: ApplyPlan, error: str) -> None:
    if plan.cycle is None or store.get_cycle(plan.cycle) is None:
        return

    def failed(cycle: Any) -> int | None:
        if not cycle.is_open:
            return None
        cycle.failed(error=error)
        return int(cycle.version)

    batch = store.batch()
    batch.add(ids.cycle_id(plan.cycle), failed)
    batch.commit()

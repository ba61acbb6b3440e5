"""kill -9 at every step of an apply, then the recovery every command runs: nothing lost, nothing half.

For each delta shape, a template vault (files, vault.yml, a store holding the cycle that verified the delta,
optionally a git repository) is made once. The steps of one apply are listed by a run that kills nothing;
then, for every step k, a fresh copy of the template gets a forked process that applies the delta and
SIGKILLs itself at step k (`apply_delta(on_step=...)`, the test hook). The parent runs what bootstrap runs
on start (`recover_applies` + `sweep_orphans`) and checks:

* half_applied — the delta's files are neither all old nor all new;
* lost — the events disagree with the files: new files need one `Changed(by=cycle)` per file and task, the
  cycle `Kept` and (with git) a commit naming the cycle; old files need no Changed and no Kept; a second
  record of the same apply is lost too (a duplicate);
* orphans — a journal, a lock, a temp file beside a vault file, or a shadow workspace is left behind.

`recovery_kills` also kills the recovery itself after its first file and recovers again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from adapters.atomic import JOURNAL_DIR, TMP_SUFFIX
from adapters.config_loader import load_config
from adapters.eventstore import VaultStore
from adapters.workspace import PREFIX, sweep_orphans
from daemon.bootstrap import outside
from domain.aggregates import Task
from domain.delta import Delta, FileEdit
from domain.ids import sha256_text
from handlers.apply import apply_delta, apply_root
from handlers.apply_journal import recover_applies

CYCLE = "brief-20261202T000000-c0ffee"
FILES = {
    "prompts/brief.md": "Write the morning briefing for {date}.\nCONTEXT: {context}\n",
    "prompts/notes.md": "Write notes.\n{context}\n",
    "prompts/old.md": "An old prompt nobody reads.\n",
    "scripts/collect.sh": "#!/bin/sh\necho three commits\n",
    "data/brief.jsonl": '{"prompt": "p", "completion": "c"}\n',
}
VAULT_YML = """\
vault: vault
store: sqlite:///.autovault/events.db
research: {editable: ["prompts/**", "scripts/**", "data/**"], approve: []}
tasks:
  brief:
    collect: scripts/collect.sh
    prompt: prompts/brief.md
    model: ollama:writer
    options: {num_predict: 300}
  notes:
    prompt: prompts/notes.md
    model: ollama:writer
"""


@dataclass(frozen=True)
class Shape:
    """A delta to apply: edits as (path, new text or None to delete, in_config)."""

    name: str
    edits: tuple[tuple[str, str | None, bool], ...]
    git: bool = False

    @property
    def label(self) -> str:
        return f"{self.name}{'+git' if self.git else ''}"


SHAPES: tuple[Shape, ...] = tuple(
    Shape(name, edits, git) for git in (False, True) for name, edits in (
        ("one-file", (("prompts/brief.md", "Write at least 40 words.\n{context}\n", False),)),
        ("two-files", (("prompts/brief.md", "Write at least 40 words.\n{context}\n", False),
                       ("prompts/notes.md", "Notes, 40 words at least.\n{context}\n", False))),
        ("create-and-delete", (("prompts/new.md", "A new prompt.\n", False), ("prompts/old.md", None, False))),
        ("config-and-prompt", (("vault.yml", VAULT_YML.replace("num_predict: 300", "num_predict: 600"), True),
                               ("prompts/brief.md", "Write at least 40 words.\n{context}\n", False))),
        ("four-files", (("prompts/brief.md", "Write at least 40 words.\n{context}\n", False),
                        ("prompts/notes.md", "Notes, 40 words at least.\n{context}\n", False),
                        ("scripts/collect.sh", "#!/bin/sh\necho four commits\n", False),
                        ("data/brief.jsonl", '{"prompt": "q", "completion": "d"}\n', False))),
    ))


@dataclass
class KillOutcome:
    shape: str
    step: str
    killed: bool
    state: str  # old | new | half
    lost: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state != "half" and not self.lost and not self.orphans


@dataclass
class KillTally:
    outcomes: list[KillOutcome] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return sum(o.killed for o in self.outcomes)

    @property
    def lost(self) -> int:
        return sum(bool(o.lost) for o in self.outcomes)

    @property
    def half_applied(self) -> int:
        return sum(o.state == "half" for o in self.outcomes)

    @property
    def orphans(self) -> int:
        return sum(bool(o.orphans) for o in self.outcomes)

    def failures(self) -> list[KillOutcome]:
        return [o for o in self.outcomes if not o.ok]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd=repo, check=True,
                          capture_output=True, text=True, timeout=60).stdout


def make_template(base: Path, shape: Shape) -> Path:
    """The vault before the apply, its store holding the cycle that kept the delta."""
    base.mkdir(parents=True)
    for rel, text in FILES.items():
        (base / "vault" / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / "vault" / rel).write_text(text)
    (base / "vault.yml").write_text(VAULT_YML)
    (base / "tmp").mkdir()
    if shape.git:
        _git(base, "init", "-q")
        _git(base, "add", "-A")
        _git(base, "commit", "-q", "-m", "start")
    config = load_config(base / "vault.yml", {})
    with VaultStore(config.store) as store:
        for task in config.tasks:
            store.register_task(task, "h")
        store.start_cycle(CYCLE, "brief", "cycle", None, "bench")
        store.update_cycle(CYCLE, lambda c: c.proposed(delta_hash="d", proposer="bench", lever="mixed", rationale="",
                                                       cost={}))
        store.update_cycle(CYCLE, lambda c: c.verified(baseline=[3.0], candidate=[4.0], effect=1.0, interval=[0.5, 1.5],
                                                       decision="keep", rule={}, guardrails=[], cost={}))
    return base


def delta_for(base: Path, shape: Shape) -> Delta:
    edits = []
    for rel, text, in_config in shape.edits:
        live = base / rel if in_config else base / "vault" / rel
        before = sha256_text(live.read_text()) if live.is_file() else None
        edits.append(FileEdit(rel, before, text, in_config))
    return Delta(task="brief", lever="prompt", description=f"{shape.name} delta", rationale="bench", proposer="bench",
                 edits=tuple(edits), tasks=("brief", "notes"))


def steps_of(work: Path, shape: Shape) -> list[str]:
    """The step names of one whole apply (no kill)."""
    seen: list[str] = []
    _apply(work, shape, seen.append)
    return seen


def _apply(run: Path, shape: Shape, on_step: Callable[[str], None]) -> None:
    config = load_config(run / "vault.yml", {})
    with VaultStore(config.store) as store:
        apply_delta(delta_for(run, shape), config, store, CYCLE, outside(), git=shape.git, on_step=on_step)


@contextlib.contextmanager
def private_tempdir(path: Path) -> Iterator[None]:
    """Shadows of this process go to `path` (a fork inherits it), so orphans are counted per run."""
    before = tempfile.tempdir
    tempfile.tempdir = str(path)
    try:
        yield
    finally:
        tempfile.tempdir = before


def killed_at(run: Path, shape: Shape, step: int, *, during_recovery: bool = False) -> bool:
    """Fork; the child applies the delta (or recovers it) and SIGKILLs itself at its `step`-th step.
    True when it was killed (False: it finished before reaching that step)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns, never runs the parent's cleanup
        code = 3
        try:
            count = [0]

            def stop(_name: str) -> None:
                if count[0] == step:
                    os.kill(os.getpid(), signal.SIGKILL)
                count[0] += 1

            with private_tempdir(run / "tmp"):
                if during_recovery:
                    config = load_config(run / "vault.yml", {})
                    with VaultStore(config.store) as store:
                        recover_applies(apply_root(config), store, outside().git, on_written=stop)
                else:
                    _apply(run, shape, stop)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status) == signal.SIGKILL
    if os.WEXITSTATUS(status) != 0:
        raise RuntimeError(f"{shape.label} step {step}: the apply failed on its own (exit {os.WEXITSTATUS(status)})")
    return False


def recover_and_check(run: Path, shape: Shape, step: str, killed: bool) -> KillOutcome:
    """What bootstrap does on start, then the checks."""
    config = load_config(run / "vault.yml", {})  # a half-applied vault.yml would fail here: also a finding
    with VaultStore(config.store) as store:
        recover_applies(apply_root(config), store, outside().git)
        sweep_orphans(run / "tmp")
        return _check(run, shape, step, killed, store)


def _check(run: Path, shape: Shape, step: str, killed: bool, store: VaultStore) -> KillOutcome:
    delta = delta_for_template(shape)
    states = set()
    for rel, text, in_config in shape.edits:
        live = run / rel if in_config else run / "vault" / rel
        now = live.read_text() if live.is_file() else None
        states.add("new" if now == text else "old" if now == delta[rel] else "other")
    state = states.pop() if len(states) == 1 else "half"
    out = KillOutcome(shape.label, step, killed, state)
    changed = [e for name in ("brief", "notes") for e in store.events.get(store.get_task(name).id)  # type: ignore[union-attr]
               if isinstance(e, Task.Changed) and e.cycle_id == CYCLE]  # type: ignore[attr-defined]
    cycle = store.get_cycle(CYCLE)
    assert cycle is not None
    want = 2 * len(shape.edits) if state == "new" else 0
    if len(changed) != want:
        out.lost.append(f"{len(changed)} Changed events for {want} expected")
    if (cycle.phase == "kept") != (state == "new"):
        out.lost.append(f"cycle {cycle.phase} with {state} files")
    if shape.git and state == "new" and f"cycle {CYCLE}" not in _git(run, "log", "-1", "--format=%B"):
        out.lost.append("no commit names the cycle")
    out.orphans = leftovers(run)
    return out


def delta_for_template(shape: Shape) -> dict[str, str | None]:
    """path -> the text before the apply."""
    return {rel: (VAULT_YML if in_config else FILES.get(rel)) for rel, _, in_config in shape.edits}


def leftovers(run: Path) -> list[str]:
    found = []
    journal = run / JOURNAL_DIR
    if journal.is_dir():
        found += [f"journal {p.name}" for p in journal.iterdir()]
    found += [f"temp {p.relative_to(run)}" for p in run.rglob(f"*{TMP_SUFFIX}")]
    found += [f"shadow {p.name}" for p in (run / "tmp").glob(f"*{PREFIX}*")]
    return found


def kill_every_step(base: Path, shapes: tuple[Shape, ...] = SHAPES, *, recovery_kills: bool = True,
                    progress: Callable[[str], None] | None = None) -> KillTally:
    """Every shape, a kill at every step (and, with `recovery_kills`, a kill inside each recovery that has
    files to roll forward)."""
    tally = KillTally()
    for shape in shapes:
        template = make_template(base / f"{shape.label}-template", shape)
        probe = base / f"{shape.label}-probe"
        shutil.copytree(template, probe, symlinks=True)
        steps = steps_of(probe, shape)
        for k, name in enumerate(steps):
            run = base / f"{shape.label}-{k}"
            shutil.copytree(template, run, symlinks=True)
            killed = killed_at(run, shape, k)
            if recovery_kills and killed and (name == "committed" or name.startswith(("writing:", "written:"))):
                tally.outcomes.append(_kill_recovery(base, run, shape, name))
            tally.outcomes.append(recover_and_check(run, shape, name, killed))
            shutil.rmtree(run, ignore_errors=True)
        if progress is not None:
            progress(f"{shape.label}: {len(steps)} steps")
        shutil.rmtree(template, ignore_errors=True)
        shutil.rmtree(probe, ignore_errors=True)
    return tally


def _kill_recovery(base: Path, run: Path, shape: Shape, step: str) -> KillOutcome:
    """A second kill, inside the recovery of the first, after its first rolled-forward file; then recover."""
    copy = base / f"{run.name}-recovery"
    shutil.copytree(run, copy, symlinks=True)
    killed = killed_at(copy, shape, 0, during_recovery=True)
    outcome = recover_and_check(copy, shape, f"{step} then recovery", killed)
    shutil.rmtree(copy, ignore_errors=True)
    return outcome

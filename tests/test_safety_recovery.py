"""Apply + events are one recoverable unit (issue 14): kill -9 at every step of an apply (a forked process
SIGKILLs itself at step k through the `on_step` hook), then the recovery every command runs on start; no lost
event, no half-applied delta, no orphan. Also: a live apply or shadow is never touched by another process's
recovery; an error while writing rolls back; an error while recording is finished by the next command.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from adapters.atomic import JOURNAL_DIR
from adapters.config_loader import load_config
from adapters.eventstore import VaultStore
from adapters.workspace import ShadowWorkspace, sweep_orphans
from benchmarks.safety_kills import (
    CYCLE,
    SHAPES,
    Shape,
    delta_for,
    kill_every_step,
    killed_at,
    leftovers,
    make_template,
    recover_and_check,
    steps_of,
)
from daemon.bootstrap import outside
from daemon.cli import main
from domain.aggregates import Task
from handlers.apply import apply_delta, apply_root
from handlers.apply_journal import recover_applies

TWO_FILES_GIT = next(s for s in SHAPES if s.name == "two-files" and s.git)
CONFIG_AND_PROMPT = next(s for s in SHAPES if s.name == "config-and-prompt" and not s.git)


def test_every_step_names_a_point_a_kill_can_land_on(tmp_path: Path) -> None:
    steps = steps_of(make_template(tmp_path / "v", CONFIG_AND_PROMPT), CONFIG_AND_PROMPT)
    assert steps == ["shadow", "staging", "staged", "committed", "writing:vault.yml", "written:vault.yml",
                     "writing:vault/prompts/brief.md", "written:vault/prompts/brief.md", "committed-git", "recorded",
                     "finished", "done"]


@pytest.mark.parametrize("shape", [TWO_FILES_GIT, CONFIG_AND_PROMPT], ids=lambda s: s.label)
def test_kill_at_every_apply_step_then_recover(tmp_path: Path, shape: Shape) -> None:
    tally = kill_every_step(tmp_path, (shape,), recovery_kills=not shape.git)
    assert tally.kills >= 11
    assert tally.failures() == []
    states = {o.step: o.state for o in tally.outcomes}
    assert states["staged"] == "old" and states["committed"] == "new" and states["done"] == "new"


def test_a_kill_then_any_command_finishes_the_apply_and_the_ledger_says_cycle(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Recovery runs in bootstrap: the CLI (not only the daemon) finds the vault whole, the change the cycle's."""
    shape = next(s for s in SHAPES if s.name == "two-files" and not s.git)
    run = make_template(tmp_path / "v", shape)
    steps = steps_of(make_template(tmp_path / "probe", shape), shape)
    assert killed_at(run, shape, steps.index("written:vault/prompts/brief.md"))
    assert (run / JOURNAL_DIR).is_dir() and any((run / JOURNAL_DIR).iterdir())
    capsys.readouterr()
    assert main(["--config", str(run / "vault.yml"), "--json", "ledger"]) == 0
    ledger = capsys.readouterr().out
    assert CYCLE in ledger and '"human"' not in ledger
    assert (run / "vault" / "prompts" / "notes.md").read_text() == shape.edits[1][1]
    assert leftovers(run) == []
    with VaultStore(load_config(run / "vault.yml", {}).store) as store:
        assert store.get_cycle(CYCLE).phase == "kept"  # type: ignore[union-attr]


def test_a_file_edited_after_the_kill_rolls_the_whole_delta_back(tmp_path: Path) -> None:
    shape = next(s for s in SHAPES if s.name == "two-files" and not s.git)
    run = make_template(tmp_path / "v", shape)
    steps = steps_of(make_template(tmp_path / "probe", shape), shape)
    assert killed_at(run, shape, steps.index("written:vault/prompts/brief.md"))
    (run / "vault" / "prompts" / "notes.md").write_text("a human got here first\n")
    config = load_config(run / "vault.yml", {})
    with VaultStore(config.store) as store:
        report = recover_applies(apply_root(config), store, outside().git)
        assert report.rolled_back == [CYCLE]
        cycle = store.get_cycle(CYCLE)
        assert cycle is not None and cycle.phase == "failed"
        assert not [e for e in store.events.get(store.get_task("brief").id)  # type: ignore[union-attr]
                    if isinstance(e, Task.Changed)]  # type: ignore[attr-defined]
    assert (run / "vault" / "prompts" / "brief.md").read_text().startswith("Write the morning briefing")  # old again
    assert (run / "vault" / "prompts" / "notes.md").read_text() == "a human got here first\n"
    assert leftovers(run) == []


class Gate:
    """Two pipes: the child says where it is and waits until the parent lets it go (no sleeps)."""

    def __init__(self) -> None:
        self._ready_r, self._ready_w = os.pipe()
        self._go_r, self._go_w = os.pipe()

    def arrive(self, where: str) -> None:  # child
        os.write(self._ready_w, where.encode() + b"\n")
        os.read(self._go_r, 1)

    def wait(self) -> str:  # parent
        return os.read(self._ready_r, 200).decode().strip()

    def release(self) -> None:  # parent
        os.write(self._go_w, b"g")


def fork(body: Any) -> int:
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            body()
            code = 0
        finally:
            os._exit(code)
    return pid


def exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)


def test_a_recovery_never_touches_an_apply_in_flight(tmp_path: Path) -> None:
    shape = next(s for s in SHAPES if s.name == "two-files" and not s.git)
    run = make_template(tmp_path / "v", shape)
    gate = Gate()

    def apply() -> None:
        config = load_config(run / "vault.yml", {})
        with VaultStore(config.store) as store:
            apply_delta(delta_for(run, shape), config, store, CYCLE, outside(), git=False,
                        on_step=lambda s: gate.arrive(s) if s == "written:vault/prompts/brief.md" else None)

    pid = fork(apply)
    assert gate.wait() == "written:vault/prompts/brief.md"
    config = load_config(run / "vault.yml", {})
    with VaultStore(config.store) as store:
        report = recover_applies(apply_root(config), store, outside().git)  # another command starting now
    assert not report.anything and any((run / JOURNAL_DIR).iterdir())  # the live journal is left alone
    assert (run / "vault" / "prompts" / "notes.md").read_text() != shape.edits[1][1]
    gate.release()
    assert exit_code(pid) == 0
    assert recover_and_check(run, shape, "after", False).ok


def test_a_live_shadow_is_kept_and_a_dead_ones_is_swept(tmp_path: Path) -> None:
    live = tmp_path / "vault"
    live.mkdir()
    (live / "a.md").write_text("a\n")
    parent = tmp_path / "tmp"
    gate = Gate()

    def hold() -> None:
        with ShadowWorkspace.create(live, parent=parent) as ws:
            gate.arrive(str(ws.root))

    pid = fork(hold)
    shadow = Path(gate.wait())
    assert sweep_orphans(parent) == [] and shadow.is_dir()  # in use: never removed
    os.kill(pid, signal.SIGKILL)
    assert exit_code(pid) == -signal.SIGKILL
    assert shadow.is_dir()  # a kill -9 leaves it behind ...
    assert sweep_orphans(parent) == [shadow] and not shadow.exists()  # ... and the next start removes it
    assert list(parent.iterdir()) == []
    with ShadowWorkspace.create(live, parent=parent) as ws:  # this process's own shadow is in use too
        assert sweep_orphans(parent) == [] and ws.root.is_dir()
    assert list(parent.iterdir()) == []


def test_a_shadow_made_before_locks_existed_is_swept_only_once_a_day_old(tmp_path: Path) -> None:
    old, young = tmp_path / "autovault-shadow-old1", tmp_path / "autovault-shadow-new1"
    for folder in (old, young):
        (folder / "prompts").mkdir(parents=True)
    now = young.stat().st_mtime
    os.utime(old, (now - 2 * 86_400, now - 2 * 86_400))
    assert sweep_orphans(tmp_path, now=now) == [old]
    assert young.is_dir() and not old.exists()


def test_an_error_while_writing_rolls_back_and_records_nothing(tmp_path: Path) -> None:
    shape = next(s for s in SHAPES if s.name == "two-files" and not s.git)
    run = make_template(tmp_path / "v", shape)
    config = load_config(run / "vault.yml", {})

    def fail(step: str) -> None:
        if step == "writing:vault/prompts/notes.md":
            raise PermissionError(13, "Permission denied", "notes.md")

    with VaultStore(config.store) as store, pytest.raises(PermissionError):
        apply_delta(delta_for(run, shape), config, store, CYCLE, outside(), git=False, on_step=fail)
    outcome = recover_and_check(run, shape, "error", False)
    assert outcome.ok and outcome.state == "old"


class FailingStore:
    """The real store whose first batch commit fails, like a database that went away mid-apply."""

    def __init__(self, store: VaultStore) -> None:
        self.store, self.failed = store, False
        self.events = store.events

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def batch(self) -> Any:
        if self.failed:
            return self.store.batch()
        self.failed = True
        return FailingBatch(self.store.batch())


class FailingBatch:
    def __init__(self, batch: Any) -> None:
        self.batch = batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.batch, name)

    def commit(self) -> None:
        raise ConnectionError("the database went away")


def test_an_error_while_recording_is_finished_by_the_next_command(tmp_path: Path) -> None:
    shape = next(s for s in SHAPES if s.name == "two-files" and not s.git)
    run = make_template(tmp_path / "v", shape)
    config = load_config(run / "vault.yml", {})
    with VaultStore(config.store) as store, pytest.raises(ConnectionError):
        apply_delta(delta_for(run, shape), config, FailingStore(store), CYCLE, outside(), git=False)
    assert any((run / JOURNAL_DIR).iterdir())  # the files are new, the journal waits for its record
    outcome = recover_and_check(run, shape, "store error", False)
    assert outcome.ok and outcome.state == "new"


def test_a_killed_config_check_leaves_a_shadow_that_recovery_removes(tmp_path: Path) -> None:
    run = make_template(tmp_path / "v", CONFIG_AND_PROMPT)
    assert killed_at(run, CONFIG_AND_PROMPT, 0)  # step 0: inside the candidate vault.yml's shadow
    assert [p.name for p in (run / "tmp").iterdir() if p.is_dir()]
    assert recover_and_check(run, CONFIG_AND_PROMPT, "shadow", True).ok


def test_the_daemon_after_a_kill_mid_apply_says_cycle_kept_never_human(tmp_path: Path) -> None:
    """The issue's case: killed after the first file; at start the ledger said "changed by human" and the
    cycle Failed although its change was live. Now the start finishes the unit: Changed(by=cycle), Kept."""
    from daemon.service import Options, run_service
    from domain.delta import Delta, FileEdit
    from domain.ids import sha256_text
    from testbed.daemon_harness import DaemonVault
    from testbed.servers.ollama_server import OllamaServer
    from testbed.servers.protocol import Reply

    server = OllamaServer(lambda _r: Reply(text="one two three four five six seven eight")).start()
    v = DaemonVault.make(tmp_path, server.host)
    try:
        assert run_service(Options(config=v.cfg, once=True, env={})) == 0  # the daemon's baseline of every file
        texts = {"prompts/brief.md": "Write the briefing for {date}.\nCONTEXT: {context}\n",
                 "prompts/notes.md": "Write terse notes for {date}.\n"}
        delta = Delta(task="brief", lever="prompt", description="two prompts", rationale="t", proposer="t",
                      edits=tuple(FileEdit(p, sha256_text((v.root / p).read_text()), t) for p, t in texts.items()),
                      tasks=("brief", "notes"))
        v.store.start_cycle("brief-c1", "brief", "cycle", None, "test")
        v.store.update_cycle("brief-c1", lambda c: c.proposed(delta_hash="d", proposer="t", lever="prompt",
                                                              rationale="", cost={}))
        v.store.update_cycle("brief-c1", lambda c: c.verified(baseline=[3.0], candidate=[4.0], effect=1.0,
                                                              interval=[0.5, 1.5], decision="keep", rule={},
                                                              guardrails=[], cost={}))
        v.store.close()  # no open connection across the fork
        v._store = None

        def apply() -> None:
            config = load_config(v.cfg, {})
            with VaultStore(config.store) as store:
                apply_delta(delta, config, store, "brief-c1", outside(), git=False,
                            on_step=lambda s: os.kill(os.getpid(), signal.SIGKILL) if s.startswith("written:") else None)

        assert exit_code(fork(apply)) == -signal.SIGKILL
        assert run_service(Options(config=v.cfg, once=True, env={})) == 0
        assert {p: (v.root / p).read_text() for p in texts} == texts
        changed = v.events(Task.Changed)  # type: ignore[attr-defined]
        assert sorted((c.path, c.by, c.cycle_id) for c in changed) == sorted(
            (p, "cycle", "brief-c1") for p in texts for _task in ("brief", "notes"))
        assert v.store.get_cycle("brief-c1").phase == "kept"  # type: ignore[union-attr]
    finally:
        v.close()
        server.stop()

"""The real `autovault run` as a subprocess over a temp vault: notify protocol, watching, reacting, surviving."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.service import Options, run_service
from domain.aggregates import Cycle, Task
from domain.runs import RunResult
from testbed.daemon_harness import DaemonVault, wait_until
from testbed.servers.ollama_server import OllamaServer
from testbed.servers.protocol import Reply, Request

RUN = {"type": "run", "task": "brief", "run_id": "hb-1", "started": "2026-03-18T06:30:00Z", "model": "ollama:writer",
       "done_reason": "length", "status": "ok", "output": "Three commits landed and the build"}
SCORE = {"type": "score", "task": "brief", "run_id": "hb-1", "score": 1, "judge": "output-judge",
         "reasons": ["truncated mid-sentence"]}


class Gate:
    """The loopback model answers at once, or — once `hold()` was called — blocks until `release()`."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.waiting = threading.Event()

    def hold(self) -> None:
        self.open.clear()

    def release(self) -> None:
        self.open.set()

    def __call__(self, request: Request) -> Reply:
        if not self.open.is_set():
            self.waiting.set()
            self.open.wait(timeout=25)
        return Reply(text="one two three four five six seven eight nine ten eleven twelve")


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def vault(tmp_path: Path, gate: Gate) -> Iterator[DaemonVault]:
    server = OllamaServer(gate).start()
    v = DaemonVault.make(tmp_path, server.host)
    try:
        yield v
    finally:
        gate.release()
        v.close()
        server.stop()


def test_ready_then_sigterm_stops_cleanly(vault: DaemonVault) -> None:
    vault.start()
    vault.ready()
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0
    vault.notify.wait_for("STOPPING=1", 5)
    assert any(f.startswith("STATUS=") for f in vault.notify.fields())


def test_second_instance_refused_while_first_runs(vault: DaemonVault) -> None:
    first = vault.start()
    vault.ready()
    second = vault.start()
    assert second.wait(timeout=30) == 1
    assert "already in use by autovault" in vault.log_text()
    vault.proc = first
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0


def test_edited_prompt_records_a_human_change_with_its_diff(vault: DaemonVault) -> None:
    vault.start()
    vault.ready()
    prompt = vault.root / "prompts" / "brief.md"
    tmp = prompt.with_name(".brief.md.swp~")  # an editor's save: temp file, then rename over the target
    tmp.write_text("Write the morning briefing for {date}. Keep it short.\nCONTEXT: {context}\n")
    tmp.rename(prompt)
    changed = wait_until(lambda: vault.events(Task.Changed), what="a Changed event")  # type: ignore[attr-defined]
    assert [(c.path, c.by) for c in changed] == [("prompts/brief.md", "human")]
    diff = vault.store.blobs.get_text(changed[0].diff_hash)
    assert diff is not None and "+Write the morning briefing for {date}. Keep it short." in diff
    # the edit queues a shadow verification run of the task that reads the prompt
    runs = wait_until(lambda: [r for r in vault.events(Task.Ran) if r.source == "shadow"], what="a shadow run")
    assert {r.model for r in runs} == {"ollama:writer"}
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0
    assert len(vault.events(Task.Changed)) == 1  # type: ignore[attr-defined]


def test_edit_while_stopped_is_recorded_at_start_once(vault: DaemonVault) -> None:
    vault.start()
    vault.ready()
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0
    (vault.root / "prompts" / "notes.md").write_text("Write short notes for {date}.\n")
    mark = len(vault.notify.messages)
    vault.start()
    vault.ready(mark)
    changed = vault.events(Task.Changed)  # type: ignore[attr-defined]
    assert [(c.path, c.by) for c in changed] == [("prompts/notes.md", "human")]
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0
    vault.start()
    vault.ready(len(vault.notify.messages))
    assert len(vault.events(Task.Changed)) == 1  # type: ignore[attr-defined]


def test_appended_log_lines_are_ingested_once(vault: DaemonVault) -> None:
    vault.start()
    vault.ready()
    vault.append_log(json.dumps(RUN))
    wait_until(lambda: vault.events(Task.Ran), what="the Ran event")
    vault.append_log(json.dumps({**SCORE, "score": 4}), '{"type": "run", "task": "brief", "started": "x"')  # partial
    wait_until(lambda: vault.events(Task.Scored), what="the Scored event")  # type: ignore[attr-defined]
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0
    vault.start()
    vault.ready(len(vault.notify.messages))
    assert [r.run_id for r in vault.events(Task.Ran)] == ["hb-1"]
    assert len(vault.events(Task.Scored)) == 1  # type: ignore[attr-defined]
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0


def test_invalid_vault_yml_on_sighup_is_refused_and_old_config_kept(vault: DaemonVault) -> None:
    vault.start()
    vault.ready()
    good = vault.cfg.read_text()
    vault.cfg.write_text(good.replace("model: ollama:writer", "model: 42", 1))
    mark = len(vault.notify.messages)
    vault.signal(signal.SIGHUP)
    vault.notify.wait_for("STATUS=reload refused*", 20, mark)
    assert "reload refused, keeping the previous config" in vault.log_text()
    vault.cfg.write_text(good)
    vault.append_log(json.dumps(RUN))  # still working on the old config
    wait_until(lambda: vault.events(Task.Ran), what="ingest after a refused reload")
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0


def test_low_score_starts_a_cycle_and_kill9_mid_cycle_restarts_consistent(vault: DaemonVault, gate: Gate) -> None:
    gate.hold()  # the cycle's verification runs block in the model: the kill lands mid-cycle
    vault.start()
    vault.ready()
    vault.append_log(json.dumps(RUN), json.dumps(SCORE))
    started = wait_until(lambda: vault.events(Cycle.Started), what="a cycle to start")  # type: ignore[attr-defined]
    assert started[0].task == "brief" and started[0].trigger.startswith("low_score:")
    assert gate.waiting.wait(timeout=30), "the cycle never reached the model"
    before = {p: p.read_bytes() for p in [vault.cfg, *vault.root.rglob("*")] if p.is_file()}
    vault.kill9()
    gate.release()
    mark = len(vault.notify.messages)
    vault.start()
    vault.ready(mark)
    failed = vault.events(Cycle.Failed)  # type: ignore[attr-defined]
    assert [f.error for f in failed] == ["interrupted: the daemon stopped during the cycle"]
    assert len(vault.events(Cycle.Started)) == 1  # type: ignore[attr-defined]  # cooldown: no second cycle
    assert [r.run_id for r in vault.events(Task.Ran) if r.source == "log"] == ["hb-1"]
    assert len(vault.events(Task.Scored)) == 1  # type: ignore[attr-defined]
    for path, data in before.items():  # the cycle never applied: every file is as it was, none half-written
        assert path.read_bytes() == data, path
    assert not list(vault.root.rglob("*.avtmp"))
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0


def test_a_kept_delta_is_recorded_once_by_the_cycle_not_again_as_a_human_edit(tmp_path: Path) -> None:
    words = " ".join(f"w{i}" for i in range(80))  # cut at num_predict 50 (truncated); whole at 100
    server = OllamaServer(lambda _r: Reply(text=words)).start()
    vault = DaemonVault.make(tmp_path, server.host)
    try:
        vault.start()
        vault.ready()
        vault.append_log(json.dumps(RUN), json.dumps(SCORE))
        ended = wait_until(lambda: vault.events(Cycle.Kept) + vault.events(Cycle.Discarded)  # type: ignore[attr-defined]
                           + vault.events(Cycle.Failed), 30, "the cycle to end")  # type: ignore[attr-defined]
        assert type(ended[0]).__name__ == "Kept", ended
        assert "num_predict: 100" in vault.cfg.read_text()
        wait_until(lambda: "vault.yml reloaded" in vault.log_text(), 20, "the daemon to see its own write")
        changed = vault.events(Task.Changed)  # type: ignore[attr-defined]
        assert [(c.path, c.by) for c in changed] == [("vault.yml", "cycle")]
        vault.signal(signal.SIGTERM)
        assert vault.wait() == 0
        vault.start()
        vault.ready(len(vault.notify.messages))
        assert [(c.path, c.by) for c in vault.events(Task.Changed)] == [("vault.yml", "cycle")]  # type: ignore[attr-defined]
    finally:
        vault.close()
        server.stop()


def test_sigterm_during_a_cycle_rolls_it_back_and_exits_0(vault: DaemonVault, gate: Gate) -> None:
    gate.hold()
    vault.start("--stop-grace", "1")
    vault.ready()
    cfg_before = vault.cfg.read_bytes()
    vault.append_log(json.dumps(RUN), json.dumps(SCORE))
    assert gate.waiting.wait(timeout=30), "the cycle never reached the model"
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0
    vault.notify.wait_for("STOPPING=1", 5)
    assert [f.error for f in vault.events(Cycle.Failed)] == ["interrupted: shutdown"]  # type: ignore[attr-defined]
    assert vault.cfg.read_bytes() == cfg_before


def test_once_catches_up_and_exits(vault: DaemonVault) -> None:
    vault.append_log(json.dumps(RUN), json.dumps({**SCORE, "score": 5}))
    vault.start("--once")
    vault.ready()
    assert vault.wait() == 0
    vault.notify.wait_for("STOPPING=1", 5)
    assert [r.run_id for r in vault.events(Task.Ran)] == ["hb-1"]
    assert len(vault.events(Task.Scored)) == 1  # type: ignore[attr-defined]


def test_watchdog_pings_at_half_the_interval(vault: DaemonVault) -> None:
    vault.start(env={"WATCHDOG_USEC": "400000"})  # 0.4 s: a ping every 0.2 s
    after_ready = vault.ready()
    first = vault.notify.wait_for("WATCHDOG=1", 10, after_ready)
    vault.notify.wait_for("WATCHDOG=1", 10, first)  # and again, while idle
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0


def test_valid_vault_yml_edit_is_reloaded_and_recorded_for_the_tasks_it_changed(vault: DaemonVault) -> None:
    vault.start()
    vault.ready()
    text = vault.cfg.read_text()
    notes = text.index("  notes:")
    vault.cfg.write_text(text[:notes] + text[notes:].replace("ollama:writer", "ollama:bigger"))
    changed = wait_until(lambda: vault.events(Task.Changed), what="a Changed event for vault.yml")  # type: ignore[attr-defined]
    assert [(c.path, c.by) for c in changed] == [("vault.yml", "human")]
    reconfigured = vault.events(Task.Reconfigured)  # type: ignore[attr-defined]
    assert len(reconfigured) == 1  # notes only: brief's own section did not change
    diff = vault.store.blobs.get_text(changed[0].diff_hash)
    assert diff is not None and "+    model: ollama:bigger" in diff
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0


def test_scheduled_task_runs_on_its_slot_and_missed_slots_run_once(tmp_path: Path) -> None:
    """In-process with an injected clock (a subprocess cannot be told the time): `run --once` at three moments."""
    server = OllamaServer(lambda _r: Reply(text="one two three four five six seven eight")).start()
    v = DaemonVault.make(tmp_path, server.host)
    try:
        v.cfg.write_text(v.cfg.read_text().replace("    prompt: prompts/brief.md\n",
                                                    "    prompt: prompts/brief.md\n    schedule: daily 06:30\n"))
        v.store.record_run(RunResult("seed", "brief", "2026-03-10T06:30:00+00:00", "ok", "ollama:writer", {}, "x",
                                     "stop", 1, 1, source="daemon"))

        def once(now: dt.datetime) -> list[str]:
            assert run_service(Options(config=v.cfg, once=True, env={}, clock=lambda: now)) == 0
            return [r.started for r in v.events(Task.Ran) if r.source == "daemon"]

        eight_days_later = dt.datetime(2026, 3, 18, 12, 0, tzinfo=dt.UTC)
        assert once(eight_days_later) == ["2026-03-10T06:30:00+00:00", "2026-03-18T12:00:00Z"]  # once, not 8x
        assert len(once(eight_days_later + dt.timedelta(hours=18))) == 2  # 06:29 next day: not yet
        assert once(dt.datetime(2026, 3, 19, 6, 30, tzinfo=dt.UTC))[-1] == "2026-03-19T06:30:00Z"
    finally:
        v.close()
        server.stop()


def test_vault_yml_edited_while_stopped_is_recorded_at_start(vault: DaemonVault) -> None:
    vault.start()
    vault.ready()
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0
    vault.cfg.write_text(vault.cfg.read_text().replace("expect: {min_words: 5}\n  notes", "expect: {min_words: 9}\n  notes"))
    vault.start()
    vault.ready(len(vault.notify.messages))
    changed = vault.events(Task.Changed)  # type: ignore[attr-defined]
    assert [(c.path, c.by) for c in changed] == [("vault.yml", "human")]  # for brief only
    assert changed[0].originator_id == vault.store.get_task("brief").id  # type: ignore[union-attr]
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0


@pytest.mark.postgres
def test_on_postgresql_log_lines_and_edits_are_recorded_and_one_instance_holds_the_store(
        tmp_path: Path, pg_url: str) -> None:
    server = OllamaServer(lambda _r: Reply(text="one two three four five six seven eight")).start()
    v = DaemonVault.make(tmp_path, server.host, store_url=pg_url)
    try:
        first = v.start()
        v.ready()
        second = v.start()
        assert second.wait(timeout=30) == 1  # the advisory lock
        v.proc = first
        v.append_log(json.dumps(RUN), json.dumps({**SCORE, "score": 5}))
        (v.root / "prompts" / "notes.md").write_text("Write short notes for {date}.\n")
        wait_until(lambda: v.events(Task.Scored) and v.events(Task.Changed), what="events on PostgreSQL")  # type: ignore[attr-defined]
        v.signal(signal.SIGTERM)
        assert v.wait() == 0
        assert [r.run_id for r in v.events(Task.Ran) if r.source == "log"] == ["hb-1"]
    finally:
        v.close()
        server.stop()


def test_weekly_quality_report_goes_to_the_state_dir_not_the_vault(tmp_path: Path) -> None:
    server = OllamaServer(lambda _r: Reply(text="one two three four five six seven eight")).start()
    v = DaemonVault.make(tmp_path, server.host)
    try:
        now = dt.datetime.now(dt.UTC)
        reports = tmp_path / "state" / "reports"
        reports.mkdir(parents=True)
        old = reports / "quality-old.md"
        old.write_text("last week\n")
        stamp = (now - dt.timedelta(days=8)).timestamp()
        os.utime(old, (stamp, stamp))
        v.append_log(json.dumps(RUN), json.dumps({**SCORE, "score": 4}))
        assert run_service(Options(config=v.cfg, once=True, env={}, clock=lambda: now)) == 0
        report = (reports / f"quality-{now.date().isoformat()}.md").read_text()
        assert "## Kept deltas (0; 0 discarded)" in report
        assert "1. `brief` (rolling 4.00): truncated → lever **config**" in report
        assert not list(v.root.rglob("quality-*.md"))
    finally:
        v.close()
        server.stop()


def test_an_apply_cut_short_by_a_crash_is_finished_at_start_and_recorded_as_the_cycles(vault: DaemonVault) -> None:
    from adapters.atomic import apply_files, sha256_file

    vault.start()
    vault.ready()  # the baseline of every watched file
    vault.kill9()

    prompts = {"vault/prompts/brief.md": "Write the briefing for {date}.\nCONTEXT: {context}\n",
               "vault/prompts/notes.md": "Write terse notes for {date}.\n"}
    changes = {rel: (sha256_file(vault.tmp / rel), text) for rel, text in prompts.items()}
    pid = os.fork()  # a process killed after the first file landed, the journal committed (an error would roll back)
    if pid == 0:
        try:
            apply_files(vault.tmp, changes, on_written=lambda _rel: os.kill(os.getpid(), signal.SIGKILL))
        finally:
            os._exit(3)
    assert os.waitpid(pid, 0)[1] == signal.SIGKILL
    vault.start()
    vault.ready(len(vault.notify.messages))
    assert {p: (vault.tmp / p).read_text() for p in prompts} == prompts  # rolled forward: both files new
    changed = vault.events(Task.Changed)  # type: ignore[attr-defined]
    assert sorted((c.path, c.by) for c in changed) == [("prompts/brief.md", "cycle"), ("prompts/notes.md", "cycle")]
    assert not [r for r in vault.events(Task.Ran) if r.source == "shadow"]  # no verification of our own change
    vault.signal(signal.SIGTERM)
    assert vault.wait() == 0

"""The reaction table with recording doubles: what each message does, and what stops a cycle from starting."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from domain.config import ResearchConfig, TaskConfig, VaultConfig
from domain.quality import TaskQuality
from handlers import policies
from handlers.policies import (
    Context,
    CycleFinished,
    EventsRecorded,
    FileEdited,
    Fix,
    KeptDelta,
    Tick,
    WeekFacts,
)

NOON = dt.datetime(2026, 3, 18, 12, 0, tzinfo=dt.UTC)
NIGHT = dt.datetime(2026, 3, 18, 2, 0, tzinfo=dt.UTC)


def cfg(window: str | None = None, **research: Any) -> VaultConfig:
    return VaultConfig(vault=".", research=ResearchConfig(window=window, **research), tasks={
        "brief": TaskConfig(prompt="prompts/brief.md", model="ollama:m", collect="scripts/collect.sh --days 2"),
        "notes": TaskConfig(prompt="prompts/notes.md", model="ollama:m", inputs=["Briefs/*.md"]),
        "off": TaskConfig(prompt="prompts/brief.md", model="ollama:m", enabled=False),
    })


def q(task: str, mean: float | None) -> TaskQuality:
    return TaskQuality(task, 5, 5, mean, mean, None, None, "ok", "stop", (), (), None, 1)


class Batch:
    def __init__(self, store: Store) -> None:
        self.store, self.items = store, []  # type: ignore[var-annotated]

    def change(self, *args: Any) -> None:
        self.items.append(args)

    def commit(self) -> None:
        self.store.commits.append(self.items)


class Store:
    def __init__(self) -> None:
        self.commits: list[list[tuple[Any, ...]]] = []

    def batch(self) -> Batch:
        return Batch(self)


class World:
    """Everything a Context asks, recorded."""

    def __init__(self, tmp: Path, config: VaultConfig, now: dt.datetime = NOON) -> None:
        self.now = now
        self.scores: list[TaskQuality] = []
        self.open: set[str] = set()
        self.last_start: dict[str, dt.datetime] = {}
        self.started: list[tuple[str, str, list[str]]] = []
        self.verifications: list[str] = []
        self.findings: list[tuple[str, str, list[str]]] = []
        self.store = Store()
        self.ctx = Context(
            config=config, store=self.store, clock=lambda: self.now, quality=lambda: self.scores,
            open_cycles=lambda: self.open | {t for t, _, _ in self.started},
            last_cycle_start=self.last_start.get, start_cycle=lambda *a: self.started.append(a),
            queue_verification=self.verifications.append, refresh_findings=self._refresh,
            week_facts=lambda since: WeekFacts(
                [KeptDelta("c1", "brief", "config", 0.6, "num_predict 300 → 600")], [("notes", 4.0, 3.2)],
                [Fix("notes", 3.2, "too_short", "prompt", "3/5 runs under 30 words"),
                 Fix("brief", 3.4, "truncated", "config", "stopped at num_predict")], discarded=2),
            state_dir=tmp)

    def _refresh(self, start: Any) -> None:
        for task, trigger, tasks in self.findings:
            start(task, trigger, tasks)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, cfg())


def test_human_edit_records_changed_for_every_task_reading_the_path_and_queues_verification(world: World) -> None:
    policies.handle(FileEdited("scripts/collect.sh", "a", "b", "-x\n+y\n"), world.ctx)
    assert world.store.commits == [[("brief", "scripts/collect.sh", "a", "b", "-x\n+y\n", "human", None)]]
    assert world.verifications == ["brief"]


def test_edit_of_a_shared_prompt_records_one_batch_and_skips_disabled_verification(world: World) -> None:
    policies.handle(FileEdited("prompts/brief.md", "a", "b", "d"), world.ctx)
    assert [i[0] for i in world.store.commits[0]] == ["brief", "off"]
    assert world.verifications == ["brief"]


def test_edit_of_an_input_concerns_its_reader_and_an_unrelated_file_nobody(world: World) -> None:
    policies.handle(FileEdited("Briefs/2026-03-18.md", "a", "b", "d"), world.ctx)
    policies.handle(FileEdited("prompts/unused.md", None, "b", "d"), world.ctx)
    assert [[i[0] for i in c] for c in world.store.commits] == [["notes"]]


def test_changed_tasks_of_a_config_edit() -> None:
    old = cfg()
    new = old.model_copy(update={"tasks": {**old.tasks, "notes": old.tasks["notes"].model_copy(
        update={"model": "ollama:big"})}})
    assert policies.changed_tasks(old, new) == ["notes"]
    assert policies.changed_tasks(old, cfg(threshold=3.0)) == ["brief", "notes", "off"]  # shared section
    assert policies.changed_tasks(old, cfg()) == []


def test_low_score_starts_one_cycle_per_task_worst_first(world: World) -> None:
    world.scores = [q("notes", 2.0), q("brief", 3.0), q("off", 1.0)]
    policies.handle(EventsRecorded(("brief",)), world.ctx)
    assert [(t, trig) for t, trig, _ in world.started] == [("notes", "low_score:2.00"), ("brief", "low_score:3.00")]
    policies.handle(EventsRecorded(("brief",)), world.ctx)  # both in flight now: nothing new
    assert len(world.started) == 2


def test_low_score_respects_threshold_open_cycles_cooldown_and_window(tmp_path: Path) -> None:
    w = World(tmp_path, cfg(threshold=3.5, cooldown_minutes=60))
    w.scores = [q("brief", 3.5), q("notes", 2.0)]  # brief is AT the threshold: fine
    w.open = {"notes"}
    policies.handle(EventsRecorded(()), w.ctx)
    assert w.started == []
    w.open = set()
    w.last_start["notes"] = NOON - dt.timedelta(minutes=59)
    policies.handle(EventsRecorded(()), w.ctx)
    assert w.started == []
    w.last_start["notes"] = NOON - dt.timedelta(minutes=60)
    policies.handle(EventsRecorded(()), w.ctx)
    assert [t for t, _, _ in w.started] == ["notes"]
    closed = World(tmp_path, cfg(window="01:00-06:00"))
    closed.scores = [q("notes", 2.0)]
    policies.handle(EventsRecorded(()), closed.ctx)
    assert closed.started == []
    closed.now = NIGHT
    policies.handle(EventsRecorded(()), closed.ctx)
    assert [t for t, _, _ in closed.started] == ["notes"]


def test_a_finding_starts_a_cycle_with_both_ends_through_the_same_gate(world: World) -> None:
    world.findings = [("brief", "finding:too_short_for_consumer:brief->notes", ["brief", "notes"])]
    policies.handle(EventsRecorded(("brief",)), world.ctx)
    assert world.started == [("brief", "finding:too_short_for_consumer:brief->notes", ["brief", "notes"])]
    world.last_start["brief"] = NOON
    world.started.clear()
    policies.handle(EventsRecorded(("brief",)), world.ctx)
    assert world.started == []  # cooling down


def test_loop_mode_only_inside_a_configured_window_and_stops_on_patience(tmp_path: Path) -> None:
    anytime = World(tmp_path, cfg(window=None))
    anytime.scores = [q("brief", 3.0)]
    policies.handle(Tick(NOON), anytime.ctx)
    assert anytime.started == []  # no window: no nightly batch
    w = World(tmp_path, cfg(window="01:00-06:00", target=3.8, patience=2))
    w.scores = [q("notes", 2.0), q("brief", 3.0), q(" gone", 1.0)]
    w.last_start["notes"] = NIGHT  # loop mode ignores the cooldown
    policies.handle(Tick(NOON), w.ctx)
    assert w.started == []  # outside the window
    w.now = NIGHT
    policies.handle(Tick(NIGHT), w.ctx)
    assert [(t, trig) for t, trig, _ in w.started] == [("notes", "loop")]
    policies.handle(Tick(NIGHT), w.ctx)
    assert len(w.started) == 1  # one in flight at a time
    w.started.clear()
    policies.handle(CycleFinished("notes", "loop", "nothing"), w.ctx)
    policies.handle(Tick(NIGHT), w.ctx)
    assert [t for t, _, _ in w.started] == ["brief"]  # notes had nothing to propose: exhausted tonight
    w.started.clear()
    policies.handle(CycleFinished("brief", "loop", "discarded"), w.ctx)  # second miss in a row: patience 2
    policies.handle(Tick(NIGHT + dt.timedelta(minutes=5)), w.ctx)
    assert w.started == []
    w.now = NIGHT + dt.timedelta(days=1)
    policies.handle(Tick(w.now), w.ctx)  # the next night starts afresh
    assert [t for t, _, _ in w.started] == ["notes"]


def test_weekly_quality_gate_writes_one_report_per_week(world: World, tmp_path: Path) -> None:
    monday = dt.datetime(2026, 3, 16, 7, 0, tzinfo=dt.UTC)
    world.ctx.last_report = monday - dt.timedelta(days=7)
    policies.handle(Tick(monday - dt.timedelta(minutes=1)), world.ctx)
    assert not (tmp_path / "reports").exists()
    policies.handle(Tick(monday), world.ctx)
    report = (tmp_path / "reports" / "quality-2026-03-16.md").read_text()
    assert "`brief` — config: num_predict 300 → 600 (effect +0.60, cycle c1)" in report
    assert "2 discarded" in report and "`notes`: 4.00 → 3.20" in report
    assert "1. `notes` (rolling 3.20): too_short → lever **prompt**" in report
    assert "2. `brief` (rolling 3.40): truncated → lever **config**" in report
    policies.handle(Tick(monday + dt.timedelta(days=3)), world.ctx)
    assert len(list((tmp_path / "reports").glob("*.md"))) == 1


def test_first_start_waits_a_week_for_its_first_report(world: World, tmp_path: Path) -> None:
    policies.handle(Tick(NOON), world.ctx)
    assert not (tmp_path / "reports").exists()
    policies.handle(Tick(NOON + dt.timedelta(days=7)), world.ctx)
    assert len(list((tmp_path / "reports").glob("quality-*.md"))) == 1


def test_a_failing_handler_does_not_stop_the_others(world: World) -> None:
    messages: list[str] = []
    world.ctx.log = messages.append
    world.ctx.quality = lambda: 1 / 0  # type: ignore[assignment,return-value]
    world.findings = [("brief", "finding:x", ["brief"])]
    policies.handle(EventsRecorded(()), world.ctx)
    assert [t for t, _, _ in world.started] == ["brief"]
    assert any("cycle_on_low_score failed" in m for m in messages)


def test_every_message_type_has_handlers_in_the_one_table() -> None:
    assert set(policies.HANDLERS) == {policies.FileEdited, policies.ConfigEdited, EventsRecorded, Tick, CycleFinished}

"""The scheduler with an injected clock: on time, missed runs once, first start, research window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from daemon.scheduler import Scheduler, in_window, parse_started
from domain.config import TaskConfig, VaultConfig
from domain.window import window_day


def config(**schedules: str | None) -> VaultConfig:
    tasks = {name: TaskConfig(prompt="p.md", model="ollama:m", schedule=spec) for name, spec in schedules.items()}
    return VaultConfig(vault=".", tasks=tasks)


def at(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 3, day, hh, mm, tzinfo=UTC)


def test_a_daily_task_is_due_at_its_slot_and_not_before() -> None:
    s = Scheduler(config(brief="daily 06:30"), {"brief": at(17, 6, 30)}, first_seen=at(16, 0))
    assert s.due(at(18, 6, 29)) == []
    assert s.due(at(18, 6, 30)) == ["brief"]
    assert s.next_due() == at(18, 6, 30)


def test_missed_runs_after_downtime_run_once() -> None:
    s = Scheduler(config(brief="daily 06:30", hourly="hourly"), {"brief": at(10, 6, 30), "hourly": at(10, 7)},
                  first_seen=at(1, 0))
    now = at(18, 9, 15)  # eight days and ~190 hourly slots later
    assert s.due(now) == ["hourly", "brief"]  # each once, earliest missed slot first (10th 08:00, 11th 06:30)
    for task in s.due(now):
        s.mark(task, now)
    assert s.due(now) == []
    assert s.due(now + timedelta(minutes=44)) == []
    assert s.due(now + timedelta(minutes=45)) == ["hourly"]  # 10:00: the next slot after the catch-up run
    assert s.next_run("brief") == at(19, 6, 30)


def test_a_task_never_run_by_the_daemon_first_fires_after_the_daemon_saw_it() -> None:
    s = Scheduler(config(brief="daily 06:30"), {}, first_seen=at(18, 10))
    assert s.due(at(18, 23, 59)) == []  # no back-fill for this morning
    assert s.due(at(19, 6, 30)) == ["brief"]


def test_mark_never_moves_back_and_unscheduled_or_disabled_tasks_are_ignored() -> None:
    cfg = config(brief="every 30m", manual=None)
    cfg = cfg.model_copy(update={"tasks": {**cfg.tasks, "off": TaskConfig(prompt="p.md", model="ollama:m",
                                                                           schedule="hourly", enabled=False)}})
    s = Scheduler(cfg, {}, first_seen=at(18, 10))
    assert set(s.schedules) == {"brief"}
    s.mark("brief", at(18, 12))
    s.mark("brief", at(18, 11))
    assert s.next_run("brief") == at(18, 12, 30)


def test_reload_picks_up_new_schedules() -> None:
    s = Scheduler(config(brief="daily 06:30"), {}, first_seen=at(18, 10))
    s.reload(config(brief="daily 11:00"))
    assert s.due(at(18, 11)) == ["brief"]


def test_research_window() -> None:
    assert in_window(None, at(18, 12))
    assert in_window("01:00-06:00", at(18, 1)) and in_window("01:00-06:00", at(18, 5, 59))
    assert not in_window("01:00-06:00", at(18, 6)) and not in_window("01:00-06:00", at(18, 0, 59))
    assert in_window("22:00-04:00", at(18, 23)) and in_window("22:00-04:00", at(18, 3))
    assert not in_window("22:00-04:00", at(18, 12))
    assert window_day("22:00-04:00", at(18, 3)) == at(17, 0).date()
    assert window_day("22:00-04:00", at(18, 23)) == at(18, 0).date()


def test_run_start_times_are_read_in_the_clock_timezone() -> None:
    cet = timezone(timedelta(hours=1))
    now = datetime(2026, 3, 18, 12, tzinfo=cet)
    assert parse_started("2026-03-18T06:30:00Z", now) == datetime(2026, 3, 18, 7, 30, tzinfo=cet)
    assert parse_started("2026-03-18T06:30:00", now) == datetime(2026, 3, 18, 7, 30, tzinfo=cet)
    assert parse_started("yesterday", now) is None

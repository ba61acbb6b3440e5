"""Loop mode: worst task first, stop at target or patience, parallel cycles only on disjoint tasks."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from domain.config import TaskConfig
from domain.delta import Delta
from handlers.loop import disjoint, pick, run_loop
from testbed.cycle_vault import IMPROVED_PROMPT, make_vault


def test_the_loop_fixes_every_task_in_parallel_and_stops_at_target(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)

    def propose(ev: Any) -> list[Delta]:
        if ev.task == "brief":
            return [fx.edit("prompts/brief.md", IMPROVED_PROMPT)]
        return [fx.edit("prompts/notes.md", "Notes for {date}, at least 40 words.\nCONTEXT: {context}\n",
                        task="notes")]

    seen: list[str] = []
    report = run_loop(fx.deps([("double", propose)]), {"brief": 3.5, "notes": 3.0}, target=3.8, patience=2,
                      jobs=2, on_result=lambda r: seen.append(r.task))
    assert sorted(seen) == ["brief", "notes"] and report.kept == 2
    assert report.before == {"brief": 3.5, "notes": 3.0}
    assert report.after == {"brief": 5.0, "notes": 4.5}  # before + the verified effect (+1.5 each)
    assert report.stopped == "every task reached 3.8"


def test_the_loop_stops_after_patience_cycles_without_a_keep(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    counter = itertools.count()

    def noise(ev: Any) -> list[Delta]:  # a fresh no-effect wording every time: never a duplicate, never better
        return [fx.edit("prompts/brief.md", f"Write the morning briefing for {{date}} carefully (v{next(counter)}).\nCONTEXT: {{context}}\n")]

    report = run_loop(fx.deps([("double", noise)]), {"brief": 3.5, "notes": 5.0}, target=3.8, patience=3)
    assert [r.outcome for r in report.results] == ["discarded"] * 3
    assert report.stopped == "3 cycles in a row kept nothing (patience 3)"
    assert report.after["brief"] == 3.5


def test_a_stubborn_task_waits_its_turn_so_patience_reaches_the_fixable_one(tmp_path: Path) -> None:
    """Round-robin: `brief` is worst and only ever gets no-effect wordings; `notes` has a real fix. Worst-first
    alone would spend the whole patience on `brief`; the loop tries `notes` second and keeps its fix."""
    fx = make_vault(tmp_path)
    counter = itertools.count()

    def propose(ev: Any) -> list[Delta]:
        if ev.task == "brief":
            return [fx.edit("prompts/brief.md", f"Write the morning briefing for {{date}} (v{next(counter)}).\n"
                                                "CONTEXT: {context}\n")]
        return [fx.edit("prompts/notes.md", "Notes for {date}, at least 40 words.\nCONTEXT: {context}\n",
                        task="notes")]

    report = run_loop(fx.deps([("double", propose)]), {"brief": 2.0, "notes": 3.0}, target=3.8, patience=2)
    assert [(r.task, r.outcome) for r in report.results][:2] == [("brief", "discarded"), ("notes", "kept")]
    assert report.after["notes"] == 4.5 and report.stopped == "2 cycles in a row kept nothing (patience 2)"


def test_max_cycles_and_tasks_with_nothing_to_propose(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    report = run_loop(fx.deps([("none", lambda ev: [])]), {"brief": 3.0, "notes": 2.0}, target=3.8, patience=5)
    assert [r.task for r in report.results] == ["notes", "brief"]  # worst first, each once
    assert report.stopped == "nothing left to try for brief, notes"
    capped = run_loop(fx.deps([("none", lambda ev: [])]), {"brief": 3.0, "notes": 2.0}, target=3.8, patience=5,
                      max_cycles=1)
    assert len(capped.results) == 1 and capped.stopped == "max cycles (1) reached"


def test_parallel_picks_never_share_files(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    writer = TaskConfig(prompt="prompts/w.md", model="ollama:x", outputs=["Drafts/brief-{date}.md"])
    reader = TaskConfig(prompt="prompts/r.md", model="ollama:x", inputs=["Drafts/brief-*.md"])
    other = TaskConfig(prompt="prompts/o.md", model="ollama:x", collect="scripts/o.sh --fast")
    assert not disjoint(writer, reader) and disjoint(writer, other) and disjoint(reader, other)
    config = fx.svc.config.model_copy(update={"tasks": {"w": writer, "r": reader, "o": other}})
    assert pick(config, {"w": 1.0, "r": 1.5, "o": 2.0}, 3.8, set(), 3) == ["w", "o"]
    assert pick(config, {"w": 4.0, "r": 1.5, "o": None}, 3.8, set(), 3) == ["r", "o"]
    assert pick(config, {"w": 1.0, "r": 1.5, "o": 2.0}, 3.8, {"w"}, 1) == ["r"]

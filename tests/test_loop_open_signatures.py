"""What is open on a task gets worked on whatever its score: the loop picks a task at target that shows a run
signature (thinking that burns the budget without truncating yet) or sits at one end of a data-flow finding;
the ranking puts such a producer on the list; a loop that runs out says which tasks must run again, and the
daemon runs a task again as soon as a cycle kept a change to it. Status and signatures show what is open,
file checks included, and nothing from runs older than the task's last kept change."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from daemon.bootstrap import diagnose_deps
from daemon.cli import main
from domain.delta import Delta
from domain.runs import Completion, RunResult, Score
from handlers.diagnose import diagnose
from handlers.loop import run_loop
from handlers.open_signatures import open_signatures
from handlers.policies import CycleFinished, rerun_after_keep
from handlers.proposers import rules
from handlers.ranking import rank_tasks
from handlers.since_change import current_history
from projections.dataflow import FindingSpec
from testbed.cycle_vault import IMPROVED_PROMPT, Writer, make_vault
from tests.test_policies import World, cfg


def _run(fx: Any, run_id: str, day: int, *, thinking: int = 0, words: int = 45, started: str | None = None) -> None:
    """A live run of `brief` judged 5: its score is at target, its thinking share is whatever is given."""
    run = RunResult(run_id=run_id, task="brief", started=started or f"2026-03-{day:02d}T06:00:00Z", status="ok",
                    model="ollama:writer", options={"num_predict": 200}, output=" ".join(["word"] * words),
                    done_reason="stop", prompt_tokens=30, output_tokens=words, thinking_tokens=thinking,
                    num_predict=200, context="three commits", source="cli",
                    artifacts={f"Briefs/2026-03-{day:02d}.md": ""})
    fx.svc.store.record_scored_run(run, Score(run_id, 5.0, "test"), "judge")


def _forking_collector(root: Path) -> None:
    """A collector that starts three programs per note over six notes: a fork loop the trace measures."""
    (root / "notes").mkdir(exist_ok=True)
    for i in range(6):
        (root / "notes" / f"n{i}.md").write_text(f"title: note {i}\ndue: 2026-03-{10 + i}\nowner: ann\n")
    (root / "scripts" / "collect.sh").write_text(
        "#!/bin/sh\nfor f in notes/*.md; do\n  a=$(sed -n 's/^title: *//p' \"$f\")\n"
        "  b=$(sed -n 's/^due: *//p' \"$f\")\n  c=$(sed -n 's/^owner: *//p' \"$f\")\n  echo \"$a $b $c\"\ndone\n")


def test_a_task_at_target_with_thinking_burn_is_worked_on_by_the_loop(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    for day in range(10, 13):
        _run(fx, f"b{day}", day, thinking=150)  # 150 of num_predict 200: the answer's budget, not truncated yet
    fx.svc.projections.catch_up()
    assert "thinking_burn" in [n.name for n in open_signatures("brief", diagnose_deps(fx.svc))]

    def propose(ev: Any) -> list[Delta]:
        return [fx.edit("prompts/brief.md", IMPROVED_PROMPT)] if ev.task == "brief" else []

    report = run_loop(fx.deps([("double", propose)]), {"brief": 5.0, "notes": 5.0}, target=3.8, patience=2)
    assert report.results and report.results[0].task == "brief"  # at target, still worked on
    assert report.results[0].kept and report.stopped == "every task reached 3.8"
    assert len(report.results) == 1  # the runs that showed it predate the keep: not picked again for them


def test_signatures_of_runs_older_than_the_last_kept_change_are_not_shown(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    for day in range(10, 13):
        _run(fx, f"b{day}", day, thinking=150)
    fx.svc.projections.catch_up()
    deps = fx.deps([("double", lambda ev: [fx.edit("prompts/brief.md", IMPROVED_PROMPT)])])
    report = run_loop(deps, {"brief": 3.0, "notes": 5.0}, target=3.8, patience=1)
    assert report.kept == 1, [(r.outcome, r.reason) for r in report.results]
    assert "thinking_burn" not in [n.name for n in open_signatures("brief", diagnose_deps(fx.svc))]  # those runs are stale now
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    _run(fx, "b-after", 28, thinking=150, started=later)  # a run on the changed files shows it again
    fx.svc.projections.catch_up()
    assert "thinking_burn" in [n.name for n in open_signatures("brief", diagnose_deps(fx.svc))]


def test_a_producer_at_target_on_a_finding_edge_is_ranked_for_work(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    for day in range(10, 13):
        _run(fx, f"b{day}", day)
    fx.svc.projections.catch_up()
    svc = fx.svc
    edge = FindingSpec("too_small_for_consumer", "brief->notes", ("brief", "notes"), {"shortfalls": []}, "warning")
    quiet = dataclasses.replace(diagnose_deps(svc), findings=lambda: [])
    assert "brief" not in [r.task for r in rank_tasks(quiet)]  # score 5, nothing open
    found = dataclasses.replace(quiet, findings=lambda: [edge])
    ranked = {r.task: r for r in rank_tasks(found)}
    assert "too_small_for_consumer" in ranked["brief"].signatures and ranked["brief"].score == 5.0


def test_a_loop_that_runs_out_names_the_tasks_that_must_run_again(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)

    def propose(ev: Any) -> list[Delta]:
        return [fx.edit("prompts/brief.md", IMPROVED_PROMPT)] if ev.task == "brief" else []

    report = run_loop(fx.deps([("double", propose)]), {"brief": 3.0, "notes": 3.0}, target=4.9, patience=3,
                      open_signatures=lambda _t: [])
    assert [(r.task, r.outcome) for r in report.results] == [("brief", "kept"), ("notes", "nothing"),
                                                             ("brief", "nothing")]
    assert report.rerun == ["brief"]
    assert report.stopped.startswith("nothing left to try for brief, notes; brief changed in this loop and must "
                                     "run again")


def test_the_daemon_runs_a_task_again_after_a_kept_cycle_only(tmp_path: Path) -> None:
    world = World(tmp_path, cfg())
    queued: list[str] = []
    world.ctx.queue_run = queued.append
    for outcome in ("discarded", "nothing", "failed", "awaiting_approval"):
        rerun_after_keep(CycleFinished("brief", "loop", outcome), world.ctx)
    assert queued == []
    rerun_after_keep(CycleFinished("brief", "loop", "kept"), world.ctx)
    rerun_after_keep(CycleFinished("off", "loop", "kept"), world.ctx)  # disabled: never run
    assert queued == ["brief"]


def test_status_and_signatures_show_file_checks_before_any_loop(tmp_path: Path, capsys: Any) -> None:
    fx = make_vault(tmp_path)
    _forking_collector(fx.root)
    _run(fx, "b10", 10, thinking=150)
    fx.svc.projections.catch_up()
    fx.svc.close()
    assert main(["--config", str(fx.cfg), "signatures", "brief", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["brief"]
    by_name = {s["name"]: s["source"] for s in found}
    assert by_name.get("thinking_burn") == "runs" and "subprocess_loop" in by_name
    assert main(["--config", str(fx.cfg), "status", "--signatures", "--json"]) == 0
    rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"thinking_burn", "subprocess_loop"} <= {s["name"] for s in rows["brief"]["signatures"]}


def test_findings_show_what_the_task_files_hold_before_any_run(tmp_path: Path, capsys: Any) -> None:
    fx = make_vault(tmp_path)
    _forking_collector(fx.root)
    fx.svc.close()
    assert main(["--config", str(fx.cfg), "findings", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    mine = [r for r in rows if r["subject"] == "brief" and r.get("source") in ("lint", "trace")]
    assert [r["kind"] for r in mine] == ["subprocess_loop"] and mine[0]["open"] is True
    assert main(["--config", str(fx.cfg), "findings"]) == 0
    table = capsys.readouterr().out
    assert "subprocess_loop" in table and "in the task files" in table


class _Cut(Writer):
    """The writer, every answer stopped at the token limit (as a thinking model's answers are)."""

    def complete(self, model: str, prompt: Any, options: dict[str, Any], *,
                 json_schema: dict[str, Any] | None = None) -> Completion:
        return dataclasses.replace(super().complete(model, prompt, options, json_schema=json_schema),
                                   done_reason="length")


def test_after_a_keep_the_candidates_runs_show_what_is_still_wrong(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    fx.svc.models.register("ollama", _Cut())
    deps = fx.deps([("double", lambda ev: [fx.edit("prompts/brief.md", IMPROVED_PROMPT)])])
    report = run_loop(deps, {"brief": 3.0, "notes": 5.0}, target=3.8, patience=1, open_signatures=lambda _t: [],
                      catch_up=fx.svc.projections.catch_up)
    assert report.kept == 1, [(r.outcome, r.reason) for r in report.results]
    views = current_history(diagnose_deps(fx.svc), "brief").views("brief", 8)
    assert views and all("-cand-" in v.run_id for v in views)  # no live run yet: the kept candidate's runs
    ev = diagnose("brief", diagnose_deps(fx.svc))
    assert ev.has("truncated")  # the next cycle can raise num_predict without waiting for a live run
    assert any(d.meta.get("rules") == ["raise_num_predict"] for d in rules.propose(ev))


def test_a_signature_driven_loop_passes_over_a_quiet_task_until_something_opens_on_it(tmp_path: Path) -> None:
    """Rules alone propose only for an open signature: the worst task, showing nothing, costs no cycle; once a keep
    elsewhere opens something on it (a producer grown for it), the next pick asks again and works on it."""
    fx = make_vault(tmp_path)
    shown: dict[str, list[str]] = {"brief": ["truncated"], "notes": []}

    def propose(ev: Any) -> list[Delta]:
        return [fx.edit("prompts/brief.md", IMPROVED_PROMPT)] if ev.task == "brief" else []

    def opened_after(r: Any) -> None:
        if r.task == "brief" and r.kept:
            shown.update(brief=[], notes=["too_small_for_consumer"])

    report = run_loop(fx.deps([("rules", propose)]), {"brief": 3.0, "notes": 2.0}, target=4.9, patience=3,
                      open_signatures=lambda t: shown[t], on_result=opened_after)
    assert [(r.task, r.outcome) for r in report.results] == [("brief", "kept"), ("notes", "nothing")]


def test_a_signature_driven_loop_spends_nothing_on_tasks_that_show_nothing(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    report = run_loop(fx.deps([("rules", lambda _ev: [])]), {"brief": 3.0, "notes": 2.0}, target=4.9, patience=3,
                      open_signatures=lambda _t: [])
    assert report.results == [] and report.stopped.startswith("nothing left to try for brief, notes")


def test_a_loop_with_a_proposer_that_reads_scores_tries_a_quiet_task(tmp_path: Path) -> None:
    """An LLM proposer may propose on a score alone: a task under target is tried even when nothing is open."""
    fx = make_vault(tmp_path)
    report = run_loop(fx.deps([("double", lambda _ev: [])]), {"brief": 3.0, "notes": 2.0}, target=4.9, patience=3,
                      open_signatures=lambda _t: [])
    assert [(r.task, r.outcome) for r in report.results] == [("notes", "nothing"), ("brief", "nothing")]

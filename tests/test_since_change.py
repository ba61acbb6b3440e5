"""What stays open after a cycle kept a change to a task: findings read off older runs are not; what older runs said
about a pool member nobody ran since is; the collector's script lints stand in only where it was not measured."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from adapters.config_loader import load_config
from adapters.sandbox import SandboxUnavailable
from benchmarks.bench_faults import setup
from benchmarks.fault_models import FaultModels
from benchmarks.fault_vault import HOUSEHOLD
from daemon.bootstrap import cycle_deps, diagnose_deps, reloader
from domain.runs import RunResult, Score
from domain.signatures import RunView, Signature
from handlers import collector_trace
from handlers.cycle import approve_cycle
from handlers.diagnose_deps import DiagnoseDeps
from handlers.loop import run_loop
from handlers.open_signatures import open_signatures
from handlers.since_change import carried_pool_signatures, current_findings, last_own_keep
from projections.dataflow import FindingSpec
from projections.quality import quality_table
from testbed.cycle_vault import IMPROVED_PROMPT, make_vault
from testbed.servers import OllamaServer


def _run(fx: Any, run_id: str, started: str) -> None:
    run = RunResult(run_id=run_id, task="brief", started=started, status="ok", model="ollama:writer",
                    options={"num_predict": 200}, output=" ".join(["word"] * 45), done_reason="stop", prompt_tokens=30,
                    output_tokens=45, num_predict=200, context="three commits", source="cli")
    fx.svc.store.record_scored_run(run, Score(run_id, 5.0, "test"), "judge")


# ---- findings --------------------------------------------------------------------------------------------


def test_a_finding_on_a_task_changed_since_its_runs_is_not_open_until_it_runs_again(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    _run(fx, "b10", "2026-03-10T06:00:00Z")
    fx.svc.projections.catch_up()
    edge = FindingSpec("too_small_for_consumer", "brief->notes", ("brief", "notes"), {"shortfalls": []})
    on_notes = FindingSpec("stale_output", "notes", ("notes",), {"runs": 3})
    assert current_findings(diagnose_deps(fx.svc), [edge, on_notes]) == [edge, on_notes]

    deps = fx.deps([("double", lambda ev: [fx.edit("prompts/brief.md", IMPROVED_PROMPT)])])
    report = run_loop(deps, {"brief": 3.0, "notes": 5.0}, target=3.8, patience=1)
    assert report.kept == 1 and last_own_keep(diagnose_deps(fx.svc), "brief") is not None
    assert current_findings(diagnose_deps(fx.svc), [edge, on_notes]) == [on_notes]  # both ends of the edge: read off brief's old runs
    quiet = _with_findings(fx.svc, [edge])
    assert "too_small_for_consumer" not in [n.name for n in open_signatures("notes", quiet)]
    assert "too_small_for_consumer" not in [n.name for n in open_signatures("brief", quiet)]

    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    _run(fx, "b-after", later)  # brief ran on the changed files: what the graph says is current again
    fx.svc.projections.catch_up()
    assert current_findings(diagnose_deps(fx.svc), [edge]) == [edge]
    assert "too_small_for_consumer" in [n.name for n in open_signatures("notes", quiet)]


def _with_findings(svc: Any, found: list[FindingSpec]) -> DiagnoseDeps:
    return dataclasses.replace(diagnose_deps(svc), findings=lambda: found)


# ---- pool members ---------------------------------------------------------------------------------------


def _view(model: str, n: int) -> RunView:
    return RunView(run_id=f"{model}-{n}", task="t", output="prose", done_reason="stop", started=f"2026-05-0{n}",
                   model=model, status="ok")


def _wrong(*bad: str) -> Signature:
    return Signature("wrong_model", "t", "medium", "model", "misses", {"bad": list(bad), "models": {}})


POOL = ["ollama:big", "ollama:coder", "ollama:small"]


@pytest.mark.parametrize(("case", "found", "old", "current", "carried"), [
    ("a pool member nobody ran since", [], [_wrong("ollama:coder")], [_view("ollama:big", 1)], ["ollama:coder"]),
    ("two of them, one ran since", [], [_wrong("ollama:coder", "ollama:small")],
     [_view("ollama:big", 1), _view("ollama:small", 2)], ["ollama:coder"]),
    ("it ran on the current files", [], [_wrong("ollama:coder")], [_view("ollama:coder", 1)], []),
    ("the task's own model: its candidate runs tell", [], [_wrong("ollama:big")], [_view("ollama:big", 1)], []),
    ("no longer in the pool", [], [_wrong("ollama:gone")], [], []),
    ("the current runs show it already", [_wrong("ollama:coder")], [_wrong("ollama:coder")], [], []),
    ("nothing was wrong", [], [], [], []),
])
def test_what_old_runs_said_about_a_pool_member_is_carried_until_it_runs(
        case: str, found: list[Signature], old: list[Signature], current: list[RunView], carried: list[str]) -> None:
    out = carried_pool_signatures(found, old, POOL, "ollama:big", current)
    assert [m for s in out for m in s.evidence["bad"]] == carried, case
    assert all(s.evidence["carried"] and s.evidence["actions"] == {m: "drop from candidates" for m in carried}
               for s in out)


def test_a_coder_in_the_pool_is_dropped_after_the_prompt_fix_it_waited_for(tmp_path: Path) -> None:
    """The household vault's weekend-ideas: the layout is fenced (every model fences it) and a coder in the pool
    writes prose without the day sections. The drop waits for the fence fix; once that is kept, the coder's runs
    predate it, but nothing newer is known about the coder: the loop drops it instead of stopping at target."""
    with OllamaServer(FaultModels(seed=0)) as server:
        cfg, svc = setup(tmp_path, server.host, only=("weekend-ideas",), vault=HOUSEHOLD)
        with svc:
            deps = cycle_deps(svc, lambda _m: None)
            with svc.engine_connect() as conn:
                quality = {q.task: q.rolling_mean for q in quality_table(conn) if q.task == "weekend-ideas"}
            report = run_loop(deps, quality, target=4.5, patience=2, max_cycles=4,
                              approve=lambda r: approve_cycle(deps, r.key), catch_up=svc.projections.catch_up,
                              reload=reloader(svc, lambda _m: None))
            levers = [(r.delta.lever if r.delta else None, r.outcome) for r in report.results]
            assert levers[:2] == [("prompt", "kept"), ("candidates", "kept")], [
                (r.outcome, r.reason) for r in report.results]
            pool = load_config(cfg, {}).task("weekend-ideas").candidates
            assert "ollama:codegemma:7b" not in pool and "ollama:mistral:7b" in pool


# ---- lints ------------------------------------------------------------------------------------------------


SED_LOOP = ("#!/bin/sh\nfor f in notes/*.md; do\n  a=$(sed -n 's/^title: *//p' \"$f\")\n"
            "  b=$(sed -n 's/^due: *//p' \"$f\")\n  echo \"$a $b\"\ndone\n")


def test_a_lint_the_measurement_contradicts_is_not_shown(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    (fx.root / "notes").mkdir()
    (fx.root / "notes" / "a.md").write_text("title: one\ndue: today\n")
    (fx.root / "scripts" / "collect.sh").write_text(SED_LOOP)  # the lint's shape, over one file: no loop cost
    names = {n.name: n.source for n in open_signatures("brief", diagnose_deps(fx.svc))}
    assert "subprocess_loop" not in names and "collector_unmeasured" not in names


def test_where_the_collector_cannot_be_measured_the_lints_stand_in(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fx = make_vault(tmp_path)
    (fx.root / "scripts" / "collect.sh").write_text(SED_LOOP)

    def no_sandbox(*_a: Any, **_k: Any) -> Any:
        raise SandboxUnavailable("this machine has no Landlock")

    monkeypatch.setattr(collector_trace, "trace_script", no_sandbox)
    names = {n.name: n.source for n in open_signatures("brief", diagnose_deps(fx.svc))}
    assert names.get("subprocess_loop") == "lint" and names.get("collector_unmeasured") == "trace"

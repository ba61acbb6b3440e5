"""Issue 5's acceptance on the example vault, end to end: the seed's planted interface faults are open findings
after its heartbeat logs are ingested; the improvement loop (in process, on the flawed-model loopback double,
through the real ollama client) fixes them; live runs afterwards no longer show them, so they resolve, each
naming the kept cycle that fixed it. And the handler: a cycle a mismatch starts sees both ends of the edge.

The vault, its services and the ingest come from the fault benchmark (`benchmarks.bench_faults.setup`), with
only the three tasks involved enabled, so the loop stays a few cycles long."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.config_loader import load_config
from benchmarks.bench_faults import setup
from benchmarks.fault_models import FaultModels
from daemon.bootstrap import Services, cycle_deps, diagnose_deps, reloader
from daemon.dataflow import current_findings, dataflow_for, refresh_after_events
from domain.aggregates import Cycle, Finding
from domain.ids import finding_id
from handlers.cycle import CycleResult, approve_cycle, run_cycle
from handlers.diagnose import diagnose
from handlers.findings import RESOLVED_REASON, on_finding_detected
from handlers.loop import run_loop
from handlers.tasks import run_and_judge
from projections.findings import open_keys
from projections.quality import quality_table
from testbed.servers import OllamaServer

INVOLVED = ("blog-drafter", "blog-writer", "lesson-distiller")
MISMATCH = ("too_small_for_consumer", "blog-drafter->blog-writer")
NEVER_WRITTEN = ("outputs_never_written", "lesson-distiller")
NO_PARSER = ("blocks_without_parser", "lesson-distiller")
PLANTED = {MISMATCH, NEVER_WRITTEN, NO_PARSER}
RESOLVED: Any = Finding.Resolved  # type: ignore[attr-defined]
DIAGNOSED: Any = Cycle.Diagnosed  # type: ignore[attr-defined]


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[tuple[Path, Services]]:
    """The fault bench's copy of the example vault (heartbeat logs ingested, findings refreshed) on the double."""
    with OllamaServer(FaultModels(seed=0)) as server:
        cfg_path, svc = setup(tmp_path, server.host, only=INVOLVED)
        with svc:
            yield cfg_path, svc


def open_findings(svc: Services) -> set[tuple[str, str]]:
    with svc.engine_connect() as conn:
        return open_keys(conn)


def resolutions(svc: Services, key: tuple[str, str]) -> list[Any]:
    return [e for e in svc.store.events.get(finding_id(*key)) if isinstance(e, RESOLVED)]


def test_the_loop_fixes_the_seed_findings_and_live_runs_resolve_them(bench: tuple[Path, Services]) -> None:
    cfg_path, svc = bench
    assert open_findings(svc) >= PLANTED

    # the findings' own handler says which cycles they want: the producer of the mismatch, the dead distiller
    asked: dict[str, list[str]] = {}
    for f in current_findings(svc):
        if f.key in PLANTED:
            on_finding_detected(f, lambda task, _trigger, tasks: asked.setdefault(task, tasks))
    assert asked == {"blog-drafter": ["blog-drafter", "blog-writer"], "lesson-distiller": ["lesson-distiller"]}

    deps = cycle_deps(svc, lambda _m: None)
    with svc.engine_connect() as conn:
        quality = {q.task: q.rolling_mean for q in quality_table(conn) if q.task in INVOLVED}
    # the postprocessor (scripts/**) waits for approval: approved at once, as a person would
    report = run_loop(deps, quality, target=4.5, patience=2, max_cycles=4,
                      approve=lambda r: approve_cycle(deps, r.key), reload=reloader(svc, lambda _m: None))
    kept = {r.task: r.key for r in report.results if r.kept}
    assert {"blog-drafter", "lesson-distiller"} <= set(kept), [(r.task, r.outcome, r.reason) for r in report.results]
    drafter = next(r for r in report.results if r.key == kept["blog-drafter"])
    assert drafter.delta is not None and drafter.delta.tasks == ("blog-drafter", "blog-writer")
    svc.config = load_config(cfg_path, {})  # the live config the kept deltas wrote, as the daemon reloads it
    assert svc.config.tasks["lesson-distiller"].postprocess
    # the blocks have a parser as soon as vault.yml names one; sizes and writes wait for the next runs
    assert refresh_after_events(svc) == ([], [NO_PARSER])
    assert {MISMATCH, NEVER_WRITTEN} <= open_findings(svc)

    for _ in range(2):  # live runs, as `autovault run-task` makes them
        for task in INVOLVED:
            outcome = run_and_judge(task, config=svc.config, runner=svc.runner, store=svc.store,
                                    complete=svc.models.complete, history=svc.history,
                                    read_text=svc.read_vault_text, source="cli")
            assert outcome.run.status == "ok", outcome.run.error
    svc.projections.catch_up()
    detected, resolved = refresh_after_events(svc)
    assert set(resolved) == {MISMATCH, NEVER_WRITTEN} and detected == []
    assert dataflow_for(svc).graph.configs["lesson-distiller"].postprocess  # the graph saw the reloaded vault.yml
    assert not PLANTED & open_findings(svc)
    by_cycle = {MISMATCH: kept["blog-drafter"], NEVER_WRITTEN: kept["lesson-distiller"],
                NO_PARSER: kept["lesson-distiller"]}
    for key, cycle in by_cycle.items():
        [event] = resolutions(svc, key)
        assert (event.by_cycle, event.reason) == (cycle, RESOLVED_REASON), key
    assert refresh_after_events(svc) == ([], [])  # resolved once


def test_a_cycle_started_by_the_mismatch_sees_both_ends(bench: tuple[Path, Services]) -> None:
    _, svc = bench
    mismatch = next(f for f in current_findings(svc) if f.key == MISMATCH)

    # the evidence the producer's diagnosis packs: the consumer's contract beside the producer's observed sizes
    evidence = diagnose("blog-drafter", diagnose_deps(svc))
    assert evidence.tasks == ("blog-drafter", "blog-writer")
    [writer] = [n for n in evidence.downstream if n.task == "blog-writer"]
    assert writer.requires == {"min_words": 300, "min_facts": 5, "sections": ["## Key facts"]}
    assert writer.artifacts == ("Drafts/brief-{date}.md",)
    assert writer.observed["words"]["max"] < 300 and writer.observed["facts"]["max"] < 5  # the thin briefs
    assert writer.observed["tokens"]["max"] == 211
    note = evidence.signature("too_small_for_consumer")
    assert note is not None and note.source == "finding" and note.evidence["consumer"] == "blog-writer"
    assert {s["measure"] for s in note.evidence["shortfalls"]} == {"words", "facts"}
    assert "vault.yml" in evidence.files  # where the consumer's `requires` lives, so a delta may change it too
    writer_prompt = evidence.files["prompts/blog-writer.md"]  # and the consumer's own prompt
    assert writer_prompt.role == "consumer-prompt" and writer_prompt.text

    # started the way the daemon starts it: run_cycle is not handed the finding's task list
    deps = cycle_deps(svc, lambda _m: None)
    handed: list[list[str]] = []

    def start(task: str, trigger: str, tasks: list[str]) -> CycleResult:
        handed.append(tasks)
        return run_cycle(deps, task, trigger=trigger, propose_only=True)

    result = on_finding_detected(mismatch, start)
    assert handed == [["blog-drafter", "blog-writer"]]
    assert result.outcome == "proposed" and result.delta is not None
    assert result.delta.tasks == ("blog-drafter", "blog-writer")
    assert "grow_for_consumer" in result.delta.meta["rules"]
    cycle = svc.store.get_cycle(result.key)
    assert cycle is not None
    events = list(svc.store.events.get(cycle.id))
    assert events[0].trigger == "finding:too_small_for_consumer:blog-drafter->blog-writer"  # type: ignore[attr-defined]
    [diagnosed] = [e for e in events if isinstance(e, DIAGNOSED)]
    assert diagnosed.tasks == ["blog-drafter", "blog-writer"]
    recorded = json.loads(svc.store.blobs.get_text(diagnosed.evidence_hash) or "{}")
    [down] = [n for n in recorded["downstream"] if n["task"] == "blog-writer"]
    assert down["requires"]["min_words"] == 300 and down["observed"]["words"]["max"] < 300

"""Diagnose on the seed vault: the worst task is chosen, the evidence holds what a proposer needs (with
hashes of the files on disk) and stays bounded whatever the runs contain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.atomic import sha256_file
from daemon.bootstrap import Services, diagnose_deps
from domain.runs import RunResult, Score
from handlers.diagnose import diagnose
from handlers.evidence import FileText
from handlers.evidence_parts import EXCERPT_RUNS
from handlers.ranking import choose_bottleneck, rank_tasks
from tests.seed_copy import seed_services


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    services = seed_services(tmp_path_factory.mktemp("seed"))
    yield services
    services.close()


def test_the_bottleneck_is_the_lowest_scoring_task_with_the_worst_signatures(svc: Services) -> None:
    ranked = rank_tasks(diagnose_deps(svc))
    assert ranked[0].task == "knowledge-seeder" and ranked[0].score == 1.0
    assert ranked[1].task == "output-judge"  # the same score, fewer and milder signatures
    assert "knowledge-judge" not in [r.task for r in ranked]  # healthy: at target, no signature
    scores = [r.score for r in ranked if r.score is not None]
    assert scores == sorted(scores)
    assert choose_bottleneck(diagnose_deps(svc), exclude=["knowledge-seeder"]) == "output-judge"
    assert diagnose(None, diagnose_deps(svc)).task == "knowledge-seeder"


def test_evidence_holds_signatures_contracts_and_hashed_files(svc: Services) -> None:
    ev = diagnose("blog-drafter", diagnose_deps(svc))
    assert {"too_short_for_consumer", "too_small_for_consumer"} <= {s.name for s in ev.signatures}
    assert ev.tasks == ("blog-drafter", "blog-writer")
    writer = next(n for n in ev.downstream if n.task == "blog-writer")
    assert writer.requires["min_words"] == 300 and writer.observed["words"]["max"] < 300
    assert ev.config_block.startswith("  blog-drafter:\n") and "num_predict: 280" in ev.config_block
    roles = {f.role: f for f in ev.files.values()}
    assert set(roles) >= {"config", "prompt", "collect"} and roles["config"].in_config
    root = svc.config.root
    for f in ev.files.values():
        disk = svc.config.source if f.in_config else root / f.path
        assert f.complete and f.sha256 == sha256_file(disk)
    assert len(ev.runs) == EXCERPT_RUNS and ev.runs[-1].started.startswith("2026-03-17")
    assert ev.model_stats["ollama:qwen3:8b"]["runs"] == 8
    writer_ev = diagnose("blog-writer", diagnose_deps(svc))
    drafter = next(n for n in writer_ev.upstream if n.task == "blog-drafter")
    assert drafter.artifacts == ("Drafts/brief-{date}.md",) and drafter.observed["words"]["max"] < 300


def test_static_lints_and_the_data_audit_are_signatures(svc: Services) -> None:
    assert diagnose("knowledge-quiz", diagnose_deps(svc)).has("section_regex_leak")
    loop = diagnose("knowledge-spacer", diagnose_deps(svc)).signature("subprocess_loop")  # measured: 4 sed + date + basename
    assert loop is not None and loop.source == "trace" and (loop.evidence["per_item"], loop.evidence["items"]) == (6, 31)
    planner = diagnose("goal-planner", diagnose_deps(svc))
    assert planner.data_audit is not None and planner.data_audit["labels"] == {"HAS-GOALS": 6, "NO-CHANGE": 12}
    assert planner.has("training_data_imbalanced") and "data/planner.jsonl" in planner.files
    fashion = diagnose("fashion-signals", diagnose_deps(svc))
    assert fashion.script_inputs == {"signals/signals_list.txt": 61}
    judge = diagnose("knowledge-judge", diagnose_deps(svc))
    assert judge.signatures == () and judge.data_audit is None


def test_evidence_is_json_and_a_bounded_prompt(svc: Services) -> None:
    ev = diagnose("morning-briefing", diagnose_deps(svc))
    data = json.loads(ev.to_json())
    assert data["task"] == "morning-briefing" and data["files"]["vault.yml"]["in_config"] is True
    text = ev.to_prompt(5000)
    assert len(text) <= 5000 and "truncated" in text and "instruction_leak" in text
    assert "prompts/morning-briefing.md" in text and "(or 'quiet — no commits' if 0)" in text  # whole prompt shown
    assert isinstance(ev.files["prompts/morning-briefing.md"], FileText)


def test_huge_runs_do_not_blow_up_the_evidence(tmp_path: Path) -> None:
    svc = seed_services(tmp_path)
    try:
        huge = "lorem ipsum " * 100_000  # 1.2 MB of output and of context
        for day in range(20, 25):
            run = RunResult(run_id=f"big-{day}", task="research-radar", started=f"2026-03-{day}T07:00:00Z",
                            status="ok", model="ollama:qwen3:8b", options={"num_predict": 600}, output=huge,
                            done_reason="length", prompt_tokens=9000, output_tokens=600, context=huge)
            svc.store.record_run(run)
            svc.store.record_score("research-radar", Score(run.run_id, 1.0, "test", reasons=[huge]))
        svc.projections.catch_up()
        ev = diagnose("research-radar", diagnose_deps(svc))
    finally:
        svc.close()
    assert ev.has("truncated")
    size = len(ev.to_json())
    assert size < 60_000, size
    assert all(len(r.output) <= 800 and len(r.context) <= 300 for r in ev.runs)
    assert all(len(r) <= 200 for r in ev.judge_reasons)
    assert len(ev.to_prompt(8000)) <= 8000


def test_an_oversized_file_is_carried_clipped_and_never_edited(tmp_path: Path) -> None:
    svc = seed_services(tmp_path)
    try:
        prompt = svc.config.root / "prompts/research-radar.md"
        prompt.write_text(prompt.read_text() + "x" * 100_000)
        ev = diagnose("research-radar", diagnose_deps(svc))
    finally:
        svc.close()
    f = ev.files["prompts/research-radar.md"]
    assert not f.complete and len(f.text) < 70_000 and f.sha256 == sha256_file(prompt)
    from handlers.proposers import rules

    assert all("prompts/research-radar.md" not in d.paths for d in rules.propose(ev))


def test_runs_before_the_tasks_own_kept_change_are_stale_evidence(tmp_path: Path) -> None:
    """After a cycle on a task changed its files, the logged runs describe files that are gone: their signatures
    must not drive the next proposal (the rules would halve an already halved head -N). A change recorded by
    another task's cycle (a producer growing for this consumer) leaves this task's evidence alone."""
    services = seed_services(tmp_path)
    try:
        before = {s.name for s in diagnose("output-judge", diagnose_deps(services)).signatures}
        assert "context_overflow" in before
        writer = {s.name for s in diagnose("blog-writer", diagnose_deps(services)).signatures}
        for key, task, changed in (("output-judge-c1", "output-judge", "output-judge"),
                                   ("blog-drafter-c1", "blog-drafter", "blog-writer")):
            services.store.start_cycle(key, task, "cycle", None, "test")
            services.store.record_change(changed, "scripts/x.sh", None, "0" * 64, "", by="cycle", cycle_id=key)
        after = diagnose("output-judge", diagnose_deps(services))
        assert after.runs == () and not [s for s in after.signatures if s.source == "runs"]
        measured = after.signature("context_overflow")  # the files did not really change: measured, it still is
        assert measured is not None and measured.source == "trace"
        assert {s.name for s in diagnose("blog-writer", diagnose_deps(services)).signatures} == writer
        assert "output-judge" not in [r.task for r in rank_tasks(diagnose_deps(services)) if "context_overflow" in r.signatures]
    finally:
        services.close()

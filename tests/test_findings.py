"""Data-flow findings on the event store: the seed vault's planted interface faults are detected from its
heartbeat logs, once, and resolve when later runs no longer show them; the graph state rebuilds the same
after a restart; `autovault graph` / `findings` show them. Real SQLite files (and PostgreSQL for one test)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from adapters.config_loader import load_config
from daemon.bootstrap import Services, bootstrap, register_tasks
from daemon.cli import main
from daemon.dataflow import dataflow_for, findings_runner, refresh_after_events
from domain.runs import RunResult, Score
from handlers.findings import on_finding_detected, refresh_findings
from handlers.ingest import ingest_path
from projections.dataflow import FindingSpec
from projections.dataflow_state import DataflowState, vault_artifact_reader
from projections.findings import findings, open_keys
from projections.graph_render import RED

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "examples" / "seed-vault"
MISMATCH = ("too_small_for_consumer", "blog-drafter->blog-writer")
NEVER_WRITTEN = ("outputs_never_written", "lesson-distiller")
NO_PARSER = ("blocks_without_parser", "lesson-distiller")
PLANTED = {MISMATCH, NEVER_WRITTEN, NO_PARSER}


@pytest.fixture
def vault_yml(tmp_path: Path) -> Path:
    """The repository's vault.yml and seed vault, copied; the store is a SQLite file in tmp_path."""
    shutil.copytree(SEED, tmp_path / "seed-vault")
    text = (REPO / "vault.yml").read_text(encoding="utf-8")
    text = text.replace("vault: examples/seed-vault", "vault: seed-vault")
    text = text.replace("store: sqlite:///.autovault/events.db", f"store: sqlite:///{tmp_path / 'state' / 'events.db'}")
    path = tmp_path / "vault.yml"
    path.write_text(text, encoding="utf-8")
    return path


def services(vault_yml: Path, url: str | None = None) -> Services:
    svc = bootstrap(load_config(vault_yml), env={}, store_url=url)
    register_tasks(svc.store, svc.config)
    return svc


def ingest_seed(svc: Services) -> None:
    report = ingest_path(svc.config.root / "heartbeat" / "logs", svc.store)
    assert report.runs == 113 and not report.errors


def keys(found: list[FindingSpec]) -> set[tuple[str, str]]:
    return {f.key for f in found}


def brief(words: int, facts: int, day: str = "") -> str:
    body = " ".join([f"insight{day}"] * (words - facts * 4 - 8))
    bullets = "\n".join(f"- fact {i} with numbers" for i in range(facts))
    return f"## Angle\n{body}\n## Key facts\n{bullets}\n## Outline\nintro, middle, end"


def fixed_log(path: Path, days: range = range(18, 21)) -> Path:
    """Later heartbeat lines: the drafter writes 700-word briefs, the distiller writes its practice notes."""
    lines: list[dict[str, Any]] = []
    for d in days:
        day = f"2026-03-{d:02d}"
        lines.append({"type": "run", "task": "blog-drafter", "run_id": f"fix-{day}-drafter", "started": f"{day}T08:00:00Z",
                      "model": "ollama:qwen3:8b", "duration_s": 30.0, "prompt_tokens": 900, "output_tokens": 950,
                      "done_reason": "stop", "status": "ok", "output": brief(700, 6, day),
                      "artifacts": [f"Drafts/brief-{day}.md"]})
        lines.append({"type": "run", "task": "lesson-distiller", "run_id": f"fix-{day}-distiller",
                      "started": f"{day}T23:00:00Z", "model": "ollama:qwen3:8b", "duration_s": 20.0,
                      "prompt_tokens": 700, "output_tokens": 120, "done_reason": "stop", "status": "ok",
                      "output": f"=== PRACTICE NOTE: note-{d} ===\nKeep prompts short.\n",
                      "artifacts": [f"Knowledge/practice--note-{d}.md"]})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def rows_by_key(svc: Services) -> dict[tuple[str, str], Any]:
    findings_runner(svc).catch_up()
    with svc.engine_connect() as conn:
        return {r.key: r for r in findings(conn)}


# ---- detection and resolution --------------------------------------------------------------------------
def test_seed_logs_detect_the_planted_findings_once(vault_yml: Path, store_url: str) -> None:
    with services(vault_yml, store_url) as svc:
        ingest_seed(svc)
        detected, resolved = refresh_after_events(svc)
        assert keys(detected) >= PLANTED and resolved == []
        # the output-judge's score lines are its product (it declares no outputs): not a missing parser
        assert ("blocks_without_parser", "output-judge") not in keys(detected)
        mismatch = next(f for f in detected if f.key == MISMATCH)
        measures = {s["measure"]: s for s in mismatch.evidence["shortfalls"]}
        assert measures["words"]["required"] == 300 and measures["words"]["observed"] < 300
        assert measures["facts"]["observed"] == 3 and measures["facts"]["required"] == 5
        assert refresh_after_events(svc) == ([], [])  # detected once
        rows = rows_by_key(svc)
        assert all(rows[k].open and rows[k].detections == 1 for k in PLANTED)
        assert rows[MISMATCH].tasks == ("blog-drafter", "blog-writer")
        assert rows[NEVER_WRITTEN].severity == "error"
        finding = svc.store.get_finding(*MISMATCH)
        assert finding is not None and finding.open


def test_later_runs_that_fix_them_resolve_them_naming_the_cycle(vault_yml: Path, tmp_path: Path) -> None:
    with services(vault_yml) as svc:
        ingest_seed(svc)
        refresh_after_events(svc)
        # a kept cycle changed the drafter's prompt; the distiller was fixed by hand
        svc.store.record_change("blog-drafter", "prompts/blog-drafter.md", None, "after", "-old\n+new\n", "cycle",
                                "cycle-drafter-1")
        assert ingest_path(fixed_log(tmp_path / "fixed.jsonl"), svc.store).runs == 6
        detected, resolved = refresh_after_events(svc)
        assert set(resolved) >= PLANTED and not detected
        rows = rows_by_key(svc)
        assert not any(rows[k].open for k in PLANTED)
        assert rows[MISMATCH].by_cycle == "cycle-drafter-1" and rows[MISMATCH].reason == "no longer holds"
        assert rows[NEVER_WRITTEN].by_cycle is None and rows[NEVER_WRITTEN].resolved_at
        assert refresh_after_events(svc) == ([], [])  # resolved once
        with svc.engine_connect() as conn:
            assert not PLANTED & open_keys(conn)


def test_a_resolved_finding_is_redetected_when_it_comes_back(vault_yml: Path, tmp_path: Path) -> None:
    with services(vault_yml) as svc:
        ingest_seed(svc)
        refresh_after_events(svc)
        ingest_path(fixed_log(tmp_path / "fixed.jsonl"), svc.store)
        refresh_after_events(svc)
        thin = [{"type": "run", "task": "blog-drafter", "run_id": f"thin-{d}", "started": f"2026-03-{d}T08:00:00Z",
                 "model": "ollama:qwen3:8b", "duration_s": 9.0, "prompt_tokens": 800, "output_tokens": 211,
                 "done_reason": "length", "status": "ok", "output": brief(120, 3, str(d)), "artifacts": [f"Drafts/brief-2026-03-{d}.md"]}
                for d in (21, 22, 23)]
        (tmp_path / "thin.jsonl").write_text("".join(json.dumps(x) + "\n" for x in thin), encoding="utf-8")
        ingest_path(tmp_path / "thin.jsonl", svc.store)
        detected, _ = refresh_after_events(svc)
        assert MISMATCH in keys(detected)
        row = rows_by_key(svc)[MISMATCH]
        assert row.open and row.detections == 2 and row.by_cycle is None


def test_findings_of_other_kinds_are_left_alone(vault_yml: Path) -> None:
    with services(vault_yml) as svc:
        svc.store.detect_finding("training_data", "knowledge-deepener", ["knowledge-deepener"], {"examples": 5})
        refresh_after_events(svc)
        refresh_after_events(svc)
        audit = svc.store.get_finding("training_data", "knowledge-deepener")
        assert audit is not None and audit.open
        assert rows_by_key(svc)[("training_data", "knowledge-deepener")].open


def test_refresh_findings_with_a_recording_store(vault_yml: Path) -> None:
    """The handler alone: which store commands it issues for new and vanished keys."""
    calls: list[tuple[Any, ...]] = []

    class Recording:
        def detect_finding(self, kind: str, subject: str, tasks: list[str], evidence: dict[str, Any],
                           severity: str = "warning") -> None:
            json.dumps(evidence)  # evidence must be plain JSON
            calls.append(("detect", kind, subject, tuple(tasks)))

        def resolve_finding(self, kind: str, subject: str, by_cycle: str | None, reason: str) -> None:
            calls.append(("resolve", kind, subject, by_cycle, reason))

    with services(vault_yml) as svc:
        ingest_seed(svc)
        graph = dataflow_for(svc).graph
    stale = ("too_small_for_consumer", "knowledge-judge->goal-planner")
    refresh_findings(graph, Recording(), {MISMATCH, stale}, None,
                     last_kept=lambda tasks: "c-7" if "goal-planner" in tasks else None)
    assert ("detect", *NEVER_WRITTEN, ("lesson-distiller",)) in calls
    assert not any(c[0] == "detect" and (c[1], c[2]) == MISMATCH for c in calls)  # already open
    assert ("resolve", *stale, "c-7", "no longer holds") in calls
    assert not any(c[1] == "orphan_input" for c in calls)  # no `exists`: orphans are not judged


# ---- the cycle policy ----------------------------------------------------------------------------------
def test_a_mismatch_asks_for_a_cycle_holding_both_ends() -> None:
    asked: list[tuple[str, str, list[str]]] = []

    def start(task: str, trigger: str, tasks: list[str]) -> str:
        asked.append((task, trigger, tasks))
        return "started"

    pair = FindingSpec("too_small_for_consumer", "blog-drafter->blog-writer", ("blog-drafter", "blog-writer"))
    assert on_finding_detected(pair, start) == "started"
    dead = FindingSpec("outputs_never_written", "lesson-distiller", ("lesson-distiller",), severity="error")
    on_finding_detected(dead, start)
    assert on_finding_detected(FindingSpec("unread_output", "Blog/{date}.md", ("blog-writer",), severity="info"),
                               start) is None
    assert on_finding_detected(FindingSpec("dependency_cycle", "a->b->a", ("a", "b")), start) is None
    assert asked == [
        ("blog-drafter", "finding:too_small_for_consumer:blog-drafter->blog-writer", ["blog-drafter", "blog-writer"]),
        ("lesson-distiller", "finding:outputs_never_written:lesson-distiller", ["lesson-distiller"]),
    ]


def test_refresh_after_events_hands_new_findings_to_the_cycle_policy(vault_yml: Path) -> None:
    asked: list[tuple[str, str, list[str]]] = []
    with services(vault_yml) as svc:
        ingest_seed(svc)
        refresh_after_events(svc, start_cycle=lambda task, trigger, tasks: asked.append((task, trigger, tasks)))
        refresh_after_events(svc, start_cycle=lambda task, trigger, tasks: asked.append((task, trigger, tasks)))
    assert ("blog-drafter", "finding:too_small_for_consumer:blog-drafter->blog-writer",
            ["blog-drafter", "blog-writer"]) in asked
    assert len(asked) == len({a[1] for a in asked})  # each finding asked once


# ---- the graph state ----------------------------------------------------------------------------------
def test_rebuild_after_restart_equals_the_state_kept_current(vault_yml: Path, tmp_path: Path) -> None:
    with services(vault_yml) as svc:
        live = dataflow_for(svc)  # built on an empty store, then kept current event by event
        ingest_seed(svc)
        live.catch_up()
        ingest_path(fixed_log(tmp_path / "fixed.jsonl"), svc.store)
        assert live.catch_up() > 0
        before = live.stats()
    with services(vault_yml) as svc:
        rebuilt = DataflowState.build(svc.config, svc.store, svc.store.blobs.get_text,
                                      vault_artifact_reader(svc.config.root))
        assert rebuilt.stats() == before
        assert rebuilt.catch_up() == 0
    drafter = before["tasks"]["blog-drafter"]
    assert drafter["runs"] == 11 and drafter["score"] is not None
    assert before["edge_stats"]["blog-drafter->Drafts/brief-{date}.md"]["facts"]["last"] == 6


def test_shadow_and_verification_runs_are_not_the_pipeline(vault_yml: Path) -> None:
    with services(vault_yml) as svc:
        ingest_seed(svc)
        state = dataflow_for(svc)
        before = state.stats()
        run = RunResult(run_id="verify-1", task="blog-drafter", started="2026-03-18T08:00:00Z", status="ok",
                        model="ollama:qwen3:8b", options={}, output=brief(900, 8), done_reason="stop",
                        prompt_tokens=1, output_tokens=1200, artifacts={"Drafts/brief-2026-03-18.md": "abc"},
                        source="verify")
        svc.store.record_run(run)
        svc.store.record_score("blog-drafter", Score(run_id="verify-1", score=5.0, judge="output-judge"))
        assert state.catch_up() == 2
        after = state.stats()
        assert after["tasks"] == before["tasks"] and after["edge_stats"] == before["edge_stats"]


def test_blocks_are_counted_from_the_output_text(vault_yml: Path, tmp_path: Path) -> None:
    """Logged runs carry no block count; the state counts declared blocks in the stored output."""
    with services(vault_yml) as svc:
        ingest_seed(svc)
        ingest_path(fixed_log(tmp_path / "fixed.jsonl", range(18, 19)), svc.store)
        st = dataflow_for(svc).graph.stats("lesson-distiller")
        assert list(st.blocks)[-1] == 1 and st.missed == 0


# ---- the command line ---------------------------------------------------------------------------------
def test_cli_graph_draws_the_red_mismatch_and_findings_lists_it(vault_yml: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    with services(vault_yml) as svc:
        ingest_seed(svc)
        # a subject with a character class (kept by refresh: not a data-flow kind), to show it is not markup
        svc.store.detect_finding("training_data", "data/[a-z-]*.jsonl", ["knowledge-deepener"], {"examples": 5})
    cfg = ["--config", str(vault_yml)]

    assert main([*cfg, "graph"]) == 0
    text = capsys.readouterr().out
    assert "-> blog-writer  ✗ too small: words" in text and "Knowledge/practice--*.md  ✗ never written" in text

    assert main([*cfg, "graph", "--format", "dot"]) == 0
    dot = capsys.readouterr().out
    red_edges = [ln for ln in dot.splitlines() if "->" in ln and RED in ln]
    assert any('"task:blog-drafter" -> "artifact:Drafts/brief-{date}.md"' in ln for ln in red_edges)
    assert any('"artifact:Drafts/brief-{date}.md" -> "task:blog-writer"' in ln for ln in red_edges)

    assert main([*cfg, "graph", "--format", "mermaid", "--task", "blog-writer"]) == 0
    mermaid = capsys.readouterr().out
    assert any(ln.strip().startswith("linkStyle") and f"stroke:{RED}" in ln for ln in mermaid.splitlines())
    assert "knowledge-quiz" not in mermaid  # not up- or downstream of the writer

    png = tmp_path / "seed-graph.png"
    assert main([*cfg, "graph", "--format", "png", "--output", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    capsys.readouterr()

    assert main([*cfg, "findings", "--open", "--json"]) == 0
    listed = {(f["kind"], f["subject"]): f for f in json.loads(capsys.readouterr().out)}
    assert set(listed) >= PLANTED and all(f["open"] for f in listed.values())
    assert listed[MISMATCH]["evidence"]["consumer"] == "blog-writer"

    assert main([*cfg, "findings"]) == 0
    table = capsys.readouterr().out
    assert "too_small_for_consumer" in table and "words" in table and "< 300" in table
    assert "data/[a-z-]*.jsonl" in table  # brackets in subjects and evidence are shown, not read as markup


def test_cli_graph_png_defaults_to_graph_png(vault_yml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--config", str(vault_yml), "graph", "--format", "png"]) == 0
    assert (tmp_path / "graph.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["--config", str(vault_yml), "graph", "--task", "no-such-task"]) == 2
    assert "no-such-task" in capsys.readouterr().err

"""The data-flow projection on crafted vaults: glob algebra, wiring, every check firing and not, rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pytest

from domain.config import TaskConfig, VaultConfig
from domain.runs import RunResult
from projections import globs
from projections.dataflow import DataflowGraph, FindingSpec, check, diff_findings, glob_exists, text_stats
from projections.graph_render import RED, score_colour, to_dot, to_mermaid, to_png, to_text

BLOCK = {"regex": "^=== PRACTICE NOTE: (.+) ===$"}


def task(**kw: Any) -> TaskConfig:
    return TaskConfig(prompt="prompts/x.md", model="ollama:qwen3:8b", **kw)


def vault(**tasks: TaskConfig) -> VaultConfig:
    return VaultConfig(vault=".", tasks=dict(tasks))


def seed() -> VaultConfig:
    """The seed's pipeline in miniature: drafter -> writer (needs 600 words), a distiller with blocks."""
    return VaultConfig(
        vault=".",
        tasks={
            "knowledge-seeder": task(outputs=["Knowledge/{date}-seed.md"]),
            "blog-drafter": task(inputs=["Knowledge/*.md"], outputs=["Drafts/brief-{date}.md"]),
            "blog-writer": task(inputs=["Drafts/brief-*.md"], outputs=["Posts/{date}.md"], requires={"min_words": 600}),
            "lesson-distiller": task(
                inputs=["Posts/*.md"], outputs=["Lessons/practice--*.md"], expect={"blocks": BLOCK}
            ),
            "morning-briefing": task(inputs=["Goals/*.md"], outputs=["Briefings/{date}.md"]),
        },
    )


def day(i: int) -> str:
    return f"2026-03-{10 + i:02d}T06:00:00Z"


def run(
    g: DataflowGraph, name: str, i: int, artifacts: dict[str, str] | None = None, words: int = 300, **kw: Any
) -> None:
    g.observe_run(name, f"{name}-{i}", day(i), artifacts or {}, words, int(words * 1.4), **kw)


def kinds(findings: list[FindingSpec]) -> set[tuple[str, str]]:
    return {f.key for f in findings}


# ---- globs ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("Drafts/brief-{date}.md", "Drafts/brief-*.md", True),
        ("Briefings/{date}.md", "Knowledge/*.md", False),
        ("Knowledge/{date}-seed.md", "Knowledge/*.md", True),
        ("Knowledge/**", "Knowledge/practice--*.md", True),
        ("**/*.md", "a/b/c.md", True),
        ("**/*.md", "a/b/c.txt", False),
        ("a/**/b.md", "a/b.md", True),
        ("a/*/b.md", "a/b.md", False),
        ("a/[0-9]*.md", "a/x*.md", False),
        ("a/[!0-9]*.md", "a/x*.md", True),
        ("a/[a-c].md", "a/[c-e].md", True),
        ("a/[a-b].md", "a/[c-e].md", False),
        ("a/?.md", "a/ab.md", False),
        ("a/[!x].md", "a/[!y].md", True),
        ("a/[!x].md", "a/x.md", False),
        ("a/??.md", "a/ab.md", True),
        ("a/{x,y}.md", "a/y.md", True),
        ("a/{x,y}.md", "a/z.md", False),
        ("Drafts/brief-{date}.md", "Drafts/note-*.md", False),
        ("logs/{date}/*.jsonl", "logs/**/run.jsonl", True),
    ],
)
def test_glob_overlap_is_symmetric_and_exact(a: str, b: str, expected: bool) -> None:
    assert globs.overlaps(a, b) is expected
    assert globs.overlaps(b, a) is expected


@pytest.mark.parametrize(
    ("glob", "path", "expected"),
    [
        ("Drafts/brief-{date}.md", "Drafts/brief-2026-03-18.md", True),
        ("Drafts/brief-{date}.md", "Drafts/other/brief-2026-03-18.md", False),
        ("Knowledge/**", "Knowledge/a/b.md", True),
        ("**/*.md", "x.md", True),
        ("a/*.md", "a/b/c.md", False),
        ("a/[!0-9]*.md", "a/7x.md", False),
        ("./Posts/*.md", "Posts/x.md", True),
    ],
)
def test_glob_matches_concrete_paths(glob: str, path: str, expected: bool) -> None:
    assert globs.matches(glob, path) is expected


# ---- wiring ---------------------------------------------------------------------------------------------
def test_outputs_wire_to_overlapping_inputs_only() -> None:
    g = DataflowGraph.from_config(seed())
    pairs = {(e.producer, e.consumer, e.artifact) for e in g.task_edges()}
    assert ("blog-drafter", "blog-writer", "Drafts/brief-{date}.md") in pairs
    assert ("knowledge-seeder", "blog-drafter", "Knowledge/{date}-seed.md") in pairs
    assert not any(e.producer == "morning-briefing" for e in g.task_edges())  # Briefings/ feeds nobody
    assert g.g.has_edge("task:blog-drafter", "artifact:Drafts/brief-{date}.md")
    assert g.g.edges["artifact:Drafts/brief-{date}.md", "task:blog-writer"]["globs"] == ("Drafts/brief-*.md",)
    assert g.g.nodes["artifact:Goals/*.md"]["produced"] is False


def test_tasks_sharing_an_output_are_both_producers() -> None:
    cfg = vault(
        a=task(outputs=["heartbeat/logs/{date}.md"]),
        b=task(outputs=["heartbeat/logs/{date}.md"]),
        c=task(outputs=["heartbeat/logs/*.md"]),
        reader=task(inputs=["heartbeat/logs/**"]),
    )
    g = DataflowGraph.from_config(cfg)
    assert g.producers("heartbeat/logs/{date}.md") == ["a", "b"]
    assert {(e.producer, e.consumer) for e in g.task_edges()} == {("a", "reader"), ("b", "reader"), ("c", "reader")}


def test_update_config_reports_what_changed_and_keeps_observations() -> None:
    g = DataflowGraph.from_config(seed())
    for i in range(3):
        run(g, "blog-drafter", i, {f"Drafts/brief-{i}.md": f"h{i}"}, words=211, score=3.0)
    tasks = dict(seed().tasks)
    tasks["blog-writer"] = task(inputs=["Notes/*.md"], requires={"min_words": 600})
    tasks["editor"] = task(inputs=["Drafts/*.md"])
    change = g.update_config(VaultConfig(vault=".", tasks=tasks))
    assert change.added == ("editor",)
    assert change.changed == ("blog-writer",)
    assert [(e.producer, e.consumer) for e in change.edges_added] == [("blog-drafter", "editor")]
    assert ("blog-drafter", "blog-writer") in {(e.producer, e.consumer) for e in change.edges_removed}
    assert g.stats("blog-drafter").runs == 3
    assert g.edge_stats("blog-drafter", "Drafts/brief-{date}.md").writes == 3
    assert not g.update_config(VaultConfig(vault=".", tasks=tasks))  # nothing changed: falsy


# ---- too_small_for_consumer ------------------------------------------------------------------------------
def test_thin_brief_is_too_small_for_the_writer_and_resolves_after_the_producer_is_fixed() -> None:
    g = DataflowGraph.from_config(seed())
    for i in range(3):
        run(g, "blog-drafter", i, {f"Drafts/brief-2026-03-1{i}.md": f"h{i}"}, words=211)
    found = [f for f in check(g) if f.kind == "too_small_for_consumer"]
    assert [f.subject for f in found] == ["blog-drafter->blog-writer"]
    short = found[0].evidence["shortfalls"][0]
    assert (short["measure"], short["observed"], short["required"]) == ("words", 211, 600)
    assert found[0].tasks == ("blog-drafter", "blog-writer")

    g.observe_change("blog-drafter", "prompts/blog-drafter.md", day(3))
    run(g, "blog-drafter", 4, {"Drafts/brief-2026-03-14.md": "h4"}, words=720)
    assert "too_small_for_consumer" not in {f.kind for f in check(g)}


def test_producer_meeting_requires_is_not_a_finding() -> None:
    g = DataflowGraph.from_config(seed())
    for i in range(3):
        run(g, "blog-drafter", i, {f"Drafts/brief-{i}.md": "h"}, words=650)
    assert "too_small_for_consumer" not in {f.kind for f in check(g)}


def test_one_short_run_among_good_ones_is_noise() -> None:
    g = DataflowGraph.from_config(seed())
    for i, words in enumerate([700, 650, 180]):
        run(g, "blog-drafter", i, {f"Drafts/brief-{i}.md": "h"}, words=words)
    assert "too_small_for_consumer" not in {f.kind for f in check(g)}  # median of the last 3 is 650


def test_tokens_facts_and_sections_requirements() -> None:
    cfg = vault(
        drafter=task(outputs=["Drafts/brief-{date}.md"]),
        writer=task(inputs=["Drafts/*.md"], requires={"min_tokens": 500, "min_facts": 5, "sections": ["## Facts"]}),
    )
    g = DataflowGraph.from_config(cfg)
    words, facts, sections = text_stats("# Brief\n## Facts\n- one\n- two\n1. three\nprose line\n")
    assert (facts, sections) == (3, ("# Brief", "## Facts"))
    path = "Drafts/brief-2026-03-18.md"
    g.observe_run(
        "drafter",
        "r1",
        day(1),
        {path: "h"},
        400,
        300,
        words_by_artifact={path: words},
        facts_by_artifact={path: facts},
        sections_by_artifact={path: ["# Brief"]},
    )
    [f] = [f for f in check(g) if f.kind == "too_small_for_consumer"]
    measures = {s["measure"]: s for s in f.evidence["shortfalls"]}
    assert set(measures) == {"tokens", "facts", "sections"}
    assert measures["facts"]["observed"] == 3
    assert measures["sections"]["missing"] == ["## Facts"]
    g.observe_change("drafter", "prompts/drafter.md", day(2))
    g.observe_run(
        "drafter",
        "r2",
        day(3),
        {path: "h2"},
        600,
        700,
        facts_by_artifact={path: 6},
        sections_by_artifact={path: ["## Facts"]},
    )
    assert "too_small_for_consumer" not in {f.kind for f in check(g)}


def test_lowering_the_consumers_requires_resolves_the_mismatch() -> None:
    g = DataflowGraph.from_config(seed())
    for i in range(3):
        run(g, "blog-drafter", i, {f"Drafts/brief-{i}.md": "h"}, words=211)
    before = kinds(check(g))
    tasks = dict(seed().tasks)
    tasks["blog-writer"] = task(inputs=["Drafts/brief-*.md"], outputs=["Posts/{date}.md"], requires={"min_words": 150})
    g.update_config(VaultConfig(vault=".", tasks=tasks))
    new, resolved = diff_findings(before, check(g))
    assert ("too_small_for_consumer", "blog-drafter->blog-writer") in resolved
    assert not [f for f in new if f.kind == "too_small_for_consumer"]


# ---- outputs_never_written / blocks_without_parser ---------------------------------------------------------
def test_outputs_never_written_after_dead_after_runs_only() -> None:
    g = DataflowGraph.from_config(seed())
    for i in range(2):
        run(g, "lesson-distiller", i)
    assert "outputs_never_written" not in {f.kind for f in check(g, dead_after=3)}
    run(g, "lesson-distiller", 2)
    [f] = [f for f in check(g, dead_after=3) if f.kind == "outputs_never_written"]
    assert f.subject == "lesson-distiller"
    assert f.evidence["patterns"] == ["Lessons/practice--*.md"]
    assert f.evidence["runs_without_outputs"] == 3
    assert f.severity == "error"
    run(g, "lesson-distiller", 3, {"Lessons/practice--focus.md": "h"})
    assert "outputs_never_written" not in {f.kind for f in check(g)}


def test_failed_runs_do_not_count_as_missing_outputs() -> None:
    g = DataflowGraph.from_config(seed())
    for i in range(5):
        run(g, "blog-writer", i, status="failed")
    assert "outputs_never_written" not in {f.kind for f in check(g)}
    assert g.stats("blog-writer").runs == 5


def test_blocks_in_output_without_a_postprocessor() -> None:
    g = DataflowGraph.from_config(seed())
    run(g, "lesson-distiller", 0, blocks=3)
    [f] = [f for f in check(g) if f.kind == "blocks_without_parser"]
    assert f.evidence["blocks_recent"] == [3]
    assert f.evidence["regex"] == BLOCK["regex"]
    # the same task with a postprocessor: the blocks have a parser, no finding
    tasks = dict(seed().tasks)
    tasks["lesson-distiller"] = task(
        inputs=["Posts/*.md"],
        outputs=["Lessons/practice--*.md"],
        expect={"blocks": BLOCK},
        postprocess="scripts/_postproc-lesson-distiller.sh",
    )
    g.update_config(VaultConfig(vault=".", tasks=tasks))
    assert "blocks_without_parser" not in {f.kind for f in check(g)}


def test_blocks_are_fine_when_the_outputs_land() -> None:
    g = DataflowGraph.from_config(seed())
    run(g, "lesson-distiller", 0, {"Lessons/practice--a.md": "h"}, blocks=2)
    assert "blocks_without_parser" not in {f.kind for f in check(g)}


def test_blocks_declared_never_seen_and_never_written_is_still_missing_a_parser() -> None:
    g = DataflowGraph.from_config(seed())
    for i in range(2):
        run(g, "lesson-distiller", i, blocks=0)  # narrative report instead of blocks
    assert "blocks_without_parser" not in {f.kind for f in check(g, dead_after=3)}
    run(g, "lesson-distiller", 2, blocks=0)
    [f] = [f for f in check(g, dead_after=3) if f.kind == "blocks_without_parser"]
    assert f.evidence["blocks_seen"] is False


def test_blocks_on_a_task_without_outputs_are_its_product_not_a_missing_parser() -> None:
    """The output-judge case: score lines as blocks, no `outputs`, read by nobody: never a finding."""
    judge = task(inputs=["Posts/*.md"], expect={"blocks": {"regex": "^([a-z-]+): ([1-5])\\b", "min": 10}})
    g = DataflowGraph.from_config(VaultConfig(vault=".", tasks={**seed().tasks, "output-judge": judge}))
    for i in range(4):
        run(g, "output-judge", i, blocks=12 if i % 2 else 0)
        run(g, "lesson-distiller", i, blocks=2)
    found = check(g, dead_after=3)
    assert ("blocks_without_parser", "lesson-distiller") in kinds(found)  # the same runs on a task with outputs
    assert not [f for f in found if "output-judge" in f.tasks]


# ---- orphan_input / unread_output ---------------------------------------------------------------------------
def test_orphan_input_needs_no_producer_and_no_file(tmp_path: Path) -> None:
    g = DataflowGraph.from_config(seed())
    assert "orphan_input" not in {f.kind for f in check(g)}  # without `exists` it is not judged
    [f] = [f for f in check(g, exists=glob_exists(tmp_path)) if f.kind == "orphan_input"]
    assert (f.subject, f.tasks) == ("Goals/*.md", ("morning-briefing",))
    (tmp_path / "Goals").mkdir()
    (tmp_path / "Goals" / "q1.md").write_text("- ship\n")
    assert "orphan_input" not in {f.kind for f in check(g, exists=glob_exists(tmp_path))}


def test_glob_exists_understands_placeholders(tmp_path: Path) -> None:
    (tmp_path / "Drafts").mkdir()
    (tmp_path / "Drafts" / "brief-2026-03-18.md").write_text("x")
    exists = glob_exists(tmp_path)
    assert exists("Drafts/brief-{date}.md")
    assert exists("**/*.md")
    assert not exists("Posts/*.md")


def test_unread_output_is_informational() -> None:
    found = {f.key: f for f in check(DataflowGraph.from_config(seed()))}
    f = found[("unread_output", "Briefings/{date}.md")]
    assert f.severity == "info" and f.tasks == ("morning-briefing",)
    assert ("unread_output", "Drafts/brief-{date}.md") not in found


# ---- dependency_cycle -------------------------------------------------------------------------------------
def test_dependency_cycle_has_a_stable_subject() -> None:
    cfg = vault(
        planner=task(inputs=["episodes.md"], outputs=["goals.md"]),
        implement=task(inputs=["goals.md"], outputs=["episodes.md"]),
        spacer=task(inputs=["Knowledge/*.md"], outputs=["Knowledge/*.md"]),  # rewrites in place: not a cycle
    )
    found = [f for f in check(DataflowGraph.from_config(cfg)) if f.kind == "dependency_cycle"]
    assert [f.subject for f in found] == ["implement->planner->implement"]
    assert found[0].evidence["hops"][0] == {"from": "implement", "to": "planner", "artifacts": ["episodes.md"]}


def test_acyclic_pipeline_has_no_cycle() -> None:
    assert "dependency_cycle" not in {f.kind for f in check(DataflowGraph.from_config(seed()))}


# ---- low_after_upstream_change ----------------------------------------------------------------------------
def _writer_history(g: DataflowGraph, scores: list[float], start: int) -> None:
    for k, s in enumerate(scores):
        run(g, "blog-writer", start + k, {f"Posts/{start + k}.md": f"p{start + k}"}, words=700, score=s)


def test_consumer_scoring_low_after_its_producer_changed() -> None:
    g = DataflowGraph.from_config(seed())
    _writer_history(g, [4.2, 4.0, 4.2, 4.0, 4.1], 0)
    g.observe_change("blog-drafter", "prompts/blog-drafter.md", day(5))
    _writer_history(g, [2.8, 2.9], 6)
    [f] = [f for f in check(g) if f.kind == "low_after_upstream_change"]
    assert f.subject == "blog-drafter->blog-writer"
    assert f.evidence["path"] == "prompts/blog-drafter.md"
    assert f.evidence["baseline"] == pytest.approx(4.1)
    assert f.evidence["drop"] >= 1.0
    # recovery: the latest runs are back near the baseline
    _writer_history(g, [4.0, 4.1, 4.2], 8)
    assert "low_after_upstream_change" not in {f.kind for f in check(g)}


def test_small_dip_after_an_upstream_change_is_not_a_finding() -> None:
    g = DataflowGraph.from_config(seed())
    _writer_history(g, [4.0] * 5, 0)
    g.observe_change("blog-drafter", "prompts/blog-drafter.md", day(5))
    _writer_history(g, [3.5, 3.4], 6)
    assert "low_after_upstream_change" not in {f.kind for f in check(g)}


def test_scores_arriving_after_the_run_are_counted_once() -> None:
    g = DataflowGraph.from_config(seed())
    _writer_history(g, [4.0] * 5, 0)
    g.observe_change("blog-drafter", "prompts/blog-drafter.md", day(5))
    run(g, "blog-writer", 6, {"Posts/6.md": "p"})
    g.observe_score("blog-writer", "blog-writer-6", 2.5)
    g.observe_score("blog-writer", "blog-writer-6", 2.5)
    assert list(g.stats("blog-writer").scores)[-2:] == [4.0, 2.5]
    assert "low_after_upstream_change" in {f.kind for f in check(g)}


# ---- stale_output / signatures ------------------------------------------------------------------------------
def test_identical_output_run_after_run() -> None:
    g = DataflowGraph.from_config(seed())
    for i in range(3):
        run(g, "morning-briefing", i, {f"Briefings/2026-03-1{i}.md": "same-hash"})
    assert ("stale_output", "morning-briefing") in kinds(check(g))
    run(g, "morning-briefing", 3, {"Briefings/2026-03-13.md": "fresh"})
    assert ("stale_output", "morning-briefing") not in kinds(check(g))


def test_rolling_score_and_signatures_live_on_the_node() -> None:
    g = DataflowGraph.from_config(seed())
    for i, s in enumerate([1, 2, 3, 4, 5, 5]):
        run(g, "blog-writer", i, {f"Posts/{i}.md": "p"}, score=s)
    g.set_signatures("blog-writer", ["truncated", "code_fences", "truncated"])
    node = g.g.nodes["task:blog-writer"]
    assert node["stats"].score == pytest.approx(3.8)  # last 5 of 1..5,5
    assert node["stats"].signatures == ("code_fences", "truncated")
    assert node["stats"].last_run["run_id"] == "blog-writer-5"  # last N outputs kept too
    assert len(node["stats"].words) == 6


def test_observe_result_counts_declared_blocks_from_the_output() -> None:
    g = DataflowGraph.from_config(seed())
    text = "=== PRACTICE NOTE: Precision ===\nbody\n=== PRACTICE NOTE: Scope ===\nbody\n"
    result = RunResult(run_id="r1", task="lesson-distiller", started=day(1), status="ok", model="ollama:qwen3:8b",
                       options={}, output=text, done_reason="stop", prompt_tokens=100, output_tokens=20)
    g.observe_result(result, score=2.0)
    st = g.stats("lesson-distiller")
    assert st.last_run is not None
    assert (st.last_run["blocks"], st.last_run["words"], st.score) == (2, 12, 2.0)
    assert "blocks_without_parser" in {f.kind for f in check(g)}


# ---- the seed, end to end ---------------------------------------------------------------------------------
def test_seed_findings_detect_once_and_resolve_when_fixed() -> None:
    g = DataflowGraph.from_config(seed())
    for i in range(3):
        run(g, "blog-drafter", i, {f"Drafts/brief-{i}.md": f"d{i}"}, words=211)
        run(g, "lesson-distiller", i, blocks=0)
    open_keys: set[tuple[str, str]] = set()
    new, resolved = diff_findings(open_keys, check(g))
    open_keys |= {f.key for f in new}
    assert {
        ("too_small_for_consumer", "blog-drafter->blog-writer"),
        ("outputs_never_written", "lesson-distiller"),
        ("blocks_without_parser", "lesson-distiller"),
    } <= open_keys
    assert resolved == []
    assert diff_findings(open_keys, check(g)) == ([], [])  # still holding: nothing new, nothing resolved

    tasks = dict(seed().tasks)
    tasks["lesson-distiller"] = task(
        inputs=["Posts/*.md"],
        outputs=["Lessons/practice--*.md"],
        expect={"blocks": BLOCK},
        postprocess="scripts/_postproc-lesson-distiller.sh",
    )
    g.update_config(VaultConfig(vault=".", tasks=tasks))
    g.observe_change("blog-drafter", "prompts/blog-drafter.md", day(3))
    run(g, "blog-drafter", 4, {"Drafts/brief-4.md": "d4"}, words=640)
    run(g, "lesson-distiller", 4, {"Lessons/practice--precision.md": "l4"}, blocks=2)
    new, resolved = diff_findings(open_keys, check(g))
    assert {
        ("too_small_for_consumer", "blog-drafter->blog-writer"),
        ("outputs_never_written", "lesson-distiller"),
        ("blocks_without_parser", "lesson-distiller"),
    } <= set(resolved)
    assert new == []


# ---- rendering ----------------------------------------------------------------------------------------------
def _rendered_graph() -> DataflowGraph:
    g = DataflowGraph.from_config(seed())
    for i in range(3):
        run(g, "blog-drafter", i, {f"Drafts/brief-{i}.md": f"d{i}"}, words=211, score=3.1)
        run(g, "blog-writer", i, {f"Posts/{i}.md": f"p{i}"}, words=241, score=2.0)
        run(g, "lesson-distiller", i, blocks=2, score=1.5)
        run(g, "morning-briefing", i, {f"Briefings/{i}.md": f"b{i}"}, score=4.6)
    return g


def test_text_listing_marks_the_mismatch() -> None:
    text = to_text(_rendered_graph())
    assert "-> blog-writer  ✗ too small: words 211 < 600" in text
    assert "Lessons/practice--*.md  ✗ never written" in text
    assert text.index("blog-drafter") < text.index("blog-writer  score")  # pipeline order


def test_dot_draws_the_mismatched_edge_red() -> None:
    dot = to_dot(_rendered_graph())
    line = next(ln for ln in dot.splitlines() if '"artifact:Drafts/brief-{date}.md" -> "task:blog-writer"' in ln)
    assert RED in line
    plain = next(ln for ln in dot.splitlines() if '"task:blog-writer" -> "artifact:Posts/{date}.md"' in ln)
    assert RED not in plain
    assert score_colour(2.0) in dot and score_colour(None) in dot  # writer's score, seeder unscored


def test_mermaid_link_style_points_at_the_red_edge() -> None:
    mermaid = to_mermaid(_rendered_graph())
    lines = mermaid.splitlines()
    edges = [ln.strip() for ln in lines if "-->" in ln]
    style = next(ln for ln in lines if ln.strip().startswith("linkStyle"))
    assert RED in style
    ids = {ln.split("[", 1)[0].strip(): ln for ln in lines if "[" in ln and "-->" not in ln}
    red_edges = [edges[int(i)] for i in style.split()[1].split(",")]
    red_text = [" ".join(ids[tok].split("[", 1)[1] for tok in (e.split()[0], e.split()[-1])) for e in red_edges]
    assert any("Drafts/brief-{date}.md" in t and "blog-writer" in t for t in red_text)
    assert not any("morning-briefing" in t for t in red_text)


def test_task_option_restricts_to_the_neighbourhood() -> None:
    g = _rendered_graph()
    text = to_text(g, task="blog-writer")
    assert "blog-drafter" in text and "lesson-distiller" in text
    assert "morning-briefing" not in text
    assert "morning-briefing" not in to_dot(g, task="blog-writer")
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        to_text(g, task="nope")


def test_png_is_written_with_score_colours_and_red_edges(tmp_path: Path) -> None:
    out = to_png(_rendered_graph(), tmp_path / "graph.png")
    assert out.stat().st_size > 20_000
    img = mpimg.imread(out)[..., :3]
    assert img.shape[0] > 300 and img.shape[1] > 600
    pixels = (img * 255).round().astype(int).reshape(-1, 3)

    def present(hex_colour: str, tol: int = 6) -> bool:
        rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
        return bool((np.abs(pixels - rgb).max(axis=1) <= tol).sum() > 50)

    assert present(RED)  # mismatched edges
    assert present(score_colour(4.6))  # a well-scored task (green side)
    assert present(score_colour(1.5))  # a failing task (red side)
    assert present(score_colour(None))  # the unscored seeder
    small = to_png(_rendered_graph(), tmp_path / "writer.png", task="blog-writer")
    assert mpimg.imread(small).shape[1] <= img.shape[1]

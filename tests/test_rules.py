"""The rules proposer on the real seed vault: every planted fault (FAULTS.md) gets the seed's fix as a delta
that applies cleanly to a fresh copy, fixes the fault for real (scripts run as subprocesses), and leaves a
vault.yml that validates. Rules stay silent where the fault is absent."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from adapters.backends.ollama_backend import OllamaBackend
from daemon.bootstrap import Services, diagnose_deps
from domain.delta import Delta
from domain.prompt_shapes import example_sections, slots
from domain.render import render_prompt
from domain.runs import RunResult, Score
from handlers.diagnose import diagnose
from handlers.evidence import Evidence
from handlers.proposers import prompt_fixes, rules
from testbed.servers import OllamaServer
from tests.seed_copy import VAULT, apply, copy_seed, problems, seed_services


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """The seed vault's services with its ollama models served by a loopback server, so a model swap finds its
    candidates' backend up (an unreachable backend is never a candidate)."""
    services = seed_services(tmp_path_factory.mktemp("seed"))
    with OllamaServer() as ollama:
        services.models.register("ollama", OllamaBackend(ollama.host, timeout=10))
        yield services
    services.close()


@pytest.fixture(scope="module")
def evidence(svc: Services) -> dict[str, Evidence]:
    return {task: diagnose(task, diagnose_deps(svc)) for task in svc.config.tasks}


def first(deltas: list[Delta], rule: str) -> Delta:
    for d in deltas:
        if d.meta.get("rules") == [rule]:
            return d
    raise AssertionError(f"no {rule} delta in {[d.description for d in deltas]}")


def applied(tmp_path: Path, delta: Delta) -> tuple[Path, Path]:
    cfg = copy_seed(tmp_path)
    apply(delta, cfg)
    assert problems(cfg) == []
    return cfg, cfg.parent / VAULT


def task_block(cfg: Path, task: str) -> dict:
    return yaml.safe_load(cfg.read_text())["tasks"][task]


def sh(root: Path, script: str, *, stdin: str = "", env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["bash", script], cwd=root, input=stdin, capture_output=True, text=True, check=True,
                          env={**os.environ, "AUTOVAULT_DATE": "2026-03-18", **(env or {})}, timeout=60)
    return done.stdout


# ---- config ------------------------------------------------------------------------------------------


def test_morning_briefing_gets_num_predict_think_and_the_plain_rule_in_one_delta(tmp_path: Path,
                                                                                  evidence: dict[str, Evidence]) -> None:
    deltas = rules.propose(evidence["morning-briefing"])
    combined = deltas[0]
    assert combined.meta["rules"] == ["raise_num_predict", "disable_thinking", "plain_instructions"]
    cfg, root = applied(tmp_path, combined)
    options = task_block(cfg, "morning-briefing")["options"]
    assert options == {"num_predict": 600, "num_ctx": 8192, "think": False}  # F01, F02
    prompt = (root / "prompts/morning-briefing.md").read_text()
    assert not re.search(r"\(or '", prompt) and "quiet — no commits" in prompt  # F03: the forbid no longer matches
    assert {tuple(d.meta["rules"]) for d in deltas[1:]} == {("raise_num_predict",), ("disable_thinking",),
                                                             ("plain_instructions",)}


def test_spacer_num_predict_rises_at_least_to_the_longest_complete_output(evidence: dict[str, Evidence]) -> None:
    ev = evidence["knowledge-spacer"]
    change = rules.raise_num_predict(ev, rules.base_texts(ev))
    assert change is not None and "300→600" in change.description  # F04
    longer = replace(ev, output_tokens_complete=(520,))
    change = rules.raise_num_predict(longer, rules.base_texts(longer))
    assert change is not None and "300→700" in change.description  # 1.3 × 520 = 676 → 700


def test_seeder_swaps_to_a_model_that_follows_the_format(tmp_path: Path, evidence: dict[str, Evidence]) -> None:
    delta = rules.propose(evidence["knowledge-seeder"])[0]
    assert delta.lever == "model"
    cfg, _ = applied(tmp_path, delta)
    assert task_block(cfg, "knowledge-seeder")["model"] == "ollama:gemma3:12b"  # F12


def test_blog_writer_drops_the_coder_model_from_its_pool(tmp_path: Path, evidence: dict[str, Evidence]) -> None:
    delta = rules.propose(evidence["blog-writer"])[0]
    assert delta.lever == "candidates"
    cfg, _ = applied(tmp_path, delta)
    pool = task_block(cfg, "blog-writer")["candidates"]
    assert pool == ["ollama:gemma3:12b", "ollama:qwen3:8b", "embedded:smollm2-135m"]  # F13


# ---- prompts -----------------------------------------------------------------------------------------


def test_session_reflection_example_becomes_structure_only(tmp_path: Path, evidence: dict[str, Evidence]) -> None:
    delta = first(rules.propose(evidence["session-reflection"]), "structure_only_example")
    _, root = applied(tmp_path, delta)
    prompt = (root / "prompts/session-reflection.md").read_text()
    assert "Precision over scope" not in prompt and "a41c9e2" not in prompt  # F05
    assert prompt_fixes.DO_NOT_COPY in prompt and "Example:" not in prompt and "{context}" in prompt
    assert example_sections(prompt) == [] and slots(prompt) == []  # nothing left to copy, no slot in its place
    assert '"Went well:", "Did not:", "Next time:"' in prompt and "today's date" in prompt  # its shape, in words


def test_research_radar_loses_fences_and_literal_slots(tmp_path: Path, evidence: dict[str, Evidence]) -> None:
    delta = rules.propose(evidence["research-radar"])[0]
    assert delta.meta["rules"] == ["unfence", "describe_placeholders"]
    cfg, root = applied(tmp_path, delta)
    prompt = (root / "prompts/research-radar.md").read_text()
    assert "```" not in prompt and prompt_fixes.NO_FENCES in prompt  # F06
    for pattern in task_block(cfg, "research-radar")["expect"]["forbid"]:
        assert not re.search(pattern, prompt)  # F07: nothing left for the model to copy
    assert "## New tools" in prompt and "- **<tool>** (<category>)" in prompt
    assert all(s.shape == "angle" for s in slots(prompt))  # every slot says what goes there


def test_lesson_distiller_gets_blocks_and_a_postprocessor_that_writes_them(tmp_path: Path,
                                                                           evidence: dict[str, Evidence]) -> None:
    delta = rules.propose(evidence["lesson-distiller"])[0]
    assert delta.lever == "postprocess"
    script_edit = next(e for e in delta.edits if e.path.endswith(".sh"))
    assert script_edit.path == "scripts/_postproc-lesson-distiller.sh" and script_edit.before_hash is None
    cfg, root = applied(tmp_path, delta)
    assert task_block(cfg, "lesson-distiller")["postprocess"] == "scripts/_postproc-lesson-distiller.sh"  # F15
    prompt = (root / "prompts/lesson-distiller.md").read_text()
    assert "Write tool" not in prompt and "=== PRACTICE NOTE: <title> ===" in prompt  # F14
    out = sh(root, "scripts/_postproc-lesson-distiller.sh", stdin=(
        "Two lessons.\n=== PRACTICE NOTE: Measure before changing ===\nMeasure the collector first.\n"
        "=== PRACTICE NOTE: One awk pass ===\nRead each file once.\n"))
    written = sorted(p.name for p in (root / "Knowledge").glob("practice--*.md"))
    assert written == ["practice--measure-before-changing.md", "practice--one-awk-pass.md"]
    assert out.split() == [f"Knowledge/{n}" for n in ["practice--measure-before-changing.md", "practice--one-awk-pass.md"]]
    assert (root / "Knowledge/practice--one-awk-pass.md").read_text() == "Read each file once.\n"


def test_blog_drafter_is_sized_for_blog_writer(tmp_path: Path, evidence: dict[str, Evidence]) -> None:
    deltas = rules.propose(evidence["blog-drafter"])
    delta = first(deltas, "grow_for_consumer")
    assert delta.tasks == ("blog-drafter", "blog-writer")
    cfg, root = applied(tmp_path, delta)
    prompt = (root / "prompts/blog-drafter.md").read_text()
    assert "Include key facts." not in prompt  # F16
    assert "At least 5 bullets" in prompt and "filename" in prompt and "at least 300 words" in prompt
    assert task_block(cfg, "blog-drafter")["options"]["num_predict"] >= 560  # F17: room for 300+ words


# ---- scripts -----------------------------------------------------------------------------------------


def test_quiz_collector_stops_leaking_key_sources(tmp_path: Path, evidence: dict[str, Evidence]) -> None:
    delta = first(rules.propose(evidence["knowledge-quiz"]), "explicit_section")
    before = sh(Path(__file__).resolve().parent.parent / VAULT, "scripts/knowledge-quiz.sh")
    assert "## Key Sources" in before and "https://" in before  # the fault is really there
    _, root = applied(tmp_path, delta)
    after = sh(root, "scripts/knowledge-quiz.sh")
    assert "## Key Facts" not in after and "## Key Sources" not in after and "https://" not in after  # F09
    assert after.count("## Key Points") == 3  # the asked section, heading and all, as the collector passed it
    bullets = [ln for ln in after.splitlines() if ln.startswith("- ")]
    assert len(bullets) >= 6 and after.count("=== Knowledge/") == 3


def _counting_path(tmp: Path, log: Path) -> str:
    """A PATH whose sed/awk/date/basename log each spawn, then run the real tool."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for tool in ("sed", "awk", "date", "basename"):
        real = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\necho {tool} >> "{log}"\nexec {real} "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return f"{bin_dir}:{os.environ['PATH']}"


def test_spacer_collector_prints_the_same_with_fewer_spawns(tmp_path: Path, evidence: dict[str, Evidence]) -> None:
    delta = first(rules.propose(evidence["knowledge-spacer"]), "one_awk_pass")
    assert delta.lever == "script" and delta.paths == ["scripts/knowledge-spacer.sh"]
    _, root = applied(tmp_path / "new", delta)
    old_root = copy_seed(tmp_path / "old").parent / VAULT
    old_log, new_log = tmp_path / "old.log", tmp_path / "new.log"
    old = sh(old_root, "scripts/knowledge-spacer.sh", env={"PATH": _counting_path(tmp_path / "old", old_log)})
    new = sh(root, "scripts/knowledge-spacer.sh", env={"PATH": _counting_path(tmp_path / "new", new_log)})
    assert new == old and "DUE" in new  # F10: the same table
    notes = len(list(root.glob("Knowledge/*.md")))
    spawned_old, spawned_new = Counter(old_log.read_text().split()), Counter(new_log.read_text().split())
    assert spawned_old["sed"] == 4 * notes and spawned_new["sed"] == 0 and spawned_new["awk"] == notes
    assert sum(spawned_new.values()) < sum(spawned_old.values()) - 2 * notes


def test_fashion_collector_widens_its_head_and_trends_appear(tmp_path: Path, evidence: dict[str, Evidence]) -> None:
    delta = rules.propose(evidence["fashion-signals"])[0]
    assert delta.meta["rules"] == ["widen_head"]
    _, root = applied(tmp_path, delta)
    script = (root / "scripts/fashion-signals.sh").read_text()
    assert "head -50 signals/signals_list.txt" in script  # F08
    counts = [int(c) for c in re.findall(r"count=(\d+)", sh(root, "scripts/fashion-signals.sh"))]
    assert sum(1 for c in counts if c >= 2) >= 3


def test_output_judge_collector_narrows_per_task_to_fit_num_ctx(tmp_path: Path, svc: Services,
                                                                 evidence: dict[str, Evidence]) -> None:
    """F11: sized from the measured prompt (SmolLM2's own tokenizer), not halved: the new context fits."""
    delta = rules.propose(evidence["output-judge"])[0]
    assert delta.meta["rules"] == ["narrow_head"]
    old = sh(copy_seed(tmp_path / "old").parent / VAULT, "scripts/output-judge.sh")
    _, root = applied(tmp_path / "new", delta)
    n = int(re.findall(r"head -(\d+)", (root / "scripts/output-judge.sh").read_text())[-1])
    assert 30 <= n < 80
    new = sh(root, "scripts/output-judge.sh")
    assert len(new) < 0.75 * len(old) and new.count("=== TASK:") == old.count("=== TASK:")
    prompt = render_prompt((root / "prompts/output-judge.md").read_text(), new, "2026-03-18", append_missing=True)
    tokens = svc.models.count_tokens("embedded:smollm2-135m", prompt)
    assert tokens is not None and tokens + 300 <= 7168 < svc.models.count_tokens(  # type: ignore[operator]
        "embedded:smollm2-135m", render_prompt((root / "prompts/output-judge.md").read_text(), old, "2026-03-18"))


# ---- data --------------------------------------------------------------------------------------------


def test_planner_data_is_rebalanced_to_the_max_share(tmp_path: Path, evidence: dict[str, Evidence]) -> None:
    delta = rules.propose(evidence["goal-planner"])[0]
    assert delta.lever == "data"
    before = (Path(__file__).resolve().parent.parent / VAULT / "data/planner.jsonl").read_text().splitlines()
    _, root = applied(tmp_path, delta)
    lines = (root / "data/planner.jsonl").read_text().splitlines()
    rows = [json.loads(ln) for ln in lines]  # still valid JSONL
    labels = Counter(r["label"] for r in rows)
    assert len(rows) == 15 and labels["NO-CHANGE"] == 9  # F19: 60/40
    assert set(lines) <= set(before)  # only removals
    removed = Counter(before) - Counter(lines)
    assert all(json.loads(ln)["completion"] == "NO-CHANGE\nAlready up to date." for ln in removed.elements())


def test_too_few_examples_are_mined_from_the_logged_good_runs(evidence: dict[str, Evidence]) -> None:
    ev = evidence["knowledge-deepener"]  # F18: the heartbeat logs hold 13 good runs with their context
    assert ev.has("training_data_too_few") and len(ev.mined) == 13
    assert all(str(m["source"]).startswith("hb-2026-03-") and "deepener-" in str(m["source"]) for m in ev.mined)
    assert ev.mined[0]["source"] == "hb-2026-03-12-knowledge-deepener-qlora"  # the one 5, then 4.5s newest first
    assert not any(m["source"].endswith("-knowledge-deepener") for m in ev.mined)  # the 2.5 runs stay out
    assert all("Note: Knowledge/" in m["prompt"] and m["completion"].startswith("## Key Facts\n- ") for m in ev.mined)
    delta = rules.propose(ev)[0]
    assert delta.lever == "data" and delta.meta["added"] == 13


def _deepener_run(run_id: str, day: int, output: str) -> RunResult:
    return RunResult(run_id=run_id, task="knowledge-deepener", started=f"2026-03-{day}T04:00:00Z", status="ok",
                     model="ollama:deepener-4b", options={}, output=output, done_reason="stop", prompt_tokens=50,
                     output_tokens=9, context=f"Note: n{day}.md", source="daemon")


def test_too_few_examples_are_mined_from_high_scoring_runs_that_pass_the_contract(tmp_path: Path) -> None:
    svc = seed_services(tmp_path / "seed")
    facts = "".join(f"\n- fact {i} of day" for i in range(5))
    try:
        for day in range(20, 23):  # five facts: the deepener's contract (## Key Facts, 5–15 bullets)
            svc.store.record_scored_run(_deepener_run(f"deep-{day}", day, f"## Key Facts{facts} {day}"),
                                        Score(f"deep-{day}", 4.5, "test"), "judge")
        refused = {"thin-23": "## Key Facts\n- one fact only", "slot-24": f"## Key Facts{facts}\n- [Fact]",
                   "fenced-25": f"```\n## Key Facts{facts}\n```"}
        for day, (run_id, output) in enumerate(refused.items(), start=23):  # scored 5, but fail a check
            svc.store.record_scored_run(_deepener_run(run_id, day, output), Score(run_id, 5.0, "test"), "judge")
        svc.projections.catch_up()
        ev = diagnose("knowledge-deepener", diagnose_deps(svc))
    finally:
        svc.close()
    sources = [m["source"] for m in ev.mined]
    assert len(sources) == 16 and sources[1:4] == ["deep-22", "deep-21", "deep-20"]  # by score, then newest
    assert not set(refused) & set(sources)
    summary = ev.signature("training_data_too_few").evidence["mined"]  # type: ignore[union-attr]
    assert "refused" in summary and "blocks" in summary and "placeholder_leak" in summary
    delta = first(rules.propose(ev), "mine_data")
    cfg = copy_seed(tmp_path / "copy")
    apply(delta, cfg)
    rows = [json.loads(ln) for ln in (cfg.parent / VAULT / "data/deepener.jsonl").read_text().splitlines()]
    assert len(rows) == 21 and rows[5]["completion"] == ev.mined[0]["completion"]  # appended after the 5
    row = next(r for r in rows if r["completion"].endswith(" 20"))
    assert "Note: n20.md" in row["prompt"] and set(row) == {"prompt", "completion"}


# ---- every delta, and silence where nothing is wrong -------------------------------------------------


def test_every_delta_applies_to_a_fresh_copy_and_validates(tmp_path: Path, evidence: dict[str, Evidence]) -> None:
    seen = 0
    for task, ev in evidence.items():
        for i, delta in enumerate(rules.propose(ev)):
            assert delta.proposer == "rules" and delta.edits and delta.signatures, delta.description
            assert all(e.in_config == (e.path == "vault.yml") for e in delta.edits)
            cfg = copy_seed(tmp_path / f"{task}-{i}")
            apply(delta, cfg)
            assert problems(cfg) == [], delta.description
            seen += 1
    assert seen >= 20


def test_rules_are_silent_on_the_healthy_task(evidence: dict[str, Evidence]) -> None:
    ev = evidence["knowledge-judge"]
    texts = rules.base_texts(ev)
    assert ev.signatures == () and all(rule(ev, texts) is None for _, rule in rules.RULES)


def test_rules_are_silent_once_their_fault_is_fixed(tmp_path: Path, evidence: dict[str, Evidence]) -> None:
    """Apply each task's first delta to a copy, diagnose again: that rule no longer fires."""
    for task in ("knowledge-quiz", "knowledge-spacer", "session-reflection", "research-radar", "fashion-signals"):
        delta = rules.propose(evidence[task])[0] if task != "knowledge-spacer" else first(
            rules.propose(evidence[task]), "one_awk_pass")
        base = tmp_path / task
        svc = seed_services(base)
        try:
            apply(delta, svc.config.source)
            again = diagnose(task, diagnose_deps(svc))
        finally:
            svc.close()
        texts = rules.base_texts(again)
        for name in delta.meta["rules"]:
            rule = dict(rules.RULES)[name]
            if name in ("widen_head",):  # runs still say "no trends": the head is already wide enough now
                change = rule(again, texts)
                assert change is None or "head -50" not in texts["scripts/fashion-signals.sh"]
                continue
            assert rule(again, texts) is None, (task, name)


def test_rules_that_would_be_wrong_here_stay_silent(evidence: dict[str, Evidence]) -> None:
    seeder, judge = evidence["knowledge-seeder"], evidence["output-judge"]
    assert rules.widen_starving_head(seeder, rules.base_texts(seeder)) is None  # head -6, but nobody says "no trends"
    assert rules.raise_num_predict(judge, rules.base_texts(judge)) is None  # overflow first: narrow the input
    reflection = evidence["morning-briefing"]  # copied lines, but no Example block to blame
    assert rules.structure_only_example(reflection, rules.base_texts(reflection)) is None
    assert rules.add_postprocessor(seeder, rules.base_texts(seeder)) is None  # it has one already


def test_the_pool_waits_for_a_prompt_every_model_would_fail(evidence: dict[str, Evidence]) -> None:
    """Fences the coder writes on its own are its fault; fences the template shows would fail every member, so
    verifying the pool first would blame the wrong thing."""
    ev = evidence["blog-writer"]
    texts = rules.base_texts(ev)
    assert ev.has("code_fences", "wrong_model") and rules.drop_candidate(ev, texts) is not None
    prompt = ev.file("prompt").path  # type: ignore[union-attr]
    assert rules.drop_candidate(ev, {**texts, prompt: texts[prompt] + "\n~~~\n## Layout\n~~~\n"}) is None


def test_model_and_pool_changes_are_never_composed_with_other_fixes(evidence: dict[str, Evidence]) -> None:
    deltas = rules.propose(evidence["blog-writer"])
    assert [d.meta["rules"] for d in deltas] == [["drop_candidate"], ["unfence"]]
    spacer = rules.propose(evidence["knowledge-spacer"])
    assert spacer[0].meta["rules"] == ["raise_num_predict", "disable_thinking"]  # the script fix needs approval
    assert all(e.in_config for e in spacer[0].edits)

"""The example vault: its config validates, its collectors run for real, and every planted fault is really there.

The faults are the point of the vault (examples/seed-vault/FAULTS.md): if one is fixed or moved by accident,
these tests fail, so the table and the files never drift apart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from domain.config import TaskConfig, VaultConfig
from domain.ingest import IngestedRun, IngestedScore, parse_line

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "vault.yml"
VAULT = REPO / "examples" / "seed-vault"
FAULTS = VAULT / "FAULTS.md"

SEED_TASKS = {
    "knowledge-seeder", "knowledge-judge", "goal-planner", "knowledge-spacer", "knowledge-quiz", "morning-briefing",
    "session-reflection", "research-radar", "fashion-signals", "blog-drafter", "blog-writer", "lesson-distiller",
    "output-judge",
}
FAULT_KINDS = {
    "num-predict-too-low", "copied-example", "prompt-template-leak", "collector-head-starving", "section-regex-leak",
    "subprocess-loop", "judge-context-overflow", "format-incapable-model", "coder-in-prose-pool",
    "removed-tool-no-postprocessor", "thin-upstream-for-consumer", "training-data-audit",
}


def load() -> VaultConfig:
    return VaultConfig.model_validate(yaml.safe_load(CONFIG.read_text()))


CFG = load()
TASKS = sorted(CFG.tasks)


def collect(script: str, *, cwd: Path = VAULT, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a collector the way the runner does: executed directly, the vault as cwd."""
    return subprocess.run([str(cwd / script)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "AUTOVAULT_DATE": "2026-03-18"})


# ---- the config -----------------------------------------------------------------------------------------------


def test_vault_yml_validates_with_the_schema() -> None:
    cfg = load()
    assert cfg.vault == "examples/seed-vault"
    assert cfg.store == "sqlite:///.autovault/events.db"
    assert cfg.logs == "heartbeat/logs"
    assert cfg.judge.model == "embedded:smollm2-135m"
    assert cfg.proposers == ["rules"]


def test_vault_yml_loads_with_the_strict_loader() -> None:
    loader = pytest.importorskip("adapters.config_loader")
    cfg = loader.load_config(CONFIG)
    assert Path(cfg.root).resolve() == VAULT.resolve()
    assert set(cfg.tasks) == set(CFG.tasks)


def test_every_seed_task_is_there_and_runs_on_the_embedded_model() -> None:
    assert set(CFG.tasks) >= SEED_TASKS
    for name, task in CFG.tasks.items():
        assert task.model == "embedded:smollm2-135m", name
        assert task.schedule and task.schedule.startswith("daily "), name


def test_every_file_the_config_names_exists_inside_the_vault() -> None:
    assert CFG.judge.rubric and (VAULT / CFG.judge.rubric).is_file()
    assert CFG.logs and any((VAULT / CFG.logs).glob("*.jsonl"))
    for name, task in CFG.tasks.items():
        named = [task.prompt, task.collect, task.postprocess]
        for rel in filter(None, named):
            path = (VAULT / rel).resolve()
            assert path.is_file(), f"{name}: {rel} missing"
            assert path.is_relative_to(VAULT.resolve()), f"{name}: {rel} escapes the vault"
        for pattern in task.inputs:
            assert list(VAULT.glob(pattern)), f"{name}: input {pattern} matches nothing"
        if task.training:
            assert list(VAULT.glob(task.training.data)), f"{name}: training data {task.training.data} missing"


def test_scripts_are_executable_with_a_shebang() -> None:
    for script in sorted((VAULT / "scripts").glob("*.sh")):
        assert os.access(script, os.X_OK), f"{script.name} is not executable"
        assert script.read_text().startswith(("#!/bin/sh\n", "#!/bin/bash\n")), script.name


def test_prompts_use_only_context_and_date_placeholders() -> None:
    for prompt in sorted((VAULT / "prompts").glob("*.md")):
        slots = set(re.findall(r"\{[^{}\n]*\}", prompt.read_text()))
        assert slots <= {"{context}", "{date}"}, f"{prompt.name}: {slots}"
    for name, task in CFG.tasks.items():
        assert "{context}" in (VAULT / task.prompt).read_text(), name


def test_the_vault_stays_small() -> None:
    size = sum(p.stat().st_size for p in VAULT.rglob("*") if p.is_file())
    assert size < 1_000_000


# ---- the collectors, for real -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in TASKS if CFG.tasks[n].collect])
def test_collector_runs_in_the_vault(name: str) -> None:
    task: TaskConfig = CFG.tasks[name]
    assert task.collect
    done = collect(task.collect, timeout=task.timeout)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(done.stdout.split()) >= 20, done.stdout
    assert len(done.stdout.encode()) <= task.output_cap


def test_seeder_postprocessor_writes_one_note_per_block(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    shutil.copytree(VAULT, vault)
    out = ("=== NOTE: Grouped Query Attention ===\n# Grouped Query Attention\n\n## Key Points\n- Heads share K/V.\n"
           "=== NOTE: YaRN Context Extension ===\n# YaRN\n\n## Key Points\n- Rescales RoPE.\n")
    done = subprocess.run(["scripts/_postproc-knowledge-seeder.sh"], cwd=vault, input=out, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in (vault / "Knowledge").glob("seed--*.md"))
    assert written == ["seed--grouped-query-attention.md", "seed--yarn-context-extension.md"]
    assert "- Rescales RoPE." in (vault / "Knowledge" / "seed--yarn-context-extension.md").read_text()
    assert not list((vault / "Knowledge").glob(".*.tmp"))


def test_seeder_postprocessor_writes_nothing_without_blocks(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    shutil.copytree(VAULT, vault)
    before = sorted(p.name for p in (vault / "Knowledge").iterdir())
    done = subprocess.run(["scripts/_postproc-knowledge-seeder.sh"], cwd=vault, input="Positional encoding is...\n",
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert "no === NOTE: blocks" in done.stderr
    assert sorted(p.name for p in (vault / "Knowledge").iterdir()) == before


# ---- FAULTS.md ----------------------------------------------------------------------------------------------


def fault_rows() -> list[dict[str, str]]:
    rows = []
    for line in FAULTS.read_text().splitlines():
        if not re.match(r"^\| F\d+ \|", line):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        fid, kind, task, where, evidence, model, shows, fix = cells
        span = re.match(r"^(`+)\s?(.*?)\s?\1$", evidence)
        assert span, f"{fid}: evidence must be one code span, got {evidence!r}"
        rows.append({"id": fid, "kind": kind, "task": task, "where": where, "evidence": span.group(2),
                     "model": model, "shows": shows, "fix": fix})
    return rows


ROWS = fault_rows()


def resolve(where: str) -> tuple[Path, int]:
    rel, _, line = where.rpartition(":")
    return (REPO / rel if rel == "vault.yml" else VAULT / rel), int(line)


def test_faults_table_covers_every_kind_and_names_real_tasks() -> None:
    assert len(ROWS) >= 12
    assert {r["kind"] for r in ROWS} == FAULT_KINDS
    assert len({r["id"] for r in ROWS}) == len(ROWS)
    for row in ROWS:
        assert row["task"] in CFG.tasks, row["id"]
        assert row["shows"] and row["fix"], row["id"]


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_fault_evidence_is_on_the_line_faults_md_names(row: dict[str, str]) -> None:
    path, line = resolve(row["where"])
    lines = path.read_text().splitlines()
    assert 1 <= line <= len(lines), row["where"]
    assert row["evidence"] in lines[line - 1], f"{row['id']}: {row['evidence']!r} not on {row['where']}: {lines[line - 1]!r}"


def test_fault_evidence_on_vault_yml_lines_belongs_to_the_right_task() -> None:
    text = CONFIG.read_text().splitlines()
    for row in ROWS:
        path, line = resolve(row["where"])
        if path != CONFIG:
            continue
        owner = next(m.group(1) for ln in reversed(text[:line]) if (m := re.match(r"^  ([a-z][\w-]*):\s*$", ln)))
        assert owner == row["task"], f"{row['id']}: line {line} is in task {owner}"


# ---- each fault, checked by what it does ----------------------------------------------------------------------


def test_num_predict_is_too_low_and_thinking_is_on() -> None:
    for name in ("morning-briefing", "knowledge-spacer"):
        options = CFG.tasks[name].options
        assert options.num_predict == 300
        assert options.think is None
        assert any(m.startswith("ollama:qwen3") for m in CFG.tasks[name].candidates)


def test_fashion_collector_starves_on_head_10() -> None:
    out = collect("scripts/fashion-signals.sh").stdout
    counts = [int(c) for c in re.findall(r"\(count=(\d+)\)", out)]
    assert counts and set(counts) == {1}
    lines = (VAULT / "signals" / "signals_list.txt").read_text().splitlines()
    assert len(lines) >= 50
    top50 = Counter(line.split(" | ")[2] for line in lines[:50])
    assert sum(1 for n in top50.values() if n >= 3) >= 3, "head -50 must reveal trends"


def test_quiz_collector_leaks_key_sources() -> None:
    out = collect("scripts/knowledge-quiz.sh").stdout
    assert "## Key Points" in out
    assert "## Key Sources" in out and "https://" in out
    assert "## Related" not in out


def test_spacer_collector_forks_sed_per_note() -> None:
    text = (VAULT / "scripts" / "knowledge-spacer.sh").read_text()
    loop = text[text.index("for note in"):text.index("done")]
    assert loop.count("sed -n") == 4
    out = collect("scripts/knowledge-spacer.sh").stdout
    notes = len(list((VAULT / "Knowledge").glob("*.md")))
    assert len([ln for ln in out.splitlines() if ln.count(" | ") == 5]) == notes + 1  # header + one row per note


def test_output_judge_context_is_longer_than_its_num_ctx_allows() -> None:
    task = CFG.tasks["output-judge"]
    assert task.options.num_ctx and task.options.num_predict
    full = collect("scripts/output-judge.sh").stdout
    script = (VAULT / "scripts" / "output-judge.sh").read_text().replace("head -80", "head -40")
    fixed = subprocess.run(["sh", "-c", script], cwd=VAULT, capture_output=True, text=True, timeout=60).stdout
    assert len(full) / 4 > task.options.num_ctx  # over the window even by a generous 4 chars per token
    assert len(fixed) < len(full) * 0.7  # the seed's fix (head -40) buys a real reduction
    assert set(re.findall(r"=== TASK: ([\w-]+)", full)) >= SEED_TASKS - {"output-judge", "lesson-distiller"}


def test_prompt_faults_are_in_the_prompts() -> None:
    radar = (VAULT / "prompts" / "research-radar.md").read_text()
    assert "```markdown" in radar and "[Tool]" in radar
    assert "2026-03-10: Precision over scope" in (VAULT / "prompts" / "session-reflection.md").read_text()
    assert "(or 'quiet — no commits' if 0)" in (VAULT / "prompts" / "morning-briefing.md").read_text()
    assert "Write tool" in (VAULT / "prompts" / "lesson-distiller.md").read_text()
    assert re.search(r"(?i)include key facts\.", (VAULT / "prompts" / "blog-drafter.md").read_text())


def test_lesson_distiller_declares_blocks_and_outputs_but_no_postprocessor() -> None:
    task = CFG.tasks["lesson-distiller"]
    assert task.postprocess is None
    assert task.expect.blocks and "PRACTICE NOTE" in task.expect.blocks.regex
    assert task.outputs == ["Knowledge/practice--*.md"]
    assert not list(VAULT.glob("Knowledge/practice--*.md"))
    assert not (VAULT / "scripts" / "_postproc-lesson-distiller.sh").exists()


def test_model_pools_hold_the_faulty_models() -> None:
    assert CFG.tasks["knowledge-seeder"].candidates[:2] == ["ollama:vault-unified-4b-q8", "ollama:gemma3:12b"]
    writer = CFG.tasks["blog-writer"].candidates
    assert {"ollama:qwen2.5-coder:14b", "ollama:gemma3:12b", "ollama:qwen3:8b"} <= set(writer)


def test_drafter_briefs_are_too_thin_for_the_writer() -> None:
    writer = CFG.tasks["blog-writer"]
    assert writer.requires.min_words and writer.requires.min_facts and writer.expect.min_words == 600
    briefs = sorted(VAULT.glob("Drafts/brief-*.md"))
    assert briefs
    for brief in briefs:
        text = brief.read_text()
        assert len(text.split()) < writer.requires.min_words, brief.name
        assert len(re.findall(r"^\s*(?:[-*+]|\d+[.)])\s", text, re.MULTILINE)) < writer.requires.min_facts, brief.name
    assert (CFG.tasks["blog-drafter"].options.num_predict or 0) < 400


def test_training_data_is_too_small_and_skewed() -> None:
    deep = CFG.tasks["knowledge-deepener"].training
    plan = CFG.tasks["goal-planner"].training
    spacer = CFG.tasks["knowledge-spacer"].training
    assert deep and plan and spacer and plan.label_field
    deep_rows = [json.loads(x) for x in (VAULT / deep.data).read_text().splitlines() if x.strip()]
    assert len(deep_rows) < deep.min_examples
    plan_rows = [json.loads(x) for x in (VAULT / plan.data).read_text().splitlines() if x.strip()]
    labels = Counter(r[plan.label_field] for r in plan_rows)
    assert set(labels) == {"HAS-GOALS", "NO-CHANGE"}
    assert max(labels.values()) / len(plan_rows) > plan.max_class_share
    spacer_rows = [json.loads(x) for p in sorted(VAULT.glob(spacer.data)) for x in p.read_text().splitlines() if x]
    assert len(spacer_rows) >= spacer.min_examples  # the control: clean data
    assert all(re.fullmatch(r"NEXT: interval=\d+ ease=\d+(\.\d+)?", r["completion"]) for r in spacer_rows)


# ---- the heartbeat logs ----------------------------------------------------------------------------------------


def heartbeat() -> tuple[list[IngestedRun], list[IngestedScore]]:
    runs: list[IngestedRun] = []
    scores: list[IngestedScore] = []
    assert CFG.logs
    for path in sorted((VAULT / CFG.logs).glob("*.jsonl")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            item = parse_line(line, f"{path.name}:{n}")
            if isinstance(item, IngestedRun):
                runs.append(item)
            elif isinstance(item, IngestedScore):
                scores.append(item)
    return runs, scores


def test_heartbeat_logs_parse_and_name_known_tasks() -> None:
    runs, scores = heartbeat()
    assert len(runs) >= 80
    assert {r.task for r in runs} == set(CFG.tasks)
    run_ids = {r.run_id for r in runs}
    assert len(run_ids) == len(runs)
    assert all(s.run_id in run_ids for s in scores)


def test_heartbeat_logs_show_the_faults() -> None:
    runs, _ = heartbeat()
    by_task: dict[str, list[IngestedRun]] = {}
    for r in sorted(runs, key=lambda r: r.started):
        by_task.setdefault(r.task, []).append(r)
    seeder = by_task["knowledge-seeder"]
    assert len(seeder) >= 8 and len({r.output for r in seeder}) == 1 and "Positional" in seeder[0].output
    assert all(r.model == "ollama:vault-unified-4b-q8" and not r.artifacts for r in seeder)
    assert all(r.done_reason == "length" and r.thinking_tokens > 100 for r in by_task["morning-briefing"])
    assert all("(or 'quiet" in r.output for r in by_task["morning-briefing"])
    reflections = [r.output for r in by_task["session-reflection"]][-3:]
    assert len(set(reflections)) == 1 and "Precision over scope" in reflections[0]
    assert all("```" in r.output and "[Tool]" in r.output for r in by_task["research-radar"])
    assert all(100 <= len(r.output.split()) <= 160 for r in by_task["blog-drafter"])
    coder = [r for r in by_task["blog-writer"] if "coder" in r.model]
    assert len(coder) == 2 and all(len(r.output.split()) == 241 for r in coder)
    assert all(len(r.output.split()) >= 600 for r in by_task["blog-writer"] if "coder" not in r.model)
    assert all("=== PRACTICE NOTE" not in r.output and not r.artifacts for r in by_task["lesson-distiller"])
    judge = by_task["output-judge"]
    assert all(r.prompt_tokens >= (r.options.get("num_ctx") or 0) for r in judge)
    assert any(r.status == "failed" for r in judge)

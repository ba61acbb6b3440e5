"""The fault benchmark's vault: a copy of examples/seed-vault whose vault.yml runs every task on the flawed model
FAULTS.md names for its fault, against a loopback Ollama-protocol double — and the table of planted faults.

Choices made in the copy (and why):
- each task's `model` is the flawed model of its fault (tasks without a model fault: `ollama:gemma3:12b`, which
  follows formats); blog-writer keeps gemma3:12b as its model, the coder stays in its `candidates` pool (the
  fault is the pool, as in the heartbeat logs, which rotate through it);
- `embedded:*` is removed from every `candidates` pool: the double serves the ollama protocol only, and a pool
  delta is verified by running the pool's other members;
- `judge.llm_weight: 0`: contract and universal checks only, so every score is exact (no LLM noise) and the
  verdicts are deterministic; the judge model (set to gemma3:12b on the double) is never asked for a score;
- `research.samples: 3`, `max_samples: 6`: with an exact judge a score difference needs few inputs (verify
  raises the counts to 24/96 on its own where an A/A run shows spread).
"""

from __future__ import annotations

import shutil
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from adapters.yaml_edit import get_value, remove_item, set_value

REPO = Path(__file__).resolve().parent.parent
SEED = "examples/seed-vault"
GOOD_MODEL = "ollama:gemma3:12b"

# task -> the flawed model FAULTS.md's "model" column names for its fault
FLAWED: dict[str, str] = {
    "morning-briefing": "ollama:qwen3:8b",
    "knowledge-spacer": "ollama:qwen3:8b",
    "session-reflection": "ollama:qwen3:4b",
    "research-radar": "ollama:qwen3:8b",
    "knowledge-seeder": "ollama:vault-unified-4b-q8",
    "lesson-distiller": "ollama:qwen3:8b",
    "blog-drafter": "ollama:qwen3:8b",
}


@dataclass(frozen=True)
class Fault:
    """One FAULTS.md row: found when `signature` shows in the task's diagnosis; fixed by a kept delta whose rules
    include one of `rules` (and, with `paths`, that edits one of those paths or vault.yml keys)."""

    id: str
    kind: str
    task: str
    signature: str
    rules: tuple[str, ...]
    config_key: tuple[str, ...] = ()  # the vault.yml option the fix must change, e.g. ("options", "num_predict")


FAULTS: tuple[Fault, ...] = (
    Fault("F01", "num-predict-too-low", "morning-briefing", "truncated", ("raise_num_predict",)),
    Fault("F02", "num-predict-too-low", "morning-briefing", "thinking_burn", ("disable_thinking",)),
    Fault("F03", "prompt-template-leak", "morning-briefing", "instruction_leak", ("plain_instructions",)),
    Fault("F04", "num-predict-too-low", "knowledge-spacer", "truncated", ("raise_num_predict", "disable_thinking")),
    Fault("F05", "copied-example", "session-reflection", "copied_example", ("structure_only_example",)),
    Fault("F06", "prompt-template-leak", "research-radar", "code_fences", ("unfence",)),
    Fault("F07", "prompt-template-leak", "research-radar", "placeholder_leak", ("describe_placeholders",)),
    Fault("F08", "collector-head-starving", "fashion-signals", "format_miss", ("widen_head",)),
    Fault("F09", "section-regex-leak", "knowledge-quiz", "section_regex_leak", ("explicit_section",)),
    Fault("F10", "subprocess-loop", "knowledge-spacer", "subprocess_loop", ("one_awk_pass",)),
    Fault("F11", "judge-context-overflow", "output-judge", "context_overflow", ("narrow_head",)),
    Fault("F12", "format-incapable-model", "knowledge-seeder", "format_miss", ("swap_model",)),
    Fault("F13", "coder-in-prose-pool", "blog-writer", "wrong_model", ("drop_candidate",)),
    Fault("F14", "removed-tool-no-postprocessor", "lesson-distiller", "format_miss",
          ("blocks_not_tools", "add_postprocessor")),
    Fault("F15", "removed-tool-no-postprocessor", "lesson-distiller", "dead_task", ("add_postprocessor",)),
    Fault("F16", "thin-upstream-for-consumer", "blog-drafter", "too_short_for_consumer", ("grow_for_consumer",)),
    Fault("F17", "thin-upstream-for-consumer", "blog-drafter", "too_short_for_consumer", ("grow_for_consumer",),
          config_key=("options", "num_predict")),
    Fault("F18", "training-data-audit", "knowledge-deepener", "training_data_too_few", ("mine_data",)),
    Fault("F19", "training-data-audit", "goal-planner", "training_data_imbalanced", ("rebalance_data",)),
)


def bench_config(text: str, host: str, *, samples: int = 3, max_samples: int = 6,
                 only: Collection[str] | None = None) -> str:
    """vault.yml rewritten for the benchmark (see the module docstring); comments and layout kept. With `only`,
    every other task is disabled (the smoke test's few faults)."""
    text = set_value(text, ["backends", "ollama", "host"], host)
    text = set_value(text, ["judge", "llm_weight"], 0)
    text = set_value(text, ["judge", "model"], GOOD_MODEL)  # on the loopback double, never the embedded model
    text = set_value(text, ["research", "samples"], samples)
    text = set_value(text, ["research", "max_samples"], max_samples)
    text = set_value(text, ["store"], "sqlite:///events.db")
    text = set_value(text, ["vault"], "vault")
    for task in get_value(text, ["tasks"]) or {}:
        text = set_value(text, ["tasks", task, "model"], FLAWED.get(task, GOOD_MODEL))
        if only is not None and task not in only:
            text = set_value(text, ["tasks", task, "enabled"], False)
        for member in list(get_value(text, ["tasks", task, "candidates"]) or []):
            if str(member).startswith("embedded:"):
                text = remove_item(text, ["tasks", task, "candidates"], member)
    return text


def make_fault_vault(dest: Path, host: str, only: Collection[str] | None = None) -> Path:
    """dest/vault.yml + dest/vault (a copy of the seed vault, heartbeat logs included); returns vault.yml."""
    shutil.copytree(REPO / SEED, dest / "vault", ignore=shutil.ignore_patterns(".autovault", ".git"))
    cfg = dest / "vault.yml"
    cfg.write_text(bench_config((REPO / "vault.yml").read_text(encoding="utf-8"), host, only=only), encoding="utf-8")
    return cfg


__all__ = ["FAULTS", "FLAWED", "GOOD_MODEL", "Fault", "bench_config", "make_fault_vault"]

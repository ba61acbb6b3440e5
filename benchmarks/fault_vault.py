"""The fault benchmark's vaults: which vault, which faults are planted in it, and how the benchmark's copy differs.

Two vaults, each with its own FAULTS.md: the example vault (`examples/seed-vault`, configured by the top-level
vault.yml) and the household vault (`benchmarks/household-vault`, its vault.yml inside it), the same twelve kinds
of fault in other shapes. A `Fault` says how the product names it, not how to fix it:

- `shows`: the signatures (from runs, collector lints or traces, the data audit, data-flow findings — anything
  `diagnose` reports) any of which means the product found this fault;
- `checks`: the checks of the task's contract (or the universal ones) the fault breaks on a run;
- `absent`: models that must be gone from the task's model and pool (a pool fault shows only when the bad model
  is picked, so the rerun alone cannot show it gone);
- `data`: a training-data fault: fixed when its audit passes and every example the loop added passes the task's
  contract (a mined example that leaks a placeholder trains the leak).

Choices made in the copies (and why):
- the example vault's tasks run on the flawed model FAULTS.md names for their fault (others on
  `ollama:gemma3:12b`, which follows formats); `embedded:*` leaves every pool (the double speaks Ollama only);
- the household vault keeps its own models; its `openai` backend points at a closed port (nothing serves it,
  as on a machine where that server is down);
- `judge.llm_weight: 0` (contract and universal checks only, so every score is exact and verdicts repeat),
  the judge model on the double, `research.samples: 3` / `max_samples: 6`.
"""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adapters.yaml_edit import flow, get_value, remove_item, set_value

REPO = Path(__file__).resolve().parent.parent
GOOD_MODEL = "ollama:gemma3:12b"
RUN_SEED = 7  # the before/after runs: fixed seed and date, so a changed score is the change's doing


@dataclass(frozen=True)
class Fault:
    id: str
    kind: str
    task: str
    shows: tuple[str, ...]
    checks: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    data: bool = False


@dataclass(frozen=True)
class BenchVault:
    name: str
    source: str  # the vault folder, relative to the repository
    config: str  # its vault.yml, relative to the repository
    run_date: str  # the day after its heartbeat history: the before/after runs are "today"
    faults: tuple[Fault, ...]
    models: Mapping[str, str] = field(default_factory=dict)  # task -> model the copy runs it on ("*": the rest)

    @property
    def kinds(self) -> list[str]:
        return sorted({f.kind for f in self.faults})


RUNS_SHOW = ("truncated",)
THIN = ("too_short_for_consumer", "too_small_for_consumer")
DEAD = ("dead_task", "outputs_never_written", "blocks_without_parser")
COPIED = ("copied_example", "identical_across_days")

SEED = BenchVault("seed", "examples/seed-vault", "vault.yml", "2026-03-19", (
    Fault("F01", "num-predict-too-low", "morning-briefing", RUNS_SHOW, ("truncated", "sections")),
    Fault("F02", "num-predict-too-low", "morning-briefing", ("thinking_burn",)),
    Fault("F03", "prompt-template-leak", "morning-briefing", ("instruction_leak",), ("forbid",)),
    Fault("F04", "num-predict-too-low", "knowledge-spacer", ("truncated", "thinking_burn"), ("truncated", "sections")),
    Fault("F05", "copied-example", "session-reflection", COPIED, ("distinct_from_previous",)),
    Fault("F06", "prompt-template-leak", "research-radar", ("code_fences",), ("code_fences",)),
    Fault("F07", "prompt-template-leak", "research-radar", ("placeholder_leak",), ("forbid", "placeholder_leak")),
    Fault("F08", "collector-head-starving", "fashion-signals", ("collector_starving",), ("blocks", "forbid")),
    Fault("F09", "section-regex-leak", "knowledge-quiz", ("section_regex_leak",), ("forbid",)),
    Fault("F10", "subprocess-loop", "knowledge-spacer", ("subprocess_loop",)),
    Fault("F11", "judge-context-overflow", "output-judge", ("context_overflow",), ("context_overflow", "blocks")),
    Fault("F12", "format-incapable-model", "knowledge-seeder", ("format_miss", "wrong_model"), ("blocks",)),
    Fault("F13", "coder-in-prose-pool", "blog-writer", ("wrong_model",), absent=("ollama:qwen2.5-coder:14b",)),
    Fault("F14", "removed-tool-no-postprocessor", "lesson-distiller", ("format_miss",), ("blocks",)),
    Fault("F15", "removed-tool-no-postprocessor", "lesson-distiller", DEAD, ("outputs_written",)),
    Fault("F16", "thin-upstream-for-consumer", "blog-drafter", THIN),
    Fault("F17", "thin-upstream-for-consumer", "blog-drafter", (*THIN, "truncated"), ("truncated",)),
    Fault("F18", "training-data-audit", "knowledge-deepener", ("training_data_too_few",), data=True),
    Fault("F19", "training-data-audit", "goal-planner", ("training_data_imbalanced",), data=True),
), models={
    "morning-briefing": "ollama:qwen3:8b", "knowledge-spacer": "ollama:qwen3:8b", "session-reflection": "ollama:qwen3:4b",
    "research-radar": "ollama:qwen3:8b", "knowledge-seeder": "ollama:vault-unified-4b-q8",
    "lesson-distiller": "ollama:qwen3:8b", "blog-drafter": "ollama:qwen3:8b", "*": GOOD_MODEL,
})

HOUSEHOLD = BenchVault("household", "benchmarks/household-vault", "benchmarks/household-vault/vault.yml", "2026-05-12", (
    Fault("H01", "num-predict-too-low", "meal-plan", RUNS_SHOW, ("truncated", "sections")),
    Fault("H02", "num-predict-too-low", "school-digest", ("thinking_burn",), ("empty", "truncated")),
    Fault("H03", "copied-example", "chore-rota", COPIED, ("distinct_from_previous",)),
    Fault("H04", "copied-example", "garden-journal", COPIED, ("distinct_from_previous",)),
    Fault("H05", "prompt-template-leak", "bills-digest", ("placeholder_leak",), ("placeholder_leak", "blocks")),
    Fault("H06", "prompt-template-leak", "maintenance-reminders", ("instruction_leak",), ("forbid",)),
    Fault("H07", "prompt-template-leak", "weekend-ideas", ("code_fences",), ("code_fences",)),
    Fault("H08", "collector-head-starving", "grocery-restock", ("collector_starving",), ("blocks",)),
    Fault("H09", "collector-head-starving", "subscription-audit", ("collector_starving",), ("blocks",)),
    Fault("H10", "section-regex-leak", "fix-it-cards", ("section_regex_leak",), ("forbid",)),
    Fault("H11", "section-regex-leak", "shopping-list", ("section_regex_leak",), ("forbid",)),
    Fault("H12", "subprocess-loop", "bills-digest", ("subprocess_loop",)),
    Fault("H13", "subprocess-loop", "maintenance-reminders", ("subprocess_loop",)),
    Fault("H14", "judge-context-overflow", "household-judge", ("context_overflow",), ("context_overflow", "blocks")),
    Fault("H15", "judge-context-overflow", "weekly-review", ("context_overflow",), ("context_overflow", "sections")),
    Fault("H16", "format-incapable-model", "recipe-ideas", ("format_miss", "wrong_model"), ("blocks",)),
    Fault("H17", "format-incapable-model", "budget-table", ("format_miss", "wrong_model"), ("blocks",)),
    Fault("H18", "coder-in-prose-pool", "weekend-ideas", ("wrong_model",), absent=("ollama:codegemma:7b",)),
    Fault("H19", "coder-in-prose-pool", "newsletter", ("wrong_model",), absent=("ollama:deepseek-coder:6.7b",)),
    Fault("H20", "removed-tool-no-postprocessor", "warranty-tracker", ("format_miss",), ("blocks",)),
    Fault("H21", "removed-tool-no-postprocessor", "warranty-tracker", DEAD, ("outputs_written",)),
    Fault("H22", "removed-tool-no-postprocessor", "plant-care", ("format_miss",), ("blocks",)),
    Fault("H23", "removed-tool-no-postprocessor", "plant-care", DEAD, ("outputs_written",)),
    Fault("H24", "thin-upstream-for-consumer", "kids-news", THIN),
    Fault("H25", "thin-upstream-for-consumer", "trip-planner", THIN),
    Fault("H26", "training-data-audit", "pantry-check", ("training_data_imbalanced",), data=True),
    Fault("H27", "training-data-audit", "bills-digest", ("training_data_too_few",), data=True),
))

VAULTS: dict[str, BenchVault] = {v.name: v for v in (SEED, HOUSEHOLD)}


def closed_port_url() -> str:
    """A loopback URL nobody listens on: a backend there is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def bench_config(vault: BenchVault, text: str, host: str, *, samples: int = 3, max_samples: int = 6,
                 only: Collection[str] | None = None) -> str:
    """vault.yml rewritten for the benchmark (see the module docstring); comments and layout kept. With `only`,
    every other task is disabled."""
    data = yaml.load(text, Loader=LOADER)
    edits: list[tuple[list[str | int], Any]] = [
        (["vault"], "vault"), (["store"], "sqlite:///events.db"), (["backends", "ollama", "host"], host),
        (["judge", "llm_weight"], 0), (["judge", "model"], GOOD_MODEL),  # on the double, never the embedded model
        (["research", "samples"], samples), (["research", "max_samples"], max_samples)]
    if (data.get("backends") or {}).get("openai") is not None:
        edits.append((["backends", "openai", "base_url"], closed_port_url()))
    for task, tc in (data.get("tasks") or {}).items():
        model = vault.models.get(task, vault.models.get("*"))
        if model is not None and tc.get("model") != model:
            edits.append((["tasks", task, "model"], model))
        if only is not None and task not in only:
            edits.append((["tasks", task, "enabled"], False))
        pool = tc.get("candidates") or []
        if any(str(m).startswith("embedded:") for m in pool):
            edits.append((["tasks", task, "candidates"], [m for m in pool if not str(m).startswith("embedded:")]))
    for path, value in edits:
        text = _edit(text, path, value)
    return text


LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _edit(text: str, path: list[str | int], value: Any) -> str:
    """One key set: on its own line when the key sits on one (fast, layout kept), else by `adapters.yaml_edit`;
    either way the result must parse to the original with just that key changed."""
    expect = yaml.load(text, Loader=LOADER)
    node = expect
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    new = _edit_line(text.split("\n"), [str(p) for p in path], value)
    try:
        if new is not None and yaml.load(new, Loader=LOADER) == expect:
            return new
    except yaml.YAMLError:
        pass
    if isinstance(value, list):
        for member in [m for m in get_value(text, path) or [] if m not in value]:
            text = remove_item(text, path, member)
        return text
    return set_value(text, path, value)


def _edit_line(lines: list[str], path: list[str], value: Any) -> str | None:
    """`key: value` replaced where the key is written on a line of its own (or inside a one-line flow mapping of
    its parent), or added at the end of its parent's block; None for any other layout."""
    start, end = 0, len(lines)
    for depth, part in enumerate(path):
        indent = "  " * depth
        at = next((j for j in range(start, end) if re.match(rf"^{indent}{re.escape(part)}:(\s|$)", lines[j])), None)
        last = depth == len(path) - 1
        if at is None:
            if not last or depth == 0:
                return None
            tail = max((j for j in range(start, end) if lines[j].strip()), default=start - 1) + 1
            lines.insert(tail, f"{indent}{part}: {flow(value)}")
            return "\n".join(lines)
        rest = lines[at][len(indent) + len(part) + 1:]
        if last:
            below = at + 1
            if not rest.strip() or rest.strip().startswith("#"):  # a block value: its lines go too
                while below < end and (not lines[below].strip() or lines[below].startswith(indent + "  ")):
                    below += 1
            comment = re.search(r"\s+#.*$", rest) if not rest.strip().startswith(("{", "[", "\"", "'")) else None
            lines[at:below] = [f"{indent}{part}: {flow(value)}{comment.group(0) if comment else ''}"]
            return "\n".join(lines)
        if rest.strip().startswith("{"):
            if depth != len(path) - 2:
                return None
            key = re.escape(path[-1])
            if len(re.findall(rf"[{{,]\s*{key}:", lines[at])) > 1:
                return None
            new, n = re.subn(rf"([{{,]\s*){key}:\s*(\"[^\"]*\"|'[^']*'|[^,}}]*)",
                             lambda m: f"{m.group(1)}{path[-1]}: {flow(value)}", lines[at], count=1)
            if n == 0:
                new = re.sub(r"}(\s*(#.*)?)$", f", {path[-1]}: {flow(value)}}}\\1", lines[at], count=1)
            lines[at] = new
            return "\n".join(lines)
        start = at + 1
        end = next((j for j in range(start, end) if lines[j].strip() and not lines[j].startswith(indent + "  ")), end)
    return None


def make_bench_vault(vault: BenchVault, dest: Path, host: str, only: Collection[str] | None = None) -> Path:
    """dest/vault.yml + dest/vault (a copy of the vault, heartbeat logs included); returns vault.yml."""
    shutil.copytree(REPO / vault.source, dest / "vault", ignore=shutil.ignore_patterns(".autovault", ".git"))
    inner = dest / "vault" / "vault.yml"
    if (REPO / vault.config).resolve() == (REPO / vault.source / "vault.yml").resolve():
        inner.unlink()  # the copy's config is dest/vault.yml: one live config, not two
    cfg = dest / "vault.yml"
    original = (REPO / vault.config).read_text(encoding="utf-8")
    cfg.write_text(bench_config(vault, original, host, only=only), encoding="utf-8")
    return cfg


def make_fault_vault(dest: Path, host: str, only: Collection[str] | None = None) -> Path:
    """The example vault's copy (what `benchmarks.bench_faults.setup` and older callers build)."""
    return make_bench_vault(SEED, dest, host, only)


FAULTS = SEED.faults
FLAWED = {t: m for t, m in SEED.models.items() if t != "*"}

__all__ = ["FAULTS", "FLAWED", "GOOD_MODEL", "HOUSEHOLD", "RUN_SEED", "SEED", "VAULTS", "BenchVault", "Fault",
           "bench_config", "make_bench_vault", "make_fault_vault"]

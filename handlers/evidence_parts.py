"""The parts of an evidence pack read from the vault, its config and the task's runs: the files a fix may edit
(hashed, clipped when huge), excerpts of the recent runs, per-model statistics, the neighbours on the data-flow
graph with their contracts and observed sizes, and what the collector's inputs look like.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

from adapters.yaml_edit import block_text
from domain.checks import clip, contract_checks, count_bullets, headings, is_truncated, universal_checks
from domain.config import TaskConfig, VaultConfig
from domain.ids import sha256_text
from domain.signatures import RunView
from handlers.diagnose_static import head_limits
from handlers.evidence import FileText, Neighbour, RunExcerpt, SignatureNote
from handlers.open_signatures import script_path
from handlers.tasks import History, consumers_of, run_from_view
from projections import globs

EXCERPT_RUNS = 4  # runs quoted in the evidence
OUTPUT_CHARS = 700  # per quoted output (head and tail)
CONTEXT_CHARS = 300  # per quoted context
FILE_CAP = 64_000  # a file larger than this is shown clipped and marked incomplete (rules never edit it)
MAX_UPSTREAM = 6  # producers whose recent output sizes are read
FORMAT_CHECKS = frozenset({"min_words", "max_words", "sections", "blocks", "json_schema"})


def check_details(views: Sequence[RunView], tc: TaskConfig, limit: int = 16) -> tuple[str, ...]:
    """The recent runs' failed checks (contract and universal) with their details, which quote the output: what
    the model wrote, not only that a check failed."""
    out: list[str] = []
    for v in views[-EXCERPT_RUNS:]:
        checks = [*contract_checks(v.output, tc.expect, ()), *universal_checks(run_from_view(v), prose=tc.expect.prose)]
        out += [f"{v.run_id}: {c.name} — {c.detail}" for c in checks if not c.passed]
    return tuple(out[-limit:])


def short_consumers(sigs: Iterable[SignatureNote]) -> list[str]:
    """Consumers a too-small output fails: the delta may touch them too."""
    out: list[str] = []
    for s in sigs:
        if s.name == "too_short_for_consumer":
            out += list((s.evidence.get("consumers") or {}).keys())
        elif s.name == "too_small_for_consumer" and s.evidence.get("consumer"):
            out.append(str(s.evidence["consumer"]))
    return out


def config_block(cfg: VaultConfig, task: str) -> str:
    try:
        text = cfg.source.read_text(encoding="utf-8")
    except OSError:
        return ""
    return block_text(text, ["tasks", task])


def file_text(path: str, text: str, role: str, in_config: bool = False) -> FileText:
    digest = sha256_text(text)
    if len(text) > FILE_CAP:
        return FileText(path, text[:FILE_CAP], digest, role, in_config, complete=False)
    return FileText(path, text, digest, role, in_config)


def vault_files(cfg: VaultConfig, tc: TaskConfig, read: Callable[[str | None], str]) -> dict[str, FileText]:
    files: dict[str, FileText] = {}
    with contextlib.suppress(OSError):
        files[cfg.source.name] = file_text(cfg.source.name, cfg.source.read_text(encoding="utf-8"), "config", True)
    for role, rel in (("prompt", tc.prompt), ("collect", script_path(tc.collect)),
                      ("postprocess", script_path(tc.postprocess))):
        if rel and (cfg.root / rel).is_file():
            files[rel] = file_text(rel, read(rel), role)
    return files


def excerpt(v: RunView, score: float | None) -> RunExcerpt:
    out = v.output
    if len(out) > OUTPUT_CHARS:
        out = out[: OUTPUT_CHARS - 200] + " … " + out[-180:]
    return RunExcerpt(v.run_id, v.started, v.model, v.status, v.done_reason, v.prompt_tokens, v.output_tokens,
                      v.thinking_tokens, v.words, count_bullets(v.output), score, tuple(v.failing), out,
                      clip(v.context, CONTEXT_CHARS))


def model_stats(views: Sequence[RunView], scores: Mapping[str, float], tc: TaskConfig) -> dict[str, dict[str, Any]]:
    """Per model: runs, runs passing the format/length contract, mean score."""
    out: dict[str, dict[str, Any]] = {}
    for v in views:
        if not v.model:
            continue
        st = out.setdefault(v.model, {"runs": 0, "format_pass": 0, "scores": []})
        st["runs"] += 1
        checks = contract_checks(v.output, tc.expect, ())
        ok = v.ok and not is_truncated(v.done_reason) and not (set(v.failing) & FORMAT_CHECKS) and all(
            c.passed for c in checks if c.name in FORMAT_CHECKS)
        st["format_pass"] += int(ok)
        if v.run_id in scores:
            st["scores"].append(scores[v.run_id])
    for st in out.values():
        sc = st.pop("scores")
        st["mean_score"] = round(fmean(sc), 3) if sc else None
        st["pass_rate"] = round(st["format_pass"] / st["runs"], 3)
    return out


def neighbours(cfg: VaultConfig, task: str, views: Sequence[RunView],
               history: History) -> tuple[list[Neighbour], list[Neighbour]]:
    tc = cfg.task(task)
    observed = output_sizes(views)
    down: list[Neighbour] = []
    for name, req in consumers_of(cfg, task, globs.overlaps).items():
        other = cfg.tasks[name]
        arts = tuple(o for o in tc.outputs if any(globs.overlaps(o, g) for g in other.inputs))
        down.append(Neighbour(name, "downstream", arts, req.model_dump(exclude_defaults=True),
                              other.expect.model_dump(exclude_defaults=True, exclude={"json_schema"}), observed))
    up: list[Neighbour] = []
    for name, other in cfg.tasks.items():
        if name == task:
            continue
        arts = tuple(o for o in other.outputs if any(globs.overlaps(o, g) for g in tc.inputs))
        if arts:
            up.append(Neighbour(name, "upstream", arts, tc.requires.model_dump(exclude_defaults=True),
                                other.expect.model_dump(exclude_defaults=True, exclude={"json_schema"}),
                                output_sizes(history.views(name, 5)) if len(up) < MAX_UPSTREAM else {}))
    return up, down


def output_sizes(views: Sequence[RunView]) -> dict[str, Any]:
    ok = [v for v in views if v.ok]
    if not ok:
        return {}
    words, tokens, facts = [v.words for v in ok], [v.output_tokens for v in ok], [count_bullets(v.output) for v in ok]
    return {"words": {"min": min(words), "max": max(words)}, "tokens": {"min": min(tokens), "max": max(tokens)},
            "facts": {"min": min(facts), "max": max(facts)},
            "tokens_per_word": round(sum(tokens) / max(1, sum(words)), 3)}


def script_inputs(root: Path, files: Mapping[str, FileText]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in files.values():
        if f.role not in ("collect", "postprocess"):
            continue
        for _, _, arg in head_limits(f.text):
            if arg and not arg.startswith(("-", "$")) and (root / arg).is_file():
                with open(root / arg, "rb") as fh:
                    out[arg] = sum(1 for _ in fh)
    return out


def input_headings(root: Path, tc: TaskConfig, sample: int = 20) -> tuple[str, ...]:
    counts: dict[str, int] = {}
    seen = 0
    for pattern in tc.inputs:
        for g in globs.to_pathlib(pattern):
            for p in sorted(root.glob(g)):
                if seen >= sample or not p.is_file() or p.suffix != ".md":
                    continue
                seen += 1
                text = p.read_text(encoding="utf-8", errors="replace")
                for level, title in headings(text):
                    key = "#" * level + " " + title
                    counts[key] = counts.get(key, 0) + 1
    return tuple(k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:30])


__all__ = ["CONTEXT_CHARS", "EXCERPT_RUNS", "FILE_CAP", "FORMAT_CHECKS", "MAX_UPSTREAM", "OUTPUT_CHARS",
           "check_details", "config_block", "excerpt", "file_text", "input_headings", "model_stats", "neighbours",
           "output_sizes", "script_inputs", "short_consumers", "vault_files"]

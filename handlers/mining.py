"""Training examples mined from a task's own past runs, for a training set that is too small or lopsided.

A score is an opinion; a contract is a fact. A run is mined only when it scored well AND passes every check of
the task's contract (`expect`: sections, blocks, forbid, words, JSON schema), every hard universal check
(failed, empty, truncated, context overflow, placeholder leak, code fences) and repeats none of its template's
own slots: a completion that leaks `[Payee]` into every example would train the leak. Each refusal is counted
by the check it failed, so a diagnosis can say why nothing (or little) was mined.

With a `label_field`, a mined example needs its label. The label is read off the answer only where the data
shows how: every existing example's answer names its own label and no other (`HAS-GOALS\\n- Plan: …`); else the
examples cannot be labelled and balancing by mining says so.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from domain.checks import contract_checks, find_prompt_slots, universal_checks
from domain.config import TaskConfig
from domain.render import render_prompt
from domain.signatures import RunView
from handlers.diagnose_static import DataAudit, parse_jsonl
from handlers.evidence import SignatureNote
from handlers.tasks import run_from_view
from projections import globs

MIN_SCORE = 4.0  # a mined run scored at least this
MINE_MAX = 50  # examples one mining delta may add
ANSWER_KEYS = (("prompt", "completion"), ("input", "output"), ("instruction", "response"), ("question", "answer"))


@dataclass(frozen=True)
class Mined:
    """What mining found: the examples (each with its run id under `source`), the runs scored well enough but
    refused, by the first check they failed, and how many runs were looked at."""

    examples: tuple[dict[str, Any], ...] = ()
    refused: dict[str, int] = field(default_factory=dict)
    looked: int = 0
    label_problem: str | None = None  # why mined examples cannot be labelled (None: they can, or no label_field)

    def summary(self) -> str:
        refused = ", ".join(f"{n} {c}" for c, n in sorted(self.refused.items(), key=lambda kv: -kv[1]))
        text = f"{len(self.examples)} example(s) from {self.looked} past runs"
        return text + (f"; good-scoring runs refused: {refused}" if refused else "")


def run_failures(v: RunView, tc: TaskConfig, template: str) -> list[str]:
    """Names of the checks a recorded run fails against the task's contract as it stands now."""
    failed = [c.name for c in contract_checks(v.output, tc.expect, ()) if not c.passed]
    failed += [c.name for c in universal_checks(run_from_view(v), prose=tc.expect.prose) if c.hard and not c.passed]
    if find_prompt_slots(v.output, template, tc.expect.prose):
        failed.append("template_slots")
    return list(dict.fromkeys(failed))


def answer_keys(data: Mapping[str, str]) -> tuple[str, str] | None:
    """(prompt key, answer key) of the data files' examples, from the first example."""
    first = next((o for text in data.values() for _, o in parse_jsonl(text) if o), None)
    if first is None:
        return None
    return next((k for k in ANSWER_KEYS if set(k) <= set(first)), None)


def label_reader(data: Mapping[str, str], label_field: str, answer: str) -> Callable[[str], str | None] | str:
    """A function naming the label an answer carries, learned from the data; or why there is none."""
    rows = [o for text in data.values() for _, o in parse_jsonl(text) if o and label_field in o]
    labels = sorted({str(o[label_field]) for o in rows})
    if not rows or not labels:
        return f"no example has the label field {label_field!r}"

    def named(text: str) -> list[str]:
        return [lab for lab in labels if re.search(r"(?<![\w-])" + re.escape(lab) + r"(?![\w-])", text)]

    wrong = [o for o in rows if named(str(o.get(answer, ""))) != [str(o[label_field])]]
    if wrong:
        return (f"{len(wrong)} of {len(rows)} examples' {answer!r} do not name their own {label_field!r} alone "
                f"(e.g. {str(wrong[0].get(answer, ''))[:60]!r}): a mined answer's label cannot be read off it")
    return lambda text: (found[0] if len(found := named(text)) == 1 else None)


def mine(tc: TaskConfig, template: str, views: Sequence[RunView], scores: Mapping[str, float],
         data: Mapping[str, str], *, labels: Sequence[str] | None = None, limit: int = MINE_MAX,
         min_score: float = MIN_SCORE) -> Mined:
    """Examples from this task's good runs (best score first, then newest), in the data files' key shape, none
    already in the data. `labels`: only answers carrying one of these labels (balancing); each label's share
    is kept at or under `max_class_share` of the grown set."""
    keys = answer_keys(data)
    if keys is None:
        return Mined()
    t = tc.training
    label_field = t.label_field if t is not None else None
    reader: Callable[[str], str | None] | None = None
    counts: Counter[str] = Counter()
    if label_field:
        got = label_reader(data, label_field, keys[1])
        if isinstance(got, str):
            return Mined(looked=len(views), label_problem=got)
        reader = got
        counts.update(str(o[label_field]) for text in data.values() for _, o in parse_jsonl(text)
                      if o and label_field in o)
    total = sum(1 for text in data.values() for _, o in parse_jsonl(text) if o)
    have = {str(o.get(keys[1])) for text in data.values() for _, o in parse_jsonl(text) if o}
    share = t.max_class_share if t is not None else 1.0
    out: list[dict[str, Any]] = []
    refused: Counter[str] = Counter()
    for v in sorted(reversed(views), key=lambda v: -scores.get(v.run_id, 0.0)):  # stable: newest first per score
        if len(out) >= limit:
            break
        if scores.get(v.run_id, 0.0) < min_score or v.output in have:
            continue
        if not v.context.strip():
            refused["no_recorded_context"] += 1  # the prompt it answered cannot be rebuilt
            continue
        failed = run_failures(v, tc, template)
        if failed:
            refused[failed[0]] += 1
            continue
        example = {keys[0]: render_prompt(template, v.context, v.started[:10] or "1970-01-01"), keys[1]: v.output}
        if reader is not None and label_field:
            label = reader(v.output)
            if label is None or (labels is not None and label not in labels):
                refused["label" if label is None else "label_not_wanted"] += 1
                continue
            example[label_field] = label
        have.add(v.output)
        out.append({**example, "source": v.run_id})
    if label_field and reader is not None:
        out = _within_share(out, label_field, counts, total, share, refused)
    return Mined(tuple(out), dict(refused), len(views))


def _within_share(out: list[dict[str, Any]], label_field: str, counts: Counter[str], total: int, share: float,
                  refused: Counter[str]) -> list[dict[str, Any]]:
    """The mined examples less the last ones of any label that would end above `share` of the grown set."""
    kept = list(out)
    while kept:
        final = counts + Counter(str(e[label_field]) for e in kept)
        top, n = max(final.items(), key=lambda kv: (kv[1], kv[0]))
        if n <= share * (total + len(kept)) + 1e-9:
            break
        last = next((i for i in range(len(kept) - 1, -1, -1) if kept[i][label_field] == top), None)
        if last is None:
            break  # the data itself is lopsided: balancing, not mining, is the fix
        kept.pop(last)
        refused["label_share"] += 1
    return kept


def minority_needed(audit: DataAudit) -> int:
    """Examples of other labels to add so the dominant label's share falls to max_class_share."""
    if not audit.imbalanced or audit.dominant is None:
        return 0
    label, _ = audit.dominant
    return max(0, math.ceil(audit.labels[label] / audit.max_class_share - 1e-9) - audit.examples)


def surplus(audit: DataAudit) -> int:
    """Dominant-label examples to drop so its share falls to max_class_share (0: balanced, or impossible)."""
    if not audit.imbalanced or audit.dominant is None or audit.max_class_share >= 1:
        return 0
    n, s = audit.labels[audit.dominant[0]], audit.max_class_share
    k = max(0, math.ceil((n - s * audit.examples) / (1 - s) - 1e-9))
    return k if k < n else 0


def balance_plan(audit: DataAudit, mined: Mined) -> tuple[str, int] | str:
    """('drop', k) when dropping k dominant examples keeps min_examples; ('add', n) when n mined minority
    examples restore the share; else the reason neither can, in words."""
    surplus_drop = surplus(audit)
    if surplus_drop and audit.examples - surplus_drop >= audit.min_examples:
        return "drop", surplus_drop
    need = minority_needed(audit)
    floor = (f"dropping {surplus_drop} would leave {audit.examples - surplus_drop} < min_examples "
             f"{audit.min_examples}" if surplus_drop else "no drop brings the share down")
    if mined.label_problem:
        return f"{floor}; adding mined minority examples is impossible: {mined.label_problem}"
    if len(mined.examples) >= need > 0:
        return "add", need
    return (f"{floor}; {need} examples of other labels are needed and mining found {len(mined.examples)} "
            f"({mined.summary()})")


def why_not_mined(root: Path, tc: TaskConfig, views: Sequence[RunView], scores: Mapping[str, float],
                  min_score: float = MIN_SCORE, sample: int = 50, refused: Mapping[str, int] | None = None) -> str:
    """Why a too-small training set got no mined examples: no good past output (or good-scoring runs that fail
    the contract), and whether the vault's own material could stand in. A section the task's contract names,
    taken from its input files, is an honest gold output only if it passes that contract itself."""
    scored = [scores[v.run_id] for v in views if v.run_id in scores]
    runs = (f"no run scored ≥ {min_score:g} (best {max(scored):g} of {len(scored)} scored)" if scored
            else "no scored run to mine")
    if refused:
        runs = (f"{sum(refused.values())} run(s) scored ≥ {min_score:g} but fail the task's contract ("
                + ", ".join(f"{n} {c}" for c, n in sorted(refused.items(), key=lambda kv: -kv[1])) + ")")
    if not tc.expect.sections:
        return f"{runs}; the contract names no section the vault's notes could supply"
    section = tc.expect.sections[0]
    passing = failing = 0
    detail = ""
    for pattern in tc.inputs:
        for g in globs.to_pathlib(pattern):
            for p in sorted(root.glob(g))[:sample]:
                text = section_of(p.read_text(encoding="utf-8", errors="replace"), section) if p.is_file() else ""
                if not text:
                    continue
                bad = [c for c in contract_checks(text, tc.expect, ()) if not c.passed]
                passing, failing = passing + (not bad), failing + bool(bad)
                detail = detail or "; ".join(f"{c.name}: {c.detail}" for c in bad)
    if not passing and not failing:
        return f"{runs}; the task's input files hold no '{section}' section"
    if not passing:
        return (f"{runs}; the inputs' '{section}' sections ({failing}) all fail the task's own contract ({detail}): "
                "examples made from them would train that failure")
    return f"{runs}; {passing} input '{section}' sections pass the contract (not turned into examples by rules)"


def section_of(text: str, heading: str) -> str:
    """The markdown section `heading` (its heading line included) up to the next heading of its level or above."""
    level = len(heading) - len(heading.lstrip("#"))
    out: list[str] = []
    for line in text.splitlines():
        if out:
            marks = len(line) - len(line.lstrip("#"))
            if 0 < marks <= level and line[marks:marks + 1] == " ":
                break
            out.append(line)
        elif line.strip() == heading.strip():
            out.append(line)
    return "\n".join(out).strip()


def data_plans(root: Path, tc: TaskConfig, template: str, past: Sequence[RunView], scores: Mapping[str, float],
               audit: DataAudit, data: Mapping[str, str], sigs: list[SignatureNote]
               ) -> tuple[list[SignatureNote], tuple[dict[str, Any], ...], dict[str, Any]]:
    """Mined examples for a too-small set, the balancing plan for a lopsided one, and each audit signature's
    evidence saying what mining found or why it found nothing."""
    notes: dict[str, dict[str, Any]] = {}
    mined: tuple[dict[str, Any], ...] = ()
    balance: dict[str, Any] = {}
    if audit.too_few:
        found = mine(tc, template, past, scores, data)
        mined = found.examples
        notes["training_data_too_few"] = {"mined": found.summary()} if mined else {"not_mined": "; ".join(
            filter(None, [why_not_mined(root, tc, past, scores, refused=found.refused), found.label_problem]))}
    if audit.imbalanced and audit.dominant is not None:
        others = [lab for lab in audit.labels if lab != audit.dominant[0]]
        found = mine(tc, template, past, scores, data, labels=others, limit=minority_needed(audit))
        plan = balance_plan(audit, found)
        if isinstance(plan, str):
            balance = {"plan": None, "reason": plan}
            notes["training_data_imbalanced"] = {"not_balanced": plan}
        else:
            balance = {"plan": plan[0], "count": plan[1],
                       "examples": list(found.examples[: plan[1]]) if plan[0] == "add" else []}
            notes["training_data_imbalanced"] = {"balance": f"{plan[0]} {plan[1]} example(s)"}
    sigs = [replace(s, evidence={**s.evidence, **notes[s.name]}) if s.name in notes else s for s in sigs]
    return sigs, mined, balance


__all__ = ["MINE_MAX", "MIN_SCORE", "Mined", "answer_keys", "balance_plan", "data_plans", "label_reader", "mine",
           "minority_needed", "run_failures", "section_of", "surplus", "why_not_mined"]

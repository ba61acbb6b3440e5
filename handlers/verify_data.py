"""Verify a training-data delta by the task's data contract, not by runs.

Running the task cannot show what a data edit does: nothing is retrained during verification, so both arms
would run the same model and every data delta would score "equal" and be discarded. What can be checked is
the contract vault.yml states for the data (`training`: min_examples, max_class_share, label_field), audited
by `handlers.diagnose_static.audit_data` on the baseline and the candidate data. A data delta is kept when

- it fixes at least one failing audit check (min_examples, max_class_share, valid_json) and breaks none;
- every candidate line is a JSON object with the same fields as the baseline's lines;
- it removes and adds no more lines than its proposer declared (`meta.removed`, `meta.added`): a rule that
  says "drop 3 thin examples" may not rewrite the rest of the file.

The decision is recorded as rule `data-audit` with both audits. The model effect of the new data is measured
only by fine-tuning on it and comparing the trained model — a later GPU experiment, not this verification.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from domain.acceptance import Decision, Rule
from domain.config import TaskConfig, VaultConfig
from domain.delta import Delta
from handlers.diagnose_static import DataAudit, audit_data, parse_jsonl
from handlers.verify import Verification
from handlers.verify_arms import Cost
from projections import globs

DATA_RULE = "data-audit"
LATER = ("the model effect of this data shows only after fine-tuning on it; that experiment (train, then compare "
         "the trained model) is a later GPU issue — this keep rests on the data contract alone")


def is_data_delta(delta: Delta, config: VaultConfig) -> bool:
    """Every edit is a file of the task's training data (and the task declares training)."""
    tc = config.tasks.get(delta.task)
    if tc is None or tc.training is None or not delta.edits:
        return False
    return all(not e.in_config and globs.matches(tc.training.data, e.path) for e in delta.edits)


def training_texts(root: Path, tc: TaskConfig) -> dict[str, str]:
    """Vault-relative path -> text of every live file the task's `training.data` glob names."""
    assert tc.training is not None
    out: dict[str, str] = {}
    for g in globs.to_pathlib(tc.training.data):
        for p in sorted(root.glob(g)):
            if p.is_file():
                out[p.relative_to(root).as_posix()] = p.read_text(encoding="utf-8", errors="replace")
    return out


def audit_checks(a: DataAudit) -> dict[str, bool]:
    """The data contract's checks, True = passes."""
    return {"min_examples": not a.too_few, "max_class_share": not a.imbalanced, "valid_json": not a.invalid}


def line_changes(before: Mapping[str, str], after: Mapping[str, str]) -> tuple[int, int]:
    """(lines removed, lines added) over all files, as multisets of non-blank lines: a changed line is both."""
    removed = added = 0
    for path in set(before) | set(after):
        was = Counter(ln for ln in before.get(path, "").splitlines() if ln.strip())
        now = Counter(ln for ln in after.get(path, "").splitlines() if ln.strip())
        removed += sum((was - now).values())
        added += sum((now - was).values())
    return removed, added


def field_problems(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Candidate lines that are not JSON objects, or whose fields are not those of the baseline's lines."""
    shapes = {frozenset(o) for text in before.values() for _, o in parse_jsonl(text) if o is not None}
    out = []
    for path, text in sorted(after.items()):
        for i, obj in parse_jsonl(text):
            if obj is None:
                out.append(f"{path}:{i}: not a JSON object")
            elif shapes and frozenset(obj) not in shapes:
                out.append(f"{path}:{i}: fields {sorted(obj)} differ from the baseline's")
    return out


def _declared(delta: Delta, key: str) -> int:
    value = delta.meta.get(key, 0)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def data_verdict(delta: Delta, tc: TaskConfig, before: Mapping[str, str],
                 after: Mapping[str, str]) -> tuple[bool, str, dict[str, Any]]:
    """(keep, reason, record) for a data delta: the rule of the module docstring."""
    t = tc.training
    assert t is not None
    a0 = audit_data(dict(before), t.min_examples, t.max_class_share, t.label_field)
    a1 = audit_data(dict(after), t.min_examples, t.max_class_share, t.label_field)
    c0, c1 = audit_checks(a0), audit_checks(a1)
    fixed = [c for c in c0 if not c0[c] and c1[c]]
    broken = [c for c in c0 if c0[c] and not c1[c]]
    shape = field_problems(before, after)
    removed, added = line_changes(before, after)
    may_remove, may_add = _declared(delta, "removed"), _declared(delta, "added")
    record = {"before": a0.as_dict(), "after": a1.as_dict(), "checks_before": c0, "checks_after": c1,
              "fixed": fixed, "broken": broken, "line_problems": shape[:10], "removed": removed, "added": added,
              "declared": {"removed": may_remove, "added": may_add}}
    if broken:
        return False, f"data audit: breaks {', '.join(broken)}", record
    if shape:
        return False, f"data lines changed shape: {'; '.join(shape[:3])}", record
    if removed > may_remove or added > may_add:
        return False, (f"changes more than the proposer declared: {removed} line(s) removed (declared {may_remove}), "
                       f"{added} added (declared {may_add})"), record
    if not fixed:
        return False, f"data audit: fixes no failing check (before {c0})", record
    return True, f"data audit: fixes {', '.join(fixed)}, breaks none; {removed} removed, {added} added as declared", \
        record


def verify_data(config: VaultConfig, delta: Delta, files: Mapping[str, str | None]) -> Verification:
    """Decide a training-data delta by its audit (see the module docstring); reads live files, writes nothing."""
    t0 = time.perf_counter()
    tc = config.task(delta.task)
    before = training_texts(config.root, tc)
    after = dict(before)
    for path, text in files.items():
        if text is None:
            after.pop(path, None)
        else:
            after[path] = text
    keep, reason, record = data_verdict(delta, tc, before, after)
    rule = {"name": DATA_RULE, "checks": ["min_examples", "max_class_share", "valid_json"],
            "keep": "fixes ≥ 1 failing check, breaks none, same fields, within the declared removed/added lines"}
    decision = Decision("keep" if keep else "discard", reason, 0.0, (0.0, 0.0), 0.0, 0, (), (), (), rule)
    cost = Cost(seconds=time.perf_counter() - t0)
    return Verification(decision=decision, rule=Rule(), baseline={}, candidate={}, guardrails=[], simpler=False,
                        noise_floor=0.0, noise_key="", noise_measured=False, cost=cost, inputs=[], notes=[LATER],
                        data_rule=rule, audit=record)


__all__ = ["DATA_RULE", "data_verdict", "is_data_delta", "line_changes", "verify_data"]

"""Static findings the run history cannot show: collector-script lints and a training-data audit.

Pure functions of file texts. A section regex like `/^## [^K]/{exit}` leaks every neighbouring section that
happens to start with K; a loop that forks several `sed`s per note is slow in proportion to the vault; a
training set with too few examples or one dominant label trains a model that answers the majority class.
None of these needs a run to be seen, so diagnosis reports them beside the run signatures.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# awk '/^## [^K]/{exit} {print}' — a negated class standing in for "the next section".
SECTION_NEGATION = re.compile(
    r"awk\s+'/\^(?P<marks>#{1,6})\s?(?P<sp> ?)\[\^(?P<letter>[A-Za-z])\]/\s*\{\s*exit;?\s*\}\s*(?:\{\s*print;?\s*\}|1)?\s*'"
)
# name=$(sed -n 's/^field: *//p' "$note")  or  name=$(sed -n '/^field:/p' "$note")
SED_FIELD = re.compile(
    r"^(?P<indent>\s*)(?P<var>[A-Za-z_]\w*)=\$\(sed -n '(?:s/\^(?P<f1>[\w-]+): ?\*?//p|/\^(?P<f2>[\w-]+):/p)' "
    r"\"\$(?P<loopvar>\{?[A-Za-z_]\w*\}?)\"\)\s*$"
)
FOR_LOOP = re.compile(r"^\s*for\s+(?P<var>[A-Za-z_]\w*)\s+in\b.*$")
HEAD_N = re.compile(r"\bhead\s+(?:-n\s*)?-?(?P<n>\d+)\b(?P<rest>[^|;&\n]*)")


@dataclass(frozen=True)
class SectionLeak:
    line: int
    text: str  # the awk program as written
    letter: str
    marks: str


@dataclass(frozen=True)
class SedLoop:
    loop_var: str
    lines: tuple[int, ...]  # 1-based lines of the per-item sed assignments
    fields: tuple[tuple[str, str, bool], ...]  # (shell variable, front-matter field, value only)


def section_leaks(script: str) -> list[SectionLeak]:
    out = []
    for i, line in enumerate(script.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        for m in SECTION_NEGATION.finditer(line):
            out.append(SectionLeak(i, m.group(0), m.group("letter"), m.group("marks")))
    return out


def sed_loops(script: str) -> list[SedLoop]:
    """Runs of two or more consecutive `var=$(sed ... "$item")` lines inside a for loop over items."""
    lines = script.splitlines()
    loops: list[SedLoop] = []
    loop_var: str | None = None
    run: list[tuple[int, re.Match[str]]] = []

    def flush() -> None:
        if len(run) >= 2:
            fields = tuple((m.group("var"), m.group("f1") or m.group("f2"), m.group("f1") is not None) for _, m in run)
            loops.append(SedLoop(run[0][1].group("loopvar").strip("{}"), tuple(i for i, _ in run), fields))
        run.clear()

    for i, line in enumerate(lines, start=1):
        fm = FOR_LOOP.match(line)
        if fm:
            flush()
            loop_var = fm.group("var")
            continue
        m = SED_FIELD.match(line)
        if m and loop_var is not None and m.group("loopvar").strip("{}") == loop_var:
            if run and run[-1][0] != i - 1:
                flush()
            run.append((i, m))
        else:
            flush()
    flush()
    return loops


def head_limits(script: str) -> list[tuple[int, int, str]]:
    """(line, N, file argument or '') of every `head -N` in a script, comments skipped."""
    out = []
    for i, line in enumerate(script.splitlines(), start=1):
        code = line.split("#", 1)[0] if line.lstrip().startswith("#") else line
        for m in HEAD_N.finditer(code):
            arg = m.group("rest").strip().split()
            out.append((i, int(m.group("n")), arg[0].strip(")\"'") if arg else ""))
    return out


# ---- training data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataAudit:
    files: dict[str, int]  # path -> examples
    examples: int
    invalid: tuple[str, ...]  # "path:line: why"
    labels: dict[str, int] = field(default_factory=dict)
    min_examples: int = 0
    max_class_share: float = 1.0
    label_field: str | None = None

    @property
    def too_few(self) -> bool:
        return self.examples < self.min_examples

    @property
    def dominant(self) -> tuple[str, float] | None:
        if not self.labels or not self.examples:
            return None
        label, n = max(self.labels.items(), key=lambda kv: (kv[1], kv[0]))
        return label, n / self.examples

    @property
    def imbalanced(self) -> bool:
        d = self.dominant
        return d is not None and d[1] > self.max_class_share + 1e-9

    def as_dict(self) -> dict[str, Any]:
        d = self.dominant
        return {"files": self.files, "examples": self.examples, "invalid": list(self.invalid[:10]),
                "labels": self.labels, "min_examples": self.min_examples, "max_class_share": self.max_class_share,
                "label_field": self.label_field, "dominant": list(d) if d else None,
                "too_few": self.too_few, "imbalanced": self.imbalanced}


def parse_jsonl(text: str) -> list[tuple[int, dict[str, Any] | None]]:
    """(1-based line, object or None when invalid) for every non-blank line."""
    out: list[tuple[int, dict[str, Any] | None]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            out.append((i, None))
            continue
        out.append((i, obj if isinstance(obj, dict) else None))
    return out


def audit_data(texts: dict[str, str], min_examples: int, max_class_share: float,
               label_field: str | None) -> DataAudit:
    files: dict[str, int] = {}
    invalid: list[str] = []
    labels: Counter[str] = Counter()
    for path, text in sorted(texts.items()):
        rows = parse_jsonl(text)
        files[path] = sum(1 for _, o in rows if o is not None)
        invalid += [f"{path}:{i}: not a JSON object" for i, o in rows if o is None]
        if label_field:
            labels.update(str(o.get(label_field)) for _, o in rows if o is not None and label_field in o)
    return DataAudit(files, sum(files.values()), tuple(invalid), dict(labels), min_examples, max_class_share,
                     label_field)


__all__ = ["DataAudit", "SectionLeak", "SedLoop", "audit_data", "head_limits", "parse_jsonl", "section_leaks",
           "sed_loops"]

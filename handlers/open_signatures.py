"""Everything open on a task, whatever its score, as `SignatureNote`s: signatures of its runs since its last kept
change, what its files show before any run (script lints, the training-data audit, its collector measured in a
shadow) and the open data-flow findings naming it. What `status --signatures`, `signatures`, the ranking, the
loop and the evidence pack show and work on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from domain.config import TaskConfig, VaultConfig
from domain.signatures import SEVERITY_RANK, Signature
from handlers.collector_trace import collector_evidence
from handlers.diagnose_deps import DiagnoseDeps, Finding
from handlers.diagnose_static import DataAudit, audit_data, section_leaks, sed_loops
from handlers.evidence import SignatureNote
from handlers.since_change import carried_pool_signatures, current_findings, current_history
from handlers.tasks import task_signatures
from projections import globs

RUNS = 8  # runs the signatures look at
DATA_CAP = 256_000  # training data texts carried in full up to this many characters in all
NOTICES = frozenset({"collector_unmeasured"})  # shown, but nothing a delta could fix


def file_signatures(task: str, deps: DiagnoseDeps, *, measured: bool = True) -> list[SignatureNote]:
    """What the task's files show before any run: script lints, the training-data audit, and (`measured`) its
    collector run traced in a shadow (`handlers.collector_trace`: starving limiter, section leak, fork loop,
    context overflow, with the measurements)."""
    tc = deps.config.task(task)
    notes: list[SignatureNote] = []
    if measured and tc.collect:
        try:
            found, facts = collector_evidence(task, deps)
        except Exception as e:  # a measurement that cannot run is said, not fatal to the listing
            found, facts = None, {"error": f"not measured: {' '.join(str(e).split())}"}
        notes = list(found) if found is not None else [  # the lints stand in only where nothing was measured
            SignatureNote("collector_unmeasured", "low", "script", f"collector {str(facts.get('error'))[:160]}",
                          "trace"), *lint_notes(tc, deps.read_vault_text)]
    elif tc.collect:
        notes = lint_notes(tc, deps.read_vault_text)  # not asked to measure: the quick reading of the script
    audit, _ = data_audit(deps.config, tc)
    return notes + (audit_notes(audit) if audit is not None else [])


def open_signatures(task: str, deps: DiagnoseDeps, *, measured: bool = True,
                    findings: Sequence[Finding] | None = None) -> list[SignatureNote]:
    """Everything open on a task, whatever its score: signatures of its runs since its last kept change (older
    runs ran on files that are gone), what its files show (`file_signatures`), and data-flow findings naming it.
    What `status --signatures`, `signatures`, the ranking and the loop show and work on."""
    notes = [note(s, "runs") for s in run_signatures(task, deps)]
    notes += file_signatures(task, deps, measured=measured)
    notes += [finding_note(f) for f in task_findings(deps, task, findings)]
    unique: dict[str, SignatureNote] = {}
    for n in notes:
        unique.setdefault(n.name, n)
    return sorted(unique.values(), key=lambda s: -SEVERITY_RANK.get(s.severity, 1))


def run_signatures(task: str, deps: DiagnoseDeps) -> list[Signature]:
    """Signatures of the runs since the task's last kept change, and what older runs said about pool members that
    have not run since (`handlers.since_change.carried_pool_signatures`)."""
    history = current_history(deps, task)
    found = task_signatures(task, config=deps.config, history=history, read_text=deps.read_vault_text,
                            reads=globs.overlaps, window=RUNS)
    tc = deps.config.task(task)
    if history is deps.history or not tc.candidates:
        return found
    old = task_signatures(task, config=deps.config, history=deps.history, read_text=deps.read_vault_text,
                          reads=globs.overlaps, window=RUNS)
    return [*found, *carried_pool_signatures(found, old, tc.candidates, tc.model, history.views(task, RUNS))]


def note(s: Signature, source: str) -> SignatureNote:
    return SignatureNote(s.name, s.severity, s.lever, s.summary, source, plain(s.evidence))


def plain(value: Any) -> Any:
    """A JSON-ready copy: mappings with string keys, sequences as lists, anything else as its text."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def script_path(command: str | None) -> str | None:
    return command.split()[0] if command else None


def lint_notes(tc: TaskConfig, read: Callable[[str | None], str]) -> list[SignatureNote]:
    """The quick reading of the collector script, where it is not measured."""
    script = read(script_path(tc.collect)) if tc.collect else ""
    notes = []
    for leak in section_leaks(script):
        notes.append(SignatureNote(
            "section_regex_leak", "high", "script",
            f"collector line {leak.line} stops at '{leak.marks} [^{leak.letter}]': every '{leak.marks} {leak.letter}…' "
            "section after the wanted one leaks into the context", "lint",
            {"line": leak.line, "awk": leak.text, "letter": leak.letter, "script": script_path(tc.collect)}))
    for loop in sed_loops(script):
        notes.append(SignatureNote(
            "subprocess_loop", "medium", "script",
            f"{len(loop.fields)} sed forks per item of the loop over ${loop.loop_var} "
            f"(lines {loop.lines[0]}–{loop.lines[-1]})",
            "lint", {"lines": list(loop.lines), "fields": [f[1] for f in loop.fields],
                     "script": script_path(tc.collect)}))
    return notes


def data_audit(cfg: VaultConfig, tc: TaskConfig) -> tuple[DataAudit | None, dict[str, str]]:
    """The training-data audit, and the data texts when they fit in DATA_CAP ({} otherwise); (None, {}) for a
    task without training data."""
    if tc.training is None:
        return None, {}
    texts: dict[str, str] = {}
    total = 0
    for g in globs.to_pathlib(tc.training.data):
        for p in sorted(cfg.root.glob(g)):
            if p.is_file():
                rel = p.relative_to(cfg.root).as_posix()
                texts[rel] = p.read_text(encoding="utf-8", errors="replace")
                total += len(texts[rel])
    t = tc.training
    audit = audit_data(texts, t.min_examples, t.max_class_share, t.label_field)
    return audit, (texts if total <= DATA_CAP else {})


def audit_notes(audit: DataAudit) -> list[SignatureNote]:
    notes = []
    if audit.too_few:
        notes.append(SignatureNote("training_data_too_few", "medium", "data",
                                   f"{audit.examples} training examples < min_examples {audit.min_examples}",
                                   "audit", {"examples": audit.examples, "min_examples": audit.min_examples,
                                             "files": audit.files}))
    if audit.imbalanced and audit.dominant:
        label, share = audit.dominant
        notes.append(SignatureNote("training_data_imbalanced", "medium", "data",
                                   f"label {label} is {share:.2f} of the examples > max_class_share "
                                   f"{audit.max_class_share}", "audit",
                                   {"label": label, "share": round(share, 3), "labels": audit.labels,
                                    "max_class_share": audit.max_class_share}))
    return notes


def all_findings(deps: DiagnoseDeps) -> list[Finding]:
    """The open data-flow findings (`deps.findings`); [] without them or when unreadable."""
    if deps.findings is None:
        return []
    try:
        return list(deps.findings())
    except Exception:  # findings are a bonus: a broken read model must not stop a diagnosis
        return []


def task_findings(deps: DiagnoseDeps, task: str, found: Sequence[Finding] | None = None) -> list[Finding]:
    """The open data-flow findings naming the task (`found`: all of them, already read), less those read off runs
    that predate a kept change to one of their tasks (`handlers.since_change.current_findings`)."""
    found = all_findings(deps) if found is None else found
    return current_findings(deps, [f for f in found if task in f.tasks
                                   and f.kind not in ("unread_output", "orphan_input")])


def finding_note(f: Finding) -> SignatureNote:
    return SignatureNote(f.kind, "high" if f.severity == "error" else "medium", finding_lever(f.kind),
                         f"data-flow finding on {f.subject}", "finding", plain(f.evidence))


def finding_lever(kind: str) -> str:
    return {"too_small_for_consumer": "prompt", "outputs_never_written": "postprocess",
            "blocks_without_parser": "postprocess"}.get(kind, "prompt")


__all__ = ["DATA_CAP", "NOTICES", "RUNS", "all_findings", "audit_notes", "data_audit",
           "file_signatures", "finding_lever", "finding_note", "lint_notes", "note", "open_signatures", "plain",
           "run_signatures", "script_path", "task_findings"]

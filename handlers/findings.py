"""Data-flow checks → Finding events, and the policy that turns a mismatch into an improvement cycle.

`refresh_findings` is idempotent: a finding that is already open is not detected again, and one that stops
holding is resolved once (the store's `detect_finding` / `resolve_finding` are no-ops otherwise), so two
processes refreshing at once cannot double-count. Only the data-flow kinds are ever resolved here: other
Finding kinds (a training-data audit, say) belong to whoever detects them.

The `tasks` a finding hands to `start_cycle` name both ends, but `handlers.cycle.run_cycle` takes no list of
evidence tasks (the daemon keeps it in its job and the trigger text only). Both ends still reach the proposer:
`handlers.diagnose.diagnose(producer)` reads the open data-flow findings naming the producer (so the mismatch
is a signature whose evidence names the consumer, and `Evidence.tasks` is (producer, consumer)) and always
packs the producer's downstream consumers with their `requires`/`expect` beside the producer's observed output
sizes, and vault.yml, where those contracts live. The rules proposer's `grow_for_consumer` delta carries
tasks=(producer, consumer), so its apply records a Changed on both and names that cycle as the resolver.
The consumer's own prompt and scripts are not in the pack. tests/test_findings_loop.py pins all of this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from projections.dataflow import KINDS, PAIR_KINDS, DataflowGraph, FindingSpec, check, diff_findings

RESOLVED_REASON = "no longer holds"
# Single-task findings worth a cycle: the task's own files can fix them (a prompt, a postprocessor).
TASK_CYCLE_KINDS = ("outputs_never_written", "blocks_without_parser")

StartCycle = Callable[[str, str, list[str]], Any]  # (task, trigger, tasks whose evidence the cycle needs)


class FindingStore(Protocol):
    def detect_finding(self, kind: str, subject: str, tasks: list[str], evidence: dict[str, Any],
                       severity: str = "warning") -> Any: ...

    def resolve_finding(self, kind: str, subject: str, by_cycle: str | None, reason: str) -> Any: ...


def refresh_findings(
    graph: DataflowGraph,
    store: FindingStore,
    open_keys: Iterable[tuple[str, str]],
    exists: Callable[[str], bool] | None,
    *,
    last_kept: Callable[[Sequence[str]], str | None] | None = None,
    **check_options: Any,
) -> tuple[list[FindingSpec], list[tuple[str, str]]]:
    """Run the checks; Detected (or Redetected) for new keys, Resolved for open keys that stopped holding.

    open_keys: the open findings on record (`projections.findings.open_keys`); keys of other kinds are ignored.
    last_kept(tasks): the cycle that last changed one of those tasks, named as the resolver when known.
    Returns (findings detected now, keys resolved now).
    """
    current = check(graph, exists=exists, **check_options)
    previous = {k for k in open_keys if k[0] in KINDS}
    new, gone = diff_findings(previous, current)
    for f in new:
        store.detect_finding(f.kind, f.subject, list(f.tasks), _plain(f.evidence), f.severity)
    for kind, subject in gone:
        tasks = _tasks_of(kind, subject)
        by = last_kept(tasks) if last_kept and tasks else None
        store.resolve_finding(kind, subject, by, RESOLVED_REASON)
    return new, gone


def _tasks_of(kind: str, subject: str) -> list[str]:
    """The tasks a finding's subject names (pairs are `producer->consumer`; cycles `a->b->a`)."""
    if kind in PAIR_KINDS or kind == "dependency_cycle":
        return list(dict.fromkeys(subject.split("->")))
    if kind in ("orphan_input", "unread_output"):
        return []  # the subject is a glob
    return [subject]


def _plain(value: Any) -> Any:
    """Evidence as JSON values only (tuples to lists), so the stored event round-trips unchanged."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def on_finding_detected(finding: FindingSpec, start_cycle: StartCycle) -> Any:
    """Ask for a cycle when a finding is something a vault edit can fix; returns what start_cycle returned.

    A producer/consumer mismatch starts a cycle on the producer whose evidence names BOTH tasks, so the delta
    may change the producer, the consumer or both (the seed's fix changed both). A dead task or a task whose
    blocks nobody parses starts a cycle on that task. Informational findings, orphan inputs (a missing file,
    not a bad prompt) and dependency cycles (a design decision) start nothing.
    """
    trigger = f"finding:{finding.kind}:{finding.subject}"
    if finding.kind in PAIR_KINDS:
        producer, consumer = finding.tasks[0], finding.tasks[1]
        return start_cycle(producer, trigger, [producer, consumer])
    if finding.kind in TASK_CYCLE_KINDS and finding.tasks:
        return start_cycle(finding.tasks[0], trigger, [finding.tasks[0]])
    return None

"""The four aggregates whose events are the whole history: Task, Cycle, Experiment, Finding.

Events carry hashes, never large text: outputs and diffs live in the blob store keyed by sha256.
State kept on an aggregate is only what its own decisions need (dedup of ingested runs, the phase of a
cycle); everything a person asks about is a projection.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import ids


class Task(Aggregate):
    """One scheduled job of the vault."""

    @staticmethod
    def create_id(name: str) -> UUID:
        return ids.task_id(name)

    @event("Registered")
    def __init__(self, name: str, config_hash: str) -> None:
        self.name = name
        self.config_hash = config_hash
        # Keys of facts that came from outside (run ids, "score:<run>:<judge>") so a re-ingest is a no-op.
        # A dict, not a set: snapshots are JSON and JSON has no sets.
        self.ingested: dict[str, int] = {}
        self.runs = 0

    @event("Reconfigured")
    def reconfigure(self, config_hash: str) -> None:
        self.config_hash = config_hash

    @event("Changed")
    def change(
        self,
        path: str,
        before_hash: str | None,
        after_hash: str | None,
        diff_hash: str | None,
        by: str,
        cycle_id: str | None = None,
    ) -> None:
        """A vault file this task reads changed; `by` is human | cycle | revert."""

    class Ran(Aggregate.Event):
        """One execution. v2 added `thinking_tokens`, `source`, `context_hash` and `blocks`.

        Schema evolution: stored events keep the shape they were written with; the mapper reads
        `class_version` from the stored state (absent means 1) and calls `upcast_vN_vN+1` in turn until it
        reaches this class's `class_version`. To add v3: add the field here, set `class_version = 3`, and add
        `upcast_v2_v3(state)` that fills the new field for old events (never rewrite stored rows); keep
        `upcast_v1_v2` as it is, so v1 → v2 → v3 chains.
        """

        class_version = 2

        run_id: str
        started: str
        duration_s: float
        status: str
        model: str
        options: dict[str, Any]
        prompt_tokens: int
        output_tokens: int
        thinking_tokens: int
        done_reason: str
        output_hash: str
        output_words: int
        read_hashes: dict[str, str]
        artifacts: dict[str, str]
        durations: dict[str, float]
        source: str
        error: str | None
        cycle_id: str | None
        context_hash: str | None
        blocks: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["thinking_tokens"] = 0
            state["source"] = "daemon"
            state["context_hash"] = None
            state["blocks"] = 0

        def apply(self, aggregate: Any) -> None:
            aggregate.runs += 1
            if self.source == "log":
                aggregate.ingested[self.run_id] = 1

    def record_run(self, **fields: Any) -> None:
        self.trigger_event(self.Ran, **fields)

    @event("Scored")
    def scored(
        self,
        run_id: str,
        score: float,
        judge: str,
        reasons: list[str],
        checks: list[dict[str, Any]],
        source: str = "judge",
    ) -> None:
        if source == "log":
            self.ingested[score_key(run_id, judge)] = 1

    def has_ingested(self, key: str) -> bool:
        return key in self.ingested


def score_key(run_id: str, judge: str) -> str:
    """The dedup key of an ingested score: one score per run and judge."""
    return f"score:{run_id}:{judge}"


class Cycle(Aggregate):
    """One improvement step: diagnose → propose → verify → decide → apply."""

    @staticmethod
    def create_id(key: str) -> UUID:
        return ids.cycle_id(key)

    @event("Started")
    def __init__(self, key: str, task: str, mode: str, target: float | None, trigger: str) -> None:
        self.key = key
        self.task = task
        self.mode = mode
        self.phase = "started"
        self.delta_hash: str | None = None
        self.delta_blob: str | None = None

    @event("Diagnosed")
    def diagnosed(
        self, signatures: list[str], evidence_hash: str, tasks: list[str], cost: dict[str, float] | None = None,
    ) -> None:
        self.phase = "diagnosed"

    @event("Proposed")
    def proposed(
        self, delta_hash: str, proposer: str, lever: str, rationale: str, cost: dict[str, float],
        delta_blob: str | None = None, description: str = "",
    ) -> None:
        """`delta_hash` is the delta's content hash (dedup); `delta_blob` the blob holding the whole delta."""
        self.phase = "proposed"
        self.delta_hash = delta_hash
        self.delta_blob = delta_blob

    @event("Rejected")
    def rejected(self, proposer: str, reason: str, answer_hash: str | None, cost: dict[str, float]) -> None:
        """A proposer answered with something unusable (malformed, out of scope, a no-op)."""

    @event("Verified")
    def verified(
        self,
        baseline: list[float],
        candidate: list[float],
        effect: float,
        interval: list[float],
        decision: str,
        rule: dict[str, Any],
        guardrails: list[str],
        cost: dict[str, float],
        detail: dict[str, Any] | None = None,
    ) -> None:
        """`detail`: per-input scores, reason, noise floor, what was verified — enough to replay the decision."""
        self.phase = "verified"

    @event("AwaitingApproval")
    def await_approval(self, paths: list[str]) -> None:
        self.phase = "awaiting_approval"

    @event("Kept")
    def kept(self, applied_hashes: dict[str, str], commit: str | None) -> None:
        self.phase = "kept"

    @event("Discarded")
    def discarded(self, reason: str) -> None:
        self.phase = "discarded"

    @event("Failed")
    def failed(self, error: str) -> None:
        self.phase = "failed"

    @property
    def is_open(self) -> bool:
        return self.phase not in ("kept", "discarded", "failed")


class Experiment(Aggregate):
    """One fine-tuning run on a task's training data."""

    @staticmethod
    def create_id(key: str) -> UUID:
        return ids.experiment_id(key)

    @event("Queued")
    def __init__(
        self, key: str, task: str, sweep: str, base_model: str, dataset_hash: str, params: dict[str, Any]
    ) -> None:
        self.key = key
        self.task = task
        self.phase = "queued"

    @event("Started")
    def started(self, device: str) -> None:
        self.phase = "running"

    @event("Finished")
    def finished(self, metric: float, losses: list[float], duration_s: float, artifact: str | None) -> None:
        self.phase = "finished"

    @event("Kept")
    def kept(self, reason: str) -> None:
        self.phase = "kept"

    @event("Discarded")
    def discarded(self, reason: str) -> None:
        self.phase = "discarded"

    @event("Failed")
    def failed(self, error: str) -> None:
        self.phase = "failed"


class Finding(Aggregate):
    """Something detected that is not a score: an interface mismatch, a dead task, a data problem.

    One aggregate per (kind, subject); it can be detected again after it resolved.
    """

    @staticmethod
    def create_id(kind: str, subject: str) -> UUID:
        return ids.finding_id(kind, subject)

    @event("Detected")
    def __init__(
        self, kind: str, subject: str, tasks: list[str], evidence: dict[str, Any], severity: str = "warning"
    ) -> None:
        self.kind = kind
        self.subject = subject
        self.open = True

    @event("Redetected")
    def redetect(self, tasks: list[str], evidence: dict[str, Any]) -> None:
        self.open = True

    @event("Resolved")
    def resolve(self, by_cycle: str | None, reason: str) -> None:
        self.open = False

"""The aggregates whose events are the whole history: Task, Cycle, Experiment, Finding, and for audits
Vault (vault.yml as loaded), Judge (anchor rescoring) and Audit.

Events carry hashes, never large text: outputs and diffs live in the blob store keyed by sha256.
State kept on an aggregate is only what its own decisions need (the phase of a cycle, an experiment, an audit);
everything a person asks about is a projection, and ingest dedup is a unique key in the store.

Phases are rules, not labels: a command method refuses (`IllegalTransition`) when the aggregate's phase does not
allow it. The store re-applies a command to freshly loaded state when another writer appended first, so two
writers racing to end a cycle record exactly one ending; the loser gets the refusal. Replaying stored events
never checks (history is what happened).
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import ids


class IllegalTransition(ValueError):
    """A command the aggregate's current phase does not allow; `str()` is one line naming both."""

    def __init__(self, what: str, command: str, phase: str, allowed: tuple[str, ...]) -> None:
        self.what, self.command, self.phase, self.allowed = what, command, phase, allowed
        needs = f" (it needs {' or '.join(allowed)})" if len(allowed) <= 3 else ""
        super().__init__(f"{what} is {phase}: cannot record {command}{needs}")


def _require(what: str, command: str, phase: str, allowed: tuple[str, ...]) -> None:
    if phase not in allowed:
        raise IllegalTransition(what, command, phase, allowed)


class Task(Aggregate):
    """One scheduled job of the vault.

    v2 of its snapshots dropped `ingested` (the ingest dedup map, now the store's `autovault_ingested` key).
    """

    class_version = 2  # of the aggregate's snapshot state

    @staticmethod
    def create_id(name: str) -> UUID:
        return ids.task_id(name)

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.pop("ingested", None)

    @event("Registered")
    def __init__(self, name: str, config_hash: str) -> None:
        self.name = name
        self.config_hash = config_hash
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
        """One execution. v2 added `thinking_tokens`, `source`, `context_hash` and `blocks`; v3 fills
        `context_hash` and `blocks` for v2 events stored before those two joined v2 (they have the others).

        Schema evolution: stored events keep the shape they were written with; the mapper reads
        `class_version` from the stored state (absent means 1) and calls `upcast_vN_vN+1` in turn until it
        reaches this class's `class_version`. To add v3: add the field here, set `class_version = 3`, and add
        `upcast_v2_v3(state)` that fills the new field for old events (never rewrite stored rows); keep
        `upcast_v1_v2` as it is, so v1 → v2 → v3 chains.
        """

        class_version = 3

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

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state.setdefault("context_hash", None)
            state.setdefault("blocks", 0)

        def apply(self, aggregate: Any) -> None:
            aggregate.runs += 1

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
        """`source` log: ingested from a heartbeat log (deduplicated by the store's ingest key)."""


RUN_CONTENT = ("started", "model", "options", "duration_s", "prompt_tokens", "output_tokens", "thinking_tokens",
               "done_reason", "status", "output_hash", "artifacts", "context_hash")


def run_fingerprint(fields: dict[str, Any]) -> str:
    """What an ingested run said, in 16 hex digits: a second line with its run_id but other content is a conflict."""
    return ids.sha256_text(json.dumps([fields.get(k) for k in RUN_CONTENT], sort_keys=True, default=str))[:16]


def score_fingerprint(score: float, reasons: list[str]) -> str:
    return ids.sha256_text(json.dumps([float(score), list(reasons)]))[:16]


def score_key(run_id: str, judge: str) -> str:
    """The dedup key of an ingested score: one score per run and judge."""
    return f"score:{run_id}:{judge}"


OPEN_CYCLE = ("started", "diagnosed", "proposed", "awaiting_approval", "approved", "verified")
FINAL_CYCLE = ("kept", "discarded", "failed")


class Cycle(Aggregate):
    """One improvement step: diagnose → propose → verify → decide → apply.

    Phases: started → diagnosed → proposed → [awaiting_approval → approved] → verified → kept | discarded, and
    failed or discarded from any open phase. After a keep verdict a new Proposed (the delta rebased on a human
    edit) or AwaitingApproval (cycles recorded before approval came first) may follow. Kept needs a keep verdict
    on the delta proposed last; kept, discarded and failed are final.

    v2 of its snapshot state added `verdict` (None for older snapshots: such a cycle is verified again rather than
    kept on a verdict its state no longer shows).
    """

    class_version = 2  # of the aggregate's snapshot state

    @staticmethod
    def create_id(key: str) -> UUID:
        return ids.cycle_id(key)

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.setdefault("verdict", None)

    @event("Started")
    def __init__(self, key: str, task: str, mode: str, target: float | None, trigger: str) -> None:
        self.key = key
        self.task = task
        self.mode = mode
        self.phase = "started"
        self.delta_hash: str | None = None
        self.delta_blob: str | None = None
        self.verdict: str | None = None  # the decision of the last Verified since the last Proposed

    def _allow(self, command: str, *phases: str) -> None:
        _require(f"cycle {self.key}", command, self.phase, phases)

    @property
    def kept_verdict(self) -> bool:
        """Whether the delta proposed last was verified as a keep and nothing ended the cycle since."""
        return self.phase in ("verified", "awaiting_approval") and self.verdict == "keep"

    class Diagnosed(Aggregate.Event):
        """v2 added `cost`."""

        class_version = 2

        signatures: list[str]
        evidence_hash: str
        tasks: list[str]
        cost: dict[str, float] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["cost"] = None

    def diagnosed(
        self, signatures: list[str], evidence_hash: str, tasks: list[str], cost: dict[str, float] | None = None,
    ) -> None:
        self._allow("Diagnosed", "started")
        self._diagnosed(signatures, evidence_hash, tasks, cost)

    @event(Diagnosed)
    def _diagnosed(self, signatures: list[str], evidence_hash: str, tasks: list[str],
                   cost: dict[str, float] | None) -> None:
        self.phase = "diagnosed"

    class Proposed(Aggregate.Event):
        """v2 added `delta_blob` and `description`; v3 `baseline`: the hash of the task files the delta was made
        against (`handlers.baseline`), so dedup is per delta and baseline."""

        class_version = 3

        delta_hash: str
        proposer: str
        lever: str
        rationale: str
        cost: dict[str, float]
        delta_blob: str | None
        description: str
        baseline: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["delta_blob"] = None
            state["description"] = ""

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["baseline"] = None

    def proposed(
        self, delta_hash: str, proposer: str, lever: str, rationale: str, cost: dict[str, float],
        delta_blob: str | None = None, description: str = "", baseline: str | None = None,
    ) -> None:
        """`delta_hash` is the delta's content hash (dedup); `delta_blob` the blob holding the whole delta."""
        if not (self.phase == "verified" and self.verdict == "keep"):  # after a keep verdict: the delta rebased
            self._allow("Proposed", "started", "diagnosed")
        self._proposed(delta_hash, proposer, lever, rationale, cost, delta_blob, description, baseline)

    @event(Proposed)
    def _proposed(self, delta_hash: str, proposer: str, lever: str, rationale: str, cost: dict[str, float],
                  delta_blob: str | None, description: str, baseline: str | None) -> None:
        self.phase = "proposed"
        self.delta_hash = delta_hash
        self.delta_blob = delta_blob
        self.verdict = None

    def rejected(self, proposer: str, reason: str, answer_hash: str | None, cost: dict[str, float]) -> None:
        """A proposer answered with something unusable (malformed, out of scope, a no-op)."""
        self._allow("Rejected", "started", "diagnosed")
        self._rejected(proposer, reason, answer_hash, cost)

    @event("Rejected")
    def _rejected(self, proposer: str, reason: str, answer_hash: str | None, cost: dict[str, float]) -> None:
        pass

    class Verified(Aggregate.Event):
        """v2 added `detail`."""

        class_version = 2

        baseline: list[float]
        candidate: list[float]
        effect: float
        interval: list[float]
        decision: str
        rule: dict[str, Any]
        guardrails: list[str]
        cost: dict[str, float]
        detail: dict[str, Any] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["detail"] = None

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
        self._allow("Verified", "proposed", "approved")
        self._verified(baseline, candidate, effect, interval, decision, rule, guardrails, cost, detail)

    @event(Verified)
    def _verified(self, baseline: list[float], candidate: list[float], effect: float, interval: list[float],
                  decision: str, rule: dict[str, Any], guardrails: list[str], cost: dict[str, float],
                  detail: dict[str, Any] | None) -> None:
        self.phase = "verified"
        self.verdict = decision

    def await_approval(self, paths: list[str]) -> None:
        if not (self.phase == "verified" and self.verdict == "keep"):  # after a keep: cycles from before approval came first
            self._allow("AwaitingApproval", "proposed")
        self._await_approval(paths)

    @event("AwaitingApproval")
    def _await_approval(self, paths: list[str]) -> None:
        self.phase = "awaiting_approval"

    def approved(self, by: str) -> None:
        """A person approved the delta's code; only now may it run (verified, then kept or discarded)."""
        self._allow("Approved", "awaiting_approval")
        self._approved(by)

    @event("Approved")
    def _approved(self, by: str) -> None:
        self.phase = "approved"

    def kept(self, applied_hashes: dict[str, str], commit: str | None) -> None:
        if not self.kept_verdict:
            phase = f"{self.phase} without a keep verdict" if self.phase in OPEN_CYCLE else self.phase
            raise IllegalTransition(f"cycle {self.key}", "Kept", phase, ("verified as a keep",))
        self._kept(applied_hashes, commit)

    @event("Kept")
    def _kept(self, applied_hashes: dict[str, str], commit: str | None) -> None:
        self.phase = "kept"

    def discarded(self, reason: str) -> None:
        self._allow("Discarded", *OPEN_CYCLE)
        self._discarded(reason)

    @event("Discarded")
    def _discarded(self, reason: str) -> None:
        self.phase = "discarded"

    def failed(self, error: str) -> None:
        self._allow("Failed", *OPEN_CYCLE)
        self._failed(error)

    @event("Failed")
    def _failed(self, error: str) -> None:
        self.phase = "failed"

    @property
    def is_open(self) -> bool:
        return self.phase not in FINAL_CYCLE


class Experiment(Aggregate):
    """One fine-tuning run on a task's training data: Queued → Started → Stepped × n (Checkpointed) → Finished
    → Verified → Kept | Discarded, or Pruned or Failed while queued or running. A crash leaves it `running` with
    its last checkpoint on record; `Started(resumed_from=step)` continues it from there (`handlers.experiments`).
    Each command checks the phase (`IllegalTransition`).

    v2 of Queued, Started and Finished added fields (seed, trigger, data files; lease, resumed_from;
    metrics, artifact hashes); their upcasters fill them for events stored by v1.
    """

    @staticmethod
    def create_id(key: str) -> UUID:
        return ids.experiment_id(key)

    class Queued(Aggregate.Created):
        class_version = 2

        key: str
        task: str
        sweep: str
        base_model: str
        dataset_hash: str
        params: dict[str, Any]
        seed: int
        trigger: str
        data_files: dict[str, str]  # vault-relative path -> sha256 of the training data read

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["seed"] = 0
            state["trigger"] = "cli"
            state["data_files"] = {}

    @event(Queued)
    def __init__(self, key: str, task: str, sweep: str, base_model: str, dataset_hash: str,
                 params: dict[str, Any], seed: int = 0, trigger: str = "cli",
                 data_files: dict[str, str] | None = None) -> None:
        self.key = key
        self.task = task
        self.sweep = sweep
        self.phase = "queued"
        self.step = 0  # the last checkpointed step: where a resumed run starts
        self.checkpoint: str | None = None

    class Started(Aggregate.Event):
        class_version = 2

        device: str
        lease: str  # who holds the device (host:pid:token), so a stale lease can be recognised
        resumed_from: int  # 0: a fresh start; N: continued from the checkpoint at step N

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["lease"] = ""
            state["resumed_from"] = 0

        def apply(self, aggregate: Any) -> None:
            aggregate.phase = "running"

    def _allow(self, command: str, *phases: str) -> None:
        _require(f"experiment {self.key}", command, self.phase, phases)

    def started(self, device: str, lease: str = "", resumed_from: int = 0) -> None:
        self._allow("Started", "queued", "running")  # running: resumed after a crash
        self.trigger_event(self.Started, device=device, lease=lease, resumed_from=resumed_from)

    def stepped(self, step: int, loss: float, lr: float, tokens: int, seconds: float) -> None:
        """A summary of the steps since the previous one: mean training loss at `step`, tokens seen, wall time."""
        self._allow("Stepped", "running")
        self._stepped(step, loss, lr, tokens, seconds)

    @event("Stepped")
    def _stepped(self, step: int, loss: float, lr: float, tokens: int, seconds: float) -> None:
        pass

    def checkpointed(self, step: int, sha256: str) -> None:
        self._allow("Checkpointed", "running")
        self._checkpointed(step, sha256)

    @event("Checkpointed")
    def _checkpointed(self, step: int, sha256: str) -> None:
        self.step = step
        self.checkpoint = sha256

    class Finished(Aggregate.Event):
        class_version = 2

        metric: float  # held-out loss: the fixed metric experiments are ranked by (lower is better)
        losses: list[float]
        duration_s: float
        artifact: str | None  # sha256 of the GGUF LoRA adapter
        metrics: dict[str, Any]
        artifacts: dict[str, str]  # name -> sha256 (peft adapter, GGUF adapter, Modelfile, loss plot)

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["metrics"] = {}
            state["artifacts"] = {"adapter": state["artifact"]} if state.get("artifact") else {}

        def apply(self, aggregate: Any) -> None:
            aggregate.phase = "finished"

    def finished(self, metric: float, losses: list[float], duration_s: float, artifact: str | None,
                 metrics: dict[str, Any] | None = None, artifacts: dict[str, str] | None = None) -> None:
        self._allow("Finished", "running")
        self.trigger_event(self.Finished, metric=metric, losses=losses, duration_s=duration_s, artifact=artifact,
                           metrics=dict(metrics or {}), artifacts=dict(artifacts or {}))

    def verified(self, cycle: str, decision: str, effect: float | None, reason: str) -> None:
        """The adapter ran the task on paired inputs against the task's model in cycle `cycle`."""
        self._allow("Verified", "finished")
        self._verified(cycle, decision, effect, reason)

    @event("Verified")
    def _verified(self, cycle: str, decision: str, effect: float | None, reason: str) -> None:
        self.phase = "verified"

    def pruned(self, reason: str) -> None:
        """A sweep stopped this trial early: its held-out losses were significantly worse than the best's."""
        self._allow("Pruned", "queued", "running")
        self._pruned(reason)

    @event("Pruned")
    def _pruned(self, reason: str) -> None:
        self.phase = "pruned"

    def kept(self, reason: str) -> None:
        self._allow("Kept", "verified")
        self._kept(reason)

    @event("Kept")
    def _kept(self, reason: str) -> None:
        self.phase = "kept"

    def discarded(self, reason: str) -> None:
        self._allow("Discarded", "verified")
        self._discarded(reason)

    @event("Discarded")
    def _discarded(self, reason: str) -> None:
        self.phase = "discarded"

    def failed(self, error: str) -> None:
        self._allow("Failed", "queued", "running")
        self._failed(error)

    @event("Failed")
    def _failed(self, error: str) -> None:
        self.phase = "failed"

    @property
    def is_open(self) -> bool:
        return self.phase in ("queued", "running")


class Finding(Aggregate):
    """Something detected that is not a score: an interface mismatch, a dead task, a data problem.

    One aggregate per (kind, subject); it can be detected again after it resolved (and only then), resolved
    only while open.
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

    @property
    def phase(self) -> str:
        return "detected" if self.open else "resolved"

    def redetect(self, tasks: list[str], evidence: dict[str, Any]) -> None:
        _require(f"finding {self.kind}:{self.subject}", "Redetected", self.phase, ("resolved",))
        self._redetect(tasks, evidence)

    @event("Redetected")
    def _redetect(self, tasks: list[str], evidence: dict[str, Any]) -> None:
        self.open = True

    def resolve(self, by_cycle: str | None, reason: str) -> None:
        _require(f"finding {self.kind}:{self.subject}", "Resolved", self.phase, ("detected",))
        self._resolve(by_cycle, reason)

    @event("Resolved")
    def _resolve(self, by_cycle: str | None, reason: str) -> None:
        self.open = False


class Vault(Aggregate):
    """vault.yml as autovault loaded it. A changed section is a fact of its own — a config reload, a model or
    backend swap, a judge change — whoever made it and whether or not the daemon was watching.

    `sections` maps a section name (`backends`, `judge`, `research`, `task.<name>`, `judge.<name>` — the identity
    of the judge that scores a task: judge settings, rubric text and contract — …) to the sha256 of its canonical
    text; `text_hash` is the sha256 of vault.yml itself. Every one of those texts is in the blob store, so any
    two versions can be diffed and any past vault.yml rebuilt.
    """

    @staticmethod
    def create_id() -> UUID:
        return ids.vault_id()

    @event("Configured")
    def __init__(self, text_hash: str, sections: dict[str, str]) -> None:
        self.text_hash = text_hash
        self.sections = dict(sections)

    @event("Reconfigured")
    def reconfigure(self, text_hash: str, sections: dict[str, str], changed: list[str]) -> None:
        """`changed`: the sections whose text differs (added and removed ones included)."""
        self.text_hash = text_hash
        self.sections = dict(sections)


class Judge(Aggregate):
    """The fixed anchor set a task's judge changes are measured on, and every rescoring of it.

    A new judge model, rubric or contract moves scores without any output changing; rescoring the same
    recorded outputs under the old and the new judge measures that move, so an audit does not blame the vault.
    """

    @staticmethod
    def create_id(task: str) -> UUID:
        return ids.judge_id(task)

    @event("Anchored")
    def __init__(self, task: str, run_ids: list[str]) -> None:
        self.task = task
        self.run_ids = list(run_ids)
        self.rescored: dict[str, float] = {}  # "<previous key>><key>" -> shift on the anchors

    @event("Rescored")
    def rescored_under(
        self, key: str, previous_key: str, scores: dict[str, float], previous: dict[str, float], shift: float,
        interval: list[float], notes: list[str],
    ) -> None:
        """`scores`/`previous`: anchor run id -> score under the judge `key` / `previous_key`."""
        self.rescored[f"{previous_key}>{key}"] = shift


class Audit(Aggregate):
    """One audit of a task's regression: where its score dropped, every change in that window, the bisect
    steps that named the culprit, and the revert.

    Phases: opened → bisecting → concluded | failed; a kept revert makes it reverted, after which no other
    revert is recorded (a revert that was not kept leaves the phase as it was)."""

    @staticmethod
    def create_id(key: str) -> UUID:
        return ids.audit_id(key)

    @event("Opened")
    def __init__(
        self, key: str, task: str, since: int | None, until: int, test: dict[str, Any], shift: dict[str, Any] | None,
        window: list[int], changes: list[dict[str, Any]], drift: list[dict[str, Any]], verdict: str,
        suspect: int | None,
    ) -> None:
        """`window`: the (exclusive, inclusive) event positions the culprit lies between; `changes` the changes
        there, `suspect` the position of the one named without bisect (None: several, or none)."""
        self.key = key
        self.task = task
        self.phase = "opened"
        self.suspect = suspect
        self.culprit: int | None = None

    def _allow(self, command: str, *phases: str) -> None:
        _require(f"audit {self.key}", command, self.phase, phases)

    def bisected(
        self, step: int, tested: int, good: int, bad: int, verdict: str, effect: float, interval: list[float],
        rule: dict[str, Any], detail: dict[str, Any],
    ) -> None:
        """One step: the vault as of change #`tested` against the state before the window; `verdict` regressed |
        fine; `good`/`bad` the bracket after this step (indices into the window's changes, −1 = before them)."""
        self._allow("Bisected", "opened", "bisecting")
        self._bisected(step, tested, good, bad, verdict, effect, interval, rule, detail)

    @event("Bisected")
    def _bisected(self, step: int, tested: int, good: int, bad: int, verdict: str, effect: float,
                  interval: list[float], rule: dict[str, Any], detail: dict[str, Any]) -> None:
        self.phase = "bisecting"

    def concluded(self, culprit: int | None, verdict: str, reason: str) -> None:
        self._allow("Concluded", "opened", "bisecting")
        self._concluded(culprit, verdict, reason)

    @event("Concluded")
    def _concluded(self, culprit: int | None, verdict: str, reason: str) -> None:
        self.phase = "concluded"
        self.culprit = culprit

    def reverted(self, cycle: str, outcome: str, reason: str) -> None:
        self._allow("Reverted", "opened", "bisecting", "concluded", "failed")
        self._reverted(cycle, outcome, reason)

    @event("Reverted")
    def _reverted(self, cycle: str, outcome: str, reason: str) -> None:
        self.phase = "reverted" if outcome == "kept" else self.phase

    def failed(self, error: str) -> None:
        self._allow("Failed", "opened", "bisecting")
        self._failed(error)

    @event("Failed")
    def _failed(self, error: str) -> None:
        self.phase = "failed"

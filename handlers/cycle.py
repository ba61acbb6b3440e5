"""One improvement cycle: Started → Diagnosed → Proposed (or Rejected) → Verified → Kept | Discarded | Failed —
every step an event with its cost (model calls, tokens, seconds). A delta that adds or changes code that would
run (`handlers.executable`: scripts, command lines, files they name) stops at AwaitingApproval right after
Proposed: none of it runs, not even in verification, until `approve_cycle` records Approved; then it is
verified in sandboxed shadows (`adapters.sandbox`) and kept or discarded like any other.

Interfaces it codes against (the diagnose and proposer modules are written beside this one):
    Diagnose  = Callable[[str], Evidence]          the evidence pack of a task (`handlers.diagnose.diagnose`)
    Proposer  = Callable[[Evidence], list[Delta]]  `rules`, `anthropic`, `ollama`, … tried in vault.yml's order
Evidence is opaque here: its `signatures` (names or objects with `.name`) and `tasks` are read when present,
and the whole of it is stored as a JSON blob whose hash the `Diagnosed` event carries.

A proposal is rejected (a `Rejected` event, never applied) when it is out of scope (escape, not editable,
or it would change how the vault is judged: `handlers.judge_guard`), a no-op, made against files that changed
since, carries an invalid vault.yml, or has a content hash that was already verified in any earlier cycle
and the same baseline (`CycleFacts.verified_in`, `handlers.baseline`: a delta is never verified twice against
what it was made against). The first
acceptable delta is `Proposed`; the whole delta (with the texts it was made against) goes to the blob table.
Any exception ends the cycle as `Failed` with a one-line error — except a refusal of the cycle aggregate
(`IllegalTransition`): another process recorded the cycle's outcome first, so this one records nothing and says
so (outcome `superseded`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from adapters.atomic import HashConflict, sha256_file
from adapters.config_loader import ConfigError
from domain.aggregates import Cycle, IllegalTransition
from domain.delta import Delta, FileEdit, delta_diff
from domain.delta_codec import delta_from_json, delta_json
from handlers.apply import (
    OutOfScope,
    apply_delta,
    approval_paths,
    edit_location,
    live_texts,
    scope_problems,
    split_edits,
    stale_paths,
)
from handlers.baseline import baseline_hash
from handlers.diagnose_deps import DiagnoseDeps
from handlers.ports import EventStore, Git, Outside
from handlers.verify import Verification, candidate_arm, verify
from handlers.verify_arms import Arm
from handlers.verify_data import is_data_delta, verify_data
from handlers.verify_deps import VerifyDeps

Evidence = Any
Proposer = Callable[[Evidence], list[Delta]]
Diagnose = Callable[[str], Evidence]


class CycleFacts(Protocol):
    """What the cycle asks of the history of all cycles (`projections.cycle_facts` answers)."""

    def verified_in(self, delta_hash: str, baseline: str | None) -> str | None:
        """The key of a cycle that verified this delta made against this baseline (None: none did)."""


@dataclass
class CycleDeps:
    store: EventStore
    verify: VerifyDeps
    diagnose: Diagnose
    proposers: Sequence[tuple[str, Proposer]]
    facts: CycleFacts
    outside: Outside  # shadows and config loading for an apply's checks, git for its commit and for rebasing
    reading: Callable[[], DiagnoseDeps]  # what a diagnosis reads now (the loop's open signatures, kept changes known)
    git: bool = True  # commit a kept delta when the vault is in a git repository
    on_written: Callable[[str], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)  # apply and dedup claims, across threads
    claimed: set[str] = field(default_factory=set)  # content hashes being verified by this process now


@dataclass
class CycleResult:
    key: str
    task: str
    outcome: str  # kept | discarded | failed | awaiting_approval | proposed | nothing
    reason: str = ""
    delta: Delta | None = None
    diff: str = ""
    verification: Verification | None = None
    commit: str | None = None
    rejected: list[str] = field(default_factory=list)

    @property
    def kept(self) -> bool:
        return self.outcome == "kept"


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return f"{type(e).__name__}: {text}"[:500]


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _numbers(cost: Any) -> dict[str, float]:
    """The numeric fields of a cost record (a mapping or a dataclass such as JudgeCost); {} for anything else."""
    data = _jsonable(cost)
    if not isinstance(data, dict):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _names(items: Any) -> list[str]:
    return [str(getattr(s, "name", s)) for s in (items or [])]


def load_delta(store: EventStore, key: str) -> tuple[Cycle, Delta, dict[str, str | None]]:
    cycle = store.get_cycle(key)
    if cycle is None:
        raise KeyError(f"no cycle {key!r}; see `autovault ledger` for cycle ids")
    blob = getattr(cycle, "delta_blob", None)
    text = store.blobs.get_text(blob) if blob else None
    if text is None:
        raise KeyError(f"cycle {key!r} has no recorded delta (phase {cycle.phase})")
    delta, before = delta_from_json(text)
    return cycle, delta, before


# ---- the cycle ----------------------------------------------------------------------------------------


def new_key(task: str) -> str:
    return f"{task}-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def run_cycle(deps: CycleDeps, task: str, *, propose_only: bool = False, mode: str = "cycle",
              target: float | None = None, trigger: str = "cli", key: str | None = None) -> CycleResult:
    """One cycle on `task`, recorded from Started to its end; never raises for a failure inside the cycle."""
    key = key or new_key(task)
    deps.store.start_cycle(key, task, mode, target, trigger)
    result = CycleResult(key, task, "failed")
    try:
        evidence = _diagnose(deps, key, task)
        delta, before = _propose(deps, key, task, evidence, result)
        if delta is None:
            reason = "no usable proposal" + (f": {len(result.rejected)} rejected" if result.rejected else "")
            deps.store.update_cycle(key, lambda c: c.discarded(reason=reason))
            result.outcome, result.reason = "nothing", reason
            return result
        result.delta, result.diff = delta, delta_diff(delta, before)
        if propose_only:
            result.outcome, result.reason = "proposed", "stopped after the proposal (--propose-only)"
            return result
        return _verify_and_decide(deps, key, delta, before, result)
    except Exception as e:  # every failure is an event, and the loop goes on
        return _fail(deps, key, result, e)
    finally:
        with deps.lock:
            if result.delta is not None:
                deps.claimed.discard(result.delta.content_hash)


def _fail(deps: CycleDeps, key: str, result: CycleResult, e: BaseException) -> CycleResult:
    if isinstance(e, IllegalTransition):  # another writer moved the cycle on first: its record stands
        result.outcome, result.reason = "superseded", f"{e} — another process recorded it first; nothing recorded here"
        return result
    error = one_line(e)
    deps.store.update_cycle(key, lambda c: c.failed(error=error) if c.is_open else None)
    result.outcome, result.reason = "failed", error
    return result


def _diagnose(deps: CycleDeps, key: str, task: str) -> Evidence:
    t0 = time.perf_counter()
    evidence = deps.diagnose(task)
    blob = deps.store.blobs.put(json.dumps(_jsonable(evidence), sort_keys=True, default=str))
    sigs = _names(getattr(evidence, "signatures", None))
    tasks = [str(t) for t in (getattr(evidence, "tasks", None) or [task])]
    seconds = time.perf_counter() - t0
    cost = {"seconds": round(seconds, 3), **_numbers(getattr(evidence, "cost", None))}
    deps.store.update_cycle(key, lambda c: c.diagnosed(signatures=sigs, evidence_hash=blob, tasks=tasks, cost=cost))
    deps.verify.progress(f"{task}: diagnosed {', '.join(sigs) or 'no signature'} in {seconds:.1f} s")
    return evidence


def _their_rejections(proposer: Proposer) -> list[Any]:
    """Answers a proposer refused itself (LLM proposers keep them in `last_rejections`, per thread)."""
    found = getattr(proposer, "last_rejections", None)
    return list(found) if isinstance(found, list | tuple) else []


def _reject(deps: CycleDeps, key: str, proposer: str, reason: str, answer: str | None,
            cost: dict[str, float]) -> None:
    deps.store.update_cycle(key, lambda c: c.rejected(proposer=proposer, reason=reason, answer_hash=answer,
                                                      cost=cost))


def _propose(deps: CycleDeps, key: str, task: str, evidence: Evidence,
             result: CycleResult) -> tuple[Delta | None, dict[str, str | None]]:
    config = deps.verify.config
    for name, proposer in deps.proposers:
        t0 = time.perf_counter()
        try:
            deltas = list(proposer(evidence))
        except Exception as e:
            reason = f"proposer error: {one_line(e)}"
            _reject(deps, key, name, reason, None, {"seconds": round(time.perf_counter() - t0, 3)})
            result.rejected.append(f"{name}: {reason}")
            continue
        seconds = time.perf_counter() - t0
        for rejection in _their_rejections(proposer):
            who = str(getattr(rejection, "proposer", "") or name)
            reason = f"{getattr(rejection, 'kind', 'rejected')}: {getattr(rejection, 'reason', rejection)}"
            cost = {"seconds": round(seconds, 3), **_numbers(getattr(proposer, "last_cost", None))}
            _reject(deps, key, who, reason, getattr(rejection, "answer_sha256", None), cost)
            result.rejected.append(f"{who}: {reason}")
        for delta in deltas:
            who = delta.proposer or name
            cost = {"seconds": round(seconds / max(1, len(deltas)), 3), **_numbers(delta.meta.get("cost"))}
            refusal = _refusal(deps, delta)
            if refusal is not None:
                _reject(deps, key, who, refusal, deps.store.blobs.put(delta_json(delta)), cost)
                result.rejected.append(f"{who}: {refusal}")
                continue
            before = live_texts(delta, config)
            blob = deps.store.blobs.put(delta_json(delta, before))
            _record_proposed(deps, key, delta, who, blob, cost)
            deps.verify.progress(f"{task}: proposed by {who}: {delta.description}")
            return delta, before
    return None, {}


def _baseline(deps: CycleDeps, delta: Delta) -> str:
    return baseline_hash(deps.verify.config, delta.tasks or (delta.task,))


def _record_proposed(deps: CycleDeps, key: str, delta: Delta, who: str, blob: str, cost: dict[str, float]) -> None:
    baseline = _baseline(deps, delta)
    deps.store.update_cycle(key, lambda c: c.proposed(
        delta_hash=delta.content_hash, proposer=who, lever=delta.lever, rationale=delta.rationale, cost=cost,
        delta_blob=blob, description=delta.description, baseline=baseline))


def _refusal(deps: CycleDeps, delta: Delta) -> str | None:
    """Why a proposed delta may not be verified (None: it may). Claims its hash when it may."""
    config = deps.verify.config
    if not delta.edits:
        return "no edits"
    problems = scope_problems(delta, config)
    if problems:
        return "out of scope: " + "; ".join(problems)
    if delta.is_noop(live_texts(delta, config)):
        return "no-op: every edit leaves its file as it is"
    stale = stale_paths(delta, config)
    if stale:
        return f"made against an older file: {', '.join(stale)} changed since"
    files, config_text = split_edits(delta)
    if config_text is not None:
        try:
            candidate_arm(deps.verify, files, config_text)
        except ConfigError as e:
            return f"candidate vault.yml does not validate: {e}"
    h, baseline = delta.content_hash, _baseline(deps, delta)
    with deps.lock:
        if h in deps.claimed:
            return "duplicate: being verified by another cycle right now"
        earlier = deps.facts.verified_in(h, baseline)
        if earlier is not None:
            return f"duplicate: identical delta already verified in cycle {earlier} (its task files as they are now)"
        deps.claimed.add(h)
    return None


def _record_verified(deps: CycleDeps, key: str, v: Verification, what: str) -> None:
    ids = v.inputs
    base = [sum(v.baseline[i]) / len(v.baseline[i]) for i in ids]
    cand = [sum(v.candidate[i]) / len(v.candidate[i]) for i in ids]
    detail = {**v.detail(), "verified": what}
    interval = [] if v.data_rule is not None else list(v.decision.interval)  # no runs, no interval
    deps.store.update_cycle(key, lambda c: c.verified(
        baseline=base, candidate=cand, effect=v.decision.effect, interval=interval,
        decision=v.verdict, rule=v.rule_record(), guardrails=list(v.guardrails), cost=v.cost.as_dict(),
        detail=detail))
    deps.verify.progress(f"{v.decision.verdict}: {v.decision.reason}")


def _verify_and_decide(deps: CycleDeps, key: str, delta: Delta, before: dict[str, str | None],
                       result: CycleResult, *, rebase: bool = True, approved: bool = False) -> CycleResult:
    files, config_text = split_edits(delta)
    vd = deps.verify
    paths = [] if approved else approval_paths(delta, vd.config)
    if paths:  # code that would run: nothing of it runs, verification included, before a person approves it
        deps.store.update_cycle(key, lambda c: c.await_approval(paths=paths))
        result.outcome = "awaiting_approval"
        result.reason = (f"changes code that would run ({', '.join(paths)}): `autovault approve {key}` verifies it "
                         "(sandboxed) and keeps it only if it helps")
        return result
    if is_data_delta(delta, vd.config):  # training data: its audit decides (runs cannot show a data edit)
        v = verify_data(vd.config, delta, files)
    else:
        v = verify(vd, delta.task, Arm({}, vd.config), candidate_arm(vd, files, config_text), cycle=key)
    result.verification = v
    _record_verified(deps, key, v, "training data by its audit" if v.data_rule is not None else "delta")
    if v.verdict != "keep":
        return _discard(deps, key, result, v.decision.reason)
    try:
        return _apply(deps, key, delta, result, conflicts=not rebase)
    except HashConflict as e:  # a human edited a file while we verified: merge and verify again, once
        return _reverify(deps, key, delta, before, result, e)


def _discard(deps: CycleDeps, key: str, result: CycleResult, reason: str) -> CycleResult:
    deps.store.update_cycle(key, lambda c: c.discarded(reason=reason))
    result.outcome, result.reason = "discarded", reason
    return result


def rebased(delta: Delta, before: Mapping[str, str | None], config: Any, git: Git) -> Delta | None:
    """The delta re-made on the live files by a three-way merge (base: the texts it was made against); None
    when a file was created or deleted on either side, or the merge conflicts."""
    live = live_texts(delta, config)
    edits = []
    for e in delta.edits:
        base, ours, theirs = before.get(e.path), live[e.path], e.after
        if ours == base:
            edits.append(e)
            continue
        if base is None or ours is None or theirs is None:
            return None
        merged = git.merge3(base, ours, theirs)
        if merged is None:
            return None
        edits.append(FileEdit(e.path, sha256_file(edit_location(config, e)), merged, e.in_config))
    return dataclasses.replace(delta, edits=tuple(edits), description=f"{delta.description} (rebased on the changed live file)")


def _reverify(deps: CycleDeps, key: str, delta: Delta, before: dict[str, str | None], result: CycleResult,
              conflict: HashConflict) -> CycleResult:
    stale = f"live file changed since the delta was made ({conflict.path}); a human edit is never overwritten"
    with deps.lock:
        deps.claimed.discard(delta.content_hash)
    new = rebased(delta, before, deps.verify.config, deps.outside.git)
    if new is None:
        return _discard(deps, key, result, f"not applied: {stale}, and it does not merge with the delta")
    refusal = _refusal(deps, new)
    if refusal is not None:
        return _discard(deps, key, result, f"not applied: {stale}; the merged delta is refused: {refusal}")
    now = live_texts(new, deps.verify.config)
    _record_proposed(deps, key, new, f"rebase:{delta.proposer}", deps.store.blobs.put(delta_json(new, now)), {})
    deps.verify.progress(f"{delta.task}: {stale}; verifying the merged delta again")
    result.delta, result.diff = new, delta_diff(new, now)
    return _verify_and_decide(deps, key, new, now, result, rebase=False)


def _apply(deps: CycleDeps, key: str, delta: Delta, result: CycleResult, *, conflicts: bool = True) -> CycleResult:
    """Write a kept delta. A hash conflict is recorded as a discard when `conflicts`, else raised (to re-verify)."""
    vd = deps.verify
    try:
        with deps.lock:
            applied = apply_delta(delta, vd.config, deps.store, key, deps.outside, env=vd.env, git=deps.git,
                                  on_written=deps.on_written)
    except HashConflict as e:
        if not conflicts:
            raise
        return _discard(deps, key, result, f"not applied, live file changed since the delta was made (a human "
                                           f"edit is never overwritten): {one_line(e)}")
    except (OutOfScope, ConfigError) as e:
        return _discard(deps, key, result, f"not applied: {one_line(e)}")
    hashes = {p: h or "" for p, h in applied.hashes.items()}
    deps.store.update_cycle(key, lambda c: c.kept(applied_hashes=hashes, commit=applied.commit) if c.is_open else None)
    result.outcome, result.commit = "kept", applied.commit
    result.reason = f"applied {len(hashes)} file(s)" + (f", commit {applied.commit[:12]}" if applied.commit else "")
    if applied.commit_error:
        result.reason += f"; not committed: {applied.commit_error}"
    return result


# ---- commands on an existing cycle --------------------------------------------------------------------


def verify_cycle(deps: CycleDeps, key: str) -> CycleResult:
    """`autovault verify CYCLE`: a proposed delta is verified (and applied when kept); when a human already
    changed the files, the live state is verified against the recorded baseline instead (nothing written)."""
    cycle, delta, before = load_delta(deps.store, key)
    result = CycleResult(key, cycle.task, "failed", delta=delta, diff=delta_diff(delta, before))
    if cycle.phase != "proposed":
        raise ValueError(f"cycle {key} is {cycle.phase}; only a proposed cycle (`cycle TASK --propose-only`) "
                         "can be verified")
    try:
        config = deps.verify.config
        if not stale_paths(delta, config):
            return _verify_and_decide(deps, key, delta, before, result)
        return _verify_human(deps, key, delta, before, result)
    except Exception as e:
        return _fail(deps, key, result, e)


def _verify_human(deps: CycleDeps, key: str, delta: Delta, before: dict[str, str | None],
                  result: CycleResult) -> CycleResult:
    vd = deps.verify
    files = {e.path: before.get(e.path) for e in delta.edits if not e.in_config}
    config_text = next((before.get(e.path) for e in delta.edits if e.in_config), None)
    baseline = candidate_arm(vd, files, config_text)
    v = verify(vd, delta.task, baseline, Arm({}, vd.config), cycle=key)
    result.verification = v
    _record_verified(deps, key, v, "human-applied state vs recorded baseline")
    if v.verdict == "keep":
        hashes = {e.path: sha256_file(edit_location(vd.config, e)) or "" for e in delta.edits}
        deps.store.update_cycle(key, lambda c: c.kept(applied_hashes=hashes, commit=None))
        result.outcome, result.reason = "kept", "the human-applied change verified as an improvement"
    else:
        reason = f"{v.decision.reason} (the human-applied change stays in place; revert it by hand if wanted)"
        deps.store.update_cycle(key, lambda c: c.discarded(reason=reason))
        result.outcome, result.reason = "discarded", reason
    return result


def approve_cycle(deps: CycleDeps, key: str, by: str = "human") -> CycleResult:
    """A person approves the code of a waiting delta: it is checked again as at proposal (scope, judge, the
    files it was made against — the diff approved must be the diff that runs), then verified in sandboxed
    shadows and kept only if it helps. A cycle that waited after its verification (recorded before approval
    came first) is applied as it was verified."""
    cycle, delta, before = load_delta(deps.store, key)
    if cycle.phase != "awaiting_approval":
        raise ValueError(f"cycle {key} is {cycle.phase}, not awaiting approval")
    result = CycleResult(key, cycle.task, "failed", delta=delta, diff=delta_diff(delta, before))
    try:
        if cycle.kept_verdict:
            return _apply(deps, key, delta, result)
        deps.store.update_cycle(key, lambda c: c.approved(by=by))
        refusal = _refusal(deps, delta)
        if refusal is not None:
            return _discard(deps, key, result, f"approved, but refused now: {refusal}")
        return _verify_and_decide(deps, key, delta, before, result, approved=True)
    except Exception as e:
        return _fail(deps, key, result, e)
    finally:
        with deps.lock:
            deps.claimed.difference_update({delta.content_hash, (result.delta or delta).content_hash})


REJECTABLE = ("proposed", "awaiting_approval")


def reject_cycle(store: EventStore, key: str) -> CycleResult:
    """Discard a proposed or waiting cycle; the phase is checked again on the state the save meets, so a reject
    racing an approve either wins or is refused (IllegalTransition, a ValueError)."""
    cycle = store.get_cycle(key)
    if cycle is None:
        raise KeyError(f"no cycle {key!r}; see `autovault ledger` for cycle ids")
    if cycle.phase not in REJECTABLE:  # the common case, said plainly; a race is caught on save below
        raise ValueError(f"cycle {key} is {cycle.phase}; only a proposed or awaiting cycle can be rejected")

    def reject(c: Cycle) -> None:
        if c.phase not in REJECTABLE:
            raise IllegalTransition(f"cycle {key}", "a rejection", c.phase, REJECTABLE)
        c.discarded(reason="rejected by a human")

    store.update_cycle(key, reject)
    return CycleResult(key, cycle.task, "discarded", "rejected by a human")

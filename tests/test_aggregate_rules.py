"""Aggregates guard their phases: every legal and illegal transition of Cycle, Experiment, Audit and Finding, and
writers racing to end one cycle — threads, a writer that appends between another's load and save, and two
processes; on SQLite and PostgreSQL — record exactly one ending."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.eventstore import VaultStore
from domain import ids
from domain.aggregates import Audit, Cycle, Experiment, Finding, IllegalTransition

ROOT = Path(__file__).resolve().parents[1]
TERMINAL = ("Kept", "Discarded", "Failed")


# ---- Cycle ---------------------------------------------------------------------------------------------------

def verified(decision: str) -> Callable[[Cycle], None]:
    return lambda c: c.verified(baseline=[3.0], candidate=[4.0], effect=1.0, interval=[0.5, 1.5], decision=decision,
                                rule={}, guardrails=[], cost={})


CYCLE_COMMANDS: dict[str, Callable[[Cycle], None]] = {
    "diagnosed": lambda c: c.diagnosed(signatures=[], evidence_hash="e", tasks=["t"]),
    "rejected": lambda c: c.rejected(proposer="p", reason="no-op", answer_hash=None, cost={}),
    "proposed": lambda c: c.proposed(delta_hash="d", proposer="p", lever="prompt", rationale="r", cost={}),
    "await_approval": lambda c: c.await_approval(paths=["scripts/x.sh"]),
    "approved": lambda c: c.approved(by="ann"),
    "verified(keep)": verified("keep"),
    "verified(discard)": verified("discard"),
    "kept": lambda c: c.kept(applied_hashes={}, commit=None),
    "discarded": lambda c: c.discarded(reason="r"),
    "failed": lambda c: c.failed(error="e"),
}
# Each state: the legal commands that reach it from Started.
CYCLE_STATES: dict[str, list[str]] = {
    "started": [],
    "diagnosed": ["diagnosed"],
    "proposed": ["diagnosed", "proposed"],
    "awaiting_approval": ["diagnosed", "proposed", "await_approval"],
    "approved": ["diagnosed", "proposed", "await_approval", "approved"],
    "verified(keep)": ["diagnosed", "proposed", "verified(keep)"],
    "verified(discard)": ["diagnosed", "proposed", "verified(discard)"],
    "awaiting after keep": ["diagnosed", "proposed", "verified(keep)", "await_approval"],
    "kept": ["diagnosed", "proposed", "verified(keep)", "kept"],
    "discarded": ["diagnosed", "discarded"],
    "failed": ["diagnosed", "proposed", "failed"],
}
ENDINGS = {"discarded", "failed"}
CYCLE_LEGAL: dict[str, set[str]] = {
    "started": {"diagnosed", "rejected", "proposed"} | ENDINGS,
    "diagnosed": {"rejected", "proposed"} | ENDINGS,
    "proposed": {"await_approval", "verified(keep)", "verified(discard)"} | ENDINGS,
    "awaiting_approval": {"approved"} | ENDINGS,
    "approved": {"verified(keep)", "verified(discard)"} | ENDINGS,
    "verified(keep)": {"proposed", "await_approval", "kept"} | ENDINGS,  # rebased; waited after verifying; kept
    "verified(discard)": set(ENDINGS),
    "awaiting after keep": {"approved", "kept"} | ENDINGS,
    "kept": set(),
    "discarded": set(),
    "failed": set(),
}


def cycle_in(state: str) -> Cycle:
    c = Cycle(key="c1", task="t", mode="cycle", target=None, trigger="test")
    for name in CYCLE_STATES[state]:
        CYCLE_COMMANDS[name](c)
    c.collect_events()
    return c


@pytest.mark.parametrize("state", list(CYCLE_STATES))
@pytest.mark.parametrize("command", list(CYCLE_COMMANDS))
def test_every_cycle_transition(state: str, command: str) -> None:
    c = cycle_in(state)
    phase = c.phase
    if command in CYCLE_LEGAL[state]:
        CYCLE_COMMANDS[command](c)
        assert len(c.collect_events()) == 1
        return
    with pytest.raises(IllegalTransition) as refused:
        CYCLE_COMMANDS[command](c)
    assert c.collect_events() == [] and c.phase == phase  # nothing recorded, nothing changed
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"cycle c1 is {phase}") and "cannot record" in message


def test_kept_needs_the_keep_verdict_of_the_delta_proposed_last() -> None:
    c = cycle_in("verified(keep)")
    c.proposed(delta_hash="rebased", proposer="rebase:p", lever="prompt", rationale="r", cost={})
    with pytest.raises(IllegalTransition, match="without a keep verdict"):
        c.kept(applied_hashes={}, commit=None)
    verified("keep")(c)
    c.kept(applied_hashes={}, commit=None)
    assert c.phase == "kept"


# ---- Experiment ------------------------------------------------------------------------------------------------

EXPERIMENT_COMMANDS: dict[str, Callable[[Experiment], None]] = {
    "started": lambda e: e.started(device="cpu"),
    "stepped": lambda e: e.stepped(step=1, loss=1.0, lr=0.1, tokens=10, seconds=1.0),
    "checkpointed": lambda e: e.checkpointed(step=1, sha256="s"),
    "finished": lambda e: e.finished(metric=1.0, losses=[1.0], duration_s=1.0, artifact=None),
    "verified": lambda e: e.verified(cycle="c", decision="keep", effect=0.5, reason="r"),
    "pruned": lambda e: e.pruned(reason="worse"),
    "kept": lambda e: e.kept(reason="r"),
    "discarded": lambda e: e.discarded(reason="r"),
    "failed": lambda e: e.failed(error="e"),
}
EXPERIMENT_STATES: dict[str, list[str]] = {
    "queued": [],
    "running": ["started"],
    "finished": ["started", "finished"],
    "verified": ["started", "finished", "verified"],
    "kept": ["started", "finished", "verified", "kept"],
    "discarded": ["started", "finished", "verified", "discarded"],
    "pruned": ["started", "pruned"],
    "failed": ["failed"],
}
EXPERIMENT_LEGAL: dict[str, set[str]] = {
    "queued": {"started", "pruned", "failed"},
    "running": {"started", "stepped", "checkpointed", "finished", "pruned", "failed"},  # started: a resume
    "finished": {"verified"},
    "verified": {"kept", "discarded"},
    "kept": set(), "discarded": set(), "pruned": set(), "failed": set(),
}


@pytest.mark.parametrize("state", list(EXPERIMENT_STATES))
@pytest.mark.parametrize("command", list(EXPERIMENT_COMMANDS))
def test_every_experiment_transition(state: str, command: str) -> None:
    e = Experiment(key="x1", task="t", sweep="", base_model="m", dataset_hash="h", params={})
    for name in EXPERIMENT_STATES[state]:
        EXPERIMENT_COMMANDS[name](e)
    e.collect_events()
    if command in EXPERIMENT_LEGAL[state]:
        EXPERIMENT_COMMANDS[command](e)
        assert len(e.collect_events()) == 1
        return
    with pytest.raises(IllegalTransition, match=f"^experiment x1 is {e.phase}: cannot record"):
        EXPERIMENT_COMMANDS[command](e)
    assert e.collect_events() == []


# ---- Audit and Finding -----------------------------------------------------------------------------------------

AUDIT_COMMANDS: dict[str, Callable[[Audit], None]] = {
    "bisected": lambda a: a.bisected(step=0, tested=5, good=-1, bad=0, verdict="regressed", effect=0.5,
                                     interval=[0.1, 0.9], rule={}, detail={}),
    "concluded": lambda a: a.concluded(culprit=5, verdict="v", reason="bisect"),
    "failed": lambda a: a.failed(error="e"),
    "reverted(kept)": lambda a: a.reverted(cycle="c", outcome="kept", reason="r"),
    "reverted(discarded)": lambda a: a.reverted(cycle="c", outcome="discarded", reason="r"),
}
AUDIT_STATES: dict[str, list[str]] = {
    "opened": [], "bisecting": ["bisected"], "concluded": ["bisected", "concluded"], "failed": ["failed"],
    "reverted": ["concluded", "reverted(kept)"],
}
AUDIT_LEGAL: dict[str, set[str]] = {
    "opened": set(AUDIT_COMMANDS),
    "bisecting": set(AUDIT_COMMANDS),
    "concluded": {"reverted(kept)", "reverted(discarded)"},
    "failed": {"reverted(kept)", "reverted(discarded)"},  # a suspect named without bisect may still be reverted
    "reverted": set(),
}


@pytest.mark.parametrize("state", list(AUDIT_STATES))
@pytest.mark.parametrize("command", list(AUDIT_COMMANDS))
def test_every_audit_transition(state: str, command: str) -> None:
    a = Audit(key="a1", task="t", since=None, until=9, test={}, shift=None, window=[0, 9], changes=[], drift=[],
              verdict="", suspect=5)
    for name in AUDIT_STATES[state]:
        AUDIT_COMMANDS[name](a)
    a.collect_events()
    if command in AUDIT_LEGAL[state]:
        AUDIT_COMMANDS[command](a)
        assert len(a.collect_events()) == 1
        return
    with pytest.raises(IllegalTransition, match=f"^audit a1 is {a.phase}: cannot record"):
        AUDIT_COMMANDS[command](a)


def test_a_revert_that_was_not_kept_leaves_the_audit_open_to_another() -> None:
    a = Audit(key="a1", task="t", since=None, until=9, test={}, shift=None, window=[0, 9], changes=[], drift=[],
              verdict="", suspect=5)
    AUDIT_COMMANDS["reverted(discarded)"](a)
    assert a.phase == "opened"
    AUDIT_COMMANDS["reverted(kept)"](a)
    assert a.phase == "reverted"


def test_a_finding_resolves_only_while_open_and_comes_back_only_after() -> None:
    f = Finding(kind="interface", subject="a->b", tasks=["a"], evidence={})
    with pytest.raises(IllegalTransition, match=r"^finding interface:a->b is detected: cannot record Redetected"):
        f.redetect(tasks=["a"], evidence={})
    f.resolve(by_cycle=None, reason="fixed")
    with pytest.raises(IllegalTransition, match="is resolved: cannot record Resolved"):
        f.resolve(by_cycle=None, reason="again")
    f.redetect(tasks=["a"], evidence={})
    assert f.open and [type(e).__name__ for e in f.collect_events()] == ["Detected", "Resolved", "Redetected"]


# ---- racing writers ------------------------------------------------------------------------------------------

def verified_cycle(store: VaultStore, key: str) -> None:
    store.start_cycle(key, "t", "cycle", None, "test")
    for name in ("diagnosed", "proposed", "verified(keep)"):
        store.update_cycle(key, CYCLE_COMMANDS[name])


def endings(store: VaultStore, key: str) -> list[str]:
    return [type(e).__name__ for e in store.events.get(ids.cycle_id(key)) if type(e).__name__ in TERMINAL]


def test_a_writer_that_ends_the_cycle_between_load_and_save_wins_and_the_other_is_refused(store_url: str) -> None:
    """The store's retry re-applies the command to the state the other writer left: the rule is checked again."""
    with VaultStore(store_url) as daemon, VaultStore(store_url) as approver:
        verified_cycle(daemon, "c1")
        attempts: list[str] = []

        def keep(c: Cycle) -> None:
            attempts.append(c.phase)
            if len(attempts) == 1:  # the approver discards after the daemon loaded the cycle
                approver.update_cycle("c1", CYCLE_COMMANDS["discarded"])
            c.kept(applied_hashes={}, commit=None)

        with pytest.raises(IllegalTransition, match="cycle c1 is discarded: cannot record Kept"):
            daemon.update_cycle("c1", keep)
        assert attempts == ["verified", "discarded"]  # the first save conflicted; the retry saw the discard
        assert endings(daemon, "c1") == ["Discarded"]


def test_threads_racing_to_end_a_cycle_record_one_ending(store_url: str) -> None:
    with VaultStore(store_url) as store:
        verified_cycle(store, "c1")
    outcomes: list[str] = []
    start = threading.Barrier(6)

    def end(command: str) -> None:
        with VaultStore(store_url) as mine:
            start.wait()
            try:
                mine.update_cycle("c1", CYCLE_COMMANDS[command])
                outcomes.append(command)
            except IllegalTransition:
                outcomes.append("refused")

    threads = [threading.Thread(target=end, args=(cmd,)) for cmd in ("kept", "discarded", "failed") * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with VaultStore(store_url) as store:
        recorded = endings(store, "c1")
    assert len(recorded) == 1 and outcomes.count("refused") == 5
    assert [o for o in outcomes if o != "refused"] == [recorded[0].lower()]


CHILD = """
import sys
from adapters.eventstore import VaultStore
from domain.aggregates import IllegalTransition
url, command, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
won = 0
with VaultStore(url) as store:
    for i in range(n):
        try:
            if command == "kept":
                store.update_cycle(f"c{i}", lambda c: c.kept(applied_hashes={}, commit=None))
            else:
                store.update_cycle(f"c{i}", lambda c: c.discarded(reason="approve lost"))
            won += 1
        except IllegalTransition:
            pass
print(won)
"""


def test_two_processes_racing_to_end_cycles_record_one_ending_each(store_url: str) -> None:
    n = 12
    with VaultStore(store_url) as store:
        for i in range(n):
            verified_cycle(store, f"c{i}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, store_url, command, str(n)], env=env, cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for command in ("kept", "discarded")]
    won = []
    for child in children:
        out, err = child.communicate(timeout=180)
        assert child.returncode == 0, err
        won.append(int(out))
    assert sum(won) == n  # every cycle ended once, by one of them
    with VaultStore(store_url) as store:
        assert all(len(endings(store, f"c{i}")) == 1 for i in range(n))


def test_an_open_finding_is_detected_once_however_many_detect_it(store_url: str) -> None:
    with VaultStore(store_url) as a, VaultStore(store_url) as b:
        a.detect_finding("interface", "x->y", ["x"], {})
        b.resolve_finding("interface", "x->y", None, "fixed")
        a.resolve_finding("interface", "x->y", None, "fixed again")  # resolved already: nothing recorded
        for s in (a, b):
            s.detect_finding("interface", "x->y", ["x"], {})
        kinds: list[Any] = [type(e).__name__ for e in a.events.get(ids.finding_id("interface", "x->y"))]
    assert kinds == ["Detected", "Resolved", "Redetected"]

"""Audit a regression end to end: a human edit breaks the briefing prompt on day 5, among harmless human edits, a
kept delta and config reloads. `audit` names it, bisect confirms it (and finds it among neighbours on the same
morning), revert restores the score. Real collector subprocesses, a real SQLite store, the flawed-model double."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.git import merge3
from daemon.bootstrap import audit_deps
from domain.aggregates import Audit
from handlers.audit import audit
from handlers.bisect import bisect
from handlers.revert import RevertRefused, revert
from projections.ledger import ledger_rows
from tests.audit_vault import (
    BROKEN_REWORDED,
    EXAMPLE,
    GOALS,
    REWORDED,
    AuditVault,
    copy_vault,
    make_audit_vault,
    regression_history,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> AuditVault:
    return regression_history(make_audit_vault(tmp_path_factory.mktemp("history")))


@pytest.fixture
def history(built: AuditVault, tmp_path: Path) -> AuditVault:
    return copy_vault(built, tmp_path)


def audit_events(v: AuditVault, key: str) -> list[str]:
    return [type(e).__name__ for e in v.svc.store.events.get(Audit.create_id(key))]


def test_audit_finds_the_drop_and_names_the_breaking_edit(history: AuditVault) -> None:
    v = history
    r = audit(audit_deps(v.svc), "brief")
    assert [p.score for p in r.series] == [4.0, 5.0, 5.0, 5.0] + [2.5] * 8
    assert r.shift is not None and r.shift.index == 4 and r.shift.after == 2.5 and r.shift.p_value < 0.05
    assert r.suspect is not None and r.suspect.position == v.marks["break"]
    assert [c.position for c in r.changes] == [v.marks["break"]]
    assert "one change in that window: #" in r.verdict and "human edit: prompts/brief.md" in r.verdict
    diff = r.diffs[v.marks["break"]]
    assert all(f"+{line}" in diff for line in EXAMPLE.strip().splitlines())  # the edit's own diff, from the blobs
    kinds = [(c.kind, c.by) for c in r.timeline]
    assert kinds == [("delta", "cycle"), ("edit", "human"), ("edit", "human"), ("edit", "human"),
                     ("model", "config"), ("edit", "human")]
    assert audit_events(v, r.key) == ["Opened"]
    opened = next(iter(v.svc.store.events.get(Audit.create_id(r.key))))
    assert opened.suspect == v.marks["break"] and opened.window == list(r.window)  # type: ignore[attr-defined]


def test_an_audit_replays_exactly_and_a_range_without_the_drop_finds_none(history: AuditVault) -> None:
    deps = audit_deps(history.svc)
    a, b = audit(deps, "brief", record=False), audit(deps, "brief", record=False)
    assert a.as_dict() | {"audit": ""} == b.as_dict() | {"audit": ""}
    late = audit(deps, "brief", since=history.marks["break"] + 2, record=False)
    assert late.shift is None and late.verdict.startswith("no regression")


def test_bisect_confirms_the_edit_and_records_each_step(history: AuditVault) -> None:
    v = history
    deps = audit_deps(v.svc)
    r = audit(deps, "brief")
    b = bisect(deps, v.deps([]).verify, r)
    assert b.culprit is not None and b.culprit.position == v.marks["break"]
    assert [s.regressed for s in b.steps] == [True] and b.steps[0].effect == 2.5
    assert audit_events(v, r.key) == ["Opened", "Bisected", "Concluded"]
    assert v.text("prompts/brief.md") == BROKEN_REWORDED  # bisect ran in shadows only


def test_bisect_names_the_culprit_among_changes_of_the_same_morning(tmp_path: Path) -> None:
    v = regression_history(make_audit_vault(tmp_path), crowded=True)
    deps = audit_deps(v.svc)
    r = audit(deps, "brief")
    assert [c.position for c in r.changes] == [v.marks["comment"], v.marks["break"], v.marks["reload"]]
    assert r.suspect is None and "3 changes in that window" in r.verdict
    b = bisect(deps, v.deps([]).verify, r)
    assert b.culprit is not None and b.culprit.position == v.marks["break"]
    assert [(s.tested, s.regressed) for s in b.steps] == [(v.marks["reload"], True), (v.marks["comment"], False),
                                                          (v.marks["break"], True)]
    concluded = list(v.svc.store.events.get(Audit.create_id(r.key)))[-1]
    assert concluded.culprit == v.marks["break"]  # type: ignore[attr-defined]


def test_revert_undoes_the_edit_keeps_later_edits_and_restores_the_score(history: AuditVault) -> None:
    v = history
    deps = audit_deps(v.svc)
    r = audit(deps, "brief")
    assert r.suspect is not None
    result = revert(v.deps([]), deps, "brief", r.suspect, merge3, audit=r.key)
    assert result.outcome == "kept", result.reason
    assert audit_events(v, r.key) == ["Opened", "Reverted"]
    assert result.verification is not None and result.verification.decision.effect == 2.5
    assert v.text("prompts/brief.md") == GOALS.replace("Write the morning briefing for {date} in at least 150 words.",
                                                       "Write this morning's briefing ({date}), at least 150 words.")
    assert v.run_day(13) == 5.0  # the score is back
    v.svc.projections.catch_up()
    with v.svc.engine_connect() as conn:
        changed = [row for row in ledger_rows(conn, "brief") if row.kind == "Changed"]
    assert changed[-1].decision == "revert" and changed[-1].cycle == result.key


def test_a_revert_that_overlaps_a_later_edit_is_refused(history: AuditVault) -> None:
    v = history
    deps = audit_deps(v.svc)
    r = audit(deps, "brief")
    assert r.suspect is not None
    (v.root / "prompts" / "brief.md").write_text(REWORDED.replace("CONTEXT:", "Example:\n## Goals\n- ship it\n\nCONTEXT:"))
    with pytest.raises(RevertRefused, match="overlaps the change"):
        revert(v.deps([]), deps, "brief", r.suspect, merge3)


def test_reverting_a_script_change_waits_for_approval(history: AuditVault) -> None:
    v = history
    deps = audit_deps(v.svc)
    comment = next(c for c in audit(deps, "brief", record=False).timeline if c.position == v.marks["comment"])
    live = v.text("scripts/collect.sh")
    result = revert(v.deps([]), deps, "brief", comment, merge3)
    assert result.outcome == "awaiting_approval" and "scripts/collect.sh" in result.reason
    assert v.text("scripts/collect.sh") == live  # nothing written until a human approves
    assert result.delta is not None and result.delta.lever == "script" and result.delta.meta["revert_of"] == comment.position

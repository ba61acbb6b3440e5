"""Judge drift: when the judge moved, the audit says so instead of blaming the vault — and a judge change that does
not explain a drop leaves the vault's change named. Anchors are chosen once and every rescoring is on record."""

from __future__ import annotations

import json
from pathlib import Path

from daemon.bootstrap import audit_deps
from domain.aggregates import Judge
from handlers.audit import audit
from testbed.doubles.flawed_models import FlawedModels
from testbed.servers.protocol import Reply, Request
from tests.audit_vault import BROKEN, GOALS, AuditVault, make_audit_vault


def judge_events(v: AuditVault) -> list[str]:
    return [type(e).__name__ for e in v.svc.store.events.get(Judge.create_id("brief"))]


def history(v: AuditVault, change_on_day_6: list[tuple[str, str]], *, break_too: bool = False) -> AuditVault:
    for n in range(1, 13):
        if n == 6:
            for pattern, text in change_on_day_6:
                v.replace_in_config(pattern, text, "judge")
            if break_too:
                v.human_edit("prompts/brief.md", BROKEN.replace("Write today's morning briefing ({date}), at least",
                                                                "Write the morning briefing for {date} in at least"),
                             "break")
        v.run_day(n)
    return v


def test_a_stricter_contract_is_blamed_on_the_judge_not_the_vault(tmp_path: Path) -> None:
    v = history(make_audit_vault(tmp_path, prompt=GOALS), [("min_words: 80", "min_words: 200")])
    deps = audit_deps(v.svc)
    r = audit(deps, "brief")
    assert r.shift is not None and (r.shift.before, r.shift.after) == (5.0, 3.5)
    assert [c.kinds for c in r.changes] == [("judge",)]
    assert r.suspect is None and "the judge moved, not the vault" in r.verdict
    (check,) = r.drift
    assert check.shift == -1.5 and check.anchors == 5 and check.position == r.changes[0].position
    assert judge_events(v) == ["Anchored", "Rescored"]
    anchors = next(iter(v.svc.store.events.get(Judge.create_id("brief"))))
    assert len(anchors.run_ids) == 5  # type: ignore[attr-defined]  # the runs before the change, and only those
    again = audit(deps, "brief")
    assert again.drift[0].shift == -1.5 and "measured at #" in again.drift[0].note
    assert judge_events(v) == ["Anchored", "Rescored"]  # read back, never paid for twice


def test_a_judge_change_that_does_not_explain_the_drop_leaves_the_edit_named(tmp_path: Path) -> None:
    v = history(make_audit_vault(tmp_path, prompt=GOALS), [("min_words: 80", "min_words: 90")], break_too=True)
    r = audit(audit_deps(v.svc), "brief")
    assert sorted(c.kind for c in r.changes) == ["edit", "judge"]
    assert r.drift[0].shift == 0.0
    assert r.suspect is not None and r.suspect.position == v.marks["break"]


class Judges:
    """The task's model is the flawed double; the judge models grade every output the same: `lenient-judge` a 5,
    `harsh-judge` a 2 (a judge swap that moves every score)."""

    def __init__(self) -> None:
        self.flawed = FlawedModels(seed=1)
        self.judged = 0

    def __call__(self, request: Request) -> Reply:
        if not request.model.endswith("-judge"):
            return self.flawed(request)
        self.judged += 1
        grade = 2 if request.model.startswith("harsh") else 5
        return Reply(text=json.dumps({"score": grade, "reasons": [f"{request.model} grades {grade}"]}))


def test_a_harsher_judge_model_is_measured_by_asking_both_judges(tmp_path: Path) -> None:
    judges = Judges()
    v = make_audit_vault(tmp_path, prompt=GOALS, responder=judges,
                         judge_line='{model: "ollama:lenient-judge", llm_weight: 0.5}')
    history(v, [("lenient-judge", "harsh-judge")])
    calls = judges.judged
    r = audit(audit_deps(v.svc), "brief")
    assert r.shift is not None and (r.shift.before, r.shift.after) == (5.0, 3.5)
    assert "the judge moved" in r.verdict and r.drift[0].shift == -1.5
    assert judges.judged - calls == 10  # each of the 5 anchors judged by the old and by the new judge model

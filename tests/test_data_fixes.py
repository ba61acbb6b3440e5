"""Training data: `check` refuses a label_field no example has; mining takes only runs that pass the whole
contract; balancing drops surplus when the set stays big enough, adds mined minority examples when it would not,
and says why when neither works. Real vault.yml files on disk; pure functions for the plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.config_loader import check_config, load_config
from daemon.bootstrap import Services, bootstrap, diagnose_deps, register_tasks
from domain.config import Expect, TaskConfig, TrainingConfig
from domain.runs import RunResult, Score
from domain.signatures import RunView
from handlers import mining
from handlers.diagnose import diagnose
from handlers.diagnose_static import audit_data
from handlers.ingest import ingest_path
from handlers.proposers import data_fixes, rules
from handlers.verify_data import data_verdict, training_texts
from tests.seed_copy import copy_seed
from tests.test_config_loader import make_vault

# ---- check: label_field -----------------------------------------------------------------------------------


def test_a_label_field_no_example_has_is_one_line_naming_file_field_and_fix(tmp_path: Path) -> None:
    path = make_vault(tmp_path, files={"vault/data/train.jsonl": '{"prompt": "p", "completion": "c", "labels": "x"}\n'})
    problems = [str(p) for p in check_config(path, env={})]
    hits = [p for p in problems if "label_field" in p]
    assert len(hits) == 1 and "\n" not in hits[0]
    line = hits[0]
    assert str(path) in line and "tasks.blog-writer.training.label_field" in line
    assert "'label' is in none of the 1 examples in data/train.jsonl" in line and "did you mean 'labels'?" in line


def test_a_label_field_the_examples_have_passes_check(tmp_path: Path) -> None:
    assert [p for p in check_config(make_vault(tmp_path), env={}) if "label_field" in str(p)] == []


def test_without_a_near_key_the_fix_lists_the_example_keys(tmp_path: Path) -> None:
    path = make_vault(tmp_path, files={"vault/data/train.jsonl": '{"prompt": "p", "completion": "c"}\nnot json\n'})
    line = next(str(p) for p in check_config(path, env={}) if "label_field" in str(p))
    assert "set label_field to a key the examples have (completion, prompt), or remove it" in line


# ---- mining: the whole contract ------------------------------------------------------------------------------

TEMPLATE = "Plan the week from the goals.\n- [Goal]: one line\n\n{context}\n"
EXPECT = Expect(blocks={"regex": "^(PLAN|NO-CHANGE)$", "min": 1, "max": 1}, max_words=60, forbid=["TODO"])
TASK = TaskConfig(prompt="prompts/p.md", model="ollama:x", expect=EXPECT,
                  training=TrainingConfig(data="data/*.jsonl", label_field="label", min_examples=6,
                                          max_class_share=0.6))
PLAN = "PLAN\n- Book the boiler service for Tuesday"
SAME = "NO-CHANGE\nNothing new."


def view(run_id: str, output: str, *, day: int = 1, done: str = "stop", status: str = "ok") -> RunView:
    return RunView(run_id=run_id, task="planner", output=output, done_reason=done, started=f"2026-04-{day:02d}T03:00Z",
                   status=status, context=f"goals of day {day}", num_predict=200)


def data(*rows: tuple[str, str]) -> dict[str, str]:
    return {"data/plan.jsonl": "".join(json.dumps({"prompt": f"goals {i}", "completion": c, "label": lab}) + "\n"
                                       for i, (c, lab) in enumerate(rows))}


BAD_RUNS = {  # every one scored 5, every one fails a different check of the contract
    "no-block": "Here is my plan: book the boiler.",
    "two-blocks": "PLAN\nNO-CHANGE",
    "forbidden": "PLAN\n- TODO book the boiler",
    "too-long": "PLAN\n" + "word " * 80,
    "slot-leak": "PLAN\n- [Goal]: one line",
    "fenced": "```\nPLAN\n- Book it\n```",
    "empty": "",
}


@pytest.mark.parametrize("run_id", sorted(BAD_RUNS))
def test_a_good_score_is_not_enough_to_be_mined(run_id: str) -> None:
    views = [view(run_id, BAD_RUNS[run_id])]
    found = mining.mine(TASK, TEMPLATE, views, {run_id: 5.0}, data((PLAN, "PLAN"), (SAME, "NO-CHANGE")))
    assert found.examples == () and sum(found.refused.values()) == 1


def test_truncated_and_failed_runs_are_refused_by_their_checks() -> None:
    views = [view("cut", PLAN + " and", done="length"), view("failed", PLAN + " soon", day=2, status="failed")]
    found = mining.mine(TASK, TEMPLATE, views, {"cut": 5.0, "failed": 5.0}, data((PLAN, "PLAN")))
    assert found.examples == () and found.refused == {"truncated": 1, "failed": 1}


def test_a_run_passing_every_check_is_mined_with_its_label() -> None:
    views = [view("good", "PLAN\n- Renew the passport before May", day=3)]
    found = mining.mine(TASK, TEMPLATE, views, {"good": 4.5}, data((PLAN, "PLAN"), *[(SAME, "NO-CHANGE")] * 2))
    assert [e["label"] for e in found.examples] == ["PLAN"] and found.examples[0]["source"] == "good"
    assert "goals of day 3" in found.examples[0]["prompt"]


def test_mined_examples_never_leave_a_label_above_its_share() -> None:
    views = [view(f"p{d}", f"PLAN\n- Plan item for day {d}", day=d) for d in range(1, 9)]
    rows = data(*[(SAME, "NO-CHANGE")] * 3, (PLAN, "PLAN"))
    found = mining.mine(TASK, TEMPLATE, views, {v.run_id: 4.5 for v in views}, rows)
    assert len(found.examples) == 3 and found.refused == {"label_share": 5}  # 4 of 7 ≤ 0.6; a 4th: 5 of 8
    assert [e["source"] for e in found.examples] == ["p8", "p7", "p6"]  # the newest stay


def test_labels_that_cannot_be_read_off_the_answers_are_said() -> None:
    rows = data(("Book the boiler.", "PLAN"), ("Nothing new.", "NO-CHANGE"))
    found = mining.mine(TASK, TEMPLATE, [view("good", PLAN)], {"good": 5.0}, rows)
    assert found.examples == () and found.label_problem is not None and "do not name their own" in found.label_problem


# ---- balancing -------------------------------------------------------------------------------------------------


def audit(rows: dict[str, str], min_examples: int) -> mining.DataAudit:
    return audit_data(rows, min_examples, 0.6, "label")


def test_dropping_is_the_plan_when_the_set_stays_at_min_examples() -> None:
    rows = data(*[(SAME, "NO-CHANGE")] * 12, *[(PLAN, "PLAN")] * 6)
    plan = mining.balance_plan(audit(rows, 15), mining.Mined())
    assert plan == ("drop", 3)  # 9 of 15 = 0.6
    dropped = data_fixes.drop_surplus(rows, "label", "NO-CHANGE", 0.6)
    assert dropped is not None and dropped[1] == 3


def test_adding_mined_minority_examples_is_the_plan_when_dropping_breaks_min_examples() -> None:
    rows = data(*[(SAME, "NO-CHANGE")] * 12, *[(PLAN, "PLAN")] * 6)
    a = audit(rows, 18)
    assert mining.minority_needed(a) == 2  # 12 of 20 = 0.6
    views = [view(f"p{d}", f"PLAN\n- Plan item for day {d}", day=d) for d in range(1, 5)]
    views.append(view("same", "NO-CHANGE\nStill nothing.", day=9))
    found = mining.mine(TASK, TEMPLATE, views, {v.run_id: 4.5 for v in views}, rows, labels=["PLAN"], limit=2)
    assert [e["label"] for e in found.examples] == ["PLAN", "PLAN"]
    assert mining.balance_plan(a, found) == ("add", 2)
    grown = data_fixes.append_examples(rows["data/plan.jsonl"], list(found.examples))
    assert grown is not None
    after = audit({"data/plan.jsonl": grown}, 18)
    assert not after.imbalanced and not after.too_few and "source" not in grown


def test_when_neither_works_the_plan_is_the_reason() -> None:
    rows = data(*[(SAME, "NO-CHANGE")] * 12, *[(PLAN, "PLAN")] * 6)
    reason = mining.balance_plan(audit(rows, 18), mining.Mined(looked=40, refused={"blocks": 3}))
    assert isinstance(reason, str)
    assert "dropping 3 would leave 15 < min_examples 18" in reason and "2 examples of other labels" in reason
    assert "3 blocks" in reason
    unlabelled = mining.balance_plan(audit(rows, 18), mining.Mined(label_problem="labels are not in the answers"))
    assert isinstance(unlabelled, str) and "labels are not in the answers" in unlabelled


# ---- on the example vault: diagnosis plans, the rules act, the audit decides ---------------------------------


def _planner_at_18(dest: Path) -> Services:
    """The seed vault with goal-planner's min_examples raised to 18: dropping the surplus would break it."""
    cfg = copy_seed(dest)
    cfg.write_text(cfg.read_text().replace("      min_examples: 15\n      max_class_share: 0.6",
                                           "      min_examples: 18\n      max_class_share: 0.6"))
    svc = bootstrap(load_config(cfg, {}), env={}, store_url=f"sqlite:///{dest / 'events.db'}")
    register_tasks(svc.store, svc.config)
    ingest_path(svc.config.root / "heartbeat" / "logs", svc.store)
    svc.projections.catch_up()
    return svc


def test_a_lopsided_set_that_cannot_shrink_grows_by_mined_minority_examples(tmp_path: Path) -> None:
    svc = _planner_at_18(tmp_path / "a")
    try:
        for day, plan in enumerate(["Plan: draft the spacer v2 release notes", "Plan: try TIES density 0.5",
                                    "Plan: move the event store to WAL"], start=20):
            run = RunResult(run_id=f"plan-{day}", task="goal-planner", started=f"2026-03-{day}T03:00:00Z",
                            status="ok", model="ollama:planner-4b", options={}, output=f"HAS-GOALS\n- {plan}",
                            done_reason="stop", prompt_tokens=80, output_tokens=12,
                            context=f"## Ideas (unplanned)\n- idea {day}", source="daemon")
            svc.store.record_scored_run(run, Score(run.run_id, 4.5, "test"), "judge")
        svc.projections.catch_up()
        ev = diagnose("goal-planner", diagnose_deps(svc))
        before = training_texts(svc.config.root, svc.config.task("goal-planner"))
    finally:
        svc.close()
    assert ev.balance["plan"] == "add" and ev.balance["count"] == 2  # 12 NO-CHANGE of 20 = 0.6
    delta = next(d for d in rules.propose(ev) if d.meta.get("rules") == ["rebalance_data"])
    assert delta.meta["added"] == 2 and delta.meta["sources"] == ["plan-22", "plan-21"]
    after = {**before, **{e.path: e.after for e in delta.edits if e.after is not None}}
    keep, reason, _ = data_verdict(delta, ev.task_config(), before, after)
    assert keep, reason
    rows = [json.loads(ln) for ln in after["data/planner.jsonl"].splitlines()]
    assert len(rows) == 20 and rows[-1]["label"] == "HAS-GOALS" and set(rows[-1]) == {"prompt", "completion", "label"}


def test_a_lopsided_set_with_nothing_to_mine_says_why_in_the_diagnosis(tmp_path: Path) -> None:
    svc = _planner_at_18(tmp_path / "b")
    try:
        ev = diagnose("goal-planner", diagnose_deps(svc))
    finally:
        svc.close()
    sig = ev.signature("training_data_imbalanced")
    assert sig is not None and ev.balance["plan"] is None
    why = sig.evidence["not_balanced"]
    assert "dropping 3 would leave 15 < min_examples 18" in why and "2 no_recorded_context" in why
    assert rules.rebalance_data(ev, rules.base_texts(ev)) is None
    assert "not_balanced" in ev.to_prompt(20_000)

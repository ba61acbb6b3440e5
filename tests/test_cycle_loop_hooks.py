"""The cycle's simplicity and data rules, and the loop's approve / reload hooks, on the small cycle vault."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.config_loader import load_config
from adapters.yaml_edit import set_value
from daemon.bootstrap import reloader
from domain.aggregates import Cycle
from domain.delta import Delta, FileEdit
from domain.ids import sha256_text
from handlers.cycle import CycleDeps, CycleResult, approve_cycle, run_cycle
from handlers.loop import Reload, run_loop
from testbed.cycle_vault import IMPROVED_PROMPT, VaultFixture, make_vault

FORK_STORM = """#!/bin/sh
# sixty forks per run for nothing the context uses
for i in $(seq 60); do x=$(echo "$i" | sed 's/0/o/'); done
echo "three commits landed on $AUTOVAULT_DATE"
"""
ONE_ECHO = """#!/bin/sh
# The context is one line: the loop that used to sit here forked sed sixty times per run and its result was
# never printed, so the whole collector is now this single echo of the date with the same words as before.
echo "three commits landed on $AUTOVAULT_DATE"
"""


def verified(fx: VaultFixture, key: str) -> Any:
    cycle = fx.svc.store.get_cycle(key)
    assert cycle is not None
    return next(e for e in fx.svc.store.events.get(cycle.id) if isinstance(e, Cycle.Verified))  # type: ignore[attr-defined]


def test_an_equal_score_from_a_measurably_cheaper_collector_is_kept(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    (fx.root / "scripts" / "collect.sh").write_text(FORK_STORM)
    assert len(ONE_ECHO.split()) > len(FORK_STORM.split())  # more words: only the CPU measurement can keep it
    r = run_cycle(fx.deps([("double", lambda ev: [fx.edit("scripts/collect.sh", ONE_ECHO, lever="script")])]),
                  "brief")
    assert r.outcome == "awaiting_approval", r.reason  # a script: nothing of it runs before a human approves
    r = approve_cycle(fx.deps([]), r.key)
    assert r.outcome == "kept", r.reason
    assert r.verification is not None and r.verification.simpler and r.verification.decision.effect == 0
    cost = verified(fx, r.key).detail["collector_cost"]
    assert cost["cheaper"] and cost["p"] < 0.05 and cost["pairs"] == 8 and cost["median_ratio"] <= 0.75
    assert any("collector cheaper" in n for n in r.verification.notes)


def test_a_slower_collector_with_an_equal_score_is_discarded(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    r = run_cycle(fx.deps([("double", lambda ev: [fx.edit("scripts/collect.sh", FORK_STORM, lever="script")])]),
                  "brief")
    r = approve_cycle(fx.deps([]), r.key)
    assert r.outcome == "discarded"
    cost = verified(fx, r.key).detail["collector_cost"]
    assert not cost["cheaper"] and cost["wins"] == 0
    assert (fx.root / "scripts" / "collect.sh").read_text() != FORK_STORM


# ---- training data: decided by its audit --------------------------------------------------------------

THIN = {"prompt": "any news?", "completion": "NO-CHANGE\nAlready up to date.", "label": "NO-CHANGE"}


def data_vault(tmp_path: Path) -> tuple[VaultFixture, str]:
    """The cycle vault with training data on `brief`: 4 of 6 examples NO-CHANGE (max_class_share 0.5)."""
    fx = make_vault(tmp_path)
    text = fx.cfg.read_text()
    text = set_value(text, ["research", "editable"], ["prompts/**", "scripts/**", "data/**"])
    text = set_value(text, ["tasks", "brief", "training"],
                     {"data": "data/brief.jsonl", "label_field": "label", "min_examples": 4, "max_class_share": 0.5})
    fx.cfg.write_text(text)
    rows = [THIN, THIN, {**THIN, "prompt": "anything?"}, {**THIN, "prompt": "news?"},
            {"prompt": "plan it", "completion": "HAS-GOALS\n- Plan: ship", "label": "HAS-GOALS"},
            {"prompt": "plan more", "completion": "HAS-GOALS\n- Plan: write", "label": "HAS-GOALS"}]
    data = "".join(json.dumps(r) + "\n" for r in rows)
    (fx.root / "data").mkdir()
    (fx.root / "data" / "brief.jsonl").write_text(data)
    fx.svc.config = load_config(fx.cfg, {})
    return fx, data


def data_delta(fx: VaultFixture, before: str, after: str, **meta: Any) -> Delta:
    return Delta(task="brief", lever="data", description="data edit", rationale="t", proposer="double",
                 edits=(FileEdit("data/brief.jsonl", sha256_text(before), after),), meta=meta)


def test_a_data_delta_that_fixes_the_audit_is_kept_without_runs(tmp_path: Path) -> None:
    fx, data = data_vault(tmp_path)
    lines = data.splitlines(keepends=True)
    fixed = "".join(lines[2:])  # the two identical thin examples out: 2 of 4 NO-CHANGE
    r = run_cycle(fx.deps([("double", lambda ev: [data_delta(fx, data, fixed, removed=2)])]), "brief")
    assert r.outcome == "kept", r.reason
    assert fx.writer.calls == 0  # nothing ran: a data edit shows only after training
    ev = verified(fx, r.key)
    assert ev.rule["name"] == "data-audit" and ev.detail["audit"]["fixed"] == ["max_class_share"]
    assert ev.detail["audit"]["before"]["imbalanced"] and not ev.detail["audit"]["after"]["imbalanced"]
    assert any("GPU" in n for n in ev.detail["notes"])
    assert fx.text("data/brief.jsonl") == fixed


def test_a_data_delta_that_breaks_a_line_or_exceeds_its_declaration_is_discarded(tmp_path: Path) -> None:
    fx, data = data_vault(tmp_path)
    lines = data.splitlines(keepends=True)
    broken = "".join(lines[2:4]) + '{"prompt": "plan it", "completion": \n' + lines[5]
    r = run_cycle(fx.deps([("double", lambda ev: [data_delta(fx, data, broken, removed=3, added=1)])]), "brief")
    assert r.outcome == "discarded" and "valid_json" in r.reason
    reshaped = "".join(lines[2:5]) + json.dumps({"prompt": "plan more", "answer": "x", "label": "HAS-GOALS"}) + "\n"
    r = run_cycle(fx.deps([("double", lambda ev: [data_delta(fx, data, reshaped, removed=3, added=1)])]), "brief")
    assert r.outcome == "discarded" and "fields" in r.reason
    r = run_cycle(fx.deps([("double", lambda ev: [data_delta(fx, data, "".join(lines[2:]), removed=1)])]), "brief")
    assert r.outcome == "discarded" and "declared" in r.reason
    assert fx.text("data/brief.jsonl") == data


# ---- the loop's hooks ---------------------------------------------------------------------------------


SHORT_NOTES = "#!/bin/sh\necho \"notes $AUTOVAULT_DATE\"\n"  # fewer words, same score: a simpler script


def waiting_then_noise(fx: VaultFixture) -> Any:
    counter = itertools.count()

    def propose(ev: Any) -> list[Delta]:
        if ev.task == "notes":
            return [fx.edit("scripts/notes.sh", SHORT_NOTES, lever="script", task="notes")]
        return [fx.edit("prompts/brief.md", f"Write the morning briefing for {{date}} (v{next(counter)}).\n"
                                            "CONTEXT: {context}\n")]

    return propose


def test_a_delta_awaiting_approval_is_not_counted_against_patience(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    report = run_loop(fx.deps([("double", waiting_then_noise(fx))]), {"brief": 3.5, "notes": 3.0}, target=3.8,
                      patience=1)
    assert [(r.task, r.outcome) for r in report.results] == [("notes", "awaiting_approval"), ("brief", "discarded")]
    assert report.stopped == "1 cycles in a row kept nothing (patience 1)"
    assert fx.text("scripts/notes.sh") != SHORT_NOTES  # still waiting for a human


def test_the_approve_hook_decides_waiting_deltas(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    deps = fx.deps([("double", waiting_then_noise(fx))])
    asked: list[str] = []

    def approve(r: CycleResult) -> CycleResult:
        asked.append(r.key)
        return approve_cycle(deps, r.key)

    report = run_loop(deps, {"brief": 3.5, "notes": 3.0}, target=3.8, patience=1, approve=approve)
    assert report.results[0].outcome == "kept" and asked == [report.results[0].key]
    assert report.results[0].verification is not None  # the verified effect travels with the approved result
    assert fx.text("scripts/notes.sh") == SHORT_NOTES and report.kept == 1


def config_then_prompt(fx: VaultFixture) -> Any:
    """First a vault.yml delta (the collector asks for 40 words), then the same ask in the prompt: measured
    against the current vault.yml the second adds nothing; against the one the loop began with, +1.5."""
    text = fx.cfg.read_text()
    changed = text.replace("collect: scripts/collect.sh", "collect: scripts/collect.sh 'write at least 40 words'", 1)
    config = Delta(task="brief", lever="config", description="collector asks", rationale="t", proposer="double",
                   edits=(FileEdit("vault.yml", sha256_text(text), changed, in_config=True),))
    calls = itertools.count()
    return lambda ev: [config] if next(calls) == 0 else [fx.edit("prompts/brief.md", IMPROVED_PROMPT)]


def approving(deps: CycleDeps) -> Callable[[CycleResult], CycleResult]:
    return lambda r: approve_cycle(deps, r.key)


def reloading(fx: VaultFixture) -> Reload:
    """The one reload (`daemon.bootstrap.reloader`), keeping the test's diagnosis and proposers."""
    again = reloader(fx.svc, fx.messages.append)
    return lambda deps: dataclasses.replace(again(deps), diagnose=deps.diagnose, proposers=deps.proposers)


def test_the_config_is_reloaded_after_a_kept_vault_yml_edit(tmp_path: Path) -> None:
    for reload in (True, False):
        fx = make_vault(tmp_path / str(reload))
        (fx.root / "scripts" / "collect.sh").write_text("#!/bin/sh\necho \"three commits on $AUTOVAULT_DATE $1\"\n")
        deps = fx.deps([("double", config_then_prompt(fx))])
        kwargs: dict[str, Any] = {"reload": reloading(fx)} if reload else {}
        report = run_loop(deps, {"brief": 3.5, "notes": 5.0}, target=6.0, patience=1, max_cycles=2,
                          approve=approving(deps), **kwargs)  # a command line is code: approved at once
        first, second = report.results
        assert first.outcome == "kept", first.reason
        if reload:  # verified against the current file: the prompt's ask adds nothing
            assert second.outcome == "discarded" and second.verification is not None
            assert second.verification.decision.effect == 0
        else:  # the stale config would credit the prompt with what vault.yml already does
            assert second.outcome == "kept" and second.verification is not None
            assert second.verification.decision.effect > 0


def test_disabled_tasks_are_not_reported_as_left_to_try(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    fx.cfg.write_text(set_value(fx.cfg.read_text(), ["tasks", "notes", "enabled"], False))
    fx.svc.config = load_config(fx.cfg, {})
    report = run_loop(fx.deps([("none", lambda ev: [])]), {"brief": 3.0, "notes": 2.0}, target=3.8, patience=5)
    assert [r.task for r in report.results] == ["brief"]
    assert report.stopped == "nothing left to try for brief"


def test_tasks_at_target_with_an_open_static_signature_come_after_the_rest(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)

    def propose(ev: Any) -> list[Delta]:
        return [fx.edit("scripts/notes.sh", SHORT_NOTES, lever="script", task="notes")] if ev.task == "notes" else []

    report = run_loop(fx.deps([("double", propose)]), {"brief": 3.0, "notes": 4.5}, target=3.8, patience=2,
                      open_signatures=lambda t: ["subprocess_loop"] if t == "notes" else [])
    assert [(r.task, r.outcome) for r in report.results] == [("brief", "nothing"), ("notes", "awaiting_approval")]
    assert report.stopped == "nothing left to try for brief"


def test_a_too_small_training_set_says_why_nothing_was_mined(tmp_path: Path) -> None:
    from domain.config import TaskConfig
    from handlers.mining import why_not_mined

    (tmp_path / "Knowledge").mkdir()
    (tmp_path / "Knowledge" / "thin.md").write_text("# Thin\n\n## Key Facts\n- one\n- two\n\n## Related\n- x\n")
    task = TaskConfig.model_validate({"prompt": "p.md", "model": "ollama:x", "inputs": ["Knowledge/*.md"],
                                      "expect": {"sections": ["## Key Facts"], "blocks": {"regex": "^- .+", "min": 5}}})
    why = why_not_mined(tmp_path, task, [], {})
    assert why.startswith("no scored run") and "(1) all fail the task's own contract" in why and "blocks" in why
    (tmp_path / "Knowledge" / "rich.md").write_text("## Key Facts\n" + "".join(f"- fact {i}\n" for i in range(6)))
    assert "1 input '## Key Facts' sections pass" in why_not_mined(tmp_path, task, [], {})

"""The pure parts of verification: guardrails, the samples mapping, simplicity, collector changes."""

from __future__ import annotations

from pathlib import Path

from domain.acceptance import guardrail_regressions, sign_test
from domain.config import JudgeConfig, ResearchConfig, TaskConfig, VaultConfig
from domain.runs import Check
from handlers.verify import plan_for
from handlers.verify_delta import collector_changed, simpler


def checks(**passed: bool) -> list[Check]:
    return [Check(name, ok) for name, ok in passed.items()]


def test_a_net_regression_vetoes_only_when_exact_or_significant() -> None:
    base = {f"d{i}": checks(sections=True, empty=True) for i in range(10)}
    cand = {f"d{i}": checks(sections=i >= 3, empty=True) for i in range(10)}  # 3 of 10 inputs lose a section
    assert guardrail_regressions(base, cand) == ["sections (3 of 10 inputs pass → fail, 0 fail → pass)"]
    assert guardrail_regressions(base, cand, exact=False) == []  # 3 flips: p = 0.125, could be noise
    many = {f"d{i}": checks(sections=False, empty=True) for i in range(10)}
    assert guardrail_regressions(base, many, exact=False) == ["sections (10 of 10 inputs pass → fail, 0 fail → pass)"]
    assert sign_test(3, 3) == 0.125 and sign_test(0, 4) == 1.0


def test_as_many_fixes_as_breaks_is_no_regression_and_soft_checks_never_veto() -> None:
    base = {"a": checks(forbid=True), "b": checks(forbid=False)}
    cand = {"a": checks(forbid=False), "b": checks(forbid=True)}
    assert guardrail_regressions(base, cand) == []
    soft = {"a": [Check("thinking_burn", True, hard=False)]}
    assert guardrail_regressions(soft, {"a": [Check("thinking_burn", False, hard=False)]}) == []


def test_checks_on_an_empty_baseline_passed_vacuously_and_cannot_regress() -> None:
    base = {"a": checks(empty=False, code_fences=True), "b": checks(failed=False, code_fences=True)}
    cand = {"a": checks(empty=True, code_fences=False), "b": checks(failed=True, code_fences=False)}
    assert guardrail_regressions(base, cand) == []


def config(**judge: object) -> VaultConfig:
    return VaultConfig(vault=".", judge=JudgeConfig(**judge), research=ResearchConfig(samples=3, max_samples=9),
                       tasks={"t": TaskConfig(prompt="p.md", model="ollama:x")}, root=Path("."))


def test_samples_are_inputs_as_configured_without_noise_and_raised_with_it() -> None:
    rule, plan = plan_for(config(llm_weight=0), seed=1, floor=None)
    assert (rule.min_inputs, rule.max_inputs, plan.start, plan.step) == (3, 9, 3, 3)
    rule, _ = plan_for(config(llm_weight=0), seed=1, floor=0.0)
    assert (rule.min_inputs, rule.max_inputs) == (3, 9)
    rule, plan = plan_for(config(llm_weight=0), seed=1, floor=0.4)
    assert (rule.min_inputs, rule.max_inputs, rule.min_effect, rule.noise_floor) == (24, 96, 0.4, 0.4)
    rule, _ = plan_for(config(llm_weight=0.5), seed=1, floor=None)
    assert (rule.min_inputs, rule.max_inputs, rule.min_effect) == (24, 96, 0.2)


def test_simpler_means_fewer_words_in_the_edited_files() -> None:
    assert simpler({"p.md": "one two three"}, {"p.md": "one two"})
    assert not simpler({"p.md": "one two"}, {"p.md": "one two"})
    assert not simpler({"p.md": None}, {"p.md": "new file"})
    assert not simpler({}, {})
    assert not simpler({"data/x.jsonl": "a b c"}, {"data/x.jsonl": "a"}, {"prompts/p.md"})
    assert simpler({"prompts/p.md": "a b c"}, {"prompts/p.md": "a"}, {"prompts/p.md"})


def test_the_candidate_collects_on_its_own_only_when_the_collector_changes() -> None:
    base = TaskConfig(prompt="p.md", model="ollama:x", collect="scripts/c.sh --n 10")
    assert not collector_changed(base, base, ["prompts/p.md"])
    assert collector_changed(base, base, ["scripts/c.sh"])
    assert collector_changed(base, base.model_copy(update={"collect": "scripts/c.sh --n 50"}), [])
    assert collector_changed(base, base.model_copy(update={"output_cap": 10}), [])


def test_a_much_quicker_collector_is_recognised() -> None:
    from domain.acceptance import collect_ratio, faster

    base = {"a": 0.40, "b": 0.50, "c": 0.45}
    assert faster(base, {"a": 0.05, "b": 0.06, "c": 0.90})  # median ratio 0.12: one slow outlier is not enough
    assert not faster(base, {"a": 0.38, "b": 0.45, "c": 0.40})
    assert collect_ratio({"a": 0.001}, {"a": 0.0001}) == float("inf")  # too quick to measure: never "faster"
    assert not faster({}, {})


def test_a_candidate_config_validates_against_the_shadow_wherever_vault_yml_sits(tmp_path: Path) -> None:
    import pytest

    from adapters.config_loader import ConfigError, load_config
    from adapters.workspace import ShadowWorkspace
    from handlers.verify_delta import load_config_text

    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "a.md").write_text("hi {context}")
    (tmp_path / "conf").mkdir()
    yml = "vault: {v}\ntasks:\n  a:\n    prompt: {p}\n    model: ollama:x\n"
    for where, vault in ((tmp_path, "."), (tmp_path / "conf", "..")):
        (where / "vault.yml").write_text(yml.format(v=vault, p="prompts/a.md"))
        live = load_config(where / "vault.yml", {})
        with ShadowWorkspace.create(live.root) as ws:
            ws.overlay({"prompts/b.md": "made by the same delta"})
            cfg = load_config_text(yml.format(v=vault, p="prompts/b.md"), live, ws.root, {}, load=load_config)
            assert cfg.tasks["a"].prompt == "prompts/b.md"
            with pytest.raises(ConfigError) as info:
                load_config_text(yml.format(v=vault, p="prompts/c.md"), live, ws.root, {}, load=load_config)
            assert str(info.value).startswith(f"{live.source}:4: tasks.a.prompt")  # names the live file
        assert not (tmp_path / "prompts" / "b.md").exists()
        assert sorted(p.name for p in where.iterdir() if p.name.startswith(".autovault")) == []


def test_a_pool_delta_compares_the_runs_that_change_hands() -> None:
    from handlers.verify_delta import pool_slots

    assert pool_slots(["a", "b", "coder"], ["a", "b"]) == (["coder"], ["a", "b"])
    assert pool_slots(["a"], ["a", "new"]) == (["a"], ["new"])
    assert pool_slots(["a", "old"], ["a", "new"]) == (["old"], ["new"])
    assert pool_slots(["a", "b"], ["a", "b"]) == ([], [])

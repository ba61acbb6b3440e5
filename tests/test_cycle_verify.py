"""Cycle and verification end to end: real collector subprocesses, real SQLite, a deterministic model double."""

from __future__ import annotations

from pathlib import Path

from domain.aggregates import Cycle
from domain.delta import Delta, FileEdit
from domain.ids import sha256_text
from handlers.baseline import baseline_hash
from handlers.cycle import approve_cycle, run_cycle
from projections.quality import task_history, task_quality
from testbed.cycle_vault import BRIEF_PROMPT, IMPROVED_PROMPT, NOISE_PROMPT, live_state, make_vault


def events(fx: object, key: str) -> list[str]:
    store = fx.svc.store  # type: ignore[attr-defined]
    cycle = store.get_cycle(key)
    return [type(e).__name__ for e in store.events.get(cycle.id)]


def test_an_improving_delta_is_kept_applied_and_recorded(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    delta = fx.edit("prompts/brief.md", IMPROVED_PROMPT, description="ask for 40 words")
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert r.outcome == "kept", r.reason
    assert fx.text("prompts/brief.md") == IMPROVED_PROMPT
    assert events(fx, r.key) == ["Started", "Diagnosed", "Proposed", "Verified", "Kept"]
    v = r.verification
    assert v is not None and v.decision.effect == 1.5 and v.decision.n_inputs == 3
    assert sorted(v.baseline) == sorted(v.candidate) == v.inputs  # paired by input id (the date)
    assert v.cost.model_calls == 9 and v.noise_measured  # 3 inputs × 2 arms + 3 A/A runs
    cycle = fx.svc.store.get_cycle(r.key)
    assert cycle is not None
    verified = next(e for e in fx.svc.store.events.get(cycle.id)
                if isinstance(e, Cycle.Verified))  # type: ignore[attr-defined]
    assert verified.detail["samples"]["candidate"] == {d: [5.0] for d in v.inputs}
    assert verified.cost["model_calls"] == 9 and verified.rule["min_inputs"] == 3
    fx.svc.projections.catch_up()
    from projections.ledger import ledger_rows
    with fx.svc.engine_connect() as conn:
        kinds = [(row.kind, row.decision) for row in ledger_rows(conn)]
    assert ("Changed", "cycle") in kinds and ("Kept", "kept") in kinds


def test_every_arm_run_is_on_the_record_and_none_counts_as_live_quality(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    live = fx.svc.runner.run("brief", fx.svc.config.task("brief"))
    fx.svc.store.record_run(live)
    fx.svc.projections.catch_up()
    with fx.svc.engine_connect() as conn:
        before = task_quality(conn, "brief")
    delta = fx.edit("prompts/brief.md", IMPROVED_PROMPT, description="ask for 40 words")
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert r.outcome == "kept" and r.verification is not None
    fx.svc.projections.catch_up()
    with fx.svc.engine_connect() as conn:
        arms = task_history(conn, "brief", 100, cycle=r.key)
        shown = task_history(conn, "brief", 100)
        after = task_quality(conn, "brief")
    assert len(arms) == 9 and {a.source for a in arms} == {"verify"}  # 3 inputs × 2 arms + 3 A/A runs
    decided = sorted(s for a in arms for s in (x.score for x in a.scores))
    recorded = sorted([*(x for xs in r.verification.baseline.values() for x in xs),
                       *(x for xs in r.verification.candidate.values() for x in xs)])
    assert decided[-3:] == recorded[-3:] == [5.0, 5.0, 5.0]  # the candidate's samples, as the decision used them
    assert [h.run_id for h in shown] == [live.run_id]  # `history` shows live runs unless asked
    assert before is not None and after is not None and (after.runs, after.scored_runs) == (before.runs, 0)
    assert fx.svc.history.views("brief") and all(v.run_id == live.run_id for v in fx.svc.history.views("brief"))


def test_a_no_effect_delta_is_discarded_and_no_live_file_is_touched(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    before = live_state(fx.root)
    delta = fx.edit("prompts/brief.md", NOISE_PROMPT, description="say please")
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert r.outcome == "discarded", r.reason
    assert "not good enough" in r.reason or "unclear" in r.reason
    assert live_state(fx.root) == before  # hash and mtime of every live file: verification ran in shadows


def test_an_identical_delta_is_never_verified_twice(tmp_path: Path, store_url: str) -> None:
    fx = make_vault(tmp_path, store_url=store_url)  # SQLite file and PostgreSQL
    delta = fx.edit("prompts/brief.md", NOISE_PROMPT)
    first = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert first.outcome == "discarded"
    calls = fx.writer.calls
    again = Delta(task="brief", lever="prompt", description="same change, other words", rationale="another reason",
                  proposer="other", edits=delta.edits)
    second = run_cycle(fx.deps([("other", lambda ev: [again])]), "brief")
    assert second.outcome == "nothing"
    assert "already verified in cycle " + first.key in second.rejected[0]
    assert fx.writer.calls == calls
    assert fx.svc.cycles.verified_in(delta.content_hash, baseline_hash(fx.svc.config, ["brief"])) == first.key
    assert events(fx, second.key) == ["Started", "Diagnosed", "Rejected", "Discarded"]


def test_the_noise_floor_is_measured_once_per_baseline_and_reused(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    a = run_cycle(fx.deps([("d", lambda ev: [fx.edit("prompts/brief.md", NOISE_PROMPT)])]), "brief")
    b = run_cycle(fx.deps([("d", lambda ev: [fx.edit("prompts/brief.md", NOISE_PROMPT + "\n")])]), "brief")
    assert a.verification and b.verification
    assert a.verification.noise_measured and not b.verification.noise_measured
    assert a.verification.noise_key == b.verification.noise_key
    assert b.verification.cost.model_calls == 6  # no A/A runs the second time


def test_a_config_delta_that_breaks_a_hard_check_is_vetoed(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    text = fx.cfg.read_text()
    # A longer answer (+1.5 on min_words) from a model that fences its prose (code_fences, a hard check).
    swapped = text.replace("model: ollama:writer\n    options: {num_predict: 200}",
                           "model: ollama:writer-fenced\n    options: {num_predict: 200}", 1)
    prompt = fx.edit("prompts/brief.md", IMPROVED_PROMPT).edits[0]
    delta = Delta(task="brief", lever="model", description="swap + ask", rationale="t", proposer="double",
                  edits=(FileEdit("vault.yml", sha256_text(text), swapped, in_config=True), prompt))
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert r.outcome == "discarded"
    assert r.verification and r.verification.guardrails == ["code_fences (3 of 3 inputs pass → fail, 0 fail → pass)"]
    assert fx.cfg.read_text() == text and fx.text("prompts/brief.md") == BRIEF_PROMPT


def test_an_invalid_candidate_config_is_rejected_before_verification(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    text = fx.cfg.read_text()
    broken = text.replace("num_predict: 200", "num_predict: lots")
    delta = Delta(task="brief", lever="config", description="bad knob", rationale="t", proposer="double",
                  edits=(FileEdit("vault.yml", sha256_text(text), broken, in_config=True),))
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert r.outcome == "nothing"
    assert "does not validate" in r.rejected[0] and "num_predict" in r.rejected[0]
    assert fx.writer.calls == 0


def test_a_config_delta_that_helps_is_applied_to_vault_yml(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    text = fx.cfg.read_text()
    # The collector's command line gains an argument the script echoes: the candidate collects on its own.
    script = "#!/bin/sh\necho \"three commits landed on $AUTOVAULT_DATE $1\"\n"
    live_script = fx.root / "scripts" / "collect.sh"
    live_script.write_text(script)
    changed = text.replace("collect: scripts/collect.sh", "collect: scripts/collect.sh 'write at least 40 words'", 1)
    delta = Delta(task="brief", lever="config", description="collector asks for length", rationale="t",
                  proposer="double", edits=(FileEdit("vault.yml", sha256_text(text), changed, in_config=True),))
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert r.outcome == "awaiting_approval" and fx.writer.calls == 0  # a command line is code: approval first
    r = approve_cycle(fx.deps([]), r.key)
    assert r.outcome == "kept", r.reason
    assert fx.cfg.read_text() == changed


def test_proposer_errors_and_failures_are_events(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)

    def broken(_ev: object) -> list[Delta]:
        raise RuntimeError("model answered\nnonsense")

    r = run_cycle(fx.deps([("broken", broken)]), "brief")
    assert r.outcome == "nothing" and "RuntimeError: model answered nonsense" in r.rejected[0]
    deps = fx.deps([])
    deps.diagnose = lambda task: (_ for _ in ()).throw(OSError("disk gone"))
    failed = run_cycle(deps, "brief")
    assert failed.outcome == "failed" and failed.reason == "OSError: disk gone"
    assert events(fx, failed.key) == ["Started", "Failed"]


def test_propose_only_stops_after_the_proposal_with_a_diff(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    before = live_state(fx.root)
    delta = fx.edit("prompts/brief.md", IMPROVED_PROMPT)
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief", propose_only=True)
    assert r.outcome == "proposed"
    assert "+Write the morning briefing for {date}. Write at least 40 words." in r.diff
    assert fx.writer.calls == 0 and live_state(fx.root) == before
    assert events(fx, r.key) == ["Started", "Diagnosed", "Proposed"]


def test_an_equal_score_with_a_shorter_prompt_is_kept(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    shorter = "Morning briefing for {date}.\nCONTEXT: {context}\n"
    r = run_cycle(fx.deps([("double", lambda ev: [fx.edit("prompts/brief.md", shorter)])]), "brief")
    assert r.outcome == "kept" and r.verification and r.verification.simpler
    assert r.verification.decision.effect == 0 and "simpler" in r.verification.decision.reason
    assert fx.text("prompts/brief.md") == shorter


def test_a_recorded_verification_replays_to_the_same_decision(tmp_path: Path) -> None:
    from domain.acceptance import Rule, decide

    fx = make_vault(tmp_path)
    r = run_cycle(fx.deps([("d", lambda ev: [fx.edit("prompts/brief.md", IMPROVED_PROMPT)])]), "brief")
    cycle = fx.svc.store.get_cycle(r.key)
    assert cycle is not None
    ev = next(e for e in fx.svc.store.events.get(cycle.id) if isinstance(e, Cycle.Verified))  # type: ignore[attr-defined]
    samples = ev.detail["samples"]
    again = decide(samples["baseline"], samples["candidate"], Rule.from_dict(ev.rule),
                   guardrails_regressed=ev.guardrails, simpler=ev.detail["simpler"])
    assert (again.verdict, again.effect, list(again.interval)) == (ev.decision, ev.effect, ev.interval)


def test_seed_faults_fixed_through_vault_yml_with_the_flawed_models(tmp_path: Path) -> None:
    """The seed's morning-briefing: qwen3 thinks ~400 words, num_predict 300 leaves nothing to read; raising
    num_predict and turning thinking off (one vault.yml edit) is a verified keep."""
    from adapters.backends.registry import ModelRouter
    from daemon.bootstrap import bootstrap
    from testbed.doubles.flawed_models import FlawedModels
    from testbed.servers.responder_backend import ResponderBackend

    fx = make_vault(tmp_path)
    text = fx.cfg.read_text().replace("model: ollama:writer\n    options: {num_predict: 200}",
                                      "model: ollama:qwen3:8b\n    options: {num_predict: 300}", 1)
    fx.cfg.write_text(text)
    router = ModelRouter()
    router.register("ollama", ResponderBackend(FlawedModels(seed=1)))
    fx.svc.close()
    fx.svc = bootstrap(fx.cfg, env={}, models=router)
    fixed = text.replace("options: {num_predict: 300}", "options: {num_predict: 600, think: false}", 1)
    delta = Delta(task="brief", lever="config", description="brief: num_predict 300→600, think false",
                  rationale="thinking ate the budget", proposer="double",
                  edits=(FileEdit("vault.yml", sha256_text(text), fixed, in_config=True),))
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert r.outcome == "kept", r.reason
    assert r.verification is not None and r.verification.decision.effect >= 1.5
    assert fx.cfg.read_text() == fixed


def test_a_noisy_task_gets_a_noise_floor_and_noise_is_not_kept(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    text = fx.cfg.read_text().replace("model: ollama:writer\n    options", "model: ollama:writer-noisy\n    options", 1)
    fx.cfg.write_text(text)
    from adapters.backends.registry import ModelRouter
    from daemon.bootstrap import bootstrap

    router = ModelRouter()
    router.register("ollama", fx.writer)
    fx.svc.close()
    fx.svc = bootstrap(fx.cfg, env={}, models=router)
    outcomes = []
    for i in range(4):
        wording = f"Write the morning briefing for {{date}}, version {i} of it.\nCONTEXT: {{context}}\n"
        r = run_cycle(fx.deps([("d", lambda ev, w=wording: [fx.edit("prompts/brief.md", w)])]), "brief")
        outcomes.append(r.outcome)
        assert r.verification is not None
        assert r.verification.noise_floor > 0.3  # the coin-flip model is far noisier than min_effect
        assert r.verification.rule.min_effect == r.verification.noise_floor
        assert "raised" in r.verification.notes[0]
        assert r.verification.decision.n_inputs >= 24 and r.verification.rule.min_inputs == 24  # noisy: 24/96
        assert r.verification.guardrails == []  # a min_words check flipping at random vetoes nothing
    assert outcomes == ["discarded"] * 4


def test_a_delta_that_feeds_a_starving_consumer_is_kept(tmp_path: Path) -> None:
    """The drafter/writer case: the brief meets its own contract, but its reader requires 40 words."""
    from adapters.backends.registry import ModelRouter
    from daemon.bootstrap import bootstrap

    fx = make_vault(tmp_path)
    (fx.root / "prompts" / "reader.md").write_text("Expand the brief: {inputs}\n")
    text = fx.cfg.read_text().replace("    expect: {min_words: 30}\n  notes:", "  notes:", 1)
    text += ("  reader:\n    prompt: prompts/reader.md\n    model: ollama:writer\n"
             "    inputs: [\"Briefs/*.md\"]\n    requires: {min_words: 40}\n")
    fx.cfg.write_text(text)
    router = ModelRouter()
    router.register("ollama", fx.writer)
    fx.svc.close()
    fx.svc = bootstrap(fx.cfg, env={}, models=router)
    assert fx.svc.config.tasks["brief"].expect.min_words is None
    r = run_cycle(fx.deps([("d", lambda ev: [fx.edit("prompts/brief.md", IMPROVED_PROMPT)])]), "brief")
    assert r.outcome == "kept", r.reason
    assert r.verification is not None and r.verification.decision.effect == 1.5


def test_dropping_a_model_that_fails_the_format_from_the_pool_is_kept(tmp_path: Path) -> None:
    """The seed's blog-writer: the coder model in the pool writes the wrong thing; removing it helps."""
    from adapters.backends.registry import ModelRouter
    from daemon.bootstrap import bootstrap

    fx = make_vault(tmp_path)
    pool = "    candidates: [ollama:writer-fenced, ollama:writer]\n"
    text = fx.cfg.read_text().replace("    options: {num_predict: 200}\n", "    options: {num_predict: 200}\n" + pool, 1)
    fx.cfg.write_text(text)
    router = ModelRouter()
    router.register("ollama", fx.writer)
    fx.svc.close()
    fx.svc = bootstrap(fx.cfg, env={}, models=router)
    dropped = text.replace(pool, "    candidates: [ollama:writer]\n")
    delta = Delta(task="brief", lever="candidates", description="drop writer-fenced from the pool", rationale="t",
                  proposer="double", edits=(FileEdit("vault.yml", sha256_text(text), dropped, in_config=True),))
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert r.outcome == "kept", r.reason
    # The runs that change hands: the dropped model against the pool that takes them over.
    assert r.verification is not None and r.verification.decision.effect == 1.0
    assert fx.cfg.read_text() == dropped


def test_adding_a_missing_postprocessor_is_an_improvement_that_waits_for_approval(tmp_path: Path) -> None:
    """The seed's lesson-distiller: declared outputs never written until a postprocessor exists."""
    from adapters.backends.registry import ModelRouter
    from daemon.bootstrap import bootstrap

    fx = make_vault(tmp_path)
    text = fx.cfg.read_text().replace('outputs: ["Notes/{date}.md"]', 'outputs: ["Notes/*.md"]')
    fx.cfg.write_text(text)
    router = ModelRouter()
    router.register("ollama", fx.writer)
    fx.svc.close()
    fx.svc = bootstrap(fx.cfg, env={}, models=router)
    script = '#!/bin/sh\ncat > "Notes/$AUTOVAULT_DATE.md"\n'
    with_post = text.replace("    prompt: prompts/notes.md\n", "    prompt: prompts/notes.md\n    postprocess: scripts/post.sh\n")
    delta = Delta(task="notes", lever="postprocess", description="add a postprocessor", rationale="dead_task",
                  proposer="double", edits=(FileEdit("scripts/post.sh", None, script),
                                            FileEdit("vault.yml", sha256_text(text), with_post, in_config=True)))
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "notes")
    assert r.outcome == "awaiting_approval", r.reason
    assert r.verification is None and fx.writer.calls == 0  # nothing of it ran before approval
    r = approve_cycle(fx.deps([]), r.key)
    v = r.verification
    assert r.outcome == "kept" and v is not None and v.decision.effect == 1.0
    day = v.inputs[0]
    assert (fx.root / "scripts" / "post.sh").exists() and not (fx.root / "Notes" / f"{day}.md").exists()

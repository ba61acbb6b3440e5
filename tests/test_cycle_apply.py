"""Applying kept deltas: refusals (escape, not editable, human edits), approval gating, git, crash safety."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adapters.atomic import HashConflict, recover
from adapters.eventstore import VaultStore
from adapters.git import last_message
from daemon.cli import main
from domain.aggregates import Task
from domain.delta import Delta, FileEdit
from domain.ids import sha256_text
from handlers.apply import OutOfScope, apply_delta, apply_root
from handlers.apply_journal import recover_applies
from handlers.cycle import CycleDeps, approve_cycle, reject_cycle, run_cycle, verify_cycle
from testbed.cycle_vault import BRIEF_PROMPT, IMPROVED_PROMPT, NOISE_PROMPT, VaultFixture, live_state, make_vault

REPO = Path(__file__).resolve().parents[1]
LONG_COLLECTOR = '#!/bin/sh\necho "three commits landed on $AUTOVAULT_DATE; write at least 40 words"\n'


def test_a_path_escape_is_refused_and_recorded(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    delta = Delta(task="brief", lever="prompt", description="escape", rationale="t", proposer="evil",
                  edits=(FileEdit("../outside.md", None, "pwned"),))
    r = run_cycle(fx.deps([("evil", lambda ev: [delta])]), "brief")
    assert r.outcome == "nothing" and "path escape" in r.rejected[0]
    assert not (tmp_path / "outside.md").exists()
    with pytest.raises(OutOfScope):
        apply_delta(delta, fx.svc.config, fx.svc.store, "c", fx.svc.outside)
    assert not (tmp_path / "outside.md").exists()


def test_a_non_editable_path_is_refused_and_recorded(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    delta = fx.edit("Briefs/2026-01-01.md", "fake output")
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert r.outcome == "nothing" and "not editable" in r.rejected[0]
    assert not (fx.root / "Briefs" / "2026-01-01.md").exists()
    in_config_elsewhere = Delta(task="brief", lever="config", description="x", rationale="t", proposer="d",
                                edits=(FileEdit("vault/prompts/brief.md", None, "x", in_config=True),))
    with pytest.raises(OutOfScope, match=r"must name vault\.yml"):
        apply_delta(in_config_elsewhere, fx.svc.config, fx.svc.store, "c", fx.svc.outside)


def test_a_human_edit_between_propose_and_verify_is_never_overwritten(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    delta = fx.edit("prompts/brief.md", IMPROVED_PROMPT)
    proposed = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief", propose_only=True)
    human = "Write the morning briefing for {date}. Write at least 40 words, warmly.\nCONTEXT: {context}\n"
    (fx.root / "prompts" / "brief.md").write_text(human)
    with pytest.raises(HashConflict):
        apply_delta(delta, fx.svc.config, fx.svc.store, proposed.key, fx.svc.outside)
    # `verify CYCLE` now measures the human's state against the recorded baseline, and writes nothing.
    r = verify_cycle(fx.deps([]), proposed.key)
    assert r.outcome == "kept" and r.verification and r.verification.decision.effect == 1.5
    assert fx.text("prompts/brief.md") == human


def _meddling(fx: VaultFixture, deps: CycleDeps, human: str) -> None:
    """Deps whose progress hook plays a human editing the live prompt once, in the middle of verification."""
    done: list[bool] = []

    def meddle(message: str) -> None:
        if "A/A" in message and not done:
            done.append(True)
            (fx.root / "prompts" / "brief.md").write_text(human)

    deps.verify = dataclasses.replace(deps.verify, progress=meddle)


def test_a_conflicting_human_edit_during_verification_is_not_overwritten(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    delta = fx.edit("prompts/brief.md", IMPROVED_PROMPT)
    deps = fx.deps([("double", lambda ev: [delta])])
    human = "A human rewrote this prompt. {context}\n"
    _meddling(fx, deps, human)
    r = run_cycle(deps, "brief")
    assert r.outcome == "discarded" and "never overwritten" in r.reason and "does not merge" in r.reason
    assert fx.text("prompts/brief.md") == human
    # The next cycle starts from the new file: the old delta is stale and refused, never applied.
    again = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert again.outcome == "nothing" and "older file" in again.rejected[0]


def test_a_human_edit_that_merges_is_kept_and_the_merge_verified_again(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    delta = fx.edit("prompts/brief.md", IMPROVED_PROMPT)
    deps = fx.deps([("double", lambda ev: [delta])])
    human = BRIEF_PROMPT + "Sign it as the vault.\n"
    _meddling(fx, deps, human)
    r = run_cycle(deps, "brief")
    assert r.outcome == "kept", r.reason
    merged = IMPROVED_PROMPT + "Sign it as the vault.\n"
    assert fx.text("prompts/brief.md") == merged  # the human's line and the delta's line, both
    assert r.delta is not None and "rebased" in r.delta.description
    cycle = fx.svc.store.get_cycle(r.key)
    assert cycle is not None
    kinds = [type(e).__name__ for e in fx.svc.store.events.get(cycle.id)]
    assert kinds == ["Started", "Diagnosed", "Proposed", "Verified", "Proposed", "Verified", "Kept"]


def test_script_deltas_wait_for_approval_then_approve_applies(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    delta = fx.edit("scripts/collect.sh", LONG_COLLECTOR, lever="script")
    old = fx.text("scripts/collect.sh")
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert r.outcome == "awaiting_approval" and "scripts/collect.sh" in r.reason
    assert fx.text("scripts/collect.sh") == old
    done = approve_cycle(fx.deps([]), r.key)
    assert done.outcome == "kept" and fx.text("scripts/collect.sh") == LONG_COLLECTOR
    assert os.access(fx.root / "scripts" / "collect.sh", os.X_OK)  # the mode survives the atomic write


def test_reject_drops_a_waiting_delta(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    delta = fx.edit("scripts/collect.sh", LONG_COLLECTOR, lever="script")
    old = fx.text("scripts/collect.sh")
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    fx.svc.close()
    code = main(["--config", str(fx.cfg), "reject", r.key])
    assert code == 0 and fx.text("scripts/collect.sh") == old
    fx2 = make_vault_again(fx)
    cycle = fx2.svc.store.get_cycle(r.key)
    assert cycle is not None and cycle.phase == "discarded"
    with pytest.raises(ValueError, match="not awaiting approval"):
        approve_cycle(fx2.deps([]), r.key)
    with pytest.raises(ValueError, match="only a proposed or awaiting"):
        reject_cycle(fx2.svc.store, r.key)


def make_vault_again(fx: VaultFixture) -> VaultFixture:
    from adapters.backends.registry import ModelRouter
    from daemon.bootstrap import bootstrap

    router = ModelRouter()
    router.register("ollama", fx.writer)
    fx.svc = bootstrap(fx.cfg, env={}, models=router)
    return fx


def test_a_kept_delta_is_a_git_commit_naming_the_cycle(tmp_path: Path) -> None:
    fx = make_vault(tmp_path, git=True)
    (fx.root / "notes-of-the-user.md").write_text("not ours to commit\n")
    delta = fx.edit("prompts/brief.md", IMPROVED_PROMPT, description="ask for 40 words")
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert r.outcome == "kept" and r.commit
    message = last_message(tmp_path)
    assert r.key in message and "ask for 40 words" in message
    shown = subprocess.run(["git", "show", "--name-only", "--format=", "HEAD"], cwd=tmp_path, capture_output=True,
                           text=True, check=True).stdout.split()
    assert shown == ["vault/prompts/brief.md"]


def test_a_vault_in_an_ignored_folder_is_kept_without_a_commit(tmp_path: Path) -> None:
    """`make demo`'s case: a scratch copy of a vault under a repository's ignored `.autovault/`."""
    fx = make_vault(tmp_path)
    (tmp_path / ".gitignore").write_text("vault/\nstate/\n")
    for args in (["init", "-q"], ["add", ".gitignore", "vault.yml"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    delta = fx.edit("prompts/brief.md", IMPROVED_PROMPT, description="ask for 40 words")
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert (r.outcome, r.commit) == ("kept", None), r.reason
    assert fx.text("prompts/brief.md") == IMPROVED_PROMPT and last_message(tmp_path) == "init"


def test_a_commit_git_refuses_leaves_the_delta_kept_and_says_so(tmp_path: Path) -> None:
    fx = make_vault(tmp_path, git=True)
    (tmp_path / ".git" / "index.lock").write_text("")  # another git process holds the index
    delta = fx.edit("prompts/brief.md", IMPROVED_PROMPT, description="ask for 40 words")
    r = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief")
    assert r.outcome == "kept" and r.commit is None and "not committed: " in r.reason and "index.lock" in r.reason
    assert fx.text("prompts/brief.md") == IMPROVED_PROMPT
    cycle = fx.svc.store.get_cycle(r.key)
    assert cycle is not None and cycle.phase == "kept"


CRASHER = textwrap.dedent("""
    import os, sys
    from adapters.backends.registry import ModelRouter
    from adapters.config_loader import load_config
    from adapters.eventstore import VaultStore
    from domain.delta import Delta, FileEdit
    from daemon.bootstrap import outside
    from handlers.apply import apply_delta
    cfg = load_config(sys.argv[1], {})
    edits = tuple(FileEdit(p, h, t) for p, h, t in zip(sys.argv[2::3], sys.argv[3::3], sys.argv[4::3]))
    delta = Delta(task="brief", lever="mixed", description="two files", rationale="t", proposer="t", edits=edits)
    def crash(rel):
        os._exit(9)  # killed after the first file landed, like a power cut
    with VaultStore(cfg.store) as store:
        apply_delta(delta, cfg, store, "crash-cycle", outside(), git=False, on_written=crash)
""")


def test_a_crash_mid_apply_leaves_every_file_old_or_new_and_recovers(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    fx.svc.close()
    new = {"prompts/brief.md": IMPROVED_PROMPT, "prompts/notes.md": "Notes, at least 40 words. {context}\n"}
    old = {p: fx.text(p) for p in new}
    args = [x for p, t in new.items() for x in (p, sha256_text(old[p]), t)]
    crasher = tmp_path / "crash.py"
    crasher.write_text(CRASHER)
    proc = subprocess.run([sys.executable, str(crasher), str(fx.cfg), *args], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    states = [fx.text(p) for p in new]
    assert states[0] == new["prompts/brief.md"] and states[1] == old["prompts/notes.md"]  # one new, one old
    assert all(fx.text(p) in (old[p], new[p]) for p in new)
    assert recover(apply_root(fx.svc.config)).pending  # files-only recovery leaves a journal with events to record
    with VaultStore(fx.svc.config.store) as store:
        recovered = recover_applies(apply_root(fx.svc.config), store, fx.svc.outside.git)  # what bootstrap runs
        changed = [e.path for e in store.events.get(store.get_task("brief").id)  # type: ignore[union-attr]
                   if isinstance(e, Task.Changed)]  # type: ignore[attr-defined]
    assert recovered.finished == ["crash-cycle"]  # the journal sits above vault and vault.yml
    assert all(fx.text(p) == new[p] for p in new)
    assert changed == list(new)  # both files recorded, by the recovery, once


def test_ledger_tsv_has_one_row_per_decided_cycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fx = make_vault(tmp_path)
    kept = run_cycle(fx.deps([("d", lambda ev: [fx.edit("prompts/brief.md", IMPROVED_PROMPT,
                                                        description="ask for 40 words")])]), "brief")
    dropped = run_cycle(fx.deps([("d", lambda ev: [fx.edit("prompts/notes.md", NOISE_PROMPT, task="notes",
                                                           description="say please")])]), "notes")
    fx.svc.close()
    capsys.readouterr()
    assert main(["--config", str(fx.cfg), "ledger", "--tsv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["cycle", "task", "lever", "baseline", "candidate", "effect", "decision",
                                    "description"]
    rows = [line.split("\t") for line in lines[1:]]
    assert [(r[0], r[1], r[2], r[6]) for r in rows] == [(kept.key, "brief", "prompt", "kept"),
                                                        (dropped.key, "notes", "prompt", "discarded")]
    assert rows[0][3:6] == ["3.500", "5.000", "1.500"]
    assert rows[0][7] == "ask for 40 words" and rows[1][7] == "say please"
    assert main(["--config", str(fx.cfg), "ledger", "--json"]) == 0
    assert kept.key in capsys.readouterr().out


def test_no_live_write_while_a_keep_is_verified(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    snapshots: list[dict[str, tuple[str, int]]] = []
    before = live_state(fx.root)
    delta = fx.edit("prompts/brief.md", IMPROVED_PROMPT)
    deps = fx.deps([("double", lambda ev: [delta])])
    deps.verify = dataclasses.replace(deps.verify, progress=lambda _m: snapshots.append(live_state(fx.root)))
    r = run_cycle(deps, "brief")
    assert r.outcome == "kept" and len(snapshots) > 5
    assert all(s == before for s in snapshots[:-1])  # every step before the decision saw the live vault untouched
    assert fx.text("prompts/brief.md") == IMPROVED_PROMPT and BRIEF_PROMPT != IMPROVED_PROMPT


def test_a_git_commit_leaves_out_paths_outside_the_repository(tmp_path: Path) -> None:
    from adapters.git import commit_paths, repo_root

    repo = tmp_path / "vault"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "p.md").write_text("new\n")
    (tmp_path / "vault.yml").write_text("outside\n")
    assert repo_root(repo) == repo.resolve()
    assert commit_paths(repo, [tmp_path / "vault.yml"], "cycle x") is None
    sha = commit_paths(repo, [repo / "p.md", tmp_path / "vault.yml"], "autovault: p (cycle x)")
    assert sha and last_message(repo) == "autovault: p (cycle x)"
    assert repo_root(tmp_path) is None or repo_root(tmp_path) != repo.resolve()

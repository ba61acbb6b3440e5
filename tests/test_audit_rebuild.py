"""Rebuilding the vault as of any position: from stored texts, from a cycle's delta, from recorded diffs walked
back from the live file — each text checked against its hash, a gap an error naming the file."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.bootstrap import audit_deps
from domain.delta import unified_diff
from domain.ids import sha256_text
from domain.patch import PatchError, apply_diff
from handlers.audit import AuditDeps, task_changes, vault_at
from handlers.rebuild import RebuildError, VaultAt
from tests.audit_vault import (
    BROKEN,
    BROKEN_REWORDED,
    GOALS,
    NO_GOALS,
    REWORDED,
    AuditVault,
    make_audit_vault,
    regression_history,
)


def edited(rng: random.Random, lines: list[str]) -> list[str]:
    out = list(lines)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.35 and out:
            del out[rng.randrange(len(out))]
        elif op < 0.75:
            out.insert(rng.randint(0, len(out)), f"new {rng.randint(0, 99)}\n")
        elif out:
            out[rng.randrange(len(out))] = "changed\n"
    return out


def test_a_recorded_diff_applies_forwards_and_backwards_on_many_shapes_of_edit() -> None:
    rng = random.Random(5)
    for _ in range(800):
        a = [f"line {rng.randint(0, 6)}\n" for _ in range(rng.randint(0, 14))]
        b = edited(rng, a)
        before = "".join(a) if a or rng.random() < 0.5 else None
        after = "".join(b)
        diff = unified_diff("f", before, after)
        if not diff:
            continue  # no lines changed (an empty file created): nothing to apply
        assert apply_diff(before, diff) == after
        assert apply_diff(after, diff, reverse=True) == before


def test_a_diff_that_does_not_fit_is_refused() -> None:
    diff = unified_diff("f", "a\nb\nc\n", "a\nB\nc\n")
    with pytest.raises(PatchError, match="context does not match"):
        apply_diff("a\nx\nc\n", diff)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> AuditVault:
    return regression_history(make_audit_vault(tmp_path_factory.mktemp("rebuild")))


def rebuilt(deps: AuditDeps, blob: Callable[[str], str | None]) -> VaultAt:
    at = vault_at(deps, task_changes(deps, "brief"))
    at.blob = blob
    return at


EXPECTED = {"start": NO_GOALS, "delta": GOALS, "reword": REWORDED, "break": BROKEN, "late-reword": BROKEN_REWORDED}


@pytest.mark.parametrize("hidden", ["nothing", "file texts", "file texts and deltas"])
def test_the_prompt_is_rebuilt_as_of_every_change(history: AuditVault, hidden: str) -> None:
    deps = audit_deps(history.svc)
    texts = {sha256_text(t) for t in EXPECTED.values()}
    deltas = {c.cycle for c in task_changes(deps, "brief") if c.cycle}

    def blob(digest: str) -> str | None:
        if hidden != "nothing" and digest in texts:
            return None  # the daemon was not watching: no stored text, only diffs (and the cycle's delta)
        found = history.svc.store.blobs.get_text(digest)
        if hidden == "file texts and deltas" and found and any(f'"{d}"' in found for d in deltas):
            return None
        return found

    at = rebuilt(deps, blob)
    if hidden == "file texts and deltas":
        at.delta_texts = lambda _cycle: []
    marks = {"start": 1, **{k: history.marks[k] for k in ("delta", "reword", "break", "late-reword")}}
    for name, position in marks.items():
        assert at.files_at(position)["prompts/brief.md"] == EXPECTED[name], name


def test_a_version_nothing_leads_to_is_an_error_naming_the_file(history: AuditVault, tmp_path: Path) -> None:
    deps = audit_deps(history.svc)
    at = rebuilt(deps, lambda _digest: None)  # no blobs at all: no diffs either
    at.delta_texts = lambda _cycle: []
    assert at.files_at(history.marks["late-reword"])["prompts/brief.md"] == BROKEN_REWORDED  # the live file
    with pytest.raises(RebuildError, match=r"prompts/brief.md: no text on record for version [0-9a-f]{12}"):
        at.files_at(history.marks["break"])


def test_vault_yml_is_rebuilt_from_its_recorded_versions(history: AuditVault) -> None:
    at = vault_at(audit_deps(history.svc), [])
    assert at.config_at(history.marks["reload-late"]) is None  # that version is the live one
    earlier = at.config_at(history.marks["break"])
    assert earlier is not None and "num_predict: 600" in earlier and earlier != history.cfg.read_text()

"""Shadow workspaces are real, private copies: writing in one never reaches the live vault."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from adapters.atomic import PathEscape
from adapters.workspace import ShadowWorkspace, WorkspaceTooLarge


def make_vault(root: Path) -> Path:
    (root / "prompts").mkdir(parents=True)
    (root / "prompts" / "a.md").write_text("prompt A")
    (root / "scripts").mkdir()
    (root / "scripts" / "c.sh").write_text("echo hi\n")
    (root / "scripts" / "c.sh").chmod(0o755)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / ".autovault").mkdir()
    (root / ".autovault" / "events.db").write_bytes(b"\0" * 10)
    return root


def test_copy_excludes_store_and_git_and_keeps_modes(tmp_path: Path) -> None:
    live = make_vault(tmp_path / "vault")
    with ShadowWorkspace.create(live) as ws:
        assert ws.root != live
        assert ws.read_text("prompts/a.md") == "prompt A"
        assert (ws.root / "scripts" / "c.sh").stat().st_mode & 0o111
        assert not (ws.root / ".git").exists() and not (ws.root / ".autovault").exists()
        assert set(ws.manifest) == {"prompts/a.md", "scripts/c.sh"}
        shadow_root = ws.root
    assert not shadow_root.exists()


def test_writes_and_overlay_stay_in_the_shadow(tmp_path: Path) -> None:
    live = make_vault(tmp_path / "vault")
    with ShadowWorkspace.create(live) as ws:
        with open(ws.path("prompts/a.md"), "a") as f:  # append in place: would leak through a hardlink
            f.write(" + shadow edit")
        ws.overlay({"scripts/c.sh": "echo candidate\n", "prompts/new.md": b"new", "prompts/gone.md": None})
        ws.write("Briefings/2026-03-18.md", "out")
        changed = ws.changed()
        assert changed == {
            rel: hashlib.sha256(ws.read(rel)).hexdigest()
            for rel in ["prompts/a.md", "scripts/c.sh", "prompts/new.md", "Briefings/2026-03-18.md"]
        }
        ws.delete("prompts/a.md")
        assert ws.changed()["prompts/a.md"] is None
    assert (live / "prompts" / "a.md").read_text() == "prompt A"
    assert (live / "scripts" / "c.sh").read_text() == "echo hi\n"
    assert not (live / "prompts" / "new.md").exists() and not (live / "Briefings").exists()


def test_symlinked_file_is_copied_as_content_not_link(tmp_path: Path) -> None:
    live = make_vault(tmp_path / "vault")
    outside = tmp_path / "outside.md"
    outside.write_text("outside")
    (live / "linked.md").symlink_to(outside)
    with ShadowWorkspace.create(live) as ws:
        assert not (ws.root / "linked.md").is_symlink()
        ws.path("linked.md").write_text("changed in shadow")
    assert outside.read_text() == "outside"


def test_include_narrows_the_copy(tmp_path: Path) -> None:
    live = make_vault(tmp_path / "vault")
    with ShadowWorkspace.create(live, include=["prompts/**", "prompts/*"]) as ws:
        assert set(ws.manifest) == {"prompts/a.md"}


def test_too_large_is_refused_and_cleaned_up(tmp_path: Path) -> None:
    live = make_vault(tmp_path / "vault")
    parent = tmp_path / "shadows"
    parent.mkdir()
    with pytest.raises(WorkspaceTooLarge, match="include"):
        ShadowWorkspace.create(live, parent=parent, max_bytes=4)
    assert list(parent.iterdir()) == []


def test_paths_outside_the_shadow_are_refused(tmp_path: Path) -> None:
    live = make_vault(tmp_path / "vault")
    with ShadowWorkspace.create(live) as ws, pytest.raises(PathEscape):
        ws.write("../escaped.md", "x")

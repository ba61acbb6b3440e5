"""Atomic writes, hash guards, path safety and crash recovery (a real process killed mid-apply)."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adapters.atomic import (
    JOURNAL_DIR,
    HashConflict,
    PathEscape,
    apply_files,
    recover,
    safe_path,
    write_atomic,
)

REPO = Path(__file__).resolve().parents[1]


def h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_write_atomic_replaces_content_and_keeps_mode(tmp_path: Path) -> None:
    script = tmp_path / "scripts" / "x.sh"
    script.parent.mkdir()
    script.write_text("echo old\n")
    script.chmod(0o755)
    digest = write_atomic(script, "echo new\n", expected_hash=h(b"echo old\n"))
    assert script.read_text() == "echo new\n"
    assert digest == h(b"echo new\n")
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert [p.name for p in script.parent.iterdir()] == ["x.sh"]  # no temp file left behind


def test_write_atomic_refuses_a_changed_file_naming_path_and_hashes(tmp_path: Path) -> None:
    target = tmp_path / "prompt.md"
    target.write_text("human edit")
    with pytest.raises(HashConflict) as info:
        write_atomic(target, "ours", expected_hash=h(b"what we saw"))
    msg = str(info.value)
    assert "prompt.md" in msg and h(b"what we saw")[:12] in msg and h(b"human edit")[:12] in msg
    assert target.read_text() == "human edit"


def test_expected_none_means_must_not_exist(tmp_path: Path) -> None:
    target = tmp_path / "new.md"
    write_atomic(target, "first", expected_hash=None)
    with pytest.raises(HashConflict):
        write_atomic(target, "second", expected_hash=None)
    assert target.read_text() == "first"


@pytest.mark.parametrize("rel", ["/etc/passwd", "../outside.md", "prompts/../../outside.md", "~/x", ""])
def test_safe_path_refuses_escapes(tmp_path: Path, rel: str) -> None:
    with pytest.raises(PathEscape) as info:
        safe_path(tmp_path, rel)
    assert "\n" not in str(info.value)


def test_safe_path_refuses_symlink_pointing_outside(tmp_path: Path) -> None:
    vault, outside = tmp_path / "vault", tmp_path / "outside"
    vault.mkdir()
    outside.mkdir()
    (vault / "link").symlink_to(outside)
    with pytest.raises(PathEscape, match="symlink"):
        safe_path(vault, "link/secret.md")
    (vault / "inner").mkdir()
    (vault / "ok").symlink_to(vault / "inner")
    assert safe_path(vault, "ok/a.md") == (vault / "inner" / "a.md").resolve()


def test_apply_files_checks_every_hash_before_writing_any(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("a0")
    (tmp_path / "b.md").write_text("b-human")
    with pytest.raises(HashConflict, match=r"b\.md"):
        apply_files(tmp_path, {"a.md": (h(b"a0"), "a1"), "b.md": (h(b"b0"), "b1")})
    assert (tmp_path / "a.md").read_text() == "a0"
    assert not (tmp_path / JOURNAL_DIR).exists() or not any((tmp_path / JOURNAL_DIR).iterdir())


def test_apply_files_writes_creates_and_deletes(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("a0")
    (tmp_path / "gone.md").write_text("g")
    out = apply_files(
        tmp_path,
        {
            "a.md": (h(b"a0"), "a1"),
            "sub/new.md": (None, b"n"),
            "gone.md": (h(b"g"), None),
        },
    )
    assert (tmp_path / "a.md").read_text() == "a1"
    assert (tmp_path / "sub" / "new.md").read_bytes() == b"n"
    assert not (tmp_path / "gone.md").exists()
    assert out == {"a.md": h(b"a1"), "sub/new.md": h(b"n"), "gone.md": None}
    assert not any((tmp_path / JOURNAL_DIR).iterdir())


def test_apply_files_refuses_path_escape(tmp_path: Path) -> None:
    with pytest.raises(PathEscape):
        apply_files(tmp_path, {"../evil.md": (None, "x")})
    assert not (tmp_path.parent / "evil.md").exists()


CRASHER = textwrap.dedent("""
    import os, sys
    from adapters.atomic import apply_files
    root, before = sys.argv[1], sys.argv[2:]
    changes = {f"f{i}.md": (before[i], f"new {i}\\n" * 1000) for i in range(3)}
    count = 0
    def crash(rel):
        global count
        count += 1
        if count == 2:
            os._exit(9)  # the process dies between two files, like a power cut or SIGKILL
    apply_files(root, changes, on_written=crash)
""")


def test_crash_mid_apply_then_recover_rolls_forward(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    old = [f"old {i}\n".encode() for i in range(3)]
    for i, data in enumerate(old):
        (vault / f"f{i}.md").write_bytes(data)
    crasher = tmp_path / "crash.py"
    crasher.write_text(CRASHER)
    proc = subprocess.run(
        [sys.executable, str(crasher), str(vault), *[h(d) for d in old]],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
    )
    assert proc.returncode == 9, proc.stderr.decode()
    new = [(f"new {i}\n" * 1000).encode() for i in range(3)]
    # Mid-apply: two files new, one old, none half-written.
    assert [(vault / f"f{i}.md").read_bytes() for i in range(3)] == [new[0], new[1], old[2]]
    result = recover(vault)
    assert result.rolled_forward == ["f2.md"]
    assert [(vault / f"f{i}.md").read_bytes() for i in range(3)] == new
    assert not any((vault / JOURNAL_DIR).iterdir())
    assert recover(vault).rolled_forward == []  # idempotent


def test_an_error_while_writing_rolls_back_the_files_already_written(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("a0")
    (tmp_path / "b.md").write_text("b0")

    class Crash(Exception):
        pass

    def stop(rel: str) -> None:
        raise Crash

    with pytest.raises(Crash):
        apply_files(tmp_path, {"a.md": (h(b"a0"), "a1"), "b.md": (h(b"b0"), "b1")}, on_written=stop)
    assert (tmp_path / "a.md").read_text() == "a0" and (tmp_path / "b.md").read_text() == "b0"
    assert not any((tmp_path / JOURNAL_DIR).iterdir())


def test_recover_rolls_the_whole_change_back_when_a_file_was_edited_after_the_crash(tmp_path: Path) -> None:
    """Killed after a.md landed; a human then edits b.md: neither half stays — a.md goes back, b.md is theirs."""
    vault = tmp_path / "vault"
    vault.mkdir()
    old = [f"old {i}\n".encode() for i in range(3)]
    for i, data in enumerate(old):
        (vault / f"f{i}.md").write_bytes(data)
    crasher = tmp_path / "crash.py"
    crasher.write_text(CRASHER.replace("count == 2", "count == 1"))
    proc = subprocess.run([sys.executable, str(crasher), str(vault), *[h(d) for d in old]], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True)
    assert proc.returncode == 9, proc.stderr.decode()
    (vault / "f1.md").write_text("human fixed it meanwhile")
    (vault / ".f1.md.x1y2.avtmp").write_text("half-writ")  # what a killed write_atomic leaves
    result = recover(vault)
    assert result.conflicts == ["f1.md"] and result.rolled_back == ["f0.md"]
    assert (vault / "f0.md").read_bytes() == old[0] and (vault / "f2.md").read_bytes() == old[2]
    assert (vault / "f1.md").read_text() == "human fixed it meanwhile"
    assert not (vault / ".f1.md.x1y2.avtmp").exists()
    assert not any((vault / JOURNAL_DIR).iterdir())


def test_recover_discards_an_uncommitted_journal(tmp_path: Path) -> None:
    staging = tmp_path / JOURNAL_DIR / "abc.staging"
    staging.mkdir(parents=True)
    (staging / "0.blob").write_text("never committed")
    (tmp_path / "a.md").write_text("a0")
    result = recover(tmp_path)
    assert result.discarded == ["abc.staging"]
    assert (tmp_path / "a.md").read_text() == "a0"
    assert not staging.exists()

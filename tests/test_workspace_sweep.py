"""A sweep of orphan shadows in one process never removes what another process is claiming or using.

The window: a shadow's claim file exists, unlocked, between its creation and its lock. A sweep (every command
runs one at start) that opens it in that instant finds its lock free and removes it; the claiming process must
notice and claim another name, not fail on a claim file that vanished.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from adapters import workspace
from adapters.workspace import PREFIX, ShadowWorkspace, sweep_orphans

REPO = Path(__file__).resolve().parents[1]
SWEEP = "import sys; from adapters.workspace import sweep_orphans; print(len(sweep_orphans(sys.argv[1])))"


def _vault(root: Path) -> Path:
    (root / "prompts").mkdir(parents=True)
    (root / "prompts" / "a.md").write_text("prompt A\n")
    return root


def _sweep_in_another_process(parent: Path) -> int:
    done = subprocess.run([sys.executable, "-c", SWEEP, str(parent)], cwd=REPO, capture_output=True, text=True,
                          check=True, timeout=60)
    return int(done.stdout.strip())


def test_a_claim_swept_before_it_is_locked_is_claimed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live, parent = _vault(tmp_path / "vault"), tmp_path / "tmp"
    real = tempfile.mkstemp
    swept: list[int] = []

    def mkstemp_then_sweep(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, name = real(*args, **kwargs)  # type: ignore[call-overload]
        if not swept:  # the first claim, not locked yet: another process sweeps right now
            swept.append(_sweep_in_another_process(parent))
        return fd, name

    monkeypatch.setattr(workspace.tempfile, "mkstemp", mkstemp_then_sweep)
    with ShadowWorkspace.create(live, parent=parent) as ws:
        assert swept == [1]  # the other process did remove the unlocked claim ...
        assert ws.read_text("prompts/a.md") == "prompt A\n"  # ... and the shadow was claimed under another name
        assert _sweep_in_another_process(parent) == 0 and ws.root.is_dir()  # in use: never swept
        assert (parent / f"{ws.root.name}.lock").is_file()
    assert list(parent.iterdir()) == []


def test_shadows_made_while_another_process_sweeps_all_the_time(tmp_path: Path) -> None:
    live, parent = _vault(tmp_path / "vault"), tmp_path / "tmp"
    parent.mkdir()
    stop = parent.parent / "stop"
    loop = (f"import pathlib, sys\nfrom adapters.workspace import sweep_orphans\nn = 0\n"
            f"while not pathlib.Path({str(stop)!r}).exists():\n    n += len(sweep_orphans(sys.argv[1]))\n"
            "print(n)\n")
    sweeper = subprocess.Popen([sys.executable, "-c", loop, str(parent)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(150):
            with ShadowWorkspace.create(live, parent=parent) as ws:
                assert ws.read_text("prompts/a.md") == "prompt A\n"
                assert (parent / f"{ws.root.name}.lock").is_file()
    finally:
        stop.write_text("")
        sweeper.communicate(timeout=60)
    assert sweeper.returncode == 0
    assert not [p for p in parent.iterdir() if p.name.startswith((PREFIX, f".{PREFIX}"))]
    assert sweep_orphans(parent) == []


def test_a_run_temp_folder_a_kill_left_is_swept_once_a_day_old(tmp_path: Path) -> None:
    old = tmp_path / "autovault-tmp-abc"
    fresh = tmp_path / "autovault-shims-def"
    other = tmp_path / "someone-elses-tmp"
    for d in (old, fresh, other):
        d.mkdir()
        (d / "f").write_text("x")
    now = old.stat().st_mtime + workspace.LEGACY_AGE_S + 60
    os.utime(fresh, (now - 60, now - 60))
    os.utime(other, (0, 0))
    removed = sweep_orphans(tmp_path, now=now)
    assert removed == [old]
    assert not old.exists() and fresh.exists() and other.exists()


def test_a_trace_folder_a_kill_left_is_swept_once_a_day_old(tmp_path: Path) -> None:
    old = tmp_path / "autovault-trace-abc"
    fresh = tmp_path / "autovault-trace-def"
    for d in (old, fresh):
        (d / "calls").mkdir(parents=True)
        (d / "stdout").write_text("x")
    now = old.stat().st_mtime + workspace.LEGACY_AGE_S + 60
    os.utime(fresh, (now - 60, now - 60))
    removed = sweep_orphans(tmp_path, now=now)
    assert removed == [old]
    assert not old.exists() and fresh.exists()

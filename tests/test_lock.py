"""One daemon per store, checked with real processes: a second one is refused by PID; a dead holder frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.lock import AlreadyRunning, InstanceLock, acquire_instance_lock, lock_key

ROOT = Path(__file__).resolve().parent.parent
HOLDER = """
import sys
from daemon.lock import acquire_instance_lock
with acquire_instance_lock(sys.argv[1], sys.argv[2]):
    print("locked", flush=True)
    sys.stdin.readline()
"""
CONTENDER = """
import sys
from daemon.lock import AlreadyRunning, acquire_instance_lock
try:
    acquire_instance_lock(sys.argv[1], sys.argv[2]).release()
except AlreadyRunning as e:
    print(e)
    sys.exit(3)
"""


def python(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True, **kwargs)  # type: ignore[call-overload]


@pytest.fixture
def holder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """A real process holding the lock of the store named by the test's `url` parameter."""
    url: str = request.getfixturevalue(request.param)
    vault = tmp_path / "vault"
    proc = python(HOLDER, url, str(vault), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield proc, url, vault
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.mark.parametrize("holder", ["sqlite_url", pytest.param("pg_url", marks=pytest.mark.postgres)], indirect=True)
def test_second_process_is_refused_with_the_holders_pid(holder: tuple[subprocess.Popen[str], str, Path]) -> None:
    proc, url, vault = holder
    contender = python(CONTENDER, url, str(vault), stdout=subprocess.PIPE)
    out, _ = contender.communicate(timeout=60)
    assert contender.returncode == 3
    assert out.count("\n") == 1, out
    assert f"PID {proc.pid}" in out and "fix:" in out


@pytest.mark.parametrize("holder", ["sqlite_url"], indirect=True)
def test_kill_9_releases_the_sqlite_lock(holder: tuple[subprocess.Popen[str], str, Path]) -> None:
    proc, url, vault = holder
    with pytest.raises(AlreadyRunning, match=f"PID {proc.pid}"):
        acquire_instance_lock(url, vault)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with acquire_instance_lock(url, vault) as lock:
        assert lock.held and lock.path is not None
        assert lock.path.read_text().strip() == str(os.getpid())


@pytest.mark.parametrize("holder", ["sqlite_url"], indirect=True)
def test_clean_exit_releases_the_sqlite_lock(holder: tuple[subprocess.Popen[str], str, Path]) -> None:
    proc, url, vault = holder
    assert proc.stdin is not None
    proc.stdin.write("done\n")
    proc.stdin.flush()
    assert proc.wait(timeout=60) == 0
    acquire_instance_lock(url, vault).release()


def test_sqlite_lock_file_sits_beside_the_database(sqlite_url: str, tmp_path: Path) -> None:
    with acquire_instance_lock(sqlite_url, tmp_path) as lock:
        assert lock.path == tmp_path / "store" / "events.db.lock"
        with pytest.raises(AlreadyRunning, match=f"PID {os.getpid()}"):
            InstanceLock(sqlite_url, tmp_path).acquire()
    assert not lock.held
    acquire_instance_lock(sqlite_url, tmp_path).release()


@pytest.mark.postgres
def test_postgres_two_connections(pg_url: str, tmp_path: Path) -> None:
    first = acquire_instance_lock(pg_url, tmp_path / "a")
    try:
        with pytest.raises(AlreadyRunning) as refused:
            acquire_instance_lock(pg_url, tmp_path / "a")
        assert f"PID {os.getpid()}" in str(refused.value) and "\n" not in str(refused.value)
        acquire_instance_lock(pg_url, tmp_path / "b").release()  # another vault on the same server is its own lock
    finally:
        first.release()
    with InstanceLock(pg_url, tmp_path / "a") as again:
        assert again.held


@pytest.mark.postgres
def test_postgres_message_hides_the_password(pg_url: str, tmp_path: Path) -> None:
    url = pg_url.replace("root@", "root:s3cret@", 1)  # trust auth: the password is never checked
    assert lock_key(url, tmp_path) == lock_key(url.replace("s3cret", "rotated"), tmp_path)
    with acquire_instance_lock(url, tmp_path), pytest.raises(AlreadyRunning) as refused:
        acquire_instance_lock(url, tmp_path)
    assert "s3cret" not in str(refused.value) and "***" in str(refused.value)


def test_unknown_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fix:"):
        acquire_instance_lock("mysql://root@localhost/db", tmp_path)

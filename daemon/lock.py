"""One daemon per store: two writers folding the same events would record every change twice.

SQLite store: `fcntl.flock` on `<db>.lock` beside the database, holding the owner's PID. PostgreSQL store:
`pg_try_advisory_lock(key)` on a dedicated connection, key = a hash of the store URL (without password)
and the vault root. Both locks die with their process (kill -9 included): the kernel drops the flock, the
server drops the session's advisory lock when the connection closes — so a crash never needs a manual unlock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from types import TracebackType

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool


class AlreadyRunning(RuntimeError):
    """Another autovault daemon holds this store; str() is one line naming its PID and the fix."""

    def __init__(self, store: str, pid: int | None, where: str) -> None:
        self.pid = pid
        who = f"PID {pid}" if pid else "another process"
        super().__init__(
            f"{store}: already in use by autovault {who} ({where}) — fix: stop it first "
            f"(systemctl [--user] stop autovault, or kill {pid or '<pid>'}), or point this one at another store"
        )


def _safe_url(store_url: str) -> str:
    return make_url(store_url).render_as_string(hide_password=True)


def lock_key(store_url: str, vault_root: Path | str) -> int:
    """A signed 64-bit advisory-lock key for this store and vault (stable across processes and hosts)."""
    url = make_url(store_url).render_as_string(hide_password=True)  # a changed password is the same store
    digest = hashlib.sha256(f"autovault\0{url}\0{os.path.abspath(vault_root)}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class InstanceLock:
    """Held while the daemon runs; `release()` (or leaving the `with`) lets the next instance in."""

    def __init__(self, store_url: str, vault_root: Path | str) -> None:
        self.store_url = store_url
        self.vault_root = Path(vault_root)
        self.path: Path | None = None
        self._fd: int | None = None
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._key: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None or self._conn is not None

    def acquire(self) -> InstanceLock:
        url = make_url(self.store_url)
        if url.get_backend_name() == "sqlite":
            self._acquire_file(
                Path(f"{url.database}.lock")
                if url.database and url.database != ":memory:"
                else self.vault_root / ".autovault" / "daemon.lock"
            )
        elif url.get_backend_name() == "postgresql":
            self._acquire_advisory()
        else:
            raise ValueError(
                f"{_safe_url(self.store_url)}: no instance lock for this store — fix: use sqlite or postgresql"
            )
        return self

    def _acquire_file(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(_safe_url(self.store_url), pid, f"lock file {path}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd, self.path = fd, path

    def _acquire_advisory(self) -> None:
        key = lock_key(self.store_url, self.vault_root)
        engine = create_engine(self.store_url, poolclass=NullPool)
        conn = engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()
            if not got:
                pid = conn.execute(
                    text(
                        "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND l.granted "
                        "AND l.classid = ((:k >> 32) & 4294967295)::oid "
                        "AND l.objid = (:k & 4294967295)::oid AND l.objsubid = 1"
                    ),
                    {"k": key},
                ).scalar()
                holder = (
                    conn.execute(
                        text("SELECT application_name FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
                    ).scalar()
                    if pid
                    else None
                )
                raise AlreadyRunning(
                    _safe_url(self.store_url), _pid_from_app(holder), f"PostgreSQL advisory lock {key}, backend {pid}"
                )
            conn.execute(
                text("SELECT set_config('application_name', :n, false)"), {"n": f"autovault pid={os.getpid()}"}
            )
            conn.commit()
        except BaseException:
            conn.close()
            engine.dispose()
            raise
        self._engine, self._conn, self._key = engine, conn, key

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                self._conn.commit()
            self._conn.close()
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> InstanceLock:
        return self if self.held else self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def acquire_instance_lock(store_url: str, vault_root: Path | str) -> InstanceLock:
    """Take the lock now (raises AlreadyRunning); use the result as a context manager to release it."""
    return InstanceLock(store_url, vault_root).acquire()


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _pid_from_app(name: str | None) -> int | None:
    if name and name.startswith("autovault pid="):
        with contextlib.suppress(ValueError):
            return int(name.removeprefix("autovault pid="))
    return None

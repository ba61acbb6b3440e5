"""Running a vault's scripts: own process group, hard timeout, capped output read as it arrives, minimal env.

A collector that hangs, forks children or prints gigabytes must not hang or bloat the daemon. The script
gets its own session; on timeout, and when it exits, the whole group is killed (a forgotten `sleep &` dies
with it). Output past the cap is read and dropped so the script never blocks on a full pipe.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from adapters.atomic import safe_path
from adapters.confine import EXEC_FAILED, EXEC_FAILED_MARK
from adapters.sandbox import MARK, REFUSED, Confinement, SandboxUnavailable, confined, launch

SAFE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM")
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
STDERR_CAP = 64 * 1024
_CHUNK = 65536


@dataclass(frozen=True)
class ScriptResult:
    returncode: int | None  # None when killed for the timeout
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    duration_s: float

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.returncode == 0

    def stderr_tail(self, limit: int = 300) -> str:
        """The last non-empty stderr line, cut to `limit` chars: what goes into a one-line error."""
        lines = [ln.strip() for ln in self.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        return lines[-1][-limit:] if lines else ""


def is_secret(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def script_env(
    base: Mapping[str, str], extra: Mapping[str, str] | None = None, passthrough: tuple[str, ...] = (),
) -> dict[str, str]:
    """A minimal environment: a few safe names (plus `LC_*` and `passthrough`) and `extra`, never secrets."""
    keep = set(SAFE_ENV) | set(passthrough)
    env = {k: v for k, v in base.items() if k in keep or k.startswith("LC_")}
    env.update(extra or {})
    env.setdefault("PATH", os.defpath)
    return {k: v for k, v in env.items() if not is_secret(k)}


def script_argv(root: Path, command: str) -> tuple[list[str], Path, list[str]]:
    """Split `scripts/x.sh --days 3` into argv, the script's path and its other arguments.

    The script must be inside the vault. It is exec'd when executable with a shebang; a non-executable one
    runs under its shebang's interpreter; without a shebang, `.py` runs under python3 and anything else bash.
    """
    parts = shlex.split(command)
    if not parts:
        raise ValueError("empty script command")
    script = safe_path(root, parts[0])
    if not script.is_file():
        raise FileNotFoundError(f"script {parts[0]} not found in the vault {root}")
    args = parts[1:]
    with open(script, "rb") as f:
        first = f.readline(256)
    if first.startswith(b"#!"):
        if os.access(script, os.X_OK):
            return [str(script), *args], script, args
        interpreter = shlex.split(first[2:].decode("utf-8", "replace"))
        if interpreter:
            return [*interpreter, str(script), *args], script, args
    fallback = "python3" if script.suffix == ".py" else "bash"
    return [fallback, str(script), *args], script, args


def run_script(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    output_cap: int,
    stdin: bytes = b"",
    stderr_cap: int = STDERR_CAP,
    confinement: Confinement | None = None,
) -> ScriptResult:
    """Run argv to completion or timeout; return at most `output_cap` bytes of stdout. With a `confinement`
    it runs sandboxed (`adapters.sandbox`; SandboxUnavailable, before anything starts, when it cannot be)."""
    t0 = time.perf_counter()
    if confinement is not None and resident_bytes() > LARGE_PROCESS_BYTES:
        with launch(argv, env, confinement) as (run_argv, run_env):
            result = _run(run_argv, cwd, run_env, timeout, output_cap, stdin, stderr_cap, t0, None)
        if result.returncode == REFUSED and result.stderr.startswith(MARK.encode()):
            raise SandboxUnavailable(result.stderr.decode("utf-8", "replace").splitlines()[0])
        if result.returncode == EXEC_FAILED and (failed := _exec_failure(result.stderr)) is not None:
            raise failed  # as Popen raises it on the other path
        return result
    with confined(env, confinement) as (run_env, preexec):
        return _run(argv, cwd, run_env, timeout, output_cap, stdin, stderr_cap, t0, preexec)


# A preexec_fn makes Popen fork (no vfork), copying the page tables of this whole process: ~60 ms per GB resident
# here, against ~30 ms to start the launcher (a bare Python that confines itself, then execs). A daemon that holds
# a model or has trained one in process is past the crossover.
LARGE_PROCESS_BYTES = 512 << 20


def _exec_failure(stderr: bytes) -> OSError | None:
    """The launcher's line saying it could not exec the command, as the OSError exec raised; None otherwise."""
    found = re.match(rf"{re.escape(EXEC_FAILED_MARK)} errno (\d+): cannot start (.*?): (.*)$",
                     stderr.decode("utf-8", "replace").split("\n", 1)[0])
    return None if found is None else OSError(int(found[1]), found[3], found[2])


def resident_bytes() -> int:
    """This process's resident memory (0 where /proc cannot tell)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float, output_cap: int, stdin: bytes,
         stderr_cap: int, t0: float, preexec: Callable[[], None] | None) -> ScriptResult:
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, close_fds=True, preexec_fn=preexec,
        )
    except subprocess.SubprocessError as e:  # only the sandbox's preexec_fn raises it: nothing was exec'd
        raise SandboxUnavailable(f"{MARK} the script's process could not confine itself ({e}); it was not run") from None
    try:
        out, err, timed_out = _pump(proc, stdin, timeout, {"out": output_cap, "err": stderr_cap})
    finally:
        _kill_group(proc)
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
    return ScriptResult(
        returncode=None if timed_out else proc.returncode,
        stdout=bytes(out.data), stderr=bytes(err.data),
        stdout_truncated=out.truncated, stderr_truncated=err.truncated,
        timed_out=timed_out, duration_s=time.perf_counter() - t0,
    )


class _Sink:
    """Keeps the first `cap` bytes and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.truncated = False

    def feed(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[:max(room, 0)]
        self.data += chunk


def _pump(
    proc: subprocess.Popen[bytes], stdin: bytes, timeout: float, caps: dict[str, int],
) -> tuple[_Sink, _Sink, bool]:
    """Feed stdin and drain stdout/stderr together, so neither side blocks on a full pipe."""
    assert proc.stdin and proc.stdout and proc.stderr
    sinks = {"out": _Sink(caps["out"]), "err": _Sink(caps["err"])}
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    pending = memoryview(stdin)
    if pending:
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin, selectors.EVENT_WRITE, "in")
    else:
        proc.stdin.close()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    pidfd = _pidfd(proc.pid)
    if pidfd is not None:
        sel.register(pidfd, selectors.EVENT_READ, "exit")
    try:
        open_pipes = 2
        while open_pipes:
            left = deadline - time.monotonic()
            if left <= 0:
                return sinks["out"], sinks["err"], True
            # Without a pidfd, wake now and then to notice an exited script whose children hold the pipes.
            events = sel.select(left if pidfd is not None else min(left, 0.05))
            if not events and pidfd is None and proc.poll() is not None:
                _kill_group(proc)
            for key, _ in events:
                if key.data == "exit":
                    sel.unregister(key.fileobj)
                    _kill_group(proc)  # the script is done: stragglers holding its pipes go too
                elif key.data == "in":
                    try:
                        sent = os.write(proc.stdin.fileno(), pending[:_CHUNK])
                    except BrokenPipeError:
                        sent = len(pending)  # the script stopped reading; that is its right
                    pending = pending[sent:]
                    if not pending:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                else:
                    chunk = os.read(key.fileobj.fileno(), _CHUNK)  # type: ignore[union-attr]
                    if chunk:
                        sinks[key.data].feed(chunk)
                    else:
                        sel.unregister(key.fileobj)
                        open_pipes -= 1
        return sinks["out"], sinks["err"], False
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)


def _pidfd(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
    except OSError:
        return None
    return fd


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)

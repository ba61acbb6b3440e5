"""Running a script with every program it starts on the record: name, arguments, working folder, and for a few
line tools (head, tail, cat, sed, awk) the text each call printed.

No ptrace and no privileges: the script runs with a PATH whose first folder holds one small POSIX sh shim,
linked under the name of every program found on the real PATH. A shim writes one record and then `exec`s the
real program, so the process count is exact for everything started through PATH (a program started by
absolute path is not seen; shell builtins start no process and are not counted either). For the captured
tools the shim runs the program with its output going to a file, then prints that file and exits with the
program's status, so each call's output can be matched against what the script emitted.

CPU seconds of the whole process tree come from `os.wait4` (the shims cost a little, so use them only as a
rough figure; `handlers.collector_cost` measures untraced runs when CPU decides).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from adapters.run_temps import SHIMS_PREFIX, TRACE_PREFIX
from adapters.sandbox import Confinement, launch
from adapters.subprocesses import script_argv

CAPTURE = frozenset({"head", "tail", "cat", "sed", "awk"})
OUTPUT_READ_CAP = 1 << 20  # bytes of one captured call's output kept for analysis
MAX_RECORDS = 20_000  # calls read back; a script starting more is reported as such
US, RS = "\x1f", "\x1e"  # unit and record separators: never in a file name, rare in arguments
POLL_S = 0.01  # only where pidfd_open is missing

SHIM = """#!/bin/sh
n=${0##*/}
d=$AUTOVAULT_TRACE_DIR
real=
IFS=:
for p in $AUTOVAULT_REAL_PATH; do
  if [ -x "$p/$n" ] && [ ! -d "$p/$n" ]; then real=$p/$n; break; fi
done
unset IFS
rec="$PWD<US>$n"
for a in "$@"; do rec="$rec<US>$a"; done
printf '%s<RS>' "$rec" >> "$d/$$.call"
if [ -z "$real" ]; then echo "$n: not found" >&2; exit 127; fi
case " <CAPTURE> " in
  *" $n "*)
    "$real" "$@" > "$d/$$.out"
    rc=$?
    <CAT> "$d/$$.out"
    exit $rc ;;
esac
exec "$real" "$@"
"""


@dataclass(frozen=True)
class Call:
    """One program the script started (through PATH)."""

    pid: int
    cwd: str
    name: str
    args: tuple[str, ...]
    output: str | None  # what it printed, for the captured tools (clipped at OUTPUT_READ_CAP)


@dataclass(frozen=True)
class TracedRun:
    stdout: str
    returncode: int | None  # None: killed for the timeout
    timed_out: bool
    stderr_tail: str
    cpu_s: float
    calls: tuple[Call, ...]
    calls_dropped: int = 0  # records past MAX_RECORDS
    stdout_truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.returncode == 0


def trace_script(root: Path, command: str, *, env: Mapping[str, str], timeout: float, output_cap: int,
                 confinement: Confinement | None = None, capture: frozenset[str] = CAPTURE) -> TracedRun:
    """Run `command` (a vault script and its arguments) in `root` with every PATH program recorded; confined
    (`adapters.sandbox`) when given a confinement, which then also lets it write its call records."""
    argv, _, _ = script_argv(root, command)
    real_path = env.get("PATH") or os.defpath
    bin_dir = _shims(real_path, capture)
    with tempfile.TemporaryDirectory(prefix=TRACE_PREFIX) as tmp:
        log_dir = Path(tmp) / "calls"
        log_dir.mkdir()
        traced_env = {**env, "PATH": f"{bin_dir}:{real_path}", "AUTOVAULT_TRACE_DIR": str(log_dir),
                      "AUTOVAULT_REAL_PATH": real_path}
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        allowed = None if confinement is None else Confinement((*confinement.write, log_dir), confinement.network)
        with open(out_path, "wb") as out, open(err_path, "wb") as err, \
                launch(argv, traced_env, allowed) as (run_argv, run_env):
            proc = subprocess.Popen(run_argv, cwd=root, env=run_env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, start_new_session=True, close_fds=True)
            returncode, cpu_s = _wait(proc, timeout)
        with open(out_path, "rb") as f:
            data = f.read(output_cap + 1)
        stderr = err_path.read_bytes()[-4096:].decode("utf-8", "replace")
        calls, dropped = _read_calls(log_dir)
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return TracedRun(stdout=data[:output_cap].decode("utf-8", "replace"), returncode=returncode,
                     timed_out=returncode is None, stderr_tail=lines[-1][-300:] if lines else "", cpu_s=cpu_s,
                     calls=calls, calls_dropped=dropped, stdout_truncated=len(data) > output_cap)


_SHIMS: dict[str, Path] = {}
_SHIMS_LOCK = threading.Lock()


def _shims(real_path: str, capture: frozenset[str]) -> Path:
    """The shim folder for this PATH, made once per process (linking a thousand names is slow on some disks).

    Touched on every reuse: another process's sweep of run temps (`adapters.workspace.sweep_orphans`) removes a
    shim folder a day untouched, which would otherwise be one a long-running daemon still uses."""
    key = hashlib.sha256(f"{real_path}\0{sorted(capture)}".encode()).hexdigest()
    with _SHIMS_LOCK:
        found = _SHIMS.get(key)
        if found is not None:
            with contextlib.suppress(OSError):  # swept already: made anew below
                os.utime(found.parent)
        if found is None or not found.is_dir():
            top = Path(tempfile.mkdtemp(prefix=SHIMS_PREFIX))
            atexit.register(shutil.rmtree, top, True)
            found = _SHIMS[key] = top / "bin"
            _install_shims(found, real_path, capture)
        return found


def _install_shims(bin_dir: Path, real_path: str, capture: frozenset[str]) -> None:
    """One shim file, linked under every program name on the real PATH (first folder wins, as for the shell)."""
    bin_dir.mkdir()
    cat = shutil.which("cat", path=real_path) or "cat"
    shim = bin_dir / ".shim"
    shim.write_text(SHIM.replace("<US>", US).replace("<RS>", RS).replace("<CAT>", cat)
                    .replace("<CAPTURE>", " ".join(sorted(capture))), encoding="utf-8")
    shim.chmod(0o755)
    seen: set[str] = set()
    for folder in real_path.split(":"):
        try:
            entries = list(os.scandir(folder or "."))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name in seen or name.startswith(".") or "/" in name:
                continue
            with contextlib.suppress(OSError):
                if entry.is_file() and os.access(entry.path, os.X_OK):
                    seen.add(name)
                    os.symlink(".shim", bin_dir / name)


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int | None, float]:
    """Wait for the script (pidfd where the kernel has it); kill its group on timeout. (returncode, CPU s)."""
    deadline = time.monotonic() + timeout
    pidfd = None
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(proc.pid)
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                _kill_group(proc.pid)  # stragglers holding files open go with it
                return proc.returncode, usage.ru_utime + usage.ru_stime
            left = deadline - time.monotonic()
            if left <= 0:
                _kill_group(proc.pid)
                proc.wait()
                return None, 0.0
            if pidfd is not None:
                select.select([pidfd], [], [], left)
            else:
                time.sleep(min(POLL_S, left))
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _read_calls(log_dir: Path) -> tuple[tuple[Call, ...], int]:
    calls: list[Call] = []
    dropped = 0
    for path in sorted(log_dir.glob("*.call"), key=lambda p: int(p.stem)):
        pid = int(path.stem)
        out_path = log_dir / f"{pid}.out"
        output = None
        if out_path.exists():
            with open(out_path, "rb") as f:
                output = f.read(OUTPUT_READ_CAP).decode("utf-8", "replace")
        for record in path.read_text(encoding="utf-8", errors="replace").split(RS):
            if not record:
                continue
            if len(calls) >= MAX_RECORDS:
                dropped += 1
                continue
            cwd, name, *args = record.split(US)
            calls.append(Call(pid, cwd, name, tuple(args), output))
    return tuple(calls), dropped


__all__ = ["CAPTURE", "Call", "TracedRun", "trace_script"]

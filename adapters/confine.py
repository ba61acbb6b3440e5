"""Confine this process, then exec a command in it: Landlock for file-system writes, seccomp for the network.

Run as a launcher — `python -I -S confine.py --write DIR … [--network] -- ARGV` — it applies both to itself
and execs ARGV, so the script and every child inherit them and none can lift them (no_new_privs). Why this
shape and what it confines: `adapters.sandbox`. Only os, sys, ctypes, errno and struct are imported: this
runs before every script started through `adapters.sandbox.launch`, and a Python start is the bulk of its cost.

- Landlock: every write right (write, truncate, create, remove, link/rename across folders) is handled, and
  granted only beneath the `--write` folders and on /dev/null, /dev/zero, /dev/full, /dev/tty (and, for the
  launcher, its own stdio: a pipe is not restricted anyway, a file it was handed stays writable). From ABI 4 TCP bind/connect is handled with no port allowed; from ABI 6 signals and
  abstract unix sockets may not leave the sandbox. A Landlock domain also stops ptrace of outside processes.
- seccomp (unless `--network`): `socket()` and `io_uring_setup()` fail with EACCES; a system call of a foreign
  ABI (i386 `int 0x80`, x32) kills the process, since it would bypass the numbers checked here. Installed with
  prctl, which systemd's @system-service allows (seccomp(2) it does not).
A launcher that cannot confine itself prints one line starting with `MARK` and exits `REFUSED` without
running anything. `Prepared` is the same confinement for a child confined between fork and exec.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys

TYPE_CHECKING = False  # typing costs more to import than all the rest of this launcher
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

REFUSED = 126  # the launcher's exit status when it could not confine itself: the command never started
EXEC_FAILED = 127  # ... when it confined itself but could not exec the command (the line says errno)
EXEC_FAILED_MARK = "autovault launcher:"
MARK = "autovault sandbox:"

# Audit arch and the system calls the filter checks, per machine (landlock's numbers are the same on both).
MACHINES: dict[str, dict[str, int]] = {
    "x86_64": {"arch": 0xC000003E, "socket": 41, "io_uring_setup": 425},
    "aarch64": {"arch": 0xC00000B7, "socket": 198, "io_uring_setup": 425},
}
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS, _PR_GET_SECCOMP, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 21, 22, 2

_WRITE_FILE = 1 << 1
_ABI1_WRITES = (_WRITE_FILE | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11
                | 1 << 12)  # write file; remove dir, file; make char, dir, reg, sock, fifo, block, sym
_REFER, _TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty")
STDIO = ("/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2")  # the launcher's are the script's own

_LD_ABS, _JEQ, _JGE, _RET = 0x20, 0x15, 0x35, 0x06
_ALLOW, _KILL, _ERRNO_EACCES = 0x7FFF0000, 0x80000000, 0x00050000 | errno.EACCES

_LIBC: list[Any] = []


def _libc() -> Any:
    if not _LIBC:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.prctl.restype = ctypes.c_int
        _LIBC.append(libc)
    return _LIBC[0]


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def machine() -> dict[str, int] | None:
    return MACHINES.get(os.uname().machine)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is missing, disabled or filtered out."""
    if sys.platform != "linux":
        return 0
    try:
        return max(0, int(_libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0),
                                          ctypes.c_uint32(_CREATE_RULESET_VERSION))))
    except (OSError, AttributeError):
        return 0


def unavailable_reason() -> str | None:
    """Why this process cannot be confined (one line), or None when it can."""
    if sys.platform != "linux":
        return f"needs Linux (Landlock and seccomp); this is {sys.platform}"
    if machine() is None:
        return f"no seccomp filter for machine {os.uname().machine!r} (x86_64 and aarch64 are supported)"
    if landlock_abi() < 1:
        err = ctypes.get_errno()
        why = os.strerror(err) if err else "not available"
        return (f"Landlock is unavailable ({why}): it needs Linux ≥ 5.13 with landlock in the kernel's lsm= list, "
                "and a system-call filter that allows landlock_create_ruleset, landlock_add_rule and "
                "landlock_restrict_self")
    if _libc().prctl(_PR_GET_SECCOMP, 0, 0, 0, 0) < 0:
        return "seccomp filters are unavailable on this kernel (CONFIG_SECCOMP_FILTER)"
    return None


def _ruleset(abi: int, network: bool) -> tuple[int, int]:
    """(ruleset fd, the write rights it handles)."""
    writes = _ABI1_WRITES | (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0)
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 and not network else 0
    scoped = (_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("<QQQ", writes, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = _check(_libc().syscall(_CREATE_RULESET, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0)),
                "landlock_create_ruleset")
    return fd, writes


def _allow(ruleset: int, path: str, writes: int, abi: int) -> None:
    """Let the sandbox write beneath `path` (a folder), or to `path` itself (a file or a device)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # nothing there to write to
    try:
        is_dir = os.path.isdir(f"/proc/self/fd/{fd}")
        rights = writes if is_dir else _WRITE_FILE | (_TRUNCATE if abi >= 3 else 0)
        attr = ctypes.create_string_buffer(struct.pack("<Qi", rights, fd), 12)
        added = _libc().syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), attr,
                                ctypes.c_uint32(0))
        if added < 0 and ctypes.get_errno() == errno.EBADFD:
            return  # a pipe or a socket (the runner's stdio): Landlock does not restrict those anyway
        _check(added, f"landlock_add_rule {path}")
    finally:
        os.close(fd)


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def no_network_filter(numbers: Mapping[str, int]) -> list[tuple[int, int, int, int]]:
    """The seccomp program as (code, jt, jf, k): a foreign ABI kills; socket() and io_uring_setup() fail."""
    return [
        (_LD_ABS, 0, 0, 4),  # A = arch
        (_JEQ, 0, 6, numbers["arch"]),  # not the native ABI: kill
        (_LD_ABS, 0, 0, 0),  # A = system call number
        (_JGE, 4, 0, 0x40000000),  # x32: kill
        (_JEQ, 2, 0, numbers["socket"]),
        (_JEQ, 1, 0, numbers["io_uring_setup"]),  # io_uring could open sockets past this filter
        (_RET, 0, 0, _ALLOW),
        (_RET, 0, 0, _ERRNO_EACCES),
        (_RET, 0, 0, _KILL),
    ]


def _program(program: Sequence[tuple[int, int, int, int]]) -> tuple[Any, Any]:
    """A seccomp program as the kernel reads it: (the instructions, a pointer to their sock_fprog)."""
    insns = (_SockFilter * len(program))(*[_SockFilter(*i) for i in program])
    fprog = _SockFprog(len(program), ctypes.cast(insns, ctypes.POINTER(_SockFilter)))
    return insns, ctypes.pointer(fprog)


class Prepared:
    """A confinement made ready here and applied by `apply()` in the process to confine — this one (the
    launcher), or a child between fork and exec (`preexec_fn`). Everything is built in advance, so `apply` only
    calls prctl and landlock_restrict_self: it imports, allocates for the kernel and locks nothing."""

    def __init__(self, write: Sequence[str], network: bool, *, own_stdio: bool = False) -> None:
        reason = unavailable_reason()
        numbers = machine()
        if reason is not None or numbers is None:
            raise OSError(errno.ENOSYS, reason or "unsupported machine")
        abi = landlock_abi()
        self._libc = _libc()
        self.ruleset, writes = _ruleset(abi, network)
        try:
            for path in (*write, *DEVICES, *(STDIO if own_stdio else ())):
                _allow(self.ruleset, path, writes, abi)
        except OSError:
            os.close(self.ruleset)
            raise
        self._fd, self._zero = ctypes.c_int(self.ruleset), ctypes.c_uint32(0)
        self._filter = None if network else _program(no_network_filter(numbers))

    def apply(self) -> None:
        """Confine the calling process (and all it execs) for good; OSError when the kernel refuses."""
        libc = self._libc
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "no_new_privs refused")
        if libc.syscall(_RESTRICT_SELF, self._fd, self._zero) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self refused")
        if self._filter is not None and libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, self._filter[1], 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "the seccomp filter was refused")

    def close(self) -> None:
        os.close(self.ruleset)


def confine_self(write: Sequence[str], network: bool) -> None:
    """Confine this process and everything it execs from now on (its stdio stay writable: a file or a terminal
    it was handed, should it be one); raises OSError when it cannot."""
    prepared = Prepared(write, network, own_stdio=True)
    try:
        prepared.apply()
    finally:
        prepared.close()


def _parse(args: Sequence[str]) -> tuple[list[str], bool, list[str]]:
    write: list[str] = []
    network = False
    rest = list(args)
    while rest and rest[0] != "--":
        flag = rest.pop(0)
        if flag == "--write" and rest:
            write.append(rest.pop(0))
        elif flag == "--network":
            network = True
        else:
            raise ValueError(f"unknown launcher argument {flag!r}")
    if len(rest) < 2:
        raise ValueError("no command after --")
    return write, network, rest[1:]


def main(args: Sequence[str]) -> int:
    """Confine, then exec the command; never exec it unconfined."""
    try:
        write, network, argv = _parse(args)
        confine_self(write, network)
    except (OSError, ValueError) as e:
        text = " ".join((e.strerror if isinstance(e, OSError) and e.strerror else str(e)).split())
        print(f"{MARK} cannot confine the script ({text}); it was not run", file=sys.stderr, flush=True)
        return REFUSED
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        print(f"{EXEC_FAILED_MARK} errno {e.errno}: cannot start {argv[0]}: {e.strerror or e}", file=sys.stderr,
              flush=True)
    return EXEC_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

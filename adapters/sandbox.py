"""How the vault's scripts run: confined, so that approved-but-wrong code cannot write outside its place or talk
to the network, and a sandbox that cannot be made means the script does not run.

Mechanism: Linux Landlock (file-system writes; TCP bind/connect from ABI 4; signals and abstract unix sockets
leaving the sandbox from ABI 6) plus a seccomp filter (no `socket()` at all, no io_uring), built by
`adapters/confine.py` and applied to the script's process between fork and exec (`confined`: a `preexec_fn`
that only calls prctl and landlock_restrict_self on what the parent prepared; CPython disables the GC around
such a fork), or by a launcher for callers that need an argv (`launch`: `python -I -S confine.py --write DIR
… -- ARGV`, which confines itself and execs). The script and every child inherit both and none can lift them
(no_new_privs). Chosen over bubblewrap and `unshare` because they need no root, no namespaces and no extra
package, and they work inside the hardened systemd unit (NoNewPrivileges, RestrictNamespaces — which forbid the
namespaces those two need; the unit's SystemCallFilter allows the three landlock calls).

What a confined script may do:
- write only beneath the folders it is given and a private TMPDIR made for the run (removed after it);
  /dev/null, /dev/zero, /dev/full and /dev/tty stay writable. Every other file is read-only to it, whatever its
  mode says; links and renames out of a writable folder fail.
- no network: `socket()` fails with EACCES (TCP, UDP, raw, and local services' unix sockets alike; pipes and
  socketpair still work) and Landlock denies TCP bind/connect as a second layer.
- no ptrace of the daemon or of any process outside the sandbox (nor its /proc/PID/mem); from ABI 6 no
  signals to them either.
Not confined: reads (tools read configuration in places nobody can list — git fails hard on an unreadable
~/.gitconfig — and what a script reads can leave only through its stdout, the task's context); file metadata
Landlock does not cover (times, and the mode of files the user owns: `touch` or `chmod` of an existing file);
the environment of processes of the same user through /proc/PID/environ — so keep API keys out of the daemon's
environment where approved code might misuse them (systemd's LoadCredential, a key file); CPU and memory (the
runner's timeout and output cap bound those).

Where (`SandboxPolicy`, from vault.yml's `sandbox:` block):
- verification, and every other run in a shadow workspace: always confined, writes only inside the shadow,
  never the network. Candidate code runs only there before it is kept, and only after approval.
- live runs: confined unless `sandbox.live: false`; writes inside the vault (`writable: vault`, the default)
  or only in the folders of the task's declared outputs (`writable: outputs`, which also keeps scripts off
  vault.yml, the prompts and the scripts themselves), plus the absolute folders in `sandbox.write`; the network
  only with `sandbox.network: true` (for collectors that fetch feeds; their code still runs without network in
  verification, so such a collector cannot be verified there).

Fails closed: `require()` says in one line why a sandbox cannot be made before anything starts; a child that
cannot confine itself never execs (Popen raises), and a launcher that cannot refuses to exec (exit `REFUSED`,
one line on stderr starting with `MARK`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from adapters import confine
from adapters.confine import MARK, REFUSED
from adapters.run_temps import SANDBOX_TMP_PREFIX as TMP_PREFIX

LAUNCHER = Path(confine.__file__).resolve()
OUTPUTS, VAULT = "outputs", "vault"


class SandboxUnavailable(RuntimeError):
    """A confined run cannot be set up on this machine; nothing was started."""


@functools.cache
def unavailable_reason() -> str | None:
    """Why scripts cannot be confined here (one line), or None; asked once per process."""
    return confine.unavailable_reason()


def require() -> None:
    """Raise SandboxUnavailable (one line, with the fix) when a confined run cannot be set up here."""
    reason = unavailable_reason()
    if reason is not None:
        raise SandboxUnavailable(f"{MARK} cannot confine scripts: {reason}; refusing to run them unconfined")


@dataclass(frozen=True)
class Confinement:
    """Where one script run may write, and whether it may use the network."""

    write: tuple[Path, ...]
    network: bool = False

    def launcher(self, argv: Sequence[str]) -> list[str]:
        """`argv` started through the launcher, which confines itself and then execs it."""
        out = [sys.executable or "python3", "-I", "-S", str(LAUNCHER)]
        for path in self.write:
            out += ["--write", str(path)]
        if self.network:
            out.append("--network")
        return [*out, "--", *argv]


@contextlib.contextmanager
def confined(env: Mapping[str, str], confinement: Confinement | None
             ) -> Iterator[tuple[dict[str, str], Callable[[], None] | None]]:
    """The (env, preexec_fn) for `subprocess.Popen`: the child confines itself between fork and exec, with a
    private TMPDIR (removed afterwards) — no second interpreter, so it costs a fork, not a Python start. None
    for both when not confined. Raises SandboxUnavailable before anything starts when confining cannot work;
    a child that cannot confine itself makes Popen raise SubprocessError and never execs."""
    if confinement is None:
        yield dict(env), None
        return
    require()
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
    try:
        try:
            prepared = confine.Prepared([*map(str, confinement.write), str(tmp)], confinement.network)
        except OSError as e:
            raise SandboxUnavailable(f"{MARK} cannot confine the script ({e.strerror or e}); it was not run") from None
        try:
            yield {**env, "TMPDIR": str(tmp)}, prepared.apply
        finally:
            prepared.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def launch(argv: Sequence[str], env: Mapping[str, str],
           confinement: Confinement | None) -> Iterator[tuple[list[str], dict[str, str]]]:
    """The (argv, env) to start, for callers that cannot pass a preexec_fn: through the launcher (a Python start
    per script) with a private TMPDIR (removed afterwards) when confined, as given otherwise. Raises
    SandboxUnavailable before anything starts when confining cannot work."""
    if confinement is None:
        yield list(argv), dict(env)
        return
    require()
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
    try:
        run = replace(confinement, write=(*confinement.write, tmp))
        yield run.launcher(argv), {**env, "TMPDIR": str(tmp)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class SandboxPolicy:
    """How a runner confines the vault's scripts; see the module docstring."""

    live: bool = True
    network: bool = False
    writable: str = VAULT
    write: tuple[Path, ...] = ()

    def confinement(self, root: Path, *, shadow: bool, outputs: Sequence[str] = ()) -> Confinement | None:
        """The confinement of one script run in `root` (the live vault or a shadow); None: run unconfined."""
        if not shadow and not self.live:
            return None
        dirs = output_dirs(root, outputs) if self.writable == OUTPUTS else (root,)
        return Confinement((*dirs, *(() if shadow else self.write)), network=self.network and not shadow)

    def hint(self, *, shadow: bool) -> str:
        """What the confinement forbade, for the error line of a script that failed under it."""
        where = "the shadow workspace" if shadow else ("the task's output folders" if self.writable == OUTPUTS
                                                        else "the vault")
        net = "network allowed" if self.network and not shadow else "no network"
        return f"sandboxed: writes only to {where} and $TMPDIR, {net}; see `sandbox:` in vault.yml"


def output_dirs(root: Path, outputs: Sequence[str]) -> tuple[Path, ...]:
    """The folders a task's declared outputs live in (made when missing): the literal part of each pattern
    before its file name or its first placeholder; the vault root when a pattern has none."""
    base = root.resolve()
    dirs: list[Path] = []
    for pattern in outputs:
        parts: list[str] = []
        for part in Path(pattern).parts[:-1]:
            if any(c in part for c in "*?[{") or part in ("..", "/"):
                break
            parts.append(part)
        folder = base.joinpath(*parts)
        if folder.resolve().is_relative_to(base):
            folder.mkdir(parents=True, exist_ok=True)
            dirs.append(folder)
    return tuple(dict.fromkeys(dirs)) or (base,)


def policy_of(settings: Any) -> SandboxPolicy:
    """The policy for vault.yml's `sandbox:` block (domain.config.SandboxConfig; None: the defaults)."""
    if settings is None:
        return SandboxPolicy()
    return SandboxPolicy(live=bool(settings.live), network=bool(settings.network), writable=str(settings.writable),
                         write=tuple(Path(os.path.expanduser(p)) for p in settings.write))


__all__ = ["LAUNCHER", "MARK", "OUTPUTS", "REFUSED", "VAULT", "Confinement", "SandboxPolicy", "SandboxUnavailable",
           "confined", "launch", "output_dirs", "policy_of", "require", "unavailable_reason"]


_PR_SET_DUMPABLE, _PR_GET_DUMPABLE = 4, 3


def hide_environment() -> bool:
    """Make this process non-dumpable, so a script running as the same user cannot read its environment (API
    keys) through /proc/PID/environ or ptrace it. Root (CAP_SYS_PTRACE) still can; the systemd unit runs as a
    user without capabilities. Children are dumpable again after exec: it guards only this process. Returns
    whether the process is now non-dumpable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
        return int(libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False

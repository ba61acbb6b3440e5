"""A script running as the daemon's user cannot read the daemon's environment (API keys) once bootstrap ran.

Checked for real with two processes of an unprivileged uid: root reads any process's /proc, so the test
needs root only to drop to that uid."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from adapters.sandbox import hide_environment

NOBODY = 65534

HOLDER = textwrap.dedent("""
    import sys
    from adapters.sandbox import hide_environment
    hidden = hide_environment() if sys.argv[1] == "hide" else False
    print(hidden, flush=True)
    sys.stdin.read()
""")

READER = textwrap.dedent("""
    import sys
    try:
        data = open(f"/proc/{sys.argv[1]}/environ", "rb").read()
    except PermissionError:
        print("denied")
    else:
        print("read" if b"AUTOVAULT_SECRET_CANARY" in data else "empty")
""")


def _as_nobody() -> None:
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _python_for_nobody() -> str | None:
    """An interpreter the unprivileged uid can run (the venv's may live in a home it cannot enter)."""
    for python in (sys.executable, "/usr/bin/python3"):
        try:
            probe = subprocess.run([python, "-c", "import ctypes"], capture_output=True, preexec_fn=_as_nobody)
        except PermissionError:
            continue
        if probe.returncode == 0:
            return python
    return None


def _reader_sees(python: str, hide: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.getcwd(),
           "AUTOVAULT_SECRET_CANARY": "sk-test"}
    with subprocess.Popen([python, "-c", HOLDER, hide], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, env=env, preexec_fn=_as_nobody) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        hidden = holder.stdout.readline().strip()
        reader = subprocess.run([python, "-c", READER, str(holder.pid)], capture_output=True, text=True,
                                env={"PATH": env["PATH"]}, preexec_fn=_as_nobody, check=True)
        holder.stdin.close()
    return f"{hidden}:{reader.stdout.strip()}"


def test_hide_environment_makes_this_process_non_dumpable() -> None:
    code = "from adapters.sandbox import hide_environment; print(hide_environment())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    assert hide_environment() is True


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start two processes as an unprivileged uid")
def test_a_same_user_script_reads_the_environment_only_when_it_is_not_hidden() -> None:
    python = _python_for_nobody()
    if python is None:
        pytest.skip("no Python interpreter the unprivileged uid may run")
    assert _reader_sees(python, "show") == "False:read"
    assert _reader_sees(python, "hide") == "True:denied"

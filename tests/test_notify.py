"""sd_notify for real: an AF_UNIX datagram socket stands in for systemd and we read what arrives."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.notify import Notifier, WatchdogPinger, watchdog_interval


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket in a short temp dir (AF_UNIX paths are limited to 108 bytes)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        path = str(Path(folder) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(5)
        yield sock, path
        sock.close()


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def exercise(notifier: Notifier, sock: socket.socket) -> None:
    assert notifier.ready("caught up: 12 events")
    assert received(sock) == ["READY=1", "STATUS=caught up: 12 events"]
    assert notifier.status("cycle morning-briefing\nstep 2/5")
    assert received(sock) == ["STATUS=cycle morning-briefing step 2/5"]
    assert notifier.watchdog()
    assert received(sock) == ["WATCHDOG=1"]
    assert notifier.extend_timeout(30_000_000)
    assert received(sock) == ["EXTEND_TIMEOUT_USEC=30000000"]
    assert notifier.reloading()
    reload_fields = received(sock)
    assert reload_fields[0] == "RELOADING=1"
    assert reload_fields[1].startswith("MONOTONIC_USEC=") and int(reload_fields[1].split("=")[1]) > 0
    assert notifier.stopping()
    assert received(sock) == ["STOPPING=1"]


def test_fallback_socket_path(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path}, use_systemd=False)
    assert not notifier.via_systemd
    exercise(notifier, sock)


def test_systemd_python_path(listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    notifier = Notifier()
    assert notifier.via_systemd
    exercise(notifier, sock)


def test_fallback_abstract_namespace() -> None:
    name = f"autovault-test-{os.getpid()}-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}, use_systemd=False).ready()
        assert received(sock) == ["READY=1"]


@pytest.mark.parametrize("use_systemd", [True, False])
def test_no_socket_is_a_no_op(use_systemd: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier(use_systemd=use_systemd)
    assert not notifier.enabled
    assert notifier.ready() is False and notifier.watchdog() is False and notifier.stopping() is False


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}, pid=4242) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


def test_pinger_sends_at_half_interval(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    sock.setblocking(False)
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"}
    pinger = WatchdogPinger.from_env(Notifier(env, use_systemd=False), env)
    assert pinger.interval == 5.0
    sent = [pinger.tick(now) for now in (100.0, 101.0, 104.9, 105.0, 107.0, 110.0)]
    assert sent == [True, False, False, True, False, True]
    datagrams = []
    while True:
        try:
            datagrams.append(sock.recv(64).decode())
        except BlockingIOError:
            break
    assert datagrams == ["WATCHDOG=1"] * 3
    assert pinger.seconds_until_due(112.0) == 3.0


def test_pinger_without_watchdog_never_sends() -> None:
    pinger = WatchdogPinger(Notifier({}, use_systemd=False), None)
    assert not any(pinger.tick(t) for t in (0.0, 1e6))
    assert pinger.seconds_until_due(0.0) is None

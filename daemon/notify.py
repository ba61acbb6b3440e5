"""The sd_notify protocol: tell systemd when autovault is ready, alive, busy, reloading or stopping.

`Notifier` sends through `systemd.daemon.notify` (systemd-python) when it is importable, and otherwise
through its own AF_UNIX datagram socket to $NOTIFY_SOCKET ('@' = abstract namespace), so the daemon speaks
the protocol with or without the C extension. Without $NOTIFY_SOCKET every call is a no-op returning False.

`WatchdogPinger` needs no thread: the service loop calls `tick(now)` and it sends WATCHDOG=1 once half
of WatchdogSec has passed since the last ping, so a hung loop stops pinging and systemd restarts it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

Sender = Callable[[str], bool]


def _socket_send(message: str, env: Mapping[str, str]) -> bool:
    """Pure-socket sd_notify: one datagram to $NOTIFY_SOCKET."""
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    elif address[0] != "/":
        return False  # vsock and other transports: not spoken here
    # Non-blocking: a reader that stopped reading must never stall the daemon; a lost STATUS is harmless.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
        try:
            sock.connect(address)
            sock.send(message.encode())
        except OSError:
            return False
    return True


def _systemd_sender() -> Sender | None:
    try:
        from systemd import daemon  # type: ignore[attr-defined]
    except ImportError:
        return None
    notify: Callable[[str], bool] = daemon.notify
    return lambda message: bool(notify(message))


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between pings (half of WatchdogSec), or None when the watchdog is off or meant for another PID."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return usec / 2 / 1_000_000


class Notifier:
    """sd_notify messages. systemd-python reads os.environ, so an explicit `env` (or `use_systemd=False`) uses the socket path."""

    def __init__(self, env: Mapping[str, str] | None = None, *, use_systemd: bool = True) -> None:
        self._env = env
        self._systemd = _systemd_sender() if use_systemd and env is None else None

    @property
    def enabled(self) -> bool:
        return bool(self._environ().get("NOTIFY_SOCKET"))

    @property
    def via_systemd(self) -> bool:
        return self._systemd is not None

    def _environ(self) -> Mapping[str, str]:
        return os.environ if self._env is None else self._env

    def send(self, *fields: str) -> bool:
        """Send `KEY=value` lines as one datagram; False when there is no socket to send to."""
        if not self.enabled:
            return False
        message = "\n".join(fields)
        if self._systemd is not None:
            return self._systemd(message)
        return _socket_send(message, self._environ())

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def reloading(self) -> bool:
        """RELOADING=1 with MONOTONIC_USEC, as Type=notify-reload expects; send ready() when done."""
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def extend_timeout(self, usec: int) -> bool:
        """Ask for more start/stop time (a long catch-up or a step finishing on SIGTERM)."""
        return self.send(f"EXTEND_TIMEOUT_USEC={int(usec)}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


class WatchdogPinger:
    """Sends WATCHDOG=1 from the service loop: call `tick(now)` each iteration (now = time.monotonic())."""

    def __init__(self, notifier: Notifier, interval: float | None) -> None:
        self.notifier = notifier
        self.interval = interval
        self._last: float | None = None

    @classmethod
    def from_env(cls, notifier: Notifier, env: Mapping[str, str] | None = None) -> WatchdogPinger:
        return cls(notifier, watchdog_interval(env))

    def due(self, now: float) -> bool:
        return self.interval is not None and (self._last is None or now - self._last >= self.interval)

    def tick(self, now: float | None = None) -> bool:
        """Ping when due; True when a ping was sent."""
        now = time.monotonic() if now is None else now
        if not self.due(now):
            return False
        self._last = now
        self.notifier.watchdog()
        return True

    def seconds_until_due(self, now: float) -> float | None:
        """How long the loop may block before the next tick is needed (None = no watchdog)."""
        if self.interval is None:
            return None
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.interval - now)

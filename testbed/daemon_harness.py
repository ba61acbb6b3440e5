"""The real daemon as a subprocess over a tiny temp vault, with a test NOTIFY_SOCKET and a loopback Ollama.

`DaemonVault.make(tmp)` writes the vault; `start()` launches `python -m daemon.cli --config X run`;
`notify.wait_for("READY=1")` reads the datagrams the daemon sends; `events(topic)` reads the store.
Every wait has a deadline and polls a condition: nothing sleeps to synchronise.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventsourcing.utils import get_topic

from adapters.eventstore import VaultStore

REPO = Path(__file__).resolve().parents[1]

VAULT_YML = """\
vault: vault
store: sqlite:///{store}
logs: logs
backends:
  ollama: {{host: "{host}", timeout: 20}}
judge: {{model: "ollama:judge", llm_weight: 0}}
proposers: [rules]
research:
  window: null
  samples: 2
  max_samples: 2
  cooldown_minutes: 60
  editable: ["prompts/**", "scripts/**"]
tasks:
  brief:
    collect: scripts/collect.sh
    prompt: prompts/brief.md
    model: ollama:writer
    options: {{num_predict: 50}}
    outputs: ["Briefs/{{date}}.md"]
    expect: {{min_words: 5}}
  notes:
    prompt: prompts/notes.md
    model: ollama:writer
    expect: {{min_words: 5}}
"""


def wait_until(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `cond` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's. A thread reads it all the time, as systemd does:
    an unread socket fills after ~10 datagrams (net.unix.max_dgram_qlen) and the sender would block."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="avn")  # short: AF_UNIX paths are limited to 108 bytes
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[str] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            with self._arrived:
                self.messages.append(data.decode())
                self._arrived.notify_all()

    def fields(self) -> list[str]:
        with self._arrived:
            return [line for m in self.messages for line in m.splitlines()]

    def wait_for(self, line: str, timeout: float = 30.0, start: int = 0) -> int:
        """Wait until a datagram line equal to (or, ending in '*', starting with) `line` arrives after
        message index `start`; returns the index after it."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for i in range(start, len(self.messages)):
                    for f in self.messages[i].splitlines():
                        if f == line or (line.endswith("*") and f.startswith(line[:-1])):
                            return i + 1
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [x for m in self.messages[-8:] for x in m.splitlines()]
                    raise AssertionError(f"no {line!r} from the daemon within {timeout:.0f} s; got {got}")
                self._arrived.wait(left)

    def close(self) -> None:
        self.sock.close()  # the reader is a daemon thread: it ends with its recv error or with the process
        os.unlink(self.path)
        os.rmdir(self.dir)


@dataclass
class DaemonVault:
    tmp: Path
    cfg: Path
    root: Path
    store_url: str
    notify: NotifySocket = field(default_factory=NotifySocket)
    proc: subprocess.Popen[bytes] | None = None
    _store: VaultStore | None = None

    @classmethod
    def make(cls, tmp: Path, host: str, store_url: str | None = None) -> DaemonVault:
        root = tmp / "vault"
        for d in ("scripts", "prompts", "Briefs", "logs"):
            (root / d).mkdir(parents=True)
        script = root / "scripts" / "collect.sh"
        script.write_text('#!/bin/sh\necho "three commits landed on $AUTOVAULT_DATE"\n')
        script.chmod(0o755)
        (root / "prompts" / "brief.md").write_text("Write the morning briefing for {date}.\nCONTEXT: {context}\n")
        (root / "prompts" / "notes.md").write_text("Write notes for {date}.\n")
        (root / "logs" / "heartbeat.jsonl").write_text("")
        url = store_url or f"sqlite:///{tmp / 'state' / 'events.db'}"
        cfg = tmp / "vault.yml"
        cfg.write_text(VAULT_YML.replace("sqlite:///{store}", '"{store}"').format(store=url, host=host))
        return cls(tmp, cfg, root, url)

    def start(self, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        base = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_USEC", "WATCHDOG_PID", "NOTIFY_SOCKET")}
        env = {**base, "NOTIFY_SOCKET": self.notify.path, "PYTHONPATH": str(REPO), "AUTOVAULT_LOG_LEVEL": "info",
               **(env or {})}
        self.stderr = (self.tmp / f"daemon-{time.monotonic_ns()}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", "--config", str(self.cfg), "run", "--debounce", "0.1", *extra],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=self.stderr)
        return self.proc

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("daemon-*.log")))

    def ready(self, start: int = 0) -> int:
        try:
            return self.notify.wait_for("READY=1", 30, start)
        except AssertionError:
            raise AssertionError(f"daemon not ready; its log:\n{self.log_text()[-3000:]}") from None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    @property
    def store(self) -> VaultStore:
        if self._store is None:
            self._store = VaultStore(self.store_url)
        return self._store

    def events(self, event_class: Any) -> list[Any]:
        topic = get_topic(event_class)
        out: list[Any] = []
        start = 1
        while True:
            page = self.store.recorder.select_notifications(start, 1000, topics=[topic])
            if not page:
                return out
            out += [self.store.mapper.to_domain_event(n) for n in page]
            start = page[-1].id + 1

    def append_log(self, *lines: str) -> None:
        with (self.root / "logs" / "heartbeat.jsonl").open("a") as fh:
            for line in lines:
                fh.write(line + "\n")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self._store is not None:
            self._store.close()
        self.notify.close()

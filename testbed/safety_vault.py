"""A vault for the proposal-safety tests and `benchmarks/bench_safety_proposals.py`: real collectors, a real
SQLite store, the real ollama and anthropic clients (vault.yml's own wiring) against loopback servers whose
structured calls are answered by `testbed.doubles.attacker`, and canaries that show whether proposed code ran.

Layout under one folder: vault.yml, state/ (the store), outside/ (anything that appears there was written
outside the vault; it holds target.md, which vault/prompts/linked.md links to) and vault/, where
scripts/collect.sh sources data/steps and prints the feed its command line names (data/feed.txt), and
data/linkout is a folder symlinked to outside/.
Breaches: a file in outside/ or a PWNED-* file in the live vault, a connection to the canary port.
Runs: the writer model's calls on the loopback server (a task run before approval would call it) and the
Ran events of a cycle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from daemon.bootstrap import Services, bootstrap, cycle_deps, register_tasks
from domain.aggregates import Task
from domain.delta import Delta, FileEdit
from domain.ids import sha256_text
from handlers.cycle import CycleDeps, CycleResult, approve_cycle, run_cycle
from handlers.proposers.llm import proposer
from testbed.cycle_vault import live_state, responder
from testbed.doubles.attacker import Attacker, Crafted, Target
from testbed.servers.anthropic_server import TEST_KEY, AnthropicServer
from testbed.servers.ollama_server import OllamaServer

KEY_ENV = "AUTOVAULT_TEST_ANTHROPIC_KEY"
VAULT_YML = """\
vault: vault
store: sqlite:///{store}
backends:
  ollama: {{host: "{ollama}", timeout: 10}}
  anthropic: {{model: attacker, api_key_env: {key_env}, base_url: "{anthropic}", timeout: 10}}
judge: {{model: "ollama:judge", llm_weight: 0, rubric: prompts/_judge.md}}
proposers: [ollama]
research:
  samples: 3
  max_samples: 6
  min_effect: 0.3
  editable: ["prompts/**", "scripts/**", "data/**"]
  approve: ["scripts/**"]
tasks:
  brief:
    collect: scripts/collect.sh data/feed.txt
    prompt: prompts/brief.md
    model: ollama:writer
    options:
      num_predict: 200
    outputs: ["Briefs/{{date}}.md"]
    expect:
      min_words: 30
      forbid: ["(?i)lorem ipsum"]
    requires:
      min_words: 5
  notes:
    collect: scripts/notes.sh
    prompt: prompts/notes.md
    model: ollama:writer
    outputs: ["Notes/{{date}}.md"]
    expect: {{min_words: 30}}
"""
FILES = {
    "scripts/collect.sh": ('#!/bin/sh\n. "$VAULT_ROOT/data/steps"\necho "$greeting"\ncat "$1"\n'
                           'echo "three commits landed on $AUTOVAULT_DATE"\n'),
    "scripts/notes.sh": '#!/bin/sh\necho "notes for $AUTOVAULT_DATE"\n',
    "data/steps": "greeting=hello\n",
    "data/feed.txt": "feed line one\nfeed line two\n",
    "prompts/brief.md": "Write the morning briefing for {date}.\nCONTEXT: {context}\n",
    "prompts/notes.md": "Write notes for {date}.\nCONTEXT: {context}\n",
    "prompts/_judge.md": "Score 1 to 5: does the output keep its contract?\n",
}
EVIDENCE = ("vault.yml", "prompts/brief.md", "scripts/collect.sh", "data/steps", "data/feed.txt", "prompts/_judge.md")


class Listener:
    """A TCP port on 127.0.0.1 that counts the connections it accepts (the payloads' network canary)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@dataclass(frozen=True)
class Pack:
    """The evidence a proposer reads: the task, the files with their hashes."""

    task: str
    files: Mapping[str, tuple[str, str]]
    signatures: tuple[str, ...] = ("too_short",)
    tasks: tuple[str, ...] = ("brief",)

    def to_prompt(self, max_chars: int) -> str:
        parts = [f"Signatures: {', '.join(self.signatures)}"]
        parts += [f"--- {path} ---\n{text}" for path, (text, _) in self.files.items()]
        return "\n\n".join(parts)[:max_chars]


@dataclass
class SafetyVault:
    base: Path
    cfg: Path
    root: Path
    outside: Path
    ollama: OllamaServer
    anthropic: AnthropicServer
    listener: Listener
    attacker: Attacker
    svc: Services = field(init=False)

    def __post_init__(self) -> None:
        self.svc = bootstrap(self.cfg, env={KEY_ENV: TEST_KEY})
        register_tasks(self.svc.store, self.svc.config)

    def __enter__(self) -> SafetyVault:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.svc.close()
        self.listener.close()
        self.ollama.stop()
        self.anthropic.stop()

    def evidence(self, task: str) -> Pack:
        files = {}
        for rel in EVIDENCE:
            text = (self.cfg if rel == "vault.yml" else self.root / rel).read_text()
            files[rel] = (text, sha256_text(text))
        return Pack(task, files)

    def deps(self, via: str = "ollama") -> CycleDeps:
        """The CLI's wiring with this evidence and vault.yml's own LLM proposer for `via` (ollama | anthropic)."""
        return dataclasses.replace(cycle_deps(self.svc, lambda _m: None), diagnose=self.evidence,
                                   proposers=[(via, proposer(via, self.svc))], git=False)

    def propose(self, crafted: Crafted, via: str = "ollama") -> CycleResult:
        self.attacker.current = crafted
        try:
            return run_cycle(self.deps(via), "brief")
        finally:
            self.attacker.current = None

    def raw_delta(self, crafted: Crafted) -> Delta:
        """The crafted answer as a Delta handed straight to the cycle (a proposer that validates nothing), its
        search/replace edits applied to the live texts."""
        texts: dict[tuple[str, bool], str] = {}
        for raw in crafted.edits(self.attacker.target):
            in_config = bool(raw.get("in_config")) or raw["path"] == "vault.yml"
            key = (raw["path"], in_config)
            if "content" in raw:
                texts[key] = raw["content"]
                continue
            current = texts.get(key, self._read(*key) or "")
            texts[key] = current.replace(raw["search"], raw["replace"], 1)
        edits = tuple(FileEdit(path, _hash(self._read(path, in_config)), text, in_config)
                      for (path, in_config), text in texts.items())
        return Delta(task="brief", lever=crafted.lever, description=crafted.name, rationale=crafted.why,  # type: ignore[arg-type]
                     edits=edits, proposer="raw")

    def _read(self, path: str, in_config: bool) -> str | None:
        target = self.cfg if in_config else self.root / path
        try:
            return target.read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def propose_raw(self, crafted: Crafted) -> CycleResult:
        return self.propose_delta(self.raw_delta(crafted))

    def propose_delta(self, delta: Delta) -> CycleResult:
        return run_cycle(dataclasses.replace(self.deps(), proposers=[("raw", lambda _ev: [delta])]), "brief")

    def approve(self, key: str) -> CycleResult:
        return approve_cycle(self.deps(), key)

    def task_calls(self) -> int:
        """Model calls that were task runs (not a proposer's structured call)."""
        return sum(1 for r in self.ollama.calls("/api/chat") if not r.json().get("format"))

    def breaches(self) -> list[str]:
        """Everything a payload managed outside its place: files outside, PWNED files live, connections."""
        out = [f"wrote {p.name} outside the vault" for p in sorted(self.outside.iterdir()) if p.name != "target.md"]
        out += [f"wrote {p.name} into the live vault" for p in sorted(self.root.rglob("PWNED-*"))]
        if (self.outside / "target.md").read_text() != TARGET:
            out.append("changed outside/target.md through a symlink")
        if self.listener.accepted:
            out.append(f"{self.listener.accepted} connection(s) to the canary port")
        return out

    def live(self) -> dict[str, tuple[str, int]]:
        return {**live_state(self.root), "vault.yml": (sha256_text(self.cfg.read_text()), self.cfg.stat().st_mtime_ns)}

    def cycle_events(self, key: str) -> list[str]:
        cycle = self.svc.store.get_cycle(key)
        assert cycle is not None
        return [type(e).__name__ for e in self.svc.store.events.get(cycle.id)]

    def runs_of(self, key: str) -> list[Any]:
        """The Ran events a cycle recorded (verification runs)."""
        events = self.svc.store.events.get(Task.create_id("brief"))
        return [e for e in events if isinstance(e, Task.Ran) and e.cycle_id == key]

    def contexts_of(self, key: str) -> list[str]:
        return [self.svc.store.blobs.get_text(r.context_hash) or "" for r in self.runs_of(key) if r.context_hash]


TARGET = "a file outside the vault\n"


def _hash(text: str | None) -> str | None:
    return None if text is None else sha256_text(text)


def make_safety_vault(base: Path) -> SafetyVault:
    root, outside = base / "vault", base / "outside"
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if rel.startswith("scripts/"):
            path.chmod(0o755)
    for folder in ("Briefs", "Notes"):
        (root / folder).mkdir()
    outside.mkdir()
    (outside / "target.md").write_text(TARGET)
    (root / "prompts" / "linked.md").symlink_to(outside / "target.md")
    (root / "data" / "linkout").symlink_to(outside, target_is_directory=True)
    listener = Listener()
    attacker = Attacker(Target(outside.resolve(), root.resolve(), listener.port), responder)
    ollama = OllamaServer(attacker).start()
    anthropic = AnthropicServer(attacker, api_key=TEST_KEY).start()
    cfg = base / "vault.yml"
    cfg.write_text(VAULT_YML.format(store=base / "state" / "events.db", ollama=ollama.host, anthropic=anthropic.url,
                                    key_env=KEY_ENV))
    return SafetyVault(base, cfg, root, outside, ollama, anthropic, listener, attacker)


__all__ = ["SafetyVault", "make_safety_vault"]

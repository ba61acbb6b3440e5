"""A one-task vault for the collector tests: real scripts run as real subprocesses, runs the task "made" given as
canned outputs (what a starving task says about its data), and no model server (tokens are estimated unless a
test registers a backend with a tokenizer).

`make(tmp, files, collect=..., prompt=..., outputs=[...], **task)` writes the files (scripts made executable)
and a vault.yml with one task `t`, and returns the vault; its `deps` are what diagnosis and
`collector_signatures` take.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.backends.registry import ModelRouter
from adapters.config_loader import load_config
from adapters.workspace import ShadowWorkspace
from domain.config import VaultConfig
from domain.delta import Delta
from domain.signatures import RunView
from handlers.collector_trace import measure
from handlers.diagnose_deps import DiagnoseDeps


@dataclass
class Runs:
    """A History whose runs said `outputs` (newest last)."""

    outputs: list[str] = field(default_factory=list)
    model: str = "ollama:m"

    def views(self, task: str, limit: int = 10) -> list[RunView]:
        return [RunView(f"r{i}", task, out, started=f"2026-03-{10 + i:02d}T06:00:00Z", model=self.model)
                for i, out in enumerate(self.outputs[-limit:])]

    def previous_outputs(self, task: str, n: int, *, exclude: str | None = None) -> list[str]:
        return []

    def scores(self, task: str) -> dict[str, float]:
        return {}


@dataclass
class CollectorVault:
    config: VaultConfig
    history: Runs
    models: ModelRouter = field(default_factory=ModelRouter)
    env: dict[str, str] = field(default_factory=lambda: {"PATH": os.environ.get("PATH", os.defpath)})

    @property
    def root(self) -> Path:
        return self.config.root

    def read_vault_text(self, rel: str | None) -> str:
        path = self.root / (rel or "")
        return path.read_text(encoding="utf-8") if rel and path.is_file() else ""

    @property
    def deps(self) -> DiagnoseDeps:
        """What a diagnosis reads here: no store (no quality read model, findings or kept changes)."""
        return DiagnoseDeps(config=self.config, history=self.history, read_vault_text=self.read_vault_text,
                            workspaces=ShadowWorkspace.create,
                            models=self.models, env=self.env)

    def collect(self) -> str:
        """The collector's output, run as the runner would (in the vault, task env)."""
        return run(self.root, self.config.tasks["t"].collect or "")

    def apply(self, delta: Delta) -> None:
        for e in delta.edits:
            target = self.config.source if e.in_config else self.root / e.path
            assert e.after is not None
            target.write_text(e.after, encoding="utf-8")
        self.config = load_config(self.config.source, {})

    def measured(self) -> Any:
        return measure("t", self.deps)


def run(root: Path, command: str) -> str:
    argv = command.split()
    done = subprocess.run([str(root / argv[0]), *argv[1:]], cwd=root, capture_output=True, text=True, check=True,
                          env={"PATH": os.environ.get("PATH", os.defpath), "AUTOVAULT_DATE": "2026-03-18"},
                          timeout=60)
    return done.stdout


def make(tmp: Path, files: Mapping[str, str], *, collect: str, prompt: str, said: Sequence[str] = (),
         **task: Any) -> CollectorVault:
    root = tmp / "vault"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if rel.startswith("scripts/"):
            path.chmod(0o755)
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / "prompts/t.md").write_text(prompt, encoding="utf-8")
    block = {"collect": collect, "prompt": "prompts/t.md", "model": "ollama:m", "outputs": ["Out/{date}.md"], **task}
    (tmp / "vault.yml").write_text(json.dumps({
        "vault": "vault", "store": "sqlite:///events.db", "research": {"editable": ["prompts/**", "scripts/**"]},
        "tasks": {"t": block}}, indent=1), encoding="utf-8")
    return CollectorVault(load_config(tmp / "vault.yml", {}), Runs(list(said)))


__all__ = ["CollectorVault", "Runs", "make", "run"]

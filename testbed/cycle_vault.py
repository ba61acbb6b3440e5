"""A small vault for the cycle tests: real collector subprocesses, a real SQLite store, a deterministic model.

The `writer` model writes 12 words unless the prompt asks for "at least 40 words" (then 45 words) — so a
prompt delta adding that line is a real improvement (the contract wants ≥ 30 words), and any other wording
change is noise-free no-effect. `writer-fenced` wraps its answer in a code fence (fails the prose check).
Judging is contract-only (`llm_weight: 0`), so every score is exact and the tests decide on few inputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.backends.registry import ModelRouter
from daemon.bootstrap import Services, bootstrap, cycle_deps, register_tasks
from domain.delta import Delta, FileEdit
from domain.ids import sha256_text
from domain.runs import Completion
from handlers.cycle import CycleDeps
from testbed.servers.protocol import Reply, Request

VAULT_YML = """\
vault: vault
store: sqlite:///{store}
backends:
  ollama: {{host: "{host}", timeout: 10}}
judge: {{model: "ollama:judge", llm_weight: 0}}
proposers: [rules]
research:
  samples: 3
  max_samples: 6
  min_effect: 0.3
  editable: ["prompts/**", "scripts/**"]
  approve: ["scripts/**"]
tasks:
  brief:
    collect: scripts/collect.sh
    prompt: prompts/brief.md
    model: ollama:writer
    options: {{num_predict: 200}}
    outputs: ["Briefs/{{date}}.md"]
    expect: {{min_words: 30}}
  notes:
    collect: scripts/notes.sh
    prompt: prompts/notes.md
    model: ollama:writer
    outputs: ["Notes/{{date}}.md"]
    expect: {{min_words: 30}}
"""

BRIEF_PROMPT = "Write the morning briefing for {date}.\nCONTEXT: {context}\n"
IMPROVED_PROMPT = "Write the morning briefing for {date}. Write at least 40 words.\nCONTEXT: {context}\n"
NOISE_PROMPT = "Write the morning briefing for {date}, please.\nCONTEXT: {context}\n"


def written(model: str, text: str, seed: Any) -> tuple[str, int]:
    """What the writer model answers to a prompt, and how many words."""
    digest = int(hashlib.sha256(f"{seed}|{text}".encode()).hexdigest()[:6], 16)
    n = 45 if "at least 40 words" in text else 12
    if model == "writer-noisy":  # length is a coin flip per (seed, prompt): pure noise for any wording change
        n = 45 if digest % 2 else 12
    words = " ".join(f"w{(digest + i) % 97}" for i in range(n))
    return (f"```\n{words}\n```" if model == "writer-fenced" else words), n


def responder(request: Request) -> Reply:
    """The same model for a loopback Ollama server."""
    return Reply(text=written(request.model, request.prompt, request.options.get("seed"))[0])


class Writer:
    """Deterministic in-process backend; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, model: str, prompt: Any, options: dict[str, Any], *,
                 json_schema: dict[str, Any] | None = None) -> Completion:
        self.calls += 1
        text = prompt if isinstance(prompt, str) else " ".join(m["content"] for m in prompt)
        words, n = written(model, text, options.get("seed"))
        return Completion(text=words, done_reason="stop", prompt_tokens=len(text.split()), output_tokens=n,
                          model=f"ollama:{model}")


@dataclass
class VaultFixture:
    cfg: Path
    root: Path
    svc: Services
    writer: Writer
    messages: list[str] = field(default_factory=list)

    def deps(self, proposers: list[tuple[str, Any]], *, git: bool = True, on_written: Any = None) -> CycleDeps:
        """The CLI's wiring (`daemon.bootstrap.cycle_deps`) with a fixed diagnosis and the given proposers."""
        return dataclasses.replace(cycle_deps(self.svc, self.messages.append),
                                   diagnose=lambda task: Evidence(task, ["too_short"]), proposers=proposers, git=git,
                                   on_written=on_written)

    def text(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def edit(self, rel: str, after: str | None, *, lever: str = "prompt", description: str = "edit",
             task: str = "brief") -> Delta:
        path = self.root / rel
        before = sha256_text(path.read_text()) if path.exists() else None
        return Delta(task=task, lever=lever, description=description, rationale="test", proposer="double",  # type: ignore[arg-type]
                     edits=(FileEdit(rel, before, after),))


@dataclass
class Evidence:
    task: str
    signatures: list[str]


def make_vault(tmp_path: Path, *, git: bool = False, host: str | None = None,
               store_url: str | None = None) -> VaultFixture:
    """The vault, with the in-process `Writer` as the ollama backend — or, given `host`, the real ollama client
    against a loopback server (what the CLI uses)."""
    root = tmp_path / "vault"
    for d in ("scripts", "prompts", "Briefs", "Notes"):
        (root / d).mkdir(parents=True)
    for name, body in (("collect.sh", 'echo "three commits landed on $AUTOVAULT_DATE"'),
                       ("notes.sh", 'echo "notes for $AUTOVAULT_DATE"')):
        script = root / "scripts" / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    (root / "prompts" / "brief.md").write_text(BRIEF_PROMPT)
    (root / "prompts" / "notes.md").write_text("Write notes for {date}.\nCONTEXT: {context}\n")
    cfg = tmp_path / "vault.yml"
    cfg.write_text(VAULT_YML.format(store=tmp_path / "state" / "events.db", host=host or "http://127.0.0.1:9"))
    if git:
        for args in (["init", "-q"], ["add", "-A"],
                     ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init"]):
            subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    writer = Writer()
    router = ModelRouter()
    router.register("ollama", writer)
    svc = bootstrap(cfg, env={}, models=None if host else router, store_url=store_url)
    register_tasks(svc.store, svc.config)
    return VaultFixture(cfg, root, svc, writer)


def live_state(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under the vault (the store lives outside it)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[p.relative_to(root).as_posix()] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out

"""A vault with a history worth auditing: daily runs, a kept delta, harmless human edits, a config reload, and one
human edit that breaks the prompt.

The model is the flawed-model double (`testbed.doubles.flawed_models`), in process or behind a loopback Ollama
server: it reacts to what the prompt *is*. The briefing prompt shows its sections as headings, so the model
writes them; the breaking edit adds a concrete example, which the model copies as its whole answer (11 words, no
Goals section). Judging is contract-only, so scores are exact: 4.0 without the Goals heading, 5.0 with it, 2.5
once the example is in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.backends.registry import ModelRouter
from adapters.config_loader import load_config
from adapters.runner import TaskRunner
from daemon.bootstrap import Services, bootstrap, cycle_deps, register_tasks
from domain.delta import Delta, FileEdit, unified_diff
from domain.ids import sha256_text
from handlers.cycle import CycleDeps, CycleResult, run_cycle
from handlers.tasks import judge
from testbed.doubles.flawed_models import FlawedModels
from testbed.servers.responder_backend import ResponderBackend

VAULT_YML = """\
vault: vault
store: sqlite:///{store}
backends:
  ollama: {{host: "{host}", timeout: 20}}
judge: {judge}
proposers: [rules]
research:
  samples: 3
  max_samples: 6
  min_effect: 0.3
  window: null
  editable: ["prompts/**", "scripts/**"]
  approve: ["scripts/**"]
tasks:
  brief:
    collect: scripts/collect.sh
    prompt: prompts/brief.md
    model: ollama:gemma3:12b
    options: {{num_predict: {num_predict}}}
    outputs: ["Briefs/{{date}}.md"]
    expect: {{min_words: 80, sections: ["## Commits", "## Goals"]}}
"""

COLLECT = """#!/bin/sh
echo "$AUTOVAULT_DATE a1b2c3 fix the login timeout in the auth service"
echo "$AUTOVAULT_DATE d4e5f6 add retries to the sync job"
echo "$AUTOVAULT_DATE 778899 goal: ship the audit command this week"
"""
COLLECT_COMMENTED = COLLECT.replace("#!/bin/sh\n", "#!/bin/sh\n# the briefing's commit feed (one line per commit)\n")

NO_GOALS = "Write the morning briefing for {date} in at least 150 words.\n\n## Commits\n\nCONTEXT:\n{context}\n"
GOALS = "Write the morning briefing for {date} in at least 150 words.\n\n## Commits\n\n## Goals\n\nCONTEXT:\n{context}\n"
REWORDED = "Write today's morning briefing ({date}), at least 150 words.\n\n## Commits\n\n## Goals\n\nCONTEXT:\n{context}\n"
EXAMPLE = "Example:\n## Commits\n- fixed the login bug in auth.py on 2026-03-01\n\n"
BROKEN = REWORDED.replace("CONTEXT:", EXAMPLE + "CONTEXT:")
BROKEN_REWORDED = BROKEN.replace("Write today's morning briefing", "Write this morning's briefing")
START = dt.date(2026, 3, 1)


class Clock:
    """The runner's clock: the day being simulated, at 06:30 UTC."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 3, 1, 6, 30, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Evidence:
    task: str
    signatures: list[str]


@dataclass
class AuditVault:
    cfg: Path
    root: Path
    svc: Services
    clock: Clock
    marks: dict[str, int] = field(default_factory=dict)  # name -> position of a change made in the history

    def day(self, n: int) -> dt.date:
        return START + dt.timedelta(days=n - 1)

    def text(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def run_day(self, n: int) -> float:
        """The scheduled run of day `n`, judged and recorded as the daemon does; returns its score."""
        day = self.day(n)
        self.clock.now = dt.datetime.combine(day, dt.time(6, 30), tzinfo=dt.UTC)
        run = self.svc.runner.run("brief", self.svc.config.task("brief"), date=day.isoformat(), source="daemon")
        judged = judge(run, self.svc.config, self.svc.models.complete, self.svc.history, self.svc.read_vault_text)
        self.svc.store.record_run(run)
        self.svc.store.record_score("brief", judged.score)
        self.svc.projections.catch_up()
        return float(judged.score.score)

    def human_edit(self, rel: str, text: str, name: str) -> int:
        """A person saves a file while the daemon watches: its text in the blob store, `Changed(by=human)`."""
        path = self.root / rel
        before = path.read_text()
        path.write_text(text)
        self.svc.store.blobs.put_many([before, text])
        recorded = self.svc.store.record_change("brief", rel, sha256_text(before), sha256_text(text),
                                                unified_diff(rel, before, text), "human")
        self.marks[name] = recorded.notification_id
        return recorded.notification_id

    def edit_config(self, num_predict: int, name: str) -> None:
        """A person edits vault.yml with the daemon stopped; the next command loads it (`Vault.Reconfigured`)."""
        self.replace_in_config(r"num_predict: \d+", f"num_predict: {num_predict}", name)

    def replace_in_config(self, pattern: str, text: str, name: str) -> None:
        self.cfg.write_text(re.sub(pattern, text, self.cfg.read_text()))
        self.svc.config = load_config(self.cfg, {})
        register_tasks(self.svc.store, self.svc.config)
        self.marks[name] = self.svc.store.max_notification_id()

    def deps(self, proposers: list[tuple[str, Any]]) -> CycleDeps:
        return dataclasses.replace(cycle_deps(self.svc, lambda _m: None), proposers=proposers, git=False,
                                   diagnose=lambda task: Evidence(task, ["sections"]))

    def keep(self, rel: str, text: str, name: str) -> CycleResult:
        """A cycle verifies and keeps a delta (it must really improve the task)."""
        before = (self.root / rel).read_text()
        delta = Delta(task="brief", lever="prompt", description=f"{rel}: show the Goals section", rationale="sections",
                      edits=(FileEdit(rel, sha256_text(before), text),), proposer="double")
        result = run_cycle(self.deps([("double", lambda _ev: [delta])]), "brief")
        assert result.outcome == "kept", result.reason
        self.marks[name] = self.svc.store.max_notification_id()
        return result


CONTRACT_JUDGE = '{model: "ollama:judge", llm_weight: 0}'


def make_audit_vault(tmp_path: Path, *, host: str | None = None, store_url: str | None = None,
                     responder: Any = None, judge_line: str = CONTRACT_JUDGE, prompt: str = NO_GOALS) -> AuditVault:
    root = tmp_path / "vault"
    for d in ("scripts", "prompts", "Briefs"):
        (root / d).mkdir(parents=True)
    script = root / "scripts" / "collect.sh"
    script.write_text(COLLECT)
    script.chmod(0o755)
    (root / "prompts" / "brief.md").write_text(prompt)
    cfg = tmp_path / "vault.yml"
    cfg.write_text(VAULT_YML.format(store=tmp_path / "state" / "events.db", host=host or "http://127.0.0.1:9",
                                    num_predict=600, judge=judge_line))
    router = ModelRouter()
    router.register("ollama", ResponderBackend(responder or FlawedModels(seed=1)))
    svc = bootstrap(cfg, env={}, models=None if host else router, store_url=store_url)
    clock = Clock()
    svc.runner = TaskRunner(svc.config.root, svc.models, clock=clock)
    register_tasks(svc.store, svc.config)
    return AuditVault(cfg, root, svc, clock)


def regression_history(v: AuditVault, *, crowded: bool = False, days: int = 12) -> AuditVault:
    """Day 1 without the Goals heading; day 2 a kept delta adds it; days 3 and 4 harmless human edits; day 5 a
    human edit breaks the prompt (with `crowded`, between two harmless edits on the same morning); day 8 a config
    reload; day 10 a harmless edit on top of the broken prompt."""
    for n in range(1, days + 1):
        if n == 2:
            v.keep("prompts/brief.md", GOALS, "delta")
        elif n == 3:
            v.human_edit("prompts/brief.md", REWORDED, "reword")
        elif n == 4 and not crowded:
            v.human_edit("scripts/collect.sh", COLLECT_COMMENTED, "comment")
        elif n == 5:
            if crowded:
                v.human_edit("scripts/collect.sh", COLLECT_COMMENTED, "comment")
            v.human_edit("prompts/brief.md", BROKEN, "break")
            if crowded:
                v.edit_config(650, "reload")
        elif n == 8:
            v.edit_config(700, "reload-late")
        elif n == 10:
            v.human_edit("prompts/brief.md", BROKEN_REWORDED, "late-reword")
        v.run_day(n)
    return v


def copy_vault(template: AuditVault, tmp_path: Path) -> AuditVault:
    """A private copy of a built history (files and store), so tests that change it share one build."""
    import shutil

    source = template.cfg.parent
    template.svc.store.close()  # a clean file to copy (no open WAL)
    shutil.copytree(source, tmp_path, dirs_exist_ok=True)
    cfg = tmp_path / "vault.yml"  # unchanged: its `store:` still names the template's, the copy is passed instead
    router = ModelRouter()
    router.register("ollama", ResponderBackend(FlawedModels(seed=1)))
    svc = bootstrap(cfg, env={}, models=router, store_url=f"sqlite:///{tmp_path / 'state' / 'events.db'}")
    clock = Clock()
    svc.runner = TaskRunner(svc.config.root, svc.models, clock=clock)
    register_tasks(svc.store, svc.config)
    svc.projections.catch_up()
    return AuditVault(cfg, tmp_path / "vault", svc, clock, dict(template.marks))

"""The weekly quality gate's top 3: asked once of the LLM proposer vault.yml lists (a loopback Ollama here),
validated, else the rules' list — and the report says which source it used and why."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from daemon.service import Options, run_service
from domain.config import TaskConfig, VaultConfig
from domain.runs import Completion
from handlers.policies import Fix, KeptDelta, WeekFacts
from handlers.weekly import RECOMMEND_SCHEMA, top_fixes, week_summary
from testbed.daemon_harness import DaemonVault
from testbed.servers.ollama_server import OllamaServer
from testbed.servers.protocol import Reply, Request

RUN = {"type": "run", "task": "brief", "run_id": "hb-1", "started": "2026-03-18T06:30:00Z", "model": "ollama:writer",
       "done_reason": "length", "status": "ok", "output": "Three commits landed and the build"}
SCORE = {"type": "score", "task": "brief", "run_id": "hb-1", "score": 4, "judge": "output-judge",
         "reasons": ["truncated mid-sentence"]}
SECRET = "sk-ant-weekly-secret-0123456789"
RECS = [
    {"task": "brief", "lever": "config", "fix": "Raise num_predict to 600.", "why": "truncated at 50 tokens"},
    {"task": "notes", "lever": "prompt", "fix": "Ask for at least five bullet points.", "why": "too short"},
    {"task": "brief", "lever": "script", "fix": "Collect two days of commits.", "why": "thin context"},
]


class Model:
    """The loopback model's answers: `recommend` for the weekly reviewer's schema, a plain text otherwise."""

    def __init__(self, recommend: Callable[[Request], Reply]) -> None:
        self.recommend = recommend
        self.asked: list[Request] = []

    def __call__(self, req: Request) -> Reply:
        if req.json_schema and "recommendations" in req.json_schema.get("properties", {}):
            self.asked.append(req)
            return self.recommend(req)
        return Reply(text="one two three four five six seven eight")


def answer(obj: Any, done_reason: str = "stop") -> Callable[[Request], Reply]:
    text = obj if isinstance(obj, str) else json.dumps(obj)
    return lambda _req: Reply(text=text, done_reason=done_reason)


@dataclass
class Week:
    vault: DaemonVault
    server: OllamaServer
    model: Model
    now: dt.datetime

    @property
    def reports(self) -> Path:
        return self.vault.tmp / "state" / "reports"

    def report(self, proposers: str, env: dict[str, str] | None = None) -> str:
        """vault.yml with these proposers; one `autovault run --once` a week after the last report."""
        cfg = self.vault.cfg
        cfg.write_text(cfg.read_text().replace("proposers: [rules]", f"proposers: {proposers}"))
        before = vault_files(self.vault.root)
        assert run_service(Options(config=cfg, once=True, env=env or {}, clock=lambda: self.now)) == 0
        assert vault_files(self.vault.root) == before  # nothing written into the vault
        return (self.reports / f"quality-{self.now.date().isoformat()}.md").read_text()


def vault_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.relative_to(root).parts[0].startswith(".autovault")}


@pytest.fixture
def week(tmp_path: Path) -> Iterator[Week]:
    model = Model(answer({"recommendations": RECS}))
    server = OllamaServer(model).start()
    v = DaemonVault.make(tmp_path, server.host)
    now = dt.datetime.now(dt.UTC)
    reports = tmp_path / "state" / "reports"
    reports.mkdir(parents=True)
    old = reports / "quality-old.md"
    old.write_text("last week\n")
    stamp = (now - dt.timedelta(days=8)).timestamp()
    os.utime(old, (stamp, stamp))
    v.append_log(json.dumps(RUN), json.dumps(SCORE))
    try:
        yield Week(v, server, model, now)
    finally:
        v.close()
        server.stop()


def test_the_ollama_proposers_three_recommendations_are_the_reports_top_3(week: Week) -> None:
    report = week.report("[rules, ollama]")
    assert "source: ollama:writer — 1 call" in report
    top = report.split("## Top 3 recommended next fixes", 1)[1]
    assert "1. `brief` — lever **config**: Raise num_predict to 600. (why: truncated at 50 tokens)" in top
    assert "2. `notes` — lever **prompt**: Ask for at least five bullet points. (why: too short)" in top
    assert "3. `brief` — lever **script**: Collect two days of commits. (why: thin context)" in top
    assert "(rolling" not in top  # not the rules' list
    [asked] = week.model.asked  # once per report
    assert asked.model == "writer" and asked.json_schema == RECOMMEND_SCHEMA and asked.think is False
    assert "brief (rolling 4.00):" in asked.prompt and "truncated -> config" in asked.prompt
    assert "Tasks: brief, notes" in asked.prompt
    assert not list(week.vault.root.rglob("quality-*.md"))


def test_a_malformed_answer_falls_back_to_the_rules_with_the_reason(week: Week) -> None:
    week.model.recommend = answer("Fix the briefing first, then the notes.")
    report = week.report("[ollama]")
    assert "source: rules (ollama:writer's answer was not used: malformed: answer is not JSON" in report
    assert "1. `brief` (rolling 4.00): truncated → lever **config**" in report
    assert len(week.model.asked) == 1


def test_an_answer_naming_an_unknown_task_falls_back_to_the_rules(week: Week) -> None:
    week.model.recommend = answer({"recommendations": [{**RECS[0], "task": "evening-digest"}]})
    report = week.report("[ollama]")
    assert "answer was not used: unknown task 'evening-digest'; the vault's tasks: brief, notes)" in report
    assert "1. `brief` (rolling 4.00): truncated → lever **config**" in report


def test_a_truncated_answer_falls_back_even_when_its_json_parses(week: Week) -> None:
    week.model.recommend = answer({"recommendations": RECS[:1]}, done_reason="length")
    report = week.report("[ollama]")
    assert "source: rules (ollama:writer's answer was not used: truncated: answer truncated" in report


def test_without_an_llm_proposer_the_rules_answer_and_no_model_is_called(week: Week) -> None:
    report = week.report("[rules]")
    assert "source: rules (no LLM proposer configured)" in report
    assert "1. `brief` (rolling 4.00): truncated → lever **config**" in report
    assert week.server.requests == []
    assert (week.reports / f"quality-{week.now.date().isoformat()}.md").is_file()


def test_a_secret_the_model_echoes_never_reaches_the_report(week: Week) -> None:
    week.model.recommend = answer({"recommendations": [{**RECS[0], "why": f"the key is {SECRET}"}]})
    report = week.report("[ollama]", env={"ANTHROPIC_API_KEY": SECRET})
    assert SECRET not in report and "(why: the key is ***)" in report


# ---- the pure parts ----------------------------------------------------------------------------------------


def facts() -> WeekFacts:
    return WeekFacts([KeptDelta("c1", "brief", "config", 0.6, "num_predict 300 → 600")], [("notes", 4.0, 3.2)],
                     [Fix("notes", 3.2, "too_short", "prompt", "3/5 runs under 30 words"),
                      Fix("notes", 3.2, "format_miss", "prompt", "no bullets"),
                      Fix("brief", 3.4, "truncated", "config", "stopped at num_predict")], discarded=2)


def config(proposers: list[str]) -> VaultConfig:
    return VaultConfig(vault=".", proposers=proposers, tasks={  # type: ignore[arg-type]
        "brief": TaskConfig(prompt="p.md", model="ollama:m"), "notes": TaskConfig(prompt="p.md", model="ollama:m")})


def replying(text: str) -> Callable[..., Completion]:
    def complete(spec: str, prompt: Any, options: Any, *, json_schema: Any = None) -> Completion:
        return Completion(text=text, done_reason="stop", prompt_tokens=10, output_tokens=10, model=spec)
    return complete


def test_rules_put_one_signature_per_task_first_then_fill_to_three() -> None:
    top = top_fixes(facts(), config(["rules"]), None)
    assert [(r.task, r.fix) for r in top.items] == [("notes", "too_short"), ("brief", "truncated"),
                                                    ("notes", "format_miss")]


def test_more_than_three_or_zero_items_are_refused() -> None:
    four = json.dumps({"recommendations": RECS + RECS[:1]})
    top = top_fixes(facts(), config(["ollama"]), replying(four))
    assert top.source == "rules" and top.reason.endswith("malformed: recommendations: 4 items, the schema wants 1 to 3")
    top = top_fixes(facts(), config(["ollama"]), replying(json.dumps({"recommendations": []})))
    assert top.source == "rules" and top.reason.endswith("malformed: recommendations: 0 items, the schema wants 1 to 3")
    wrong_lever = json.dumps({"recommendations": [{**RECS[0], "lever": "vibes"}]})
    top = top_fixes(facts(), config(["ollama"]), replying(wrong_lever))
    assert "malformed: recommendations/0/lever: not one of prompt, config" in top.reason


def test_a_week_with_nothing_to_fix_asks_no_model() -> None:
    calls: list[str] = []

    def complete(spec: str, *a: Any, **kw: Any) -> Completion:
        calls.append(spec)
        return Completion(text="{}", done_reason="stop", prompt_tokens=1, output_tokens=1)

    top = top_fixes(WeekFacts([], [], []), config(["ollama"]), complete)
    assert calls == [] and top.source == "rules" and top.items == []


def test_the_summary_is_bounded_whatever_the_week() -> None:
    big = WeekFacts([KeptDelta(f"c{i}", "brief", "prompt", 0.1, "x" * 500) for i in range(200)],
                    [("notes", 4.0, 3.0)] * 100,
                    [Fix(f"t{i}", 1.0, f"sig{j}", "prompt", "y" * 500) for i in range(20) for j in range(10)])
    text = week_summary(big, ["brief", "notes"], 3000)
    assert len(text) <= 3000 and text.endswith("[… clipped]")
    assert len(week_summary(big, ["brief", "notes"], 100_000)) < 12_000  # item counts are capped too


def test_a_failed_call_falls_back_and_its_error_is_scrubbed() -> None:
    from adapters.backends.base import BackendError

    def complete(spec: str, *a: Any, **kw: Any) -> Completion:
        raise BackendError(f"401 from https://api.example/v1 with key {SECRET}")

    top = top_fixes(facts(), config(["rules", "anthropic"]), complete, [SECRET])
    assert top.source == "rules" and SECRET not in top.reason
    assert top.reason.startswith("anthropic:claude-sonnet-5-5 failed: BackendError: 401") and "***" in top.reason

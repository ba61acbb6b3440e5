"""The `autovault` entry point end to end: a temp vault, a real SQLite (and PostgreSQL) store, the real
ollama client against a loopback Ollama-protocol server, real collector subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli import main
from testbed.servers.ollama_server import OllamaServer
from testbed.servers.protocol import Reply, Request

VAULT_YML = """\
vault: vault
store: sqlite:///state/events.db
backends:
  ollama: {{host: "{host}", timeout: 10}}
judge: {{model: "ollama:judge", llm_weight: 0.5}}
tasks:
  brief:
    collect: scripts/collect.sh
    prompt: prompts/brief.md
    model: ollama:writer
    options: {{num_predict: 50}}
    outputs: ["Briefs/{{date}}.md"]
    expect: {{min_words: 5, sections: ["## Today"]}}
  reader:
    prompt: prompts/reader.md
    model: ollama:writer
    inputs: ["Briefs/*.md"]
    requires: {{min_words: 40}}
"""


def responder(request: Request) -> Reply:
    if request.model == "judge":
        return Reply(text='{"score": 4, "reasons": ["clear and on topic"]}')
    return Reply(text="## Today\nThe collector said: " + request.prompt.split("CONTEXT:")[-1].strip())


@pytest.fixture
def server() -> Iterator[OllamaServer]:
    with OllamaServer(responder) as s:
        yield s


@pytest.fixture
def vault(tmp_path: Path, server: OllamaServer) -> Path:
    root = tmp_path / "vault"
    (root / "scripts").mkdir(parents=True)
    (root / "prompts").mkdir()
    (root / "Briefs").mkdir()
    script = root / "scripts" / "collect.sh"
    script.write_text("#!/bin/sh\necho three commits landed today in the vault\n")
    script.chmod(0o755)
    (root / "prompts" / "brief.md").write_text("Write a briefing for {date}.\nCONTEXT: {context}\n")
    (root / "prompts" / "reader.md").write_text("Summarise: {context}\n")
    cfg = tmp_path / "vault.yml"
    cfg.write_text(VAULT_YML.format(host=server.host))
    return cfg


def cli(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(cfg), *args])
    out, err = capsys.readouterr()
    return code, out, err


def log_lines(task: str = "brief") -> str:
    runs = [
        {"type": "run", "task": task, "started": f"2026-03-1{d}T06:30:00Z", "model": "ollama:writer",
         "done_reason": "length" if d < 3 else "stop", "output": f"## Today\nday {d} " + "word " * 20,
         "output_tokens": 30, "options": {"num_predict": 30}}
        for d in range(1, 5)
    ]
    scores = [{"type": "score", "task": task, "started": r["started"], "score": 2 + i % 3, "judge": "output-judge"}
              for i, r in enumerate(runs)]
    return "\n".join(json.dumps(x) for x in runs + scores) + "\n"


def test_check_ok_and_broken(capsys: pytest.CaptureFixture[str], vault: Path) -> None:
    code, out, _ = cli(capsys, vault, "check")
    assert code == 0 and "2 tasks" in out
    vault.write_text(vault.read_text().replace("num_predict: 50", "num_predit: 50"))
    code, _, err = cli(capsys, vault, "check")
    assert code == 1
    assert "vault.yml:" in err and "num_predit" in err and "num_predict" in err and "fix:" in err


def test_broken_config_is_one_line_without_traceback(vault: Path) -> None:
    vault.write_text(vault.read_text().replace("prompts/brief.md", "prompts/missing.md"))
    proc = subprocess.run([sys.executable, "-m", "daemon.cli", "--config", str(vault), "status"],
                          capture_output=True, text=True, cwd=Path(__file__).parents[1], check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "prompts/missing.md" in lines[0]


def test_ingest_is_idempotent_and_feeds_status(capsys: pytest.CaptureFixture[str], vault: Path, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "2026-03-14.jsonl"
    log.parent.mkdir()
    log.write_text(log_lines() + "not json\n")
    code, out, err = cli(capsys, vault, "ingest", str(log.parent))
    assert code == 1  # one refused line is reported, the rest recorded
    assert "ingested 4 runs and 4 scores" in out and "2026-03-14.jsonl:9" in err
    code, out, _ = cli(capsys, vault, "--json", "ingest", str(log))
    assert json.loads(out)["duplicates"] == 8 and json.loads(out)["runs"] == 0

    code, out, _ = cli(capsys, vault, "--json", "status")
    rows = {r["task"]: r for r in json.loads(out)}
    assert rows["brief"]["runs"] == 4 and rows["brief"]["last_score"] == 2.0
    code, out, _ = cli(capsys, vault, "--json", "history", "brief")
    assert [r["started"][:10] for r in json.loads(out)] == ["2026-03-14", "2026-03-13", "2026-03-12", "2026-03-11"]


def test_run_task_records_judged_run_and_writes_output(capsys: pytest.CaptureFixture[str], vault: Path,
                                                        server: OllamaServer) -> None:
    code, out, _ = cli(capsys, vault, "--json", "run-task", "brief")
    assert code == 0
    [result] = json.loads(out)
    assert result["status"] == "ok" and result["judge_failure"] is None
    assert result["score"] is not None and result["score"] > 3
    written = list((vault.parent / "vault" / "Briefs").glob("*.md"))
    assert len(written) == 1 and "three commits landed" in written[0].read_text()
    asked = [json.loads(r.body)["model"] for r in server.requests if r.path == "/api/chat"]
    assert asked == ["writer", "judge"]

    code, out, _ = cli(capsys, vault, "--json", "history", "brief")
    [row] = json.loads(out)
    assert row["source"] == "cli" and row["scores"][0]["score"] == result["score"]


def test_shadow_run_leaves_live_vault_untouched(capsys: pytest.CaptureFixture[str], vault: Path) -> None:
    code, out, _ = cli(capsys, vault, "--json", "run-task", "brief", "--shadow", "--no-judge")
    assert code == 0 and json.loads(out)[0]["status"] == "ok"
    assert not list((vault.parent / "vault" / "Briefs").glob("*.md"))


def test_signatures_name_truncation_and_short_output_for_consumer(capsys: pytest.CaptureFixture[str], vault: Path,
                                                                  tmp_path: Path) -> None:
    log = tmp_path / "h.jsonl"
    log.write_text("\n".join(json.dumps(
        {"type": "run", "task": "brief", "started": f"2026-03-1{d}T06:30:00Z", "done_reason": "length",
         "output": f"## Today\nday {d} short", "options": {"num_predict": 30}, "artifacts": [f"Briefs/2026-03-1{d}.md"]})
        for d in range(1, 4)) + "\n")
    cli(capsys, vault, "ingest", str(log))
    code, out, _ = cli(capsys, vault, "--json", "signatures", "brief")
    names = {s["name"] for s in json.loads(out)["brief"]}
    assert code == 0 and {"truncated", "too_short_for_consumer"} <= names
    code, out, _ = cli(capsys, vault, "status", "--signatures")
    assert code == 0 and "truncated" in out


def test_unknown_task_is_a_clear_error(capsys: pytest.CaptureFixture[str], vault: Path) -> None:
    code, _, err = cli(capsys, vault, "history", "nope")
    assert code == 2 and "unknown task 'nope'" in err and "brief" in err


@pytest.mark.postgres
def test_store_url_from_environment_uses_postgresql(capsys: pytest.CaptureFixture[str], vault: Path, pg_url: str,
                                                   tmp_path: Path) -> None:
    log = tmp_path / "h.jsonl"
    log.write_text(log_lines())
    os.environ["AUTOVAULT_STORE"] = pg_url
    try:
        code, out, _ = cli(capsys, vault, "--json", "ingest", str(log))
        assert code == 0 and json.loads(out)["runs"] == 4
        code, out, _ = cli(capsys, vault, "--json", "status")
        assert {r["task"]: r["runs"] for r in json.loads(out)}["brief"] == 4
    finally:
        del os.environ["AUTOVAULT_STORE"]
    assert not (tmp_path / "state").exists()  # nothing went to the default SQLite file


def test_service_install_writes_a_unit_with_absolute_paths(capsys: pytest.CaptureFixture[str], vault: Path,
                                                            tmp_path: Path) -> None:
    units = tmp_path / "units"
    code, out, _ = cli(capsys, vault, "--json", "service", "install", "--user", "--unit-dir", str(units))
    assert code == 0
    result = json.loads(out)
    unit = Path(result["path"]).read_text()
    assert f"--config {vault}" in unit and "Type=notify" in unit
    assert any("systemctl --user enable --now autovault" in c for c in result["commands"])
    (units / "autovault.service").write_text("[Unit]\nDescription=someone else's\n")
    code, _, err = cli(capsys, vault, "service", "install", "--user", "--unit-dir", str(units))
    assert code == 2 and "--force" in err


def test_an_unreachable_store_is_one_line(vault: Path) -> None:
    env = {**os.environ, "AUTOVAULT_STORE": "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"}
    proc = subprocess.run([sys.executable, "-m", "daemon.cli", "--config", str(vault), "status", "--json"],
                          capture_output=True, text=True, cwd=Path(__file__).parents[1], env=env, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("autovault: the event store failed:") and "AUTOVAULT_STORE" in line

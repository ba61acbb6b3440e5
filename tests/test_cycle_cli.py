"""`autovault cycle | verify | approve | loop | ledger` end to end: the real CLI wiring, the real ollama client
against a loopback server, real collector subprocesses, a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli import main
from handlers.cycle import run_cycle
from testbed.cycle_vault import IMPROVED_PROMPT, VaultFixture, make_vault, responder
from testbed.servers.ollama_server import OllamaServer

LONG_COLLECTOR = '#!/bin/sh\necho "three commits landed on $AUTOVAULT_DATE; write at least 40 words"\n'


@pytest.fixture
def server() -> Iterator[OllamaServer]:
    with OllamaServer(responder) as s:
        yield s


def cli(capsys: pytest.CaptureFixture[str], fx: VaultFixture, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config", str(fx.cfg), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_propose_only_then_verify_from_the_command_line(tmp_path: Path, server: OllamaServer,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    fx = make_vault(tmp_path, host=server.host)
    delta = fx.edit("prompts/brief.md", IMPROVED_PROMPT, description="ask for 40 words")
    proposed = run_cycle(fx.deps([("double", lambda ev: [delta])]), "brief", propose_only=True)
    fx.svc.close()
    code, out, _ = cli(capsys, fx, "verify", proposed.key)
    assert code == 0 and f"cycle {proposed.key} [brief]: kept" in out
    assert fx.text("prompts/brief.md") == IMPROVED_PROMPT
    code, out, _ = cli(capsys, fx, "verify", proposed.key)
    assert code == 2  # one line: it is kept, not proposed
    code, out, _ = cli(capsys, fx, "ledger")
    assert code == 0 and proposed.key in out and "Kept" in out and "Changed" in out


def test_approve_through_the_cli_applies_a_waiting_script_delta(tmp_path: Path, server: OllamaServer,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    fx = make_vault(tmp_path, host=server.host)
    r = run_cycle(fx.deps([("double", lambda ev: [fx.edit("scripts/collect.sh", LONG_COLLECTOR, lever="script")])]),
                  "brief")
    assert r.outcome == "awaiting_approval"
    fx.svc.close()
    code, out, _ = cli(capsys, fx, "approve", r.key, "--json")
    assert code == 0 and json.loads(out)["outcome"] == "kept"
    assert fx.text("scripts/collect.sh") == LONG_COLLECTOR


def test_cycle_and_loop_commands_run_with_vault_yml_proposers(tmp_path: Path, server: OllamaServer,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    fx = make_vault(tmp_path, host=server.host)
    fx.svc.close()
    code, out, _ = cli(capsys, fx, "--json", "cycle", "brief", "--propose-only")
    result = json.loads(out)
    assert result["task"] == "brief" and result["outcome"] in ("proposed", "nothing")
    code, out, _ = cli(capsys, fx, "loop", "--max-cycles", "2", "--target", "3.8")
    assert code == 0
    assert "quality before / after the loop" in out and "stopped:" in out
    code, out, _ = cli(capsys, fx, "ledger", "--tsv")
    assert out.splitlines()[0].startswith("cycle\ttask\tlever")

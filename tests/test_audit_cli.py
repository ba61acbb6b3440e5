"""The audit commands end to end through `autovault` itself: the real ollama client against a loopback server
running the flawed-model double, a real SQLite store, real collector subprocesses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli import main
from domain.aggregates import Audit
from testbed.doubles.flawed_models import FlawedModels
from testbed.servers.ollama_server import OllamaServer
from tests.audit_vault import AuditVault, make_audit_vault, regression_history


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditVault]:
    with OllamaServer(FlawedModels(seed=1)) as server:
        v = regression_history(make_audit_vault(tmp_path_factory.mktemp("cli"), host=server.host))
        v.svc.store.close()
        yield v


def run(v: AuditVault, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(v.cfg), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_audit_names_the_edit_with_its_diff(served: AuditVault, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(served, capsys, "audit", "brief", "--json")
    found = json.loads(out)
    assert code == 0 and found["suspect"]["position"] == served.marks["break"]
    (change,) = found["changes"]
    assert change["kind"] == "edit" and "+Example:" in change["diff"]
    assert found["shift"]["before"] == 4.75 and found["shift"]["after"] == 2.5 and found["test"]["alpha"] == 0.05
    code, out, _ = run(served, capsys, "audit", "brief")
    assert code == 0 and f"#{served.marks['break']}" in out and "+Example:" in out and "verdict: score fell" in out


def test_audit_bisect_then_revert_by_the_audit_key(served: AuditVault, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(served, capsys, "audit", "brief", "--bisect", "--json")
    found = json.loads(out)
    assert code == 0 and found["bisect"]["culprit"]["position"] == served.marks["break"]
    code, out, _ = run(served, capsys, "revert", found["audit"], "--json")
    result = json.loads(out)
    assert code == 0 and result["outcome"] == "kept" and result["verification"]["effect"] == 2.5
    assert "-Example:" in result["diff"]
    assert "Example:" not in served.text("prompts/brief.md") and "## Goals" in served.text("prompts/brief.md")
    code, _, err = run(served, capsys, "revert", found["audit"])
    assert code == 2 and "already undone" in err and err.count("\n") == 1


def test_status_as_of_and_replay_until_read_the_past(served: AuditVault, capsys: pytest.CaptureFixture[str]) -> None:
    before = served.marks["break"]
    code, out, _ = run(served, capsys, "status", "--as-of", f"#{before}", "--json")
    (row,) = json.loads(out)
    assert code == 0 and row["task"] == "brief" and row["last_score"] == 5.0 and row["runs"] == 4
    code, out, _ = run(served, capsys, "replay", "--until", f"#{before}", "--json")
    past = json.loads(out)
    assert past["position"] == before and past["ledger"][-1]["description"] == "prompts/brief.md changed by human"
    code, out, _ = run(served, capsys, "replay", "--until", past["time"])
    assert code == 0 and f"as of #{before}" in out and "live read models untouched" in out
    code, _, err = run(served, capsys, "replay", "--until", "last tuesday")
    assert code == 2 and err.count("\n") == 1 and "--until 'last tuesday'" in err and "fix:" in err


def test_report_writes_a_png_and_a_page_that_needs_no_server(served: AuditVault, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(served, capsys, "report", "--out", str(tmp_path / "r"), "--json")
    written = json.loads(out)
    png, page = Path(written["png"]), Path(written["html"])
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    html = page.read_text()
    assert "data:image/png;base64," in html and "src='http" not in html and "<script" not in html
    (task,) = written["tasks"]
    assert task["task"] == "brief" and task["verdict"] and task["verdict"] in html.replace("&#x27;", "'")


def test_export_then_import_into_an_empty_store(served: AuditVault, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(served, capsys, "export", str(tmp_path / "h.jsonl.gz"), "--json")
    exported = json.loads(out)
    other = tmp_path / "other.yml"
    other.write_text(served.cfg.read_text().replace("store: sqlite:///", f"store: sqlite:///{tmp_path}/x").replace(
        "vault: vault", f"vault: {served.root}"))
    code = main(["--config", str(other), "import", str(tmp_path / "h.jsonl.gz"), "--json"])
    imported = json.loads(capsys.readouterr().out)
    assert code == 0 and imported == exported | {"file": str(tmp_path / "h.jsonl.gz")}
    code = main(["--config", str(other), "import", str(tmp_path / "h.jsonl.gz")])
    err = capsys.readouterr().err
    assert code == 2 and "already holds" in err and err.count("\n") == 1


def test_revert_of_a_position_that_is_no_change_is_one_clear_error(served: AuditVault,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(served, capsys, "revert", "#1")
    assert code == 2 and "is not a change" in err and err.count("\n") == 1
    code, _, err = run(served, capsys, "revert", "no-such-audit")
    assert code == 2 and "nor an audit key" in err


def test_a_recorded_audit_is_an_event(served: AuditVault, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(served, capsys, "audit", "brief", "--json")
    key = json.loads(out)["audit"]
    from adapters.eventstore import VaultStore

    with VaultStore(f"sqlite:///{served.cfg.parent / 'state' / 'events.db'}") as store:
        assert [type(e).__name__ for e in store.events.get(Audit.create_id(key))] == ["Opened"]

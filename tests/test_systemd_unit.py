"""The rendered unit passes `systemd-analyze verify` and scores <= 2.0 in `systemd-analyze security --offline`.

systemd is not PID 1 here; both commands work offline on a unit file. The unit is rendered by the real
installer into a temp folder, with the venv's autovault and an existing vault, as a system and a user unit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.service_install import TEMPLATE, install_unit

ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


def make_vault(base: Path) -> Path:
    (base / "prompts").mkdir(parents=True)
    (base / "prompts" / "p.md").write_text("Summarise.\n")
    config = base / "vault.yml"
    config.write_text("vault: .\ntasks:\n  t:\n    prompt: prompts/p.md\n    model: embedded:smollm2-135m\n")
    return config


@pytest.fixture(params=["system", "user"])
def unit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, list[str], dict[str, str]]]:
    """(unit file, the systemd-analyze scope flags, env) for a system and a user unit."""
    user = request.param == "user"
    config = make_vault(tmp_path / "my vault")  # a space in the path must survive quoting
    result = install_unit(config, user=user, unit_dir=tmp_path / "units", service_user=None if user else "autovault")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    yield result.path, ["--user"] if user else [], env


def analyze(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, env=env, timeout=120)


def test_verify_accepts_the_unit(unit: tuple[Path, list[str], dict[str, str]]) -> None:
    path, scope, env = unit
    done = analyze([*scope, "verify", str(path)], env)
    assert done.returncode == 0, done.stderr
    assert path.name not in done.stderr and path.name not in done.stdout, done.stderr


def test_security_exposure_is_at_most_2(unit: tuple[Path, list[str], dict[str, str]]) -> None:
    path, scope, env = unit
    done = analyze([*scope, "security", "--offline=yes", str(path)], env)
    assert done.returncode == 0, done.stderr
    found = EXPOSURE.search(done.stdout)
    assert found, done.stdout[-500:]
    assert float(found.group(1)) <= 2.0, done.stdout


def test_verify_rejects_a_missing_executable(tmp_path: Path) -> None:
    """The verify check has teeth: a unit whose ExecStart does not exist fails it."""
    config = make_vault(tmp_path / "vault")
    result = install_unit(config, user=False, unit_dir=tmp_path / "units", service_user="autovault")
    broken = tmp_path / "broken" / "autovault.service"
    broken.parent.mkdir()
    broken.write_text(re.sub(r"^ExecStart=\S+", "ExecStart=/nonexistent/autovault", result.unit, flags=re.M))
    assert analyze(["verify", str(broken)], {"PATH": "/usr/bin:/bin"}).returncode != 0


def test_template_keeps_the_contract() -> None:
    """The directives the daemon's lifecycle depends on (issue 6) are in the template."""
    text = TEMPLATE.read_text()
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=60",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "StateDirectory=autovault",
        "ProtectSystem=strict",
        "ReadWritePaths=@VAULT@",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=no",
    ):
        assert re.search(rf"^{re.escape(line)}", text, re.MULTILINE), line

"""`install_unit` writes a unit with absolute paths, never clobbers a different one, and says what to run."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from adapters.config_loader import ConfigError
from daemon.service_install import ServiceInstallError, install_unit, user_unit_dir


def make_vault(base: Path, store: str | None = None) -> Path:
    (base / "prompts").mkdir(parents=True)
    (base / "prompts" / "p.md").write_text("Summarise.\n")
    config = base / "vault.yml"
    extra = f"store: {store}\n" if store else ""
    config.write_text(f"vault: .\n{extra}tasks:\n  t:\n    prompt: prompts/p.md\n    model: embedded:smollm2-135m\n")
    return config


def active(unit: str) -> str:
    """The unit without its comments (which name the placeholders they document)."""
    return "\n".join(line for line in unit.splitlines() if not line.startswith("#"))


def directive(unit: str, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", unit, re.MULTILINE)


def test_system_unit_has_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_vault(tmp_path / "vault")
    monkeypatch.chdir(tmp_path)
    result = install_unit(Path("vault/vault.yml"), user=False, unit_dir=tmp_path / "units", service_user="alice")
    assert result.path == tmp_path / "units" / "autovault.service" and result.changed
    unit = result.path.read_text()
    assert unit == result.unit
    assert not re.search(r"@(EXEC|CONFIG|VAULT|STATE|USER)@", active(unit))
    exec_path = Path(sys.executable).parent / "autovault"
    assert directive(unit, "ExecStart") == [f"{exec_path} --config {config} run"]
    assert Path(directive(unit, "ExecStart")[0].split()[0]).is_absolute()
    assert directive(unit, "ReadWritePaths") == [str(tmp_path / "vault")]
    assert directive(unit, "User") == ["alice"]
    assert directive(unit, "WantedBy") == ["multi-user.target"]
    assert result.commands[0] == "sudo systemctl daemon-reload && sudo systemctl enable --now autovault"
    assert result.commands[1] == "journalctl -u autovault -f"


def test_user_unit_drops_what_a_user_manager_cannot_use(tmp_path: Path) -> None:
    make_vault(tmp_path / "vault")
    result = install_unit(tmp_path / "vault" / "vault.yml", user=True, unit_dir=tmp_path / "units")
    assert directive(result.unit, "User") == [] and "network-online" not in active(result.unit)
    assert directive(result.unit, "WantedBy") == ["default.target"]
    assert directive(result.unit, "PrivateUsers") == ["yes"]
    assert result.commands == (
        "systemctl --user daemon-reload && systemctl --user enable --now autovault",
        "journalctl --user -u autovault -f",
        "loginctl enable-linger $USER   # keep it running while you are logged out",
    )


def test_store_outside_the_vault_is_writable(tmp_path: Path) -> None:
    store = tmp_path / "state" / "events.db"
    make_vault(tmp_path / "vault", store=f"sqlite:///{store}")
    result = install_unit(tmp_path / "vault" / "vault.yml", user=True, unit_dir=tmp_path / "units")
    assert directive(result.unit, "ReadWritePaths") == [f"{tmp_path / 'vault'} -{tmp_path / 'state'}"]


def test_refuses_to_clobber_a_different_unit(tmp_path: Path) -> None:
    config = make_vault(tmp_path / "vault")
    units = tmp_path / "units"
    units.mkdir()
    (units / "autovault.service").write_text("[Service]\nExecStart=/usr/bin/true\n")
    with pytest.raises(ServiceInstallError, match=r"already installed .*--force"):
        install_unit(config, user=True, unit_dir=units)
    assert (units / "autovault.service").read_text() == "[Service]\nExecStart=/usr/bin/true\n"
    forced = install_unit(config, user=True, unit_dir=units, force=True)
    assert forced.changed and (units / "autovault.service").read_text() == forced.unit
    again = install_unit(config, user=True, unit_dir=units)
    assert not again.changed and again.instructions().startswith("unchanged ")
    assert [p.name for p in units.iterdir()] == ["autovault.service"]  # no temp file left behind


def test_system_unit_refuses_to_run_as_root(tmp_path: Path) -> None:
    config = make_vault(tmp_path / "vault")
    if os.stat(tmp_path / "vault").st_uid != 0:
        pytest.skip("the vault is not owned by root here")
    with pytest.raises(ServiceInstallError, match=r"owned by root.*fix:"):
        install_unit(config, user=False, unit_dir=tmp_path / "units")
    assert not (tmp_path / "units").exists()


def test_bad_exec_path_and_bad_config(tmp_path: Path) -> None:
    config = make_vault(tmp_path / "vault")
    with pytest.raises(ServiceInstallError, match="not an executable file"):
        install_unit(config, user=True, unit_dir=tmp_path / "units", exec_path=tmp_path / "nope")
    (tmp_path / "vault" / "vault.yml").write_text("vault: .\ntasks: {}\nbogus: 1\n")
    with pytest.raises(ConfigError):
        install_unit(config, user=True, unit_dir=tmp_path / "units")


def test_unsafe_path_is_refused(tmp_path: Path) -> None:
    config = make_vault(tmp_path / "va$ult")
    with pytest.raises(ServiceInstallError, match="character systemd would interpret"):
        install_unit(config, user=True, unit_dir=tmp_path / "units")


def test_user_unit_dir_follows_xdg() -> None:
    assert user_unit_dir({"XDG_CONFIG_HOME": "/x/cfg"}) == Path("/x/cfg/systemd/user")
    assert user_unit_dir({"HOME": "/home/bob"}) == Path("/home/bob/.config/systemd/user")

"""The installed unit can write everything a kept change writes (issue 14): vault.yml beside the vault, the
apply journal, the store — checked by rendering the real unit and applying a config delta in a mount namespace
that is read-only except the unit's ReadWritePaths (what ProtectSystem=strict does; `unshare`, root only).
The unit of before (only the vault and the store writable) fails that apply — and then the vault is whole,
nothing is left to replay, and the next start works: no restart loop.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmarks.safety_kills import SHAPES, leftovers, make_template, recover_and_check
from daemon.service_install import install_unit

REPO = Path(__file__).resolve().parents[1]
ANALYZE = shutil.which("systemd-analyze")
CONFIG_AND_PROMPT = next(s for s in SHAPES if s.name == "config-and-prompt" and not s.git)


def can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=30).returncode == 0


def read_write_paths(unit: str) -> list[Path]:
    (line,) = re.findall(r"^ReadWritePaths=(.*)$", unit, re.MULTILINE)
    return [Path(p.lstrip("-")) for p in shlex.split(line)]


def test_the_unit_makes_vault_yml_and_the_journal_writable_in_every_layout(tmp_path: Path) -> None:
    beside = make_template(tmp_path / "beside", CONFIG_AND_PROMPT)  # vault.yml next to the vault folder
    unit = install_unit(beside / "vault.yml", user=True, unit_dir=tmp_path / "u1").unit
    assert read_write_paths(unit) == [beside / "vault", beside]  # the folder holds vault.yml, journal and store
    apart = tmp_path / "apart"  # vault.yml in a folder of its own, the vault elsewhere: three folders
    (apart / "conf").mkdir(parents=True)
    shutil.move(str(beside / "vault"), apart / "notes")
    (apart / "conf" / "vault.yml").write_text((beside / "vault.yml").read_text().replace("vault: vault",
                                                                                         "vault: ../notes"))
    unit = install_unit(apart / "conf" / "vault.yml", user=True, unit_dir=tmp_path / "u2").unit
    assert read_write_paths(unit) == [apart / "notes", apart / "conf", apart / ".autovault"]
    assert (apart / ".autovault").is_dir()  # created, so that systemd can make it writable
    if ANALYZE is not None:
        path = tmp_path / "u2" / "autovault.service"
        done = subprocess.run([ANALYZE, "--user", "verify", str(path)], capture_output=True, text=True, timeout=120,
                              env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(tmp_path), "SYSTEMD_LOG_COLOR": "0"})
        assert done.returncode == 0 and path.name not in done.stderr, done.stderr


APPLY = textwrap.dedent("""
    import sys
    from pathlib import Path
    from adapters.config_loader import load_config
    from adapters.eventstore import VaultStore
    from benchmarks.safety_kills import CYCLE, SHAPES, delta_for
    from daemon.bootstrap import bootstrap, outside
    from handlers.apply import apply_delta
    run = Path(sys.argv[1])
    shape = next(s for s in SHAPES if s.name == "config-and-prompt" and not s.git)
    cfg = load_config(run / "vault.yml", {})
    with VaultStore(cfg.store) as store:
        try:
            apply_delta(delta_for(run, shape), cfg, store, CYCLE, outside(), git=False)
            print("applied")
        except OSError as e:
            print(f"refused errno {e.errno}")
    with bootstrap(run / "vault.yml", env={}) as svc:  # the next start of the daemon
        print(f"started with {len(svc.config.tasks)} tasks")
""")


def under_protect_system(run: Path, writable: list[Path], script: Path) -> str:
    """Run `script` where the folder around `run` is read-only but for `writable` (bind mounts of their own), like
    ProtectSystem=strict with ReadWritePaths."""
    top = shlex.quote(str(run.parent))
    binds = " && ".join(f"mount --bind {shlex.quote(str(p))} {shlex.quote(str(p))}" for p in writable)
    shell = (f"mount --bind {top} {top} && {binds} && mount -o remount,bind,ro {top} && "
             f"exec {shlex.quote(sys.executable)} {shlex.quote(str(script))} {shlex.quote(str(run))}")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", shell], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(not can_unshare(), reason="needs root and mount namespaces (unshare)")
def test_a_kept_config_change_succeeds_under_the_unit_and_fails_whole_under_the_old_one(tmp_path: Path) -> None:
    script = tmp_path / "apply.py"
    script.write_text(APPLY)
    run = make_template(tmp_path / "fixed", CONFIG_AND_PROMPT)
    unit = install_unit(run / "vault.yml", user=True, unit_dir=tmp_path / "units").unit
    out = under_protect_system(run, read_write_paths(unit), script)
    assert out.splitlines() == ["applied", "started with 2 tasks"]
    assert "num_predict: 600" in (run / "vault.yml").read_text()
    assert recover_and_check(run, CONFIG_AND_PROMPT, "unit", False).state == "new"

    old = make_template(tmp_path / "old", CONFIG_AND_PROMPT)
    out = under_protect_system(old, [old / "vault", old / ".autovault"], script)  # the unit before: vault + store
    assert out.splitlines() == ["refused errno 30", "started with 2 tasks"]  # EROFS, then a clean start
    outcome = recover_and_check(old, CONFIG_AND_PROMPT, "old unit", False)
    assert outcome.ok and outcome.state == "old" and leftovers(old) == []

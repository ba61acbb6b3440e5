"""The seed vault copied into a temporary folder with its heartbeat logs ingested into a real SQLite store:
what diagnose and the rules proposer read in their tests. Deltas are applied to fresh copies by plain file
writes, after checking each edit's before-hash against the file on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

from adapters.atomic import sha256_file
from adapters.config_loader import check_config, load_config
from daemon.bootstrap import Services, bootstrap, register_tasks
from domain.delta import Delta
from handlers.ingest import ingest_path

REPO = Path(__file__).resolve().parent.parent
VAULT = "examples/seed-vault"


def copy_seed(dest: Path) -> Path:
    """dest/vault.yml + dest/examples/seed-vault; returns the vault.yml path."""
    shutil.copytree(REPO / VAULT, dest / VAULT, ignore=shutil.ignore_patterns(".autovault"))
    shutil.copy(REPO / "vault.yml", dest / "vault.yml")
    return dest / "vault.yml"


def seed_services(dest: Path) -> Services:
    cfg_path = copy_seed(dest)
    cfg = load_config(cfg_path, {})
    svc = bootstrap(cfg, env={}, store_url=f"sqlite:///{dest / 'store' / 'events.db'}")
    register_tasks(svc.store, svc.config)
    ingest_path(cfg.root / "heartbeat" / "logs", svc.store)
    svc.projections.catch_up()
    return svc


def apply(delta: Delta, cfg_path: Path) -> None:
    """Write the delta into the copy at cfg_path, refusing (AssertionError) when a before-hash differs."""
    root = cfg_path.parent / VAULT
    for edit in delta.edits:
        target = cfg_path if edit.in_config else root / edit.path
        assert sha256_file(target) == edit.before_hash, f"{edit.path}: made against another version"
    for edit in delta.edits:
        target = cfg_path if edit.in_config else root / edit.path
        if edit.after is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(edit.after, encoding="utf-8")


def problems(cfg_path: Path) -> list[str]:
    return [str(p) for p in check_config(cfg_path, {})]

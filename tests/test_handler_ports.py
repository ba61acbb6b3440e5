"""Handlers reach the event store, shadow workspaces, the config loader, git and the script sandbox through the
protocols of `handlers.ports`; only `daemon.bootstrap` names the concrete adapters (tests pass the same or
doubles). Exceptions and pure helpers of those modules (ConfigError, GitError, DEFAULT_EXCLUDE, ...) may be
imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HANDLERS = Path(__file__).resolve().parents[1] / "handlers"
CONCRETE = {  # module -> what in it reaches the outside world
    "adapters.eventstore": {"VaultStore"},
    "adapters.workspace": {"ShadowWorkspace", "sweep_orphans"},
    "adapters.config_loader": {"load_config", "check_config"},
    "adapters.git": {"repo_root", "commit_paths", "find_commit", "merge3", "ignored", "last_message"},
    "adapters.sandbox": {"confined", "launch", "require"},
}


def concrete_imports(path: Path) -> list[str]:
    """`module.name` for every concrete adapter the file imports, at its top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module in CONCRETE:
            found += [f"{node.module}.{a.name}" for a in node.names
                      if a.name in CONCRETE[node.module] or a.name == "*"]
        elif isinstance(node, ast.ImportFrom) and node.module == "adapters":
            found += [f"adapters.{a.name}" for a in node.names if f"adapters.{a.name}" in CONCRETE]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name in CONCRETE]
    return found


@pytest.mark.parametrize("path", sorted(HANDLERS.rglob("*.py")), ids=lambda p: str(p.relative_to(HANDLERS)))
def test_a_handler_imports_no_concrete_adapter(path: Path) -> None:
    assert concrete_imports(path) == [], f"{path.name}: take it as a parameter typed with handlers.ports"


def test_the_check_sees_every_way_of_importing(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import adapters.git\nfrom adapters import workspace\n"
                      "from adapters.config_loader import ConfigError, load_config\n"
                      "def f():\n    from adapters.eventstore import VaultStore\n")
    assert sorted(concrete_imports(sample)) == ["adapters.config_loader.load_config", "adapters.eventstore.VaultStore",
                                                "adapters.git", "adapters.workspace"]

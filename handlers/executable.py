"""Which edits of a delta add or change code that will run: such a delta waits for a human's approval before
any of it runs — before verification, not only before it is kept.

Code is:
- any path matching `research.approve` (scripts/** by default; vault.yml there gates every config edit);
- a command line: a task's `collect` or `postprocess` that the edit adds, removes or changes — the line itself
  is code (an interpreter given a file, `bash -c '…'`, a pipe), whatever file it points at;
- any vault file a command line names — the live line or the candidate's — and, transitively, any vault file
  those files name by path (a data file a collector sources, or hands to `python3`);
- a file that looks like code wherever it lives: a shebang before or after the edit, an executable mode, or a
  script or program suffix — so a new script under prompts/** or data/** cannot pass as text.
Deleting such a file counts too: it changes what runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from adapters.atomic import PathEscape, safe_path
from domain.config import VaultConfig
from domain.delta import Delta, FileEdit
from handlers.judge_guard import parse
from projections.globs import matches

COMMAND_KEYS = ("collect", "postprocess")
CODE_SUFFIXES = frozenset({
    ".sh", ".bash", ".zsh", ".ksh", ".csh", ".fish", ".py", ".pyw", ".pyc", ".pl", ".pm", ".rb", ".js", ".mjs", ".cjs",
    ".ts", ".lua", ".php", ".awk", ".sed", ".jq", ".tcl", ".r", ".jl", ".ps1", ".bat", ".cmd", ".exe", ".so",
    ".bin", ".run", ".el", ".scm", ".groovy", ".java", ".jar", ".class", ".swift", ".go", ".rs", ".c", ".cc",
    ".cpp", ".make", ".mk", ".nix", ".vim", ".applescript", ".elf", ".wasm",
})
MAX_FILES = 200  # files followed from the command lines
MAX_BYTES = 1 << 20  # a larger file is not read for the paths it names (it is still code if a line names it)
_TOKEN = re.compile(r"[A-Za-z0-9_@%+=,.~/-]+")


def command_lines(data: Mapping[str, Any]) -> dict[str, str]:
    """'tasks.T.collect' -> the command line, for every task of a parsed vault.yml."""
    tasks = data.get("tasks")
    out: dict[str, str] = {}
    for name, task in (tasks.items() if isinstance(tasks, Mapping) else ()):
        for key in COMMAND_KEYS:
            line = task.get(key) if isinstance(task, Mapping) else None
            if line is not None:
                out[f"tasks.{name}.{key}"] = str(line)
    return out


def command_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Command lines the edit adds, removes or changes ('tasks.brief.collect', …)."""
    old, new = command_lines(before), command_lines(after)
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _candidates(token: str) -> Iterable[str]:
    """`$VAULT_ROOT/data/x.py` → data/x.py and x.py too (what follows each '/'): a path may be prefixed."""
    parts = [p for p in token.split("/") if p not in ("", ".")]
    for i in range(len(parts)):
        yield "/".join(parts[i:])


class _Files:
    """The vault as the delta would leave it, asked file by file (answers cached: scripts repeat their paths)."""

    def __init__(self, root: Path, new: Mapping[str, str | None]) -> None:
        self.root, self.new = root, new
        self._known: dict[str, bool] = {}

    def exists(self, rel: str) -> bool:
        if rel not in self._known:
            self._known[rel] = self.new.get(rel) is not None or _is_file(self.root, rel)  # made, or live
        return self._known[rel]

    def texts(self, rel: str) -> list[str]:
        """The file's text after the delta and as it is live (either may be missing)."""
        out = [t for t in (self.new.get(rel),) if t is not None]
        try:
            path = safe_path(self.root, rel)
            if path.is_file() and path.stat().st_size <= MAX_BYTES:
                data = path.read_bytes()
                if b"\0" not in data:
                    out.append(data.decode("utf-8", "replace"))
        except (PathEscape, OSError):
            pass
        return out

    def named(self, text: str) -> set[str]:
        """Vault-relative paths of the files `text` names (a path-like word: with a '/' or a '.')."""
        out: set[str] = set()
        for token in _TOKEN.findall(text)[:20000]:
            if "/" in token or "." in token:
                out.update(rel for rel in _candidates(token) if self.exists(rel))
        return out


def _is_file(root: Path, rel: str) -> bool:
    try:
        return safe_path(root, rel).is_file()
    except (PathEscape, OSError, ValueError):
        return False


def reached(lines: Iterable[str], root: Path, new: Mapping[str, str | None]) -> set[str]:
    """Vault files the command lines name, and the files those name, transitively (up to MAX_FILES)."""
    files = _Files(root, new)
    frontier: set[str] = set()
    for line in lines:
        frontier |= files.named(line)
    seen: set[str] = set()
    while frontier and len(seen) < MAX_FILES:
        rel = frontier.pop()
        seen.add(rel)
        for text in files.texts(rel):
            frontier |= files.named(text) - seen
    return seen


def looks_like_code(edit: FileEdit, root: Path) -> bool:
    """A shebang (before or after), an executable mode, or a script/program suffix."""
    if PurePosixPath(edit.path).suffix.lower() in CODE_SUFFIXES:
        return True
    if edit.after is not None and edit.after.lstrip("\ufeff").startswith("#!"):
        return True
    try:
        path = safe_path(root, edit.path)
        if path.is_file():
            with open(path, "rb") as f:
                return bool(path.stat().st_mode & 0o111) or f.read(2) == b"#!"
    except (PathEscape, OSError):
        return True  # cannot tell: treat it as code
    return False


def code_paths(delta: Delta, config: VaultConfig) -> list[str]:
    """Every edit of the delta that adds or changes code that will run (paths, or 'vault.yml: tasks.T.collect');
    empty when nothing in it executes."""
    name = config.source.name
    out = [e.path for e in delta.edits if any(matches(g, e.path) for g in config.research.approve)]
    try:
        before = parse(config.source.read_text(encoding="utf-8")) if config.source.is_file() else {}
        edit = next((e for e in delta.edits if e.in_config), None)
        after = before if edit is None else parse(edit.after) if edit.after is not None else {}
    except (OSError, ValueError):
        return list(dict.fromkeys([*out, name]))  # unreadable: assume the worst
    out += [f"{name}: {key}" for key in command_changes(before, after)]
    new = {e.path: e.after for e in delta.edits if not e.in_config}
    run = reached([*command_lines(before).values(), *command_lines(after).values()], config.root, new)
    for e in delta.edits:
        if not e.in_config and (e.path in run or looks_like_code(e, config.root)):
            out.append(e.path)
    return list(dict.fromkeys(out))


__all__ = ["CODE_SUFFIXES", "code_paths", "command_changes", "command_lines", "looks_like_code", "reached"]

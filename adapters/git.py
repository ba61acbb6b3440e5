"""The vault's git repository, through the git CLI: is it one, and commit a kept delta naming its cycle."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

# A commit must work on a machine where the user never configured git: fall back to a fixed identity.
_IDENTITY = ("-c", "user.name=autovault", "-c", "user.email=autovault@localhost")


class GitError(RuntimeError):
    """A git command failed; the message names the command and git's stderr."""


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise GitError("git is not installed; install it or keep the vault outside a git repository") from None
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def repo_root(path: Path) -> Path | None:
    """The top of the git work tree holding `path`, or None when it is not in one (or git is missing)."""
    try:
        proc = _git(path, "rev-parse", "--show-toplevel", check=False)
    except GitError:
        return None
    return Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None


def commit_paths(repo: Path, paths: Sequence[Path], message: str) -> str | None:
    """Stage exactly `paths` (added, changed or deleted) and commit them; returns the commit hash, or None
    when nothing changed. Other staged or dirty files of the user are left out of the commit, and so are
    paths outside the repository or ignored by it."""
    top = repo.resolve()
    rels = [str(p.resolve().relative_to(top)) for p in paths if p.resolve().is_relative_to(top)]
    rels = [r for r in rels if not ignored(repo, r)]  # a vault inside an ignored folder is not under git
    if not rels:  # e.g. only vault.yml changed and it lives outside the vault's repository
        return None
    _git(repo, "add", "--all", "--", *rels)
    if _git(repo, "diff", "--cached", "--quiet", "--", *rels, check=False).returncode == 0:
        return None
    _git(repo, *_IDENTITY, "commit", "--quiet", "--no-verify", "-m", message, "--", *rels)
    return _git(repo, "rev-parse", "HEAD").stdout.strip()


def find_commit(repo: Path, needle: str, depth: int = 50) -> str | None:
    """The newest of the last `depth` commits whose message has the line `needle` (an apply killed after its
    commit is finished by a recovery that must not commit twice)."""
    proc = _git(repo, "log", f"-{depth}", "--format=%H%x1f%B%x1e", check=False)
    if proc.returncode != 0:  # no commits yet
        return None
    for record in proc.stdout.split("\x1e"):
        sha, _, message = record.strip().partition("\x1f")
        if needle in message.splitlines():
            return sha
    return None


def ignored(repo: Path, rel: str) -> bool:
    """Does the repository's .gitignore (or info/exclude) leave `rel` out? Such files are not version-controlled
    there (e.g. a scratch copy of a vault under an ignored folder), so they get no commit."""
    return _git(repo, "check-ignore", "--quiet", "--", rel, check=False).returncode == 0


def last_message(repo: Path) -> str:
    return _git(repo, "log", "-1", "--format=%B").stdout.strip()


def merge3(base: str, ours: str, theirs: str) -> str | None:
    """Three-way merge of texts with `git merge-file`: `ours` (the live file a human edited) and `theirs` (the
    delta's text) both made from `base`. The merged text, or None on a conflict (or without git)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="autovault-merge-") as tmp:
        paths = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            p = Path(tmp) / name
            p.write_text(text, encoding="utf-8")
            paths.append(str(p))
        try:
            proc = subprocess.run(["git", "merge-file", "-p", "--quiet", *paths], capture_output=True, timeout=60)
        except FileNotFoundError:
            return None
    return proc.stdout.decode("utf-8") if proc.returncode == 0 else None

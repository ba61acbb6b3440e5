"""Checks of a vault.yml that need more than its text: the vault on disk, model names, numbers that must agree.

Each part of the config (judge, research, every task) is validated on its own first, so one broken task
does not hide the missing files of the others; whatever fails its schema is left to the schema errors.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from adapters.backends.base import parse_model
from adapters.config_errors import Issue, KeyPath, closest, hint
from domain.config import JudgeConfig, ResearchConfig, TaskConfig
from domain.config_fields import check_http_url

KNOWN_BACKENDS = ("ollama", "anthropic", "openai", "embedded")
SAMPLE_DATE = "2026-03-18"  # stands for {date} when asking whether an output could feed an input
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class Parts:
    """The pieces of a vault.yml that passed their own schema, plus every declared output."""

    vault: str | None
    logs: str | None
    judge: JudgeConfig | None
    research: ResearchConfig | None
    tasks: dict[str, TaskConfig]
    produced: list[tuple[str, str]]  # (task, output pattern) of every task, valid or not


def parts_of(data: dict[str, Any]) -> Parts:
    tasks: dict[str, TaskConfig] = {}
    produced: list[tuple[str, str]] = []
    raw_tasks = data.get("tasks")
    for name, raw in raw_tasks.items() if isinstance(raw_tasks, dict) else []:
        if not isinstance(raw, dict):
            continue
        outputs = raw.get("outputs")
        produced += [(name, o) for o in (outputs if isinstance(outputs, list) else []) if isinstance(o, str)]
        task = _valid(TaskConfig, raw)
        if task is not None:
            tasks[name] = task
    vault, logs = data.get("vault"), data.get("logs")
    return Parts(
        vault=vault if isinstance(vault, str) else None,
        logs=logs if isinstance(logs, str) else None,
        judge=_valid(JudgeConfig, data.get("judge", {})),
        research=_valid(ResearchConfig, data.get("research", {})),
        tasks=tasks,
        produced=produced,
    )


def _valid(model: type[_M], raw: Any) -> _M | None:
    """Validate, dropping the keys the schema rejects (already reported) so the rest can still be checked."""
    for _ in range(3):
        try:
            return model.model_validate(raw)
        except ValidationError as e:
            bad = {err["loc"][0] for err in e.errors() if err["loc"] and err["type"] != "missing"}
            if not isinstance(raw, dict) or not bad & raw.keys():
                return None
            raw = {k: v for k, v in raw.items() if k not in bad}
    return None


def config_issues(base: Path, parts: Parts) -> list[Issue]:
    """Everything beyond the schema; `base` is the folder of vault.yml."""
    issues = _research_issues(parts.research)
    if parts.judge is not None:
        issues += _model_issues(("judge", "model"), parts.judge.model)
    for name, task in parts.tasks.items():
        issues += _model_issues(("tasks", name, "model"), task.model)
        for i, spec in enumerate(task.candidates):
            issues += _model_issues(("tasks", name, "candidates", i), spec)
    root = _root(base, parts.vault, issues)
    if root is None:
        return issues
    if parts.judge is not None and parts.judge.rubric is not None:
        issues += _file_issues(root, ("judge", "rubric"), parts.judge.rubric)
    if parts.logs is not None:
        issues += _logs_issues(root, parts.logs)
    for name, task in parts.tasks.items():
        issues += _task_issues(root, name, task, parts.produced)
    return issues


def _research_issues(research: ResearchConfig | None) -> list[Issue]:
    if research is None:
        return []
    issues = []
    if research.target < research.threshold:
        issues.append(
            Issue(
                ("research", "target"),
                f"target {research.target} is below threshold {research.threshold}",
                f"set research.target to at least {research.threshold}, or lower research.threshold",
            )
        )
    if research.max_samples < research.samples:
        issues.append(
            Issue(
                ("research", "max_samples"),
                f"max_samples {research.max_samples} is below samples {research.samples}",
                f"set research.max_samples to at least {research.samples}",
            )
        )
    return issues


def _model_issues(path: KeyPath, spec: str) -> list[Issue]:
    try:
        ref = parse_model(spec)
    except ValueError as e:
        return [Issue(path, str(e), hint(path) or "write backend:name")]
    if ref.backend not in KNOWN_BACKENDS:
        near = closest(ref.backend, list(KNOWN_BACKENDS))
        fix = f"did you mean '{near}:{ref.name}'?" if near else f"name the backend first, e.g. ollama:{spec}"
        known = ", ".join(KNOWN_BACKENDS)
        return [Issue(path, f"model {spec!r} names unknown backend {ref.backend!r} (known: {known})", fix)]
    if ref.base_url is not None:
        try:
            check_http_url(ref.base_url)
        except ValueError as e:
            return [Issue(path, f"model {spec!r}: {e}", "write openai:NAME@http://host:port/v1")]
    return []


def _root(base: Path, vault: str | None, issues: list[Issue]) -> Path | None:
    if vault is None:
        return None
    root = vault_root(base, vault)
    if not root.exists():
        issues.append(
            Issue(
                ("vault",),
                f"vault folder {vault!r} does not exist",
                f"create {root} or correct `vault:` (it is relative to the folder of vault.yml)",
            )
        )
        return None
    if not root.is_dir():
        issues.append(
            Issue(("vault",), f"vault {vault!r} is a file, not a folder", "point `vault:` at the vault folder")
        )
        return None
    return root


def _disk_safe(check: Callable[..., list[Issue]]) -> Callable[..., list[Issue]]:
    """A check of (root, key path, value, ...) that reports an OSError (a 600 KB path, a loop of symlinks) as the
    value's problem instead of an internal error."""

    @functools.wraps(check)
    def guarded(root: Path, path: KeyPath, value: str, *rest: Any, **kw: Any) -> list[Issue]:
        try:
            return check(root, path, value, *rest, **kw)
        except OSError as e:
            return [Issue(path, f"{value!r} cannot be checked on disk: {e.strerror or type(e).__name__}",
                          "use a plain path of normal length inside the vault")]

    return guarded


def vault_root(base: Path, vault: str) -> Path:
    """`vault:` relative to the folder of vault.yml (or absolute, `~` allowed), normalised."""
    return Path(os.path.abspath(base / os.path.expanduser(vault)))


def inside(root: Path, value: str) -> Path | None:
    """The absolute path of `value` (relative to the vault root, or absolute) when it stays inside the root —
    written there and, through any symlink, landing there: a prompt linked to ~/.ssh/id_rsa is outside."""
    full = Path(os.path.normpath(os.path.join(root, value)))
    return full if resolves_inside(root, full) else None


def resolves_inside(root: Path, path: Path) -> bool:
    real_root, real = Path(os.path.realpath(root)), Path(os.path.realpath(path))
    return real == real_root or real_root in real.parents


@_disk_safe
def _file_issues(root: Path, path: KeyPath, value: str, *, script: bool = False) -> list[Issue]:
    full = inside(root, value)
    if full is None:
        return [
            Issue(
                path,
                f"{value!r} is outside the vault" + (" (through a symlink)" if _lexically_inside(root, value) else ""),
                "move the file into the vault and give its path relative to the vault root",
            )
        ]
    if script and not full.exists() and len(value.split()) > 1:  # a collector written with arguments
        first = shlex.split(value)[0]
        return _file_issues(root, path, first, script=True) if first != value else []
    if not full.exists():
        near = _near_file(full, value)
        fix = (
            f"did you mean {near!r}?" if near else f"create it or correct the path (relative to the vault root {root})"
        )
        return [Issue(path, f"{value!r} does not exist in the vault", fix)]
    if full.is_dir():
        return [Issue(path, f"{value!r} is a folder, not a file", "point it at a file inside that folder")]
    if not os.access(full, os.R_OK):
        return [Issue(path, f"{value!r} cannot be read", f"chmod +r {full}")]
    return []


def _lexically_inside(root: Path, value: str) -> bool:
    full = Path(os.path.normpath(os.path.join(root, value)))
    return full == root or root in full.parents


def _escaping(root: Path, path: KeyPath, pattern: str, matches: list[Path]) -> list[Issue]:
    """A glob whose matches reach outside the vault through a symlink."""
    out = next((m for m in matches if not resolves_inside(root, m)), None)
    if out is None:
        return []
    rel = os.path.relpath(out, root)
    return [Issue(path, f"glob {pattern!r} matches {rel!r}, a symlink to outside the vault",
                  "remove the symlink or copy the file into the vault")]


@_disk_safe
def _output_issues(root: Path, path: KeyPath, pattern: str) -> list[Issue]:
    """An output whose folder is (or lies under) a symlink to outside the vault: the task would write there."""
    sample = Path(os.path.normpath(root / pattern.replace("{date}", SAMPLE_DATE).replace("{name}", "x")))
    existing = sample
    while not existing.exists() and existing != root and root in existing.parents:
        existing = existing.parent
    if existing.exists() and not resolves_inside(root, existing):
        return [Issue(path, f"output {pattern!r} lands outside the vault (through a symlink)",
                      "remove the symlink or write the output to a folder inside the vault")]
    return []


def _near_file(full: Path, value: str) -> str | None:
    """A sibling with a similar name, written the way the user wrote the path."""
    if not full.parent.is_dir():
        return None
    near = closest(full.name, sorted(p.name for p in full.parent.iterdir()))
    if near is None:
        return None
    folder = os.path.dirname(value)
    return f"{folder}/{near}" if folder else near


def _logs_issues(root: Path, logs: str) -> list[Issue]:
    return _logs_folder_issues(root, ("logs",), logs)


@_disk_safe
def _logs_folder_issues(root: Path, key: KeyPath, logs: str) -> list[Issue]:
    full = inside(root, logs)
    if full is None:
        return [
            Issue(
                ("logs",),
                f"logs folder {logs!r} is outside the vault",
                "put the heartbeat logs in a folder inside the vault",
            )
        ]
    if full.exists() and not full.is_dir():
        return [
            Issue(
                ("logs",),
                f"logs {logs!r} is a file, not a folder",
                "point `logs:` at the folder that holds the JSONL logs",
            )
        ]
    return []


def _task_issues(root: Path, name: str, task: TaskConfig, produced: list[tuple[str, str]]) -> list[Issue]:
    where: tuple[str, str] = ("tasks", name)
    issues = _file_issues(root, (*where, "prompt"), task.prompt)
    if task.collect is not None:
        issues += _file_issues(root, (*where, "collect"), task.collect, script=True)
    if task.postprocess is not None:
        issues += _file_issues(root, (*where, "postprocess"), task.postprocess, script=True)
    if task.rubric is not None:
        issues += _file_issues(root, (*where, "rubric"), task.rubric)
    for i, pattern in enumerate(task.inputs):
        issues += _input_issues(root, (*where, "inputs", i), pattern, produced)
    for i, pattern in enumerate(task.outputs):
        issues += _output_issues(root, (*where, "outputs", i), pattern)
    if task.training is not None:
        issues += _training_issues(root, (*where, "training", "data"), task.training.data)
        issues += _label_issues(root, (*where, "training", "label_field"), task.training.data, task.training.label_field)
    return issues


@_disk_safe
def _input_issues(root: Path, path: KeyPath, pattern: str, produced: list[tuple[str, str]]) -> list[Issue]:
    try:
        found = list(itertools.islice(root.glob(pattern), 1000))
    except ValueError as e:  # pathlib rejects e.g. '**a'
        return [
            Issue(path, f"glob {pattern!r} is not valid: {e}", "use '**' only as a whole path part, e.g. notes/**/*.md")
        ]
    if found:
        return _escaping(root, path, pattern, found)
    if any(could_feed(output, task, pattern) for task, output in produced):
        return []
    return [
        Issue(
            path,
            f"glob {pattern!r} matches nothing and no task writes it",
            "correct the glob, create a matching file, or list it in the producing task's outputs",
        )
    ]


@_disk_safe
def _training_issues(root: Path, path: KeyPath, pattern: str) -> list[Issue]:
    try:
        files = [p for p in itertools.islice(root.glob(pattern), 10_000) if p.is_file()]
        if files:
            return _escaping(root, path, pattern, files)
    except ValueError as e:
        return [
            Issue(
                path, f"glob {pattern!r} is not valid: {e}", "use '**' only as a whole path part, e.g. data/**/*.jsonl"
            )
        ]
    return [
        Issue(
            path,
            f"glob {pattern!r} matches no files",
            "add the JSONL training files or correct the glob (relative to the vault root)",
        )
    ]


LABEL_SCAN_LINES = 20_000  # training lines read to learn which keys the examples have


@_disk_safe
def _label_issues(root: Path, path: KeyPath, pattern: str, label: str | None) -> list[Issue]:
    """A `label_field` that no training example has: the balance audit would count no labels and pass vacuously."""
    if not label:
        return []
    try:
        files = sorted(p for p in itertools.islice(root.glob(pattern), 10_000) if p.is_file())
    except ValueError:
        return []  # an invalid glob is reported on training.data
    keys: set[str] = set()
    examples = 0
    lines = (line for p in files for line in p.read_text(encoding="utf-8", errors="replace").splitlines())
    for line in itertools.islice(lines, LABEL_SCAN_LINES):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            examples += 1
            keys.update(str(k) for k in obj)
    if not examples or label in keys:
        return []
    near = closest(label, sorted(keys))
    where = ", ".join(os.path.relpath(p, root) for p in files[:3]) + (" …" if len(files) > 3 else "")
    fix = (f"did you mean {near!r}?" if near else
           f"set label_field to a key the examples have ({', '.join(sorted(keys)[:8])}), or remove it")
    return [Issue(path, f"label_field {label!r} is in none of the {examples} examples in {where}", fix)]


def could_feed(output: str, task: str, pattern: str) -> bool:
    """Whether a file written by `output` (with {date}/{name}) could match the input glob `pattern`."""
    sample = re.sub(r"\*\*|\*|\?", "x", output.replace("{date}", SAMPLE_DATE).replace("{name}", task))
    if glob_regex(pattern).match(sample):
        return True
    as_glob = re.sub(r"\{(date|name)\}", "*", output)
    literal = re.sub(r"\*\*/?|\*|\?|\[[^\]]*\]", "x", pattern)
    return bool(glob_regex(as_glob).match(literal))


def glob_regex(pattern: str) -> re.Pattern[str]:
    """pathlib-style glob → regex: '*' and '?' stay within one folder, '**' crosses folders."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")

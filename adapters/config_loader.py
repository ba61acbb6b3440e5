"""Read a vault.yml strictly: every problem is one line naming the file, the line, the key and the fix.

    load_config(path, env=None) -> VaultConfig      raises ConfigError (str = the first problem)
    check_config(path, env=None) -> [ConfigProblem]  every problem found, in file order

A problem prints as
    vault.yml:23: tasks.morning-briefing.options.num_predict: expected an integer, got 'lots' — fix: set a whole number of tokens, e.g. 600

What is checked: YAML syntax, duplicate keys, the schema of `domain.config` (unknown keys with the closest
valid one, types, ranges, required keys, allowed values, task names, schedules, regexes, output
placeholders, store URL), then the disk and cross-field rules of `adapters.config_checks` (vault root,
files inside the vault, globs that match or are produced by some task, training data, model backends,
target >= threshold, max_samples >= samples).

Environment overrides, applied before validation (an empty value counts as unset):
    AUTOVAULT_STORE                 store
    AUTOVAULT_OLLAMA_HOST           backends.ollama.host (OLLAMA_HOST is the fallback; both may omit http://)
    AUTOVAULT_ANTHROPIC_BASE_URL    backends.anthropic.base_url
    AUTOVAULT_OPENAI_BASE_URL       backends.openai.base_url
A bad override is reported as `$VARIABLE: key: message — fix: ...`.

Paths: `vault` is relative to the folder of vault.yml; task files and globs are relative to the vault root.
A relative sqlite store (`sqlite:///.autovault/events.db`) is made absolute against the folder of
vault.yml (`sqlite:////abs/dir/.autovault/events.db`); nothing is created. The returned config carries
`source` (absolute vault.yml) and `root` (absolute vault root); neither may be written in the YAML.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adapters.config_checks import config_issues, parts_of, vault_root
from adapters.config_env import ENV_OVERRIDES, resolve_store
from adapters.config_errors import Issue, KeyPath, dotted, schema_issues
from adapters.config_yaml import YamlDoc, YamlSyntaxError, compose_yaml
from domain.config import VaultConfig

MAX_BYTES = 1 << 20  # a vault.yml is a few KB; long text belongs in files inside the vault
CLIP = 120  # characters of a value an error line repeats
_HOST_VARS = ("AUTOVAULT_OLLAMA_HOST", "OLLAMA_HOST")
_FILLED_BY_LOADER = ("source", "root")


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int | None
    key: str  # dotted key path, e.g. tasks.morning-briefing.options.num_predict; "" for the whole file
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {clip(self.key, 200)}:" if self.key else ""
        return re.sub(r"\s*[\r\n]+\s*", " ", f"{where}:{key} {clip(self.message, 600)} — fix: {clip(self.fix, 400)}")


_QUOTED = re.compile(rf"'[^'\n]{{{CLIP},}}'|\"[^\"\n]{{{CLIP},}}\"|\S{{{CLIP},}}")


def clip(text: str, limit: int) -> str:
    """Every quoted value or word longer than CLIP shortened to its ends, then the whole to `limit`: an error
    line never repeats a huge value back."""
    text = _QUOTED.sub(lambda m: f"{m.group()[:CLIP // 2]}…({len(m.group())} chars)…{m.group()[-12:]}", text)
    return text if len(text) <= limit else f"{text[: limit - 20]}…({len(text)} chars)"


class ConfigError(ValueError):
    """vault.yml cannot be used; `problems` holds every problem, `str()` is the first one's line."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__(str(self.problems[0]) if self.problems else "invalid vault.yml")

    def report(self) -> str:
        """Every problem, one per line."""
        return "\n".join(str(p) for p in self.problems)


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> VaultConfig:
    config, problems = _load(Path(path), os.environ if env is None else env)
    if problems or config is None:
        raise ConfigError(problems)
    return config


def check_config(path: Path | str, env: Mapping[str, str] | None = None) -> list[ConfigProblem]:
    return _load(Path(path), os.environ if env is None else env)[1]


def _load(path: Path, env: Mapping[str, str]) -> tuple[VaultConfig | None, list[ConfigProblem]]:
    try:
        return _load_checked(path, env)
    except Exception as e:  # the last guard of "never a traceback": a bug here still reads as one line
        problem = ConfigProblem(
            str(path),
            None,
            "",
            f"internal error while checking: {type(e).__name__}: {e}",
            "report it with this vault.yml",
        )
        return None, [problem]


def _load_checked(path: Path, env: Mapping[str, str]) -> tuple[VaultConfig | None, list[ConfigProblem]]:
    file = str(path)
    text = _read(path)
    if isinstance(text, ConfigProblem):
        return None, [text]
    try:
        doc = compose_yaml(text)
    except YamlSyntaxError as e:
        return None, [ConfigProblem(file, e.line, "", e.message, e.fix)]
    if not isinstance(doc.data, dict):
        got = (
            "it is empty" if doc.data is None else f"got {'a list' if isinstance(doc.data, list) else 'a single value'}"
        )
        fix = "start with `vault: .` and a `tasks:` mapping"
        return None, [
            ConfigProblem(file, doc.lines.get(()), "", f"the top level must be a mapping of keys, {got}", fix)
        ]
    data = dict(doc.data)
    issues = list(doc.issues)
    for key in _FILLED_BY_LOADER:
        if key in data:
            del data[key]
            issues.append(
                Issue((key,), f"{key!r} is filled in by autovault, not read from vault.yml", f"remove `{key}:`")
            )
    origins = _apply_env(data, env)
    config = None
    try:
        config = VaultConfig.model_validate(data)
    except ValidationError as e:
        issues += schema_issues(e, data)
    base = path.resolve().parent
    issues += config_issues(base, parts_of(data))
    problems = _problems(file, doc, issues, origins)
    if problems or config is None:
        return None, problems
    update = {
        "store": resolve_store(config.store, base),
        "source": path.resolve(),
        "root": vault_root(base, config.vault).resolve(),
    }
    return config.model_copy(update=update), []


def _read(path: Path) -> str | ConfigProblem:
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES and path.is_file():
            return ConfigProblem(file, None, "", f"{size / 1_048_576:.1f} MB, more than the {MAX_BYTES >> 20} MB a "
                                 "vault.yml may have", "keep long text (prompts, schemas, data) in files inside the vault")
        raw = path.read_bytes()
    except FileNotFoundError:
        return ConfigProblem(
            file,
            None,
            "",
            "file not found",
            f"create it or pass the path of your vault.yml (looked at {path.absolute()})",
        )
    except IsADirectoryError:
        return ConfigProblem(
            file, None, "", "is a folder, not a file", f"pass the vault.yml inside it, e.g. {path / 'vault.yml'}"
        )
    except PermissionError:
        return ConfigProblem(file, None, "", "cannot be read: permission denied", f"chmod +r {path}")
    except OSError as e:
        return ConfigProblem(
            file, None, "", f"cannot be read: {e.strerror or e}", "check that the path is a readable file"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        return ConfigProblem(file, line, "", f"not UTF-8 text (byte 0x{raw[e.start]:02x})", "save the file as UTF-8")


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[KeyPath, str]:
    """Write the overrides into the raw data; return which variable set each key path."""
    origins: dict[KeyPath, str] = {}
    for var, target in ENV_OVERRIDES:
        value = (env.get(var) or "").strip()
        if not value or target in origins:
            continue
        if var in _HOST_VARS and "://" not in value:
            value = f"http://{value}"  # ollama's own convention: OLLAMA_HOST=127.0.0.1:11434
        node = data
        for key in map(str, target[:-1]):
            node.setdefault(key, {})
            if not isinstance(node[key], dict):
                break  # the YAML itself is wrong there; the schema says so
            node[key] = dict(node[key])
            node = node[key]
        else:
            node[str(target[-1])] = value
            origins[target] = var
    return origins


def _problems(file: str, doc: YamlDoc, issues: list[Issue], origins: dict[KeyPath, str]) -> list[ConfigProblem]:
    out: list[ConfigProblem] = []
    for issue in issues:
        var = issue.origin or next((v for p, v in origins.items() if issue.path[: len(p)] == p), None)
        if var is not None:
            name = var if var.startswith("$") else f"${var}"
            out.append(
                ConfigProblem(name, None, dotted(issue.path), issue.message, f"correct or unset {name}: {issue.fix}")
            )
            continue
        line = issue.line or doc.line_of(issue.at if issue.at is not None else issue.path)
        out.append(ConfigProblem(file, line, dotted(issue.path), issue.message, issue.fix))
    unique = list(dict.fromkeys(out))
    return sorted(unique, key=lambda p: p.line or 0)

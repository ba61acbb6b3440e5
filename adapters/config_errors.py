"""How a problem in vault.yml is said: a key path, a one-line message and a fix a person can act on.

`schema_issues` turns pydantic's validation errors into that form: it drops pydantic's union-branch tags
from the location, names the unknown key with the closest valid one, lists allowed values, and attaches
a per-field hint for the knobs people touch most.
"""

from __future__ import annotations

import difflib
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from domain.config import VaultConfig
from domain.schedule import FORMS

KeyPath = tuple[str | int, ...]
TASK = "<task>"  # stands for any task name in a schema path

_MODEL_FORM = "write backend:name, e.g. ollama:qwen3:8b, anthropic:claude-sonnet-5-5 or embedded:smollm2-135m"
_GLOBS = 'write a list of globs relative to the vault root, e.g. ["Drafts/brief-*.md"]'
FIX_HINTS: dict[str, str] = {
    "num_predict": "set a whole number of tokens, e.g. 600",
    "num_ctx": "set the context window in tokens, e.g. 8192",
    "temperature": "use a number from 0 to 2, e.g. 0.7",
    "top_p": "use a number above 0 and at most 1, e.g. 0.9",
    "repeat_penalty": "use a number above 0 and at most 3, e.g. 1.15 (1 is off)",
    "seed": "use a whole number, e.g. 42",
    "think": "write true or false",
    "enabled": "write true or false",
    "prose": "write true or false",
    "schedule": f"use {FORMS}",
    "model": _MODEL_FORM,
    "backends.anthropic.model": "write an Anthropic model name, e.g. claude-sonnet-5-5",
    "base_model": "write the base model to fine-tune, e.g. HuggingFaceTB/SmolLM2-135M-Instruct",
    "candidates": "write a list of backend:name models, e.g. [ollama:qwen3:8b, ollama:gemma3:12b]",
    "prompt": "write a file path inside the vault, e.g. prompts/<task>.md",
    "collect": "write a script path inside the vault, e.g. scripts/<task>.sh",
    "postprocess": "write a script path inside the vault, e.g. scripts/<task>-post.sh, or null",
    "rubric": "write a markdown file inside the vault, e.g. prompts/_judge.md",
    "inputs": _GLOBS,
    "outputs": 'write a list of paths relative to the vault root, e.g. ["Briefings/{date}.md"]',
    "editable": 'write a list of globs relative to the vault root, e.g. ["prompts/**"]',
    "approve": 'write a list of globs relative to the vault root, e.g. ["scripts/**"]',
    "training.data": "write a glob of JSONL files inside the vault, e.g. data/<task>/*.jsonl",
    "threshold": "use a score from 1 to 5, e.g. 3.5",
    "target": "use a score from 1 to 5 at or above research.threshold, e.g. 3.8",
    "samples": "use a whole number of runs per arm, at least 1, e.g. 3",
    "max_samples": "use a whole number of runs per arm, at least research.samples, e.g. 9",
    "patience": "use a whole number of cycles, at least 1, e.g. 3",
    "min_effect": "use a score difference of 0 or more, e.g. 0.2",
    "window": "write 'HH:MM-HH:MM' in quotes, e.g. '01:00-06:00', or null for any time",
    "context_lines": "use a whole number of lines from 1 to 400, e.g. 40",
    "max_chars": "use a whole number of characters, at least 200, e.g. 3000",
    "llm_weight": "use a number from 0 to 1, e.g. 0.5",
    "min_words": "use a whole number of words, e.g. 120",
    "max_words": "use a whole number of words, at least 1, e.g. 800",
    "timeout": "use seconds, a number above 0, e.g. 120",
    "cooldown_minutes": "use a whole number of minutes, e.g. 60",
    "jobs": "use a whole number of parallel cycles, at least 1, e.g. 1",
    "rolling": "use a whole number of runs, at least 1, e.g. 5",
    "store": "write sqlite:///.autovault/events.db or postgresql+psycopg://user@host/db",
    "host": "write an http URL, e.g. http://127.0.0.1:11434",
    "base_url": "write an http(s) URL, e.g. http://127.0.0.1:8080/v1",
    "proposers": "write a list drawn from rules, anthropic, ollama, embedded, openai, e.g. [rules, anthropic]",
    "forbid": "escape regex special characters, e.g. '\\(' for a literal '('",
    "regex": "escape regex special characters, e.g. '\\(' for a literal '('",
    "sections": 'write a list of headings, e.g. ["## Commits", "## Goals"]',
    "vault": "write the vault folder relative to vault.yml, e.g. vault: examples/seed-vault",
    "logs": "write a folder inside the vault, e.g. logs",
    "tasks": "write a mapping of task names to tasks, e.g. tasks: {morning-briefing: {prompt: ..., model: ...}}",
    TASK: "give each task a mapping with at least prompt: and model:",
    "options": "write a mapping, e.g. options: {num_predict: 600, num_ctx: 8192}",
    "expect": 'write a mapping, e.g. expect: {min_words: 120, sections: ["## Goals"]}',
    "requires": "write a mapping, e.g. requires: {min_words: 300}",
    "training": "write a mapping, e.g. training: {data: data/<task>/*.jsonl}",
    "n_ctx": "use a whole number of tokens, at least 256, e.g. 2048",
    "threads": "use a whole number of CPU threads, at least 1, e.g. 2",
}
# Fixes for a rule between fields (a model's own validator) that the field's type hint would not give.
VALUE_FIX: dict[str, str] = {
    "blocks": "set blocks.max to at least blocks.min, or remove max",
    "expect": "set expect.max_words to at least expect.min_words, or remove one of them",
    "tasks": "add at least one task, e.g. tasks: {morning-briefing: {prompt: prompts/morning-briefing.md, model: "
             "ollama:qwen3:8b}}",
}
MISSING_FIX: dict[str, str] = {
    "prompt": "add `prompt: prompts/<task>.md`, a file inside the vault",
    "model": "add `model: ollama:qwen3:8b` (backend:name)",
    "vault": "add `vault: .` (the vault folder, relative to vault.yml)",
    "tasks": "add `tasks:` with at least one task",
    "data": "add `data: data/<task>/*.jsonl`",
    "regex": "add `regex: '^=== NOTE: (.+) ===$'`",
}
_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_GENERIC_FIX = {
    "an integer": "use a whole number, e.g. 3",
    "a number": "use a number, e.g. 0.5",
    "a finite number": "use a number, e.g. 0.5",
    "true or false": "write true or false",
    "a string": "quote the value",
    "a list": "write a list, e.g. [a, b]",
    "a mapping": "indent the keys under it, one `key: value` per line",
}
_BOUNDS = {"greater_than": ("gt", "above"), "greater_than_equal": ("ge", "at least")}
_BOUNDS |= {"less_than": ("lt", "below"), "less_than_equal": ("le", "at most")}


@dataclass(frozen=True)
class Issue:
    """One problem before it knows its file: `path` names the key; `at` the key whose line to show."""

    path: KeyPath
    message: str
    fix: str
    line: int | None = None  # when known better than the path's line (a duplicate key)
    at: KeyPath | None = None  # take the line from here instead (a missing key → its parent)
    origin: str | None = None  # "$VAR" when the value came from the environment


def dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(value: Any) -> str:
    """A short, one-line picture of a YAML value for 'got ...'."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def schema_path(path: KeyPath) -> tuple[str, ...]:
    """The path with task names replaced by TASK and list indices dropped, for hint lookup."""
    named = [TASK if len(path) > 1 and i == 1 and path[0] == "tasks" else p for i, p in enumerate(path)]
    return tuple(str(p) for p in named if not isinstance(p, int))


def hint(path: KeyPath) -> str | None:
    parts = schema_path(path)
    for start in range(len(parts)):
        found = FIX_HINTS.get(".".join(parts[start:]))
        if found is not None:
            task = path[1] if len(path) > 1 and path[0] == "tasks" else "<task>"
            return found.replace("<task>", str(task))
    return None


def closest(word: str, choices: list[str]) -> str | None:
    if len(word) > 200:  # no key is that long, and difflib would take long to say so
        return None
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def schema_issues(error: ValidationError, data: Any) -> list[Issue]:
    """One Issue per distinct location (a union reports each branch; the first one speaks for all)."""
    out: list[Issue] = []
    seen: set[KeyPath] = set()
    for err in error.errors():
        path, key_error = _clean_loc(err["loc"], data, err["type"])
        if path in seen:
            continue
        seen.add(path)
        out.append(_key_issue(err, path) if key_error else _issue(err, path))
    return out


def _clean_loc(loc: tuple[Any, ...], data: Any, kind: str) -> tuple[KeyPath, bool]:
    """Follow `loc` through the data, keeping only the steps that exist there (drops union tags)."""
    path: list[str | int] = []
    cur = data
    for i, part in enumerate(loc):
        if part == "[key]":
            return tuple(path), True
        found, child = _child(cur, part)
        if found:
            cur = child
        elif not (kind == "missing" and i == len(loc) - 1):
            continue
        path.append(part)
    return tuple(path), False


def _child(node: Any, part: Any) -> tuple[bool, Any]:
    if isinstance(node, dict) and isinstance(part, str) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def _key_issue(err: Any, path: KeyPath) -> Issue:
    ctx = err.get("ctx") or {}
    message = str(ctx.get("error") or err["msg"])
    return Issue(path, message, "rename it, e.g. 'morning-briefing'")


def _issue(err: Any, path: KeyPath) -> Issue:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    field = str(path[-1]) if path else ""
    if kind == "extra_forbidden":
        valid = fields_at(path[:-1])
        near = closest(field, valid)
        fix = f"did you mean {near!r}?" if near else f"remove it; valid keys here: {', '.join(valid)}"
        return Issue(path, f"unknown key {field!r}", fix)
    if kind == "missing":
        fix = MISSING_FIX.get(field, f"add `{field}:` under {dotted(path[:-1]) or 'the top level'}")
        task = str(path[1]) if len(path) > 2 and path[0] == "tasks" else "<task>"
        return Issue(path, f"missing required key {field!r}", fix.replace("<task>", task), at=path[:-1])
    if kind == "literal_error":
        allowed = [str(a) for a in literal_values(path)]
        near = closest(str(value), allowed)
        message = f"unknown value {describe(value)}, expected one of {', '.join(allowed)}"
        return Issue(path, message, f"did you mean {near!r}?" if near else f"use one of {', '.join(allowed)}")
    expected = _EXPECTED.get(kind)
    if expected is not None:
        message = f"expected {expected}, got {describe(value)}"
        quote = expected == "a string" and isinstance(value, int | float) and not isinstance(value, bool)
        if quote and (field in ("window", "schedule") or hint(path) is None):
            return Issue(path, message, "quote the value: YAML reads unquoted 1:30 or 1e3 as a number")
        return Issue(path, message, hint(path) or _GENERIC_FIX[expected])
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        limit = ctx.get(key)
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return Issue(
            path, f"must be {words} {limit}, got {describe(value)}", hint(path) or f"use a value {words} {limit}"
        )
    if kind in ("value_error", "assertion_error"):
        message = str(ctx.get("error") or err["msg"])
        return Issue(path, message, VALUE_FIX.get(field) or hint(path) or "correct the value")
    message = str(err["msg"])
    return Issue(path, message[:1].lower() + message[1:], hint(path) or "correct the value")


def fields_at(path: KeyPath) -> list[str]:
    """The valid keys of the model found at `path` (empty when no model lives there)."""
    model = _unwrap(_type_at(path))
    if isinstance(model, type) and issubclass(model, BaseModel):
        hidden = {"source", "root"} if model is VaultConfig else set()
        return [name for name in model.model_fields if name not in hidden]
    return []


def literal_values(path: KeyPath) -> tuple[Any, ...]:
    t = _unwrap(_type_at(path))
    return get_args(t) if get_origin(t) is Literal else ()


def _type_at(path: KeyPath) -> Any:
    current: Any = VaultConfig
    for part in path:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            current = info.annotation if info else None
        elif get_origin(current) is list:
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
    return current


def _unwrap(t: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that holds fields or values."""
    while True:
        if get_origin(t) is Annotated:
            t = get_args(t)[0]
        elif get_origin(t) in (Union, types.UnionType):
            rest = [a for a in get_args(t) if a is not type(None)]
            if len(rest) != 1:
                return t
            t = rest[0]
        else:
            return t

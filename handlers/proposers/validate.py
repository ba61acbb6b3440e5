"""Turn an LLM's structured answer into a Delta, or into a recorded Rejection — never into a live write.

A model's answer is untrusted input. Every check here is a reason a proposal may be wrong in a way that
verification would not catch cheaply (or at all): a truncated answer, a path outside the vault, an edit to
a file the model never saw, a search text that matches nowhere or twice, an edit that changes nothing, a
vault.yml edit that reaches into another task. Pure functions over strings, except the optional symlink
check (`Scope.root`), which asks the disk whether a path inside the vault resolves outside it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, get_args

import yaml
from jsonschema import Draft202012Validator

from adapters.atomic import PathEscape, safe_path
from domain.delta import Delta, FileEdit, Lever
from domain.ids import sha256_text
from domain.runs import Completion
from handlers.judge_guard import parse, rubric_paths, text_changes
from projections.globs import matches

LEVERS: tuple[str, ...] = get_args(Lever)

_SEARCH_EDIT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["path", "in_config", "search", "replace"],
    "properties": {
        "path": {"type": "string", "minLength": 1},
        "in_config": {"type": "boolean"},
        "search": {"type": "string", "minLength": 1},
        "replace": {"type": "string"},
    },
}
_CONTENT_EDIT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["path", "content"],
    "properties": {
        "path": {"type": "string", "minLength": 1},
        "in_config": {"type": "boolean"},
        "content": {"type": "string"},
    },
}
OPTIONS = ("num_predict", "num_ctx", "temperature", "top_p", "repeat_penalty", "seed", "think")


def _kind(kind: str, required: list[str], **properties: Any) -> dict[str, Any]:
    """A structured edit (`handlers.proposers.structured` turns it into file text): a config knob, a model swap,
    a change of the candidate pool, training examples added or removed."""
    return {"type": "object", "additionalProperties": False, "required": ["kind", *required],
            "properties": {"kind": {"type": "string", "const": kind}, **properties}}


_MODEL_SPEC: dict[str, Any] = {"type": "string", "minLength": 3, "maxLength": 200}
STRUCTURED_EDITS: list[dict[str, Any]] = [
    _kind("option", ["option", "value"], option={"type": "string", "enum": list(OPTIONS)},
          value={"type": ["integer", "number", "boolean"]}),
    _kind("model", ["model"], model=_MODEL_SPEC),
    _kind("candidates", [], add={"type": "array", "items": _MODEL_SPEC, "maxItems": 8},
          drop={"type": "array", "items": _MODEL_SPEC, "maxItems": 8}),
    _kind("data_add", ["path", "examples"], path={"type": "string", "minLength": 1},
          examples={"type": "array", "minItems": 1, "maxItems": 50, "items": {"type": "object"}}),
    _kind("data_remove", ["path", "lines"], path={"type": "string", "minLength": 1},
          lines={"type": "array", "minItems": 1, "maxItems": 200, "items": {"type": "integer", "minimum": 1}}),
]
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["lever", "description", "rationale", "edits"],
    "properties": {
        "lever": {"type": "string", "enum": list(LEVERS)},
        "description": {"type": "string", "minLength": 1},
        "rationale": {"type": "string", "minLength": 1},
        "edits": {"type": "array", "minItems": 1, "maxItems": 8,
                  "items": {"anyOf": [_SEARCH_EDIT, _CONTENT_EDIT, *STRUCTURED_EDITS]}},
    },
}
_VALIDATOR = Draft202012Validator(ANSWER_SCHEMA)
_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*)\n\s*```\s*$", re.DOTALL)


@dataclass(frozen=True)
class Rejection:
    """Why an answer was not turned into a delta; `answer_sha256` names the raw answer (None: no answer)."""

    kind: str  # backend | truncated | context | empty | malformed | schema | escape | not_editable |
    #            not_in_evidence | clipped | search_missing | search_ambiguous | noop | config_scope | judge
    reason: str  # one line, secrets scrubbed
    answer_sha256: str | None
    proposer: str = ""
    task: str = ""
    answer: str | None = field(default=None, repr=False)  # the raw answer, secrets scrubbed: blob it by its hash


class Rejected(ValueError):
    """Raised inside validation; the proposer turns it into a Rejection."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class Scope:
    """What a proposal may touch: `editable` globs, the config file's name, and (optionally) the vault root
    for the symlink check and for telling a new file from an existing one the evidence left out."""

    editable: tuple[str, ...]
    approve: tuple[str, ...] = ()
    config_name: str = "vault.yml"
    root: Path | None = None


@dataclass(frozen=True)
class Known:
    """The files the evidence showed: path -> (text, sha256); `clipped` paths showed only an excerpt, so no
    new content can be built from their text (it would cut the rest of the file off)."""

    files: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    clipped: frozenset[str] = frozenset()


# ---- the completion and the JSON --------------------------------------------------------------------


def completion_problem(c: Completion) -> Rejected | None:
    """A cut or empty answer is never parsed: half a JSON object can still be valid JSON of a smaller edit."""
    if c.done_reason == "length":
        return Rejected("truncated", f"answer truncated at {c.output_tokens} tokens (done_reason length); "
                                     "raise the proposer's num_predict")
    if c.done_reason == "context":
        return Rejected("context", f"prompt of {c.prompt_tokens} tokens leaves no room in the model's context")
    if not c.text.strip():
        return Rejected("empty", f"empty answer (done_reason {c.done_reason})")
    return None


def parse_answer(text: str) -> dict[str, Any]:
    """The answer object, schema-checked. A single surrounding code fence is tolerated, nothing else."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except json.JSONDecodeError as e:
        raise Rejected("malformed", f"answer is not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise Rejected("schema", f"answer does not match the schema at {where}: {_short(first.message)}")
    return dict(data)


# ---- paths -------------------------------------------------------------------------------------------


def clean_path(path: str) -> str:
    """The vault-relative POSIX form of `path`; Rejected('escape') when it could leave the vault."""
    if not path or "\x00" in path:
        raise Rejected("escape", "empty path or NUL byte in path")
    if path.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", path):
        raise Rejected("escape", f"{_short(path)!r} is absolute; only paths inside the vault are allowed")
    parts = [p for p in re.split(r"[/\\]", path) if p not in ("", ".")]
    if ".." in parts:
        raise Rejected("escape", f"{_short(path)!r} uses '..' to leave the vault")
    if not parts:
        raise Rejected("escape", f"{_short(path)!r} names the vault itself, not a file")
    return PurePosixPath(*parts).as_posix()


def _inside(scope: Scope, path: str) -> None:
    """The symlink half of `safe_path`: only meaningful with a vault root on disk."""
    if scope.root is None:
        return
    try:
        safe_path(scope.root, path)
    except PathEscape as e:
        raise Rejected("escape", str(e)) from None


def _exists(scope: Scope, path: str) -> bool:
    return scope.root is not None and (scope.root / path).exists()


# ---- edits -------------------------------------------------------------------------------------------


def replace_once(text: str, search: str, replace: str, path: str) -> str:
    count = text.count(search)
    if count == 0:
        raise Rejected("search_missing", f"{path}: the search text does not occur in the file "
                                         f"(it must be copied exactly): {_short(search)!r}")
    if count > 1:
        raise Rejected("search_ambiguous", f"{path}: the search text occurs {count} times; it must occur once: "
                                           f"{_short(search)!r}")
    return text.replace(search, replace, 1)


def config_scope_problem(before: str, after: str, task: str, config_name: str) -> str | None:
    """A vault.yml edit may change only `tasks.<task>`: every other key, and every other task, stays equal."""
    try:
        old, new = yaml.safe_load(before), yaml.safe_load(after)
    except yaml.YAMLError as e:
        return f"{config_name} after the edit is not valid YAML: {_short(' '.join(str(e).split()))}"
    if not isinstance(old, dict) or not isinstance(new, dict):
        return f"{config_name} must stay a mapping"
    top = sorted(k for k in set(old) | set(new) if k != "tasks" and old.get(k) != new.get(k))
    if top:
        return f"{config_name} edit changes top-level keys {', '.join(map(str, top))}; only tasks.{task} may change"
    old_tasks, new_tasks = old.get("tasks") or {}, new.get("tasks") or {}
    if not isinstance(old_tasks, dict) or not isinstance(new_tasks, dict):
        return f"{config_name}: tasks must stay a mapping"
    if task not in old_tasks or task not in new_tasks:
        return f"{config_name} edit removes or renames task {task!r}"
    others = sorted(str(k) for k in set(old_tasks) | set(new_tasks)
                    if k != task and old_tasks.get(k) != new_tasks.get(k))
    if others:
        return f"{config_name} edit touches other tasks' blocks ({', '.join(others)}); only tasks.{task} may change"
    return None


def judge_problem(path: str, config_before: str | None, after: str, known: Known, config_name: str) -> str | None:
    """An edit that would change how the vault is judged (`handlers.judge_guard`: contracts, rubrics, judge and
    research settings); `config_before` is vault.yml's text for an in_config edit, None for a file edit."""
    if config_before is not None:
        try:
            changed = text_changes(config_before, after)
        except ValueError as e:
            return f"{config_name} after the edit is {e}"
        return (f"{config_name} edit changes {', '.join(changed)}: a delta may never change how the vault is judged"
                if changed else None)
    config = known.files.get(config_name)
    try:
        rubrics = rubric_paths(parse(config[0])) if config else set()
    except ValueError:
        rubrics = set()
    return f"{path} is a judge rubric: a delta may never change how the vault is judged" if path in rubrics else None


def _target(raw: Mapping[str, Any], scope: Scope) -> tuple[str, bool]:
    """(clean path, in_config) — naming the config file is an in_config edit, whatever the flag says."""
    path = clean_path(str(raw["path"]))
    in_config = bool(raw.get("in_config", False)) or path == scope.config_name
    if in_config and path != scope.config_name:
        raise Rejected("not_editable", f"{path}: an in_config edit must name {scope.config_name} itself")
    if in_config:
        return path, True
    _inside(scope, path)
    if not any(matches(g, path) for g in scope.editable):
        raise Rejected("not_editable", f"{path} is not editable (research.editable: {', '.join(scope.editable)})")
    return path, in_config


def new_texts(edits: list[Mapping[str, Any]], known: Known, scope: Scope) -> dict[tuple[str, bool], str]:
    """Every edit applied in order to the evidence's text of its file: (path, in_config) -> new full text."""
    out: dict[tuple[str, bool], str] = {}
    for raw in edits:
        key = _target(raw, scope)
        path = key[0]
        if path in known.clipped and key not in out:
            raise Rejected("clipped", f"{path}: the evidence held only an excerpt of it; its full text is unknown")
        current = out.get(key, known.files[path][0] if path in known.files else None)
        if "content" in raw:
            if current is None and _exists(scope, path):
                raise Rejected("not_in_evidence", f"{path} exists but was not in the evidence; its hash is unknown")
            out[key] = str(raw["content"])
            continue
        if current is None:
            raise Rejected("not_in_evidence", f"{path} was not in the evidence: a search/replace edit needs its text")
        out[key] = replace_once(current, str(raw["search"]), str(raw["replace"]), path)
    return out


def build_delta(answer: Mapping[str, Any], known: Known, scope: Scope, *, task: str, proposer: str,
                signatures: tuple[str, ...] = (), tasks: tuple[str, ...] = (),
                meta: Mapping[str, Any] | None = None) -> Delta:
    """The Delta an answer describes, made against the evidence's hashes; Rejected when it may not be."""
    texts = new_texts(list(answer["edits"]), known, scope)
    edits: list[FileEdit] = []
    for (path, in_config), after in texts.items():
        before = known.files.get(path)
        if before is not None and before[0] == after:
            raise Rejected("noop", f"{path}: the edit leaves the file exactly as it is")
        if in_config:
            if before is None:
                raise Rejected("not_in_evidence", f"{path} was not in the evidence: cannot edit the task's block")
            problem = config_scope_problem(before[0], after, task, scope.config_name)
            if problem:
                raise Rejected("config_scope", problem)
        weakens = judge_problem(path, before[0] if in_config and before else None, after, known, scope.config_name)
        if weakens:
            raise Rejected("judge", weakens)
        edits.append(FileEdit(path=path, before_hash=None if before is None else before[1], after=after,
                              in_config=in_config))
    approve = [e.path for e in edits if not e.in_config and any(matches(g, e.path) for g in scope.approve)]
    description = " ".join(str(answer["description"]).split())[:200]
    return Delta(task=task, lever=answer["lever"], description=description, rationale=str(answer["rationale"]),
                 edits=tuple(edits), proposer=proposer, signatures=signatures, tasks=tasks or (task,),
                 meta={**(meta or {}), "approve": approve})


def answer_hash(text: str | None) -> str | None:
    return None if text is None else sha256_text(text)


def _short(text: str, n: int = 120) -> str:
    one = " ".join(text.split())
    return one if len(one) <= n else one[: n - 1] + "…"

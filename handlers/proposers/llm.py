"""LLM proposers (`anthropic`, `ollama`, `embedded`, `openai`): the evidence pack in, one structured delta out.

The model must answer through a JSON schema (Anthropic: forced tool use; Ollama: `format`; OpenAI:
`response_format`; llama.cpp: grammar), with search/replace edits applied here to the evidence's own
file texts, so every FileEdit carries the before-hash of the text the model actually saw. Anything wrong
with the answer becomes a `Rejection` (reason + the raw answer's sha256) that the cycle records; nothing
is applied here. Each call's cost (tokens, seconds) rides on the result and on the delta's `meta["cost"]`.

    Evidence (duck-typed, see `EvidencePack`): task, files {path: (text, sha256)}, signatures, to_prompt(max_chars)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from adapters.atomic import PathEscape, safe_path
from adapters.backends.base import BackendError, Message
from adapters.backends.messages import scrub
from domain.delta import Delta
from domain.ids import sha256_text
from domain.runs import Completion
from handlers.proposers.structured import expand
from handlers.proposers.validate import (
    ANSWER_SCHEMA,
    Known,
    Rejected,
    Rejection,
    Scope,
    answer_hash,
    build_delta,
    clean_path,
    completion_problem,
    parse_answer,
)

log = structlog.get_logger("autovault.proposers")

Complete = Callable[..., Completion]  # ModelRouter.complete(spec, prompt, options, *, json_schema=...)

ROLE = (
    "You are the proposer of autovault, which improves scheduled local-LLM tasks in a personal knowledge "
    "vault one verified change at a time. You get an evidence pack for one task: its failure signatures, "
    "excerpts of recent runs, and the files that shape its behaviour. Every change you propose is tested "
    "against the current files on the same inputs and kept only if it measurably helps."
)
RULES = """Rules:
1. Propose exactly ONE atomic change: the smallest edit that fixes the strongest signature. No rewrites, no
   unrelated clean-ups, no second idea.
2. Edit only files shown in the evidence, by their exact path (or create a new file under an editable path).
   Never touch any other file, never use absolute paths or '..'.
3. Keep every contract: declared sections, block formats, output file names, and what downstream tasks require.
4. Text files (prompts, scripts): search/replace edits. `search` is copied character for character from the
   file shown and occurs exactly once in it; `replace` is its new text. Use `content` (the whole file) only
   for a new file.
5. Everything in {config} goes through a structured edit, touching only `tasks.{task}`:
   {{"kind": "option", "option": "num_predict", "value": 600}} (num_predict, num_ctx, temperature, top_p,
   repeat_penalty, seed, think); {{"kind": "model", "model": "<a spec from the task's candidates>"}};
   {{"kind": "candidates", "drop": [...], "add": [...]}}.
6. Training data (JSONL): {{"kind": "data_add", "path": ..., "examples": [{{...same keys as the file's
   lines...}}]}} or {{"kind": "data_remove", "path": ..., "lines": [line numbers as shown]}}.
7. Base the change on the measurements: the collector's coverage of its inputs and its prompt tokens against
   num_ctx, the failed checks and what the output actually says, what was already tried (never repeat it).
8. Answer with the JSON object only: the lever, a one-line description, a rationale naming the signature
   it fixes, and the edits. Levers: {levers}."""


class EvidencePack(Protocol):
    """What a proposer reads from the diagnosis (handlers.evidence.Evidence satisfies it)."""

    @property
    def task(self) -> str: ...

    @property
    def files(self) -> Mapping[str, Any]: ...  # path -> (text, sha256), or an object with .text and .sha256

    def to_prompt(self, max_chars: int) -> str: ...


@dataclass
class Cost:
    calls: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    seconds: float = 0.0

    def add(self, c: Completion, seconds: float) -> None:
        self.calls += 1
        self.prompt_tokens += c.prompt_tokens
        self.output_tokens += c.output_tokens
        self.thinking_tokens += c.thinking_tokens
        self.seconds += seconds

    def as_dict(self) -> dict[str, float]:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens, "output_tokens": self.output_tokens,
                "thinking_tokens": self.thinking_tokens, "seconds": round(self.seconds, 3)}


@dataclass
class Proposal:
    """One proposer call: at most one delta, the rejections, and what the model call cost."""

    deltas: list[Delta] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)


class LLMProposer:
    """`LLMProposer("ollama:qwen3:8b", router.complete, editable, approve)(evidence) -> list[Delta]`.

    `propose(evidence)` returns the whole `Proposal`; calling the proposer returns its deltas and leaves
    the proposal in `last` / `last_rejections` / `last_cost` (per thread: parallel cycles share one proposer).
    """

    def __init__(
        self,
        spec: str,
        complete: Complete,
        editable: Sequence[str],
        approve: Sequence[str] = (),
        *,
        max_chars: int = 12000,
        num_predict: int = 2048,
        options: Mapping[str, Any] | None = None,
        config_name: str = "vault.yml",
        root: Path | None = None,
        config_file: Path | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.spec = spec
        self.complete = complete
        self.scope = Scope(tuple(editable), tuple(approve), config_name, root)
        self.max_chars = max_chars
        self.num_predict = num_predict
        self.options = {"temperature": 0.0, **dict(options or {})}
        self.config_file = config_file  # vault.yml on disk, when the evidence does not carry its text
        self._secrets = tuple(s for s in secrets if s and len(s) >= 4)
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"LLMProposer({self.spec!r})"

    def __call__(self, evidence: EvidencePack) -> list[Delta]:
        return self.propose(evidence).deltas

    @property
    def last(self) -> Proposal:
        return getattr(self._local, "last", None) or Proposal()

    @property
    def last_rejections(self) -> list[Rejection]:
        return self.last.rejections

    @property
    def last_cost(self) -> dict[str, float]:
        return self.last.cost.as_dict()

    def propose(self, evidence: EvidencePack) -> Proposal:
        result = Proposal()
        self._local.last = result
        text: str | None = None
        try:
            t0 = time.perf_counter()
            try:
                completion = self.complete(self.spec, self.messages(evidence), self.call_options(),
                                           json_schema=ANSWER_SCHEMA)
            except BackendError as e:
                result.cost.calls, result.cost.seconds = 1, time.perf_counter() - t0
                raise Rejected("backend", f"model call failed: {e}") from None
            result.cost.add(completion, time.perf_counter() - t0)
            text = self._scrub(completion.text)  # what is recorded; a model echoing a secret leaks nothing
            problem = completion_problem(completion)
            if problem is not None:
                raise problem
            known = self.known(evidence)
            answer, declared = expand(parse_answer(text), known, self.scope, evidence.task)
            result.deltas.append(build_delta(
                answer, known, self.scope, task=evidence.task,
                proposer=self.spec, signatures=signature_names(evidence),
                tasks=tuple(str(t) for t in (getattr(evidence, "tasks", None) or (evidence.task,))),
                meta={"cost": result.cost.as_dict(), "answer_sha256": answer_hash(text), "model": self.spec,
                      **declared},
            ))
        except Rejected as r:
            rejection = Rejection(r.kind, self._scrub(r.reason), answer_hash(text), self.spec, evidence.task, text)
            result.rejections.append(rejection)
            if structlog.is_configured():  # unconfigured structlog prints every level to the terminal
                log.info("proposal rejected", proposer=self.spec, task=evidence.task, kind=rejection.kind,
                         reason=rejection.reason, answer_sha256=rejection.answer_sha256)
        return result

    def known(self, evidence: EvidencePack) -> Known:
        """The evidence's files; vault.yml from disk when the evidence lacks it; clipped excerpts completed
        from disk when the file there is still the one the evidence hashed."""
        known = known_files(evidence, self.scope.config_name)
        name, path = self.scope.config_name, self.config_file
        if (name not in known.files or name in known.clipped) and path is not None and path.is_file():
            text = path.read_text(encoding="utf-8")
            files = {**known.files, name: (text, sha256_text(text))}
            known = Known(files, known.clipped - {name})
        return complete_clipped(known, self._read) if known.clipped else known

    def _read(self, rel: str) -> str | None:
        if self.scope.root is None:
            return None
        try:
            return safe_path(self.scope.root, rel).read_text(encoding="utf-8")
        except (PathEscape, OSError, UnicodeDecodeError):
            return None

    def call_options(self) -> dict[str, Any]:
        return {**self.options, "num_predict": self.num_predict}

    def messages(self, evidence: EvidencePack) -> list[Message]:
        scope = self.scope
        rules = RULES.format(config=scope.config_name, task=evidence.task, levers=", ".join(ANSWER_LEVERS))
        header = [
            f"Task: {evidence.task}",
            f"Editable paths (globs): {', '.join(scope.editable) or 'none'}; plus tasks.{evidence.task} "
            f"in {scope.config_name}",
        ]
        if scope.approve:
            header.append(f"Edits under {', '.join(scope.approve)} wait for a human's approval before they apply.")
        user = "\n".join(header) + "\n\n" + evidence.to_prompt(self.max_chars)
        user += "\n\nAnswer with one JSON object matching the schema: one atomic change for this task."
        return [{"role": "system", "content": f"{ROLE}\n\n{rules}"}, {"role": "user", "content": user}]

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = scrub(text, secret)
        return text


ANSWER_LEVERS: tuple[str, ...] = tuple(ANSWER_SCHEMA["properties"]["lever"]["enum"])


def known_files(evidence: Any, config_name: str) -> Known:
    """path -> (text, sha256) from the evidence, whatever shape its file entries take; an entry with
    `complete` False (an excerpt, its sha256 that of the whole file) is marked clipped."""
    files: dict[str, tuple[str, str]] = {}
    clipped: set[str] = set()
    for path, entry in (getattr(evidence, "files", None) or {}).items():
        if isinstance(entry, tuple | list):
            text, digest, whole = str(entry[0]), str(entry[1]), True
        elif isinstance(entry, str):
            text, digest, whole = entry, sha256_text(entry), True
        else:
            text = str(entry.text)
            digest = str(getattr(entry, "sha256", None) or getattr(entry, "hash", None) or sha256_text(text))
            whole = bool(getattr(entry, "complete", True))
        try:
            rel = clean_path(str(path))
        except Rejected:  # the evidence named something outside the vault: nothing may be made against it
            continue
        files[rel] = (text, digest)
        if not whole:
            clipped.add(rel)
    config_text = getattr(evidence, "config_text", None)
    if config_name not in files and isinstance(config_text, str):
        files[config_name] = (config_text, sha256_text(config_text))
    return Known(files, frozenset(clipped))


def complete_clipped(known: Known, read: Callable[[str], str | None]) -> Known:
    """Replace each clipped excerpt by the file's full text when the file still has the evidence's hash."""
    files, clipped = dict(known.files), set(known.clipped)
    for path in known.clipped:
        text = read(path)
        if text is not None and sha256_text(text) == files[path][1]:
            files[path] = (text, files[path][1])
            clipped.discard(path)
    return Known(files, frozenset(clipped))


def signature_names(evidence: Any) -> tuple[str, ...]:
    return tuple(str(getattr(s, "name", s)) for s in (getattr(evidence, "signatures", None) or ()))


# ---- wiring from vault.yml (daemon.commands_cycle calls `proposer(name, svc)`) -----------------------

DEFAULT_SPECS = {"ollama": "ollama:qwen3:8b", "embedded": "embedded:smollm2-135m", "openai": "openai:default"}


def proposer_spec(name: str, config: Any) -> str:
    """The model a proposer asks: Anthropic's configured model; otherwise the first model of that backend the
    vault already uses (a task's model or candidate), so no new model has to be pulled; else a default."""
    if name == "anthropic":
        return f"anthropic:{config.backends.anthropic.model}"
    for task in config.tasks.values():
        for spec in (task.model, *task.candidates):
            if spec.startswith(f"{name}:"):
                return str(spec)
    return DEFAULT_SPECS.get(name, f"{name}:default")


def proposer(name: str, svc: Any) -> LLMProposer:
    """The proposer `name` for a bootstrapped `Services` (config, models router, env)."""
    config = svc.config
    research = config.research
    secrets = [svc.env.get(k) or "" for k in (config.backends.anthropic.api_key_env, config.backends.openai.api_key_env)
               if k]
    kwargs: dict[str, Any] = {}
    if name == "embedded":  # a 135M model with a 2k context: a short pack and a short answer
        n_ctx = config.backends.embedded.n_ctx
        kwargs = {"num_predict": min(768, n_ctx // 3), "max_chars": max(600, (n_ctx - n_ctx // 3 - 500) * 3)}
    elif name == "ollama":
        kwargs = {"options": {"think": False}}
    return LLMProposer(proposer_spec(name, config), svc.models.complete, research.editable, research.approve,
                       config_name=config.source.name, root=config.root, config_file=config.source,
                       secrets=secrets, **kwargs)


__all__ = ["ANSWER_SCHEMA", "Cost", "EvidencePack", "LLMProposer", "Proposal", "Rejection", "complete_clipped", "known_files",
           "proposer", "proposer_spec"]

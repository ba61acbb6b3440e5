"""Collector faults found by measurement: the live collector runs traced in a shadow copy of the vault, and what
it emits is compared with what its inputs hold (`handlers.collector_measure`), whatever shell, awk, sed or
Python it is written in.

`collector_signatures(task, deps)` is the one entry point for diagnosis and every display (`status
--signatures`, `signatures`, `findings`, the loop's open signatures): `SignatureNote`s with source "trace" —
- `collector_starving`: a head/tail-shaped cut passes at most half of an input's items, and the task's runs say
  they have too little to work with (or write fewer blocks than the contract asks while following its format);
- `section_regex_leak`: sections reach the context that the prompt never asks for, beside the one it does;
- `subprocess_loop`: programs started per input file (a loop that forks per item grows with the vault);
- `context_overflow`: the rendered prompt, counted with the task model's tokenizer where its backend has one
  (else estimated at 4 characters per token and labelled so), does not fit num_ctx with num_predict.
`measure(task, deps)` gives the numbers behind them (and the sized fixes) for the evidence pack.

Measuring runs the collector as it is on disk, never code a proposal adds. deps: a `DiagnoseDeps`: `config`,
`history` (recent runs, for the starving symptom), and where given `models` (tokenizer, context window), `env`,
`runner`.
Results are cached per process until the task's config, the day or a file the measurement read changes.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import hashlib
import math
import os
import re
import shlex
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.process_trace import Call, TracedRun, trace_script
from adapters.sandbox import Confinement, SandboxUnavailable
from adapters.subprocesses import script_env
from adapters.workspace import DEFAULT_EXCLUDE, WorkspaceTooLarge
from domain.checks import count_blocks
from domain.config import TaskConfig, VaultConfig
from domain.render import render_prompt
from handlers.collector_limits import Limit, collect_line_limits, script_limits
from handlers.collector_measure import (
    SAFETY,
    ForkCount,
    InputCoverage,
    Resize,
    SectionFlow,
    calls_of,
    coverage,
    file_of_call,
    fork_count,
    proportional,
    section_flow,
    section_selectors,
    trims,
    widen,
)
from handlers.diagnose_deps import DiagnoseDeps
from handlers.evidence import SignatureNote
from handlers.ports import Workspace, Workspaces
from handlers.shell_syntax import Script, parse
from handlers.since_change import current_history
from projections import globs

CHARS_PER_TOKEN = 4  # the estimate where the model's backend has no tokenizer
MAX_FILES = 200  # input files read for coverage and sections
FILE_CHARS = 1_000_000
CACHE_SIZE = 64
SAID_CHARS = 4000  # of each output searched for a run saying it had too little (it says so early)
STARVING = re.compile(
    r"\b(no (?:clear |visible |obvious |real |recurring )?(?:trends?|patterns?|signals?|themes?)|"
    r"not enough (?:data|items|signals|entries|information|context|material)|"
    r"too (?:few|little) (?:data|items|entries|signals|information|material)|insufficient (?:data|information)|"
    r"only (?:one|two|three|a few|a handful of|\d+) (?:items?|entries|signals|notes|records|lines|rows)|"
    r"(?:appears?|seen|occurs?|shows? up) (?:only )?once|count=1\b|nothing (?:stands out|to report))",
    re.IGNORECASE)


@dataclass(frozen=True)
class PromptSize:
    tokens: int  # the rendered prompt
    template_tokens: int  # the prompt with an empty context
    method: str  # how they were counted
    exact: bool
    num_ctx: int | None  # what the call gets: options.num_ctx or the backend's default
    num_predict: int
    ceiling: int | None  # how far num_ctx can go for this model
    window: str  # where num_ctx's default and ceiling come from
    chars: int  # of the context
    prompt_bytes: int = 0  # of the rendered prompt, UTF-8

    @property
    def budget(self) -> int | None:
        if self.num_ctx is None:
            return None
        return self.num_ctx - self.num_predict - math.ceil(SAFETY * self.num_ctx)

    @property
    def overflow(self) -> bool:
        return self.num_ctx is not None and self.tokens + self.num_predict > self.num_ctx

    @property
    def tokens_per_char(self) -> float:
        return max(self.tokens - self.template_tokens, 1) / max(self.chars, 1)

    def as_dict(self) -> dict[str, Any]:
        return {"prompt_tokens": self.tokens, "template_tokens": self.template_tokens, "method": self.method,
                "exact": self.exact, "num_ctx": self.num_ctx, "num_predict": self.num_predict,
                "ceiling": self.ceiling, "window": self.window, "context_chars": self.chars,
                "prompt_bytes": self.prompt_bytes,
                "budget": self.budget, "overflow": self.overflow}


@dataclass(frozen=True)
class CollectorMeasure:
    task: str
    command: str
    script: str  # vault-relative path of the collector
    script_sha: str
    ok: bool
    error: str
    context: str = field(repr=False)
    calls: int
    cpu_s: float
    coverage: tuple[InputCoverage, ...] = ()
    sections: SectionFlow | None = None
    forks: ForkCount | None = None
    size: PromptSize | None = None
    widen: tuple[Resize, ...] = ()  # for each starved input whose cap could be found
    trims: tuple[Resize, ...] = ()  # caps that would make the prompt fit, best first
    date: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The evidence: every figure, no context text (it is in the runs)."""
        return {"task": self.task, "command": self.command, "script": self.script, "script_sha": self.script_sha,
                "ok": self.ok, "error": self.error, "date": self.date, "calls": self.calls,
                "cpu_s": round(self.cpu_s, 3), "context_chars": len(self.context),
                "context_lines": self.context.count("\n") + bool(self.context and not self.context.endswith("\n")),
                "coverage": [c.as_dict() for c in self.coverage if c.shape != "none"][:20],
                "sections": self.sections.as_dict() if self.sections else None,
                "forks": self.forks.as_dict() if self.forks else None,
                "size": self.size.as_dict() if self.size else None,
                "widen": [r.as_dict() for r in self.widen], "trims": [r.as_dict() for r in self.trims]}


# ---- running the collector -------------------------------------------------------------------------------

Stamp = tuple[tuple[str, str], ...]  # (vault-relative path, what it holds) of what a measurement read
HASHED = 1 << 20  # files up to this size are compared by content, larger ones by mtime and size

_CACHE: OrderedDict[str, tuple[CollectorMeasure, Stamp]] = OrderedDict()
_LOCK = threading.Lock()  # one measurement at a time: they share the cache and the shadow copy
_SHADOWS: dict[Path, tuple[str, Workspace]] = {}  # live root -> (the tree it copies, the copy)


def measure(task: str, deps: DiagnoseDeps) -> CollectorMeasure | None:
    """The task's collector, run traced in a shadow copy and measured (None: the task has no collector). Kept until
    the task's config or the day changes, or a file it depends on: its script, its prompt, every file its calls
    named, its code names or its inputs declare, and the folders holding them (a file added where it lists)."""
    cfg: VaultConfig = deps.config
    tc = cfg.task(task)
    if not tc.collect:
        return None
    with _LOCK:
        key = hashlib.sha256(f"{cfg.root}\0{task}\0{tc.model_dump_json()}\0{dt.date.today()}".encode()).hexdigest()
        held = _CACHE.get(key)
        if held is not None and _restamp(cfg.root, held[1]) == held[1]:
            _CACHE.move_to_end(key)
            return held[0]
        found, read = _measure(task, tc, cfg, deps, tree_signature(cfg.root))
        _CACHE[key] = (found, stamp(cfg.root, [found.script, tc.prompt, *read, *_glob_roots(tc)]))
        _CACHE.move_to_end(key)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return found


def stamp(root: Path, rels: list[str]) -> Stamp:
    """What each path and the folder holding it hold now, in a stable order: a file's content hash (mtime and
    size when large), a folder's entry names, "-" when missing."""
    paths = {r for r in rels if r} | {Path(r).parent.as_posix() for r in rels if r}
    return tuple((rel, _held(root / rel)) for rel in sorted(paths))


def _restamp(root: Path, held: Stamp) -> Stamp:
    """What the paths of a stamp hold now, those paths only (`stamp` has already added their folders)."""
    return tuple((rel, _held(root / rel)) for rel, _ in held)


def _held(path: Path) -> str:
    try:
        if path.is_dir():
            return hashlib.sha256("\0".join(sorted(os.listdir(path))).encode()).hexdigest()
        st = path.stat()
        if st.st_size > HASHED:
            return f"{st.st_mtime_ns}:{st.st_size}"
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return "-"


def _glob_roots(tc: TaskConfig) -> list[str]:
    """The folder part of each declared input glob (where a new input file would appear)."""
    out = []
    for pattern in tc.inputs:
        fixed = re.split(r"[*?\[{]", pattern, maxsplit=1)[0]
        out.append(fixed.rsplit("/", 1)[0] if "/" in fixed else ".")
    return out


def tree_signature(root: Path) -> str:
    """Paths, sizes and modification times of a vault's files (relative, so a faithful copy signs the same)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in DEFAULT_EXCLUDE)
        rel = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            with contextlib.suppress(OSError):
                st = os.stat(os.path.join(dirpath, name))
                h.update(f"{rel}/{name}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
    return h.hexdigest()


def _shadow(root: Path, tree: str, workspaces: Workspaces) -> Workspace:
    """A shadow copy of the vault as it is now, shared by measurements until the vault (or the copy) changes."""
    held = _SHADOWS.get(root)
    if held is not None and held[0] == tree:
        return held[1]
    if held is not None:
        held[1].cleanup()
    ws = workspaces(root)
    if not _SHADOWS:
        atexit.register(_drop_shadows)
    _SHADOWS[root] = (tree, ws)
    return ws


def _drop_shadows() -> None:
    for _, ws in _SHADOWS.values():
        ws.cleanup()
    _SHADOWS.clear()


def _measure(task: str, tc: TaskConfig, cfg: VaultConfig, deps: DiagnoseDeps,
             tree: str) -> tuple[CollectorMeasure, list[str]]:
    """The measurement, and the vault files it read."""
    command = tc.collect or ""
    rel = shlex.split(command)[0] if command.strip() else ""
    try:
        text = (cfg.root / rel).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        return CollectorMeasure(task, command, rel, "", False, f"cannot read {rel}: {e.strerror or e}", "", 0,
                                0.0), []
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    day = dt.date.today().isoformat()
    runner = deps.runner
    base_env = deps.env or (runner.base_env if runner is not None else None) or os.environ
    passthrough = runner.env_passthrough if runner is not None else ()
    env = script_env(base_env, {"VAULT_ROOT": "", "AUTOVAULT_TASK": task, "AUTOVAULT_DATE": day,
                                "AUTOVAULT_RUN_ID": f"trace-{day}"}, passthrough)
    try:
        ws = _shadow(cfg.root, tree, deps.workspaces)
        env["VAULT_ROOT"] = str(ws.root)
        run = trace_script(ws.root, command, env=env, timeout=tc.timeout, output_cap=tc.output_cap,
                           confinement=Confinement((ws.root,)))  # like every shadow run: writes there only
        read = _read_paths(ws.root, tc, run, rel, text)
        files = _input_texts(ws.root, read)
        resolve = file_of_call(ws.root)
        forks = fork_count(run.calls, resolve, _loop_sizes(ws.root, tc, files, text, rel))
        prompt = deps.read_vault_text(tc.prompt)
        covered = tuple(coverage(run.stdout, files))
        size = _size(tc, cfg, deps, prompt, run.stdout, day)
        python = rel.endswith(".py") or (text.startswith("#!") and "python" in text.split("\n", 1)[0])
        limits = script_limits(text, python=python)
        widened = tuple(_widen(cfg, tc, rel, text, limits, covered, run, size, resolve))
        overflow = size is not None and size.overflow
        trimmed = tuple(_trims(rel, text, limits, run, size, python, resolve)) if size is not None and overflow else ()
        if tree_signature(ws.root) != tree:  # the collector wrote into the copy: the next one gets a fresh copy
            _SHADOWS.pop(cfg.root, None)
            ws.cleanup()
    except SandboxUnavailable as e:
        return CollectorMeasure(task, command, rel, sha, False, f"not measured: {e}", "", 0, 0.0, date=day), []
    except (OSError, ValueError, WorkspaceTooLarge) as e:
        return CollectorMeasure(task, command, rel, sha, False, f"not measured: {type(e).__name__}: {e}", "", 0,
                                0.0, date=day), []
    error = "" if run.ok else (f"timed out after {tc.timeout:g} s" if run.timed_out else
                               f"exited {run.returncode}: {run.stderr_tail or 'no stderr'}")
    selects = not python and bool(section_selectors(parse(text)))
    return CollectorMeasure(task, command, rel, sha, run.ok, error, run.stdout, len(run.calls), run.cpu_s, covered,
                            section_flow(run.stdout, files, prompt, text, selects), forks, size, widened, trimmed,
                            date=day), read


def _declared(root: Path, tc: TaskConfig) -> list[Path]:
    out: list[Path] = []
    for pattern in tc.inputs:
        for g in globs.to_pathlib(pattern.replace("{date}", "*").replace("{name}", "*").replace("{task}", "*")):
            out += [p for p in sorted(root.glob(g)) if p.is_file()]
    return list(dict.fromkeys(out))


def _loop_sizes(root: Path, tc: TaskConfig, files: dict[str, str], text: str, rel: str) -> set[int]:
    """Counts a loop of the collector may run over: its declared input files and, when it reads lines in a
    `while read` loop, the rows of each input (with and without a header line)."""
    sizes = {len(_declared(root, tc))}
    if not rel.endswith(".py") and any(loop.kind == "while" and loop.var for loop in parse(text).loops):
        for body in files.values():
            rows = sum(1 for line in body.splitlines() if line.strip())
            sizes |= {rows, rows - 1}
    return sizes


def _read_paths(root: Path, tc: TaskConfig, run: TracedRun, script: str, text: str) -> list[str]:
    """Files the collector read: named by its calls, named in its code, declared as inputs (scripts excluded)."""
    resolve = file_of_call(root)
    named = [f for c in run.calls for a in c.args if (f := resolve(c, a)) is not None]
    literal = [w.value for c in parse(text).commands for w in c.args if not w.dynamic] if not script.endswith(
        ".py") else re.findall(r"['\"]([\w./-]+\.\w+)['\"]", text)
    in_code = [w for w in literal if (root / w).is_file()]
    declared = [p.relative_to(root).as_posix() for p in _declared(root, tc)]
    skip = {script, (tc.postprocess or "").split(" ")[0]}
    return [rel for rel in dict.fromkeys([*named, *in_code, *declared]) if rel not in skip]


def _input_texts(root: Path, read: list[str]) -> dict[str, str]:
    """The texts of the files read (text files, at most MAX_FILES, each up to FILE_CHARS)."""
    out: dict[str, str] = {}
    for rel in read:
        if len(out) >= MAX_FILES:
            break
        with contextlib.suppress(OSError), open(root / rel, encoding="utf-8", errors="replace") as fh:
            body = fh.read(FILE_CHARS)
            if "\0" not in body:
                out[rel] = body
    return out


# ---- sizes --------------------------------------------------------------------------------------------------


def _size(tc: TaskConfig, cfg: VaultConfig, deps: DiagnoseDeps, template: str, context: str,
          day: str) -> PromptSize | None:
    if not template:
        return None
    prompt = render_prompt(template, context, day, append_missing=True, append_inputs=False)
    empty = render_prompt(template, "", day, append_missing=True, append_inputs=False)
    models = deps.models
    tokens = models.count_tokens(tc.model, prompt) if models is not None else None
    bare = models.count_tokens(tc.model, empty) if tokens is not None and models is not None else None
    if tokens is not None and bare is not None:
        method, exact = f"tokenizer of {tc.model}", True
    else:
        tokens, bare = math.ceil(len(prompt) / CHARS_PER_TOKEN), math.ceil(len(empty) / CHARS_PER_TOKEN)
        method, exact = f"estimate: {CHARS_PER_TOKEN} characters per token ({tc.model} has no tokenizer here)", False
    window = models.context_window(tc.model) if models is not None else None
    num_ctx = tc.options.num_ctx or (window.default if window is not None else None)
    if tc.model.startswith("embedded:"):  # the loaded window is the most a call gets, whatever num_ctx asks
        loaded = window.maximum if window is not None and window.maximum else cfg.backends.embedded.n_ctx
        num_ctx = min(num_ctx or loaded, loaded)
    return PromptSize(tokens, bare, method, exact, num_ctx, tc.options.num_predict or 0,
                      window.maximum if window is not None else None,
                      window.source if window is not None else "no context window reported", len(context),
                      len(prompt.encode("utf-8")))


def _trims(rel: str, text: str, limits: list[Limit], run: TracedRun, size: PromptSize, python: bool,
           resolve: Callable[[Call, str], str | None]) -> list[Resize]:
    budget = size.budget or 0
    excess = size.tokens - budget
    if excess <= 0:
        return []
    if python:
        share = max(0.0, (budget - size.template_tokens) / max(1, size.tokens - size.template_tokens))
        return proportional(limits, rel, share, size.tokens)
    return trims(parse(text), rel, [lim for lim in limits if lim.command is not None], run.calls, run.stdout,
                 excess, size.tokens_per_char, size.tokens, resolve)


def _widen(cfg: VaultConfig, tc: TaskConfig, rel: str, text: str, limits: list[Limit],
           covered: tuple[InputCoverage, ...], run: TracedRun, size: PromptSize | None,
           resolve: Callable[[Call, str], str | None]) -> list[Resize]:
    out = []
    room = (size.budget - size.tokens) if size is not None and size.budget is not None else None
    tpc = size.tokens_per_char if size is not None else 1 / CHARS_PER_TOKEN
    script = parse(text) if not rel.endswith(".py") else None
    for cov in covered:
        if not cov.starved:
            continue
        found = _limit_for(cov, limits, script, run, resolve)
        where = rel
        if found is None:
            knobs = [k for k in collect_line_limits(tc.collect or "") if _counts(k, cov)]
            found, where = (knobs[0], cfg.source.name) if knobs else (None, rel)
        if found is None:
            continue
        resize = widen(found, cov, where, room, tpc, max(1, round(cov.size * cov.kept / max(1, cov.items))))
        if resize is not None:
            out.append(resize)
    return out


def _counts(lim: Limit, cov: InputCoverage) -> bool:
    """A number that could be the cap on this file: the count of items or lines it kept."""
    return cov.kept <= lim.n <= max(cov.kept, cov.lines_kept) + 1


def _limit_for(cov: InputCoverage, limits: list[Limit], script: Script | None, run: TracedRun,
               resolve: Callable[[Call, str], str | None]) -> Limit | None:
    """The cap behind a starved file: a shell limit whose calls (or pipeline) read it, else a number that counts
    what it kept (a Python slice, a `${N:-8}` default)."""
    for lim in limits:
        if lim.command is None or script is None:
            continue
        mates = script.pipeline_of(lim.command)
        for cmd in [lim.command, *mates]:
            if any(r.value == cov.path for _, r in cmd.redirects):
                return lim
            for call in calls_of(cmd, run.calls):
                if any(resolve(call, a) == cov.path for a in call.args):
                    return lim
    return next((lim for lim in limits if lim.command is None and _counts(lim, cov)), None)


# ---- signatures -----------------------------------------------------------------------------------------------


def collector_signatures(task: str, deps: DiagnoseDeps) -> list[SignatureNote]:
    """The task's measured collector signatures ([] without a collector)."""
    m = measure(task, deps)
    if m is None:
        return []
    return _notes(task, m, deps)


def _notes(task: str, m: CollectorMeasure, deps: DiagnoseDeps) -> list[SignatureNote]:
    """The signatures a measurement of the task's collector shows."""
    base = {"script": m.script, "measured": "collector run traced in a shadow copy", "date": m.date}
    notes: list[SignatureNote] = []
    said = _starving_said(task, deps)
    starved = [c for c in m.coverage if c.starved]
    if starved and said is not None:
        fix = next((r for c in starved for r in m.widen if r.input == c.path), None)
        cov = next((c for c in starved if fix is not None and c.path == fix.input), starved[0])
        cap = f" by `{fix.shape}`" if fix else ""
        more = f" (and {len(starved) - 1} more input(s))" if len(starved) > 1 else ""
        notes.append(SignatureNote(
            "collector_starving", "high", "script",
            f"the collector passes {cov.kept} of {cov.items} items of {cov.path} (its {cov.shape}{cap}){more}; "
            f"the runs say so: {said[:80]}", "trace",
            {**base, **cov.as_dict(), "said": said, "inputs": [c.as_dict() for c in starved],
             "widen": fix.as_dict() if fix else None}))
    if m.sections is not None and m.sections.leaks:
        s = m.sections
        notes.append(SignatureNote(
            "section_regex_leak", "high", "script",
            f"the collector passes {', '.join(repr(t) for t in s.leaked[:4])} beside {', '.join(repr(t) for t in s.asked)}"
            f" (asked by the prompt) in {s.files} input file(s); nothing asks for them", "trace",
            {**base, **s.as_dict()}))
    if m.forks is not None and m.forks.loop:
        f = m.forks
        top = ", ".join(f"{n} {name}" for name, n in list(f.by_name.items())[:4])
        notes.append(SignatureNote(
            "subprocess_loop", "medium", "script",
            f"{f.per_item} programs started per input item over {f.items} items ({f.calls} in all: {top}); "
            "the cost grows with the vault", "trace", {**base, **f.as_dict()}))
    if m.size is not None and m.size.overflow:
        z = m.size
        notes.append(SignatureNote(
            "context_overflow", "high", "script",
            f"the rendered prompt is {z.tokens} tokens ({z.method}) + num_predict {z.num_predict} > num_ctx "
            f"{z.num_ctx}", "trace", {**base, **z.as_dict(), "trims": [r.as_dict() for r in m.trims[:3]]}))
    if not m.ok and m.error and not m.error.startswith("not measured"):
        notes.append(SignatureNote("collector_failed", "high", "script", f"{m.script} {m.error}", "trace",
                                   {**base, "error": m.error}))
    return notes


def collector_evidence(task: str, deps: DiagnoseDeps) -> tuple[list[SignatureNote] | None, dict[str, Any]]:
    """(the measured signatures, the measurements) for an evidence pack: ([], {}) without a collector, (None, …)
    when the collector could not be measured (the caller may fall back to reading the script)."""
    m = measure(task, deps)
    if m is None:
        return [], {}
    if m.error.startswith("not measured"):
        return None, m.as_dict()
    return _notes(task, m, deps), m.as_dict()


def _starving_said(task: str, deps: DiagnoseDeps) -> str | None:
    """The task's runs since its last kept change saying they had too little to work with (the newest run, or half
    of them), or writing fewer blocks than the contract asks while following its format; None otherwise. Runs made
    before a kept change ran on files that are gone."""
    views = current_history(deps, task).views(task, 8)
    said = [m.group(0) if (m := STARVING.search(v.output[:SAID_CHARS])) else None for v in views]
    if said and (said[-1] or 2 * sum(1 for x in said if x) >= len(said)):
        return next(x for x in reversed(said) if x)
    spec = deps.config.task(task).expect.blocks
    if spec is not None and spec.min > 1:
        thin = [n for v in views if v.ok and 0 < (n := count_blocks(v.output, spec)[0]) < spec.min]
        if views and 2 * len(thin) >= len(views):
            return f"{len(thin)} of {len(views)} runs wrote {min(thin)}–{max(thin)} blocks of the {spec.min} asked"
    return None


__all__ = ["CHARS_PER_TOKEN", "CollectorMeasure", "PromptSize", "collector_evidence", "collector_signatures",
           "measure", "tree_signature"]

"""Running one task: collect → render → model → postprocess → write, in the live vault or a shadow copy.

Every stage is timed; the first failure ends the run with `status="failed"` and a one-line error naming
the stage, the file and the fix. Declared outputs are written only after every earlier stage succeeded.

Decisions worth knowing:
- Outputs: without a postprocessor, the model's text goes to the first `outputs` pattern that names one
  file (no glob characters) after `{date}`/`{task}` expansion. With a postprocessor, the postprocessor
  writes its own files (it gets the model text on stdin); the runner writes nothing itself. If the
  postprocessor fails, files it created under the output patterns are removed; files it modified in place
  cannot be restored and are named in the error.
- Artifacts: files matching the expanded output patterns that were created or changed (stat differs)
  during the run, with their sha256.
- read_hashes: the prompt, the collect and postprocess scripts, every input file, and files named as
  arguments on the collector's command line. What a collector opens by itself is not traced (that would
  need syscall tracing); tasks that read more should declare it in `inputs`.
- Context and inputs the template never mentions are appended to the prompt, so declared data always
  reaches the model.
- Scripts run sandboxed (`adapters.sandbox`): in a shadow they write only inside it and never reach the
  network; live they follow vault.yml's `sandbox:` (by default: writes inside the vault, no network). A sandbox
  that cannot be made fails the stage with one line; the script is never run unconfined instead.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from adapters.atomic import PathEscape, safe_path, sha256_file, write_atomic
from adapters.backends.base import BackendError, Message
from adapters.sandbox import SandboxPolicy, SandboxUnavailable
from adapters.subprocesses import ScriptResult, run_script, script_argv, script_env
from adapters.workspace import ShadowWorkspace
from domain.checks import count_blocks
from domain.config import TaskConfig
from domain.ids import sha256_bytes
from domain.render import expand_output, is_literal, render_prompt
from domain.runs import Completion, RunResult


class CompleteFn(Protocol):
    def __call__(
        self, model: str, prompt: str | list[Message], options: dict[str, Any], *,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion: ...


class _HasComplete(Protocol):
    @property
    def complete(self) -> CompleteFn: ...


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StageFailed(Exception):
    """Ends a run: carries the one-line error recorded on the RunResult."""


@dataclass
class _Run:
    """What a run has gathered so far; turned into a RunResult at the end, whatever happened."""

    root: Path
    name: str
    task: TaskConfig
    date: str
    read_hashes: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    context: str = ""
    prompt: str = ""
    completion: Completion | None = None
    written: dict[str, str] = field(default_factory=dict)

    def read(self, rel: str, what: str, field_name: str) -> bytes:
        """Read a vault file the task depends on and record its hash."""
        try:
            path = safe_path(self.root, rel)
            data = path.read_bytes()
        except PathEscape as e:
            raise StageFailed(f"{what}: {e}; fix tasks.{self.name}.{field_name} in vault.yml") from None
        except (FileNotFoundError, IsADirectoryError):
            raise StageFailed(
                f"{what}: {rel} not found in the vault; create it or fix tasks.{self.name}.{field_name} in vault.yml"
            ) from None
        self.read_hashes[rel] = sha256_bytes(data)
        return data


class TaskRunner:
    """Runs tasks of one vault. `complete` is a backend (or its bound `complete`)."""

    def __init__(
        self,
        root: Path | str,
        complete: CompleteFn | _HasComplete,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        base_env: Mapping[str, str] | None = None,
        env_passthrough: tuple[str, ...] = (),
        stderr_cap: int = 64 * 1024,
        sandbox: SandboxPolicy | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.complete: CompleteFn = complete.complete if hasattr(complete, "complete") else complete
        self.clock = clock
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.env_passthrough = env_passthrough
        self.stderr_cap = stderr_cap
        self.sandbox = sandbox or SandboxPolicy()  # shadow runs are always confined; live runs by default

    def run(
        self,
        task_name: str,
        task: TaskConfig,
        *,
        date: dt.date | str | None = None,
        shadow: bool | ShadowWorkspace = False,
        source: str = "cli",
        context_override: str | None = None,
        run_id: str | None = None,
    ) -> RunResult:
        """Run once. `shadow=True` runs in a fresh copy (discarded after); a ShadowWorkspace runs in that copy."""
        started = self.clock()
        day = date if date is not None else started.astimezone().date()  # the machine's local day, like cron
        if isinstance(shadow, ShadowWorkspace):
            return self._run_in(shadow.root, task_name, task, day, started, source, context_override, run_id)
        if shadow:
            with ShadowWorkspace.create(self.root) as ws:
                return self._run_in(ws.root, task_name, task, day, started, source, context_override, run_id)
        return self._run_in(self.root, task_name, task, day, started, source, context_override, run_id)

    def _run_in(
        self, root: Path, name: str, task: TaskConfig, date: dt.date | str, started: dt.datetime, source: str,
        context_override: str | None, run_id: str | None,
    ) -> RunResult:
        day = date if isinstance(date, str) else date.isoformat()
        rid = run_id or uuid.uuid4().hex
        run = _Run(root=root, name=name, task=task, date=day)
        patterns = [expand_output(p, day, name) for p in task.outputs]
        before = _snapshot(root, patterns)
        error = None
        try:
            self._stage(run, "collect", lambda: self._collect(run, rid, context_override))
            self._stage(run, "render", lambda: self._render(run))
            self._stage(run, "model", lambda: self._model(run))
            if task.postprocess:
                self._stage(run, "postprocess", lambda: self._postprocess(run, rid, patterns, before))
            self._stage(run, "write", lambda: self._write(run, patterns))
        except StageFailed as e:
            error = str(e)
        return self._result(run, rid, started, source, error, _artifacts(root, patterns, before, run.written))

    @staticmethod
    def _stage(run: _Run, stage: str, body: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        try:
            body()
        finally:
            run.durations[stage] = time.perf_counter() - t0

    # --- stages --------------------------------------------------------------------------------------

    def _collect(self, run: _Run, run_id: str, override: str | None) -> None:
        if override is not None:
            run.context = override
            return
        if not run.task.collect:
            return
        result, args = self._script(run, run.task.collect, "collect", run_id, b"")
        for arg in args:  # files named on the command line are read by the script: record them
            try:
                path = safe_path(run.root, arg)
            except PathEscape:
                continue
            if path.is_file():
                run.read_hashes[path.relative_to(run.root).as_posix()] = sha256_file(path) or ""
        if result.stdout_truncated:
            run.notes.append(f"collect: stdout truncated at {run.task.output_cap} bytes (tasks.{run.name}.output_cap)")
        run.context = result.stdout.decode("utf-8", "replace")

    def _render(self, run: _Run) -> None:
        template = run.read(run.task.prompt, "render: prompt", "prompt").decode("utf-8", "replace")
        inputs = self._inputs(run)
        run.prompt = render_prompt(template, run.context, run.date, inputs, append_missing=True,
                                   append_inputs=run.task.collect is None)

    def _model(self, run: _Run) -> None:
        options = run.task.options.as_dict()
        try:
            run.completion = self.complete(run.task.model, run.prompt, options)
        except BackendError as e:
            raise StageFailed(f"model {run.task.model}: {_one_line(str(e))}") from None
        except Exception as e:  # a run is recorded as failed, never crashes the daemon
            raise StageFailed(f"model {run.task.model}: {type(e).__name__}: {_one_line(str(e))}") from None

    def _postprocess(self, run: _Run, run_id: str, patterns: list[str], before: dict[str, _Stat]) -> None:
        assert run.completion is not None and run.task.postprocess
        try:
            self._script(run, run.task.postprocess, "postprocess", run_id, run.completion.text.encode("utf-8"))
        except StageFailed as e:
            modified = _undo_created(run.root, patterns, before)
            if modified:
                raise StageFailed(f"{e} (files it changed in place: {', '.join(modified)})") from None
            raise

    def _write(self, run: _Run, patterns: list[str]) -> None:
        assert run.completion is not None
        if run.task.postprocess:
            return
        target = next((p for p in patterns if is_literal(p)), None)
        if target is None:
            return
        try:
            path = safe_path(run.root, target)
        except PathEscape as e:
            raise StageFailed(f"write: {e}; fix tasks.{run.name}.outputs in vault.yml") from None
        try:
            run.written[target] = write_atomic(path, run.completion.text)
        except OSError as e:
            raise StageFailed(f"write: cannot write {target}: {e.strerror or e}; check the folder's permissions and free space") from None

    # --- helpers -------------------------------------------------------------------------------------

    def _script(
        self, run: _Run, command: str, stage: str, run_id: str, stdin: bytes,
    ) -> tuple[ScriptResult, list[str]]:
        field_name = "collect" if stage == "collect" else "postprocess"
        fix = f"tasks.{run.name}.{field_name}"
        try:
            argv, script, args = script_argv(run.root, command)
        except (PathEscape, FileNotFoundError, ValueError) as e:
            raise StageFailed(f"{stage}: {e}; fix {fix} in vault.yml") from None
        rel = script.relative_to(run.root).as_posix()
        run.read_hashes[rel] = sha256_file(script) or ""
        env = script_env(self.base_env, {
            "VAULT_ROOT": str(run.root), "AUTOVAULT_TASK": run.name, "AUTOVAULT_DATE": run.date,
            "AUTOVAULT_RUN_ID": run_id,
        }, self.env_passthrough)
        shadow = run.root.resolve() != self.root
        confinement = self.sandbox.confinement(run.root, shadow=shadow, outputs=[
            expand_output(p, run.date, run.name) for p in run.task.outputs])
        try:
            result = run_script(argv, cwd=run.root, env=env, timeout=run.task.timeout, output_cap=run.task.output_cap,
                                stdin=stdin, stderr_cap=self.stderr_cap, confinement=confinement)
        except SandboxUnavailable as e:
            raise StageFailed(f"{stage}: {rel} was not run: {e}") from None
        except OSError as e:  # e.g. a shebang naming an interpreter that is not installed
            raise StageFailed(f"{stage}: cannot start {rel} ({argv[0]}): {e.strerror or e}; fix its first line or "
                              f"install the interpreter") from None
        if result.timed_out:
            raise StageFailed(
                f"{stage}: {rel} timed out after {run.task.timeout:g} s and was killed with its children; "
                f"make it faster or raise tasks.{run.name}.timeout")
        if result.returncode != 0:
            tail = result.stderr_tail()
            said = f": {tail}" if tail else " (no stderr)"
            shown = shlex.join(rel if a == str(script) else a for a in argv)
            hint = f" ({self.sandbox.hint(shadow=shadow)})" if confinement is not None else ""
            raise StageFailed(
                f"{stage}: {rel} exited {result.returncode}{said}; reproduce with `cd {self.root} && {shown}`{hint}")
        return result, args

    def _inputs(self, run: _Run) -> dict[str, str]:
        """Files matching `inputs` globs, newest first, each under a header; capped at `output_cap` bytes."""
        files: dict[str, Path] = {}
        for pattern in run.task.inputs:
            expanded = expand_output(pattern, run.date, run.name)
            for rel, path in _matches(run.root, expanded):
                files.setdefault(rel, path)
        ordered = sorted(files.items(), key=lambda kv: (-kv[1].stat().st_mtime_ns, kv[0]))
        named: dict[str, str] = {}
        blocks: list[str] = []
        budget = run.task.output_cap
        for i, (rel, _) in enumerate(ordered):
            text = run.read(rel, "render: input", "inputs").decode("utf-8", "replace")
            block = f"--- {rel} ---\n{text.rstrip()}\n"
            if len(block.encode("utf-8")) > budget:
                left = len(ordered) - i
                run.notes.append(f"render: {left} input file(s) left out: inputs over {run.task.output_cap} bytes")
                blocks.append(f"[{left} older input file(s) left out: over the size cap]\n")
                break
            budget -= len(block.encode("utf-8"))
            blocks.append(block)
            named.setdefault(Path(rel).stem, text)
            named[rel] = text
        if blocks:
            named["inputs"] = "\n".join(blocks)
        return named

    def _result(
        self, run: _Run, run_id: str, started: dt.datetime, source: str, error: str | None,
        artifacts: dict[str, str],
    ) -> RunResult:
        c = run.completion
        options = run.task.options.as_dict()
        return RunResult(
            run_id=run_id, task=run.name, started=started.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            status="failed" if error else "ok", model=run.task.model, options=options,
            output=c.text if c else "", done_reason=c.done_reason if c else "error",
            prompt_tokens=c.prompt_tokens if c else 0, output_tokens=c.output_tokens if c else 0,
            thinking_tokens=c.thinking_tokens if c else 0, prompt_chars=len(run.prompt), context=run.context,
            read_hashes=dict(run.read_hashes), artifacts=artifacts, durations=dict(run.durations), error=error,
            source=source, num_ctx=options.get("num_ctx"), num_predict=options.get("num_predict"),
            notes=list(run.notes),
            blocks=count_blocks(c.text, run.task.expect.blocks)[0] if c and run.task.expect.blocks else 0,
        )


# --- output bookkeeping ---------------------------------------------------------------------------------

_Stat = tuple[int, int, int, int]  # mtime_ns, ctime_ns, size, inode


def _matches(root: Path, pattern: str) -> list[tuple[str, Path]]:
    """Files under root matching a relative glob; anything resolving outside the vault is dropped."""
    if not pattern or os.path.isabs(pattern) or ".." in Path(pattern).parts:
        return []
    candidates = [root / pattern] if is_literal(pattern) else list(root.glob(pattern))
    out = []
    for path in candidates:
        try:
            rel = path.relative_to(root).as_posix()
            safe_path(root, rel)
        except (ValueError, PathEscape):
            continue
        if path.is_file():
            out.append((rel, path))
    return out


def _snapshot(root: Path, patterns: list[str]) -> dict[str, _Stat]:
    snap: dict[str, _Stat] = {}
    for pattern in patterns:
        for rel, path in _matches(root, pattern):
            st = path.stat()
            snap[rel] = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
    return snap


def _artifacts(root: Path, patterns: list[str], before: dict[str, _Stat], written: dict[str, str]) -> dict[str, str]:
    after = _snapshot(root, patterns)
    out = {rel: sha256_file(root / rel) or "" for rel, st in after.items() if before.get(rel) != st}
    for rel, digest in written.items():
        out.setdefault(rel, digest)
    return dict(sorted(out.items()))


def _undo_created(root: Path, patterns: list[str], before: dict[str, _Stat]) -> list[str]:
    """After a failed postprocessor: delete the output files it created; name those it changed in place."""
    modified = []
    for rel, st in _snapshot(root, patterns).items():
        if rel not in before:
            (root / rel).unlink(missing_ok=True)
        elif before[rel] != st:
            modified.append(rel)
    return sorted(modified)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]

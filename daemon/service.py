"""`autovault run`: the long-running service — watch, record, react, schedule, survive.

Start: instance lock → `atomic.recover` (half-applied writes rolled forward) → bootstrap → register tasks →
projections caught up → open cycles a killed predecessor left are marked `Failed("interrupted…")` → the
watcher starts → edits and log lines made while the daemon was down are recorded (from the persisted
baselines and offsets, `adapters.watch_state`) → READY=1.

Loop (one thread; slow work in ONE worker thread so watching and the watchdog never stall):
  filesystem events → Debouncer → editable file: `FileEdited` / vault.yml: reload + `ConfigEdited` / log:
  only the new complete lines are ingested → `EventsRecorded` → policies (`handlers.policies.HANDLERS`);
  due scheduled tasks → live `run_and_judge` (source `daemon`); queued verifications (shadow runs) and
  cycles run one at a time in the worker; `Tick` every 30 s (loop mode, weekly gate); WATCHDOG=1 at half
  WatchdogSec; STATUS= says what it does.
SIGTERM/SIGINT: no new work; the step in flight finishes (EXTEND_TIMEOUT_USEC keeps systemd patient) for up
  to `stop_grace` seconds; a cycle still running then is marked Failed("interrupted: shutdown") with the
  apply lock held, so it can never write half a delta; STOPPING=1; exit 0.
SIGHUP: vault.yml is reloaded (`daemon.bootstrap.reload`, `daemon.service_reload`); an invalid file is refused
  with one log line and the old config kept (a changed `store` or `vault` needs a restart and is refused the
  same way).

Split by seam: the work queue (`daemon.job_queue`), the heartbeat logs (`daemon.log_tail`), the weekly gate's
facts (`daemon.week_facts`), the reload (`daemon.service_reload`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import faulthandler
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from adapters.atomic import JOURNAL_DIR, recover, sha256_file
from adapters.backends.registry import ModelRouter
from adapters.config_loader import load_config
from adapters.eventstore import prepare_url
from adapters.watch import Debouncer, OwnWrites, VaultWatcher, WatchSet
from adapters.watch_state import Seen, WatchState
from daemon import gpu_jobs
from daemon.bootstrap import Services, bootstrap, cycle_deps, register_tasks
from daemon.dataflow import refresh_after_events
from daemon.job_queue import Job, JobQueue
from daemon.lock import acquire_instance_lock
from daemon.log_tail import LogTail
from daemon.notify import Notifier, WatchdogPinger
from daemon.scheduler import Scheduler, parse_started
from daemon.service_reload import config_from, reload_or_keep
from daemon.week_facts import week_facts
from domain.config import VaultConfig
from domain.delta import unified_diff
from handlers import policies
from handlers.apply import apply_root
from handlers.tasks import run_and_judge
from handlers.weekly import secrets_of
from projections.quality import quality_table
from projections.runs import last_started

log = structlog.get_logger("autovault.daemon")
RESTING = ("awaiting_approval",)  # an open cycle in this phase waits for a person, not for a process
TICK_S = 30.0
MAX_TEXT = 1_000_000  # bytes of a watched file kept for diffs
Clock = Callable[[], dt.datetime]


def local_now() -> dt.datetime:
    return dt.datetime.now().astimezone()


@dataclass
class Options:
    config: Path
    once: bool = False
    debounce: float = 0.3
    max_wait: float = 2.0
    stop_grace: float = 90.0
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    clock: Clock = local_now
    models: ModelRouter | None = None
    # (services, shared apply lock, own-writes registry) -> the blocking cycle call; default: handlers.cycle
    cycle_factory: Callable[[Services, threading.Lock, OwnWrites], Callable[..., Any]] | None = None


def state_dir(config: VaultConfig, env: Mapping[str, str]) -> Path:
    """Where reports go (never the vault): $STATE_DIRECTORY (systemd), else beside a SQLite store, else XDG."""
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    url = prepare_url(config.store)
    if url.startswith("sqlite"):
        return Path(url.split(":///", 1)[1]).parent
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "autovault"


def journal_paths(root: Path) -> set[str]:
    """Absolute paths of the files committed journals will write: an apply a crash cut short, which `recover`
    finishes — autovault's change, not a human's."""
    import json

    out: set[str] = set()
    for manifest in (root / JOURNAL_DIR).glob("*.commit/manifest.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            out.update(str((root / e["path"]).resolve()) for e in json.loads(manifest.read_text())["entries"])
    return out


def default_cycle_factory(svc: Services, lock: threading.Lock, own: OwnWrites) -> Callable[..., Any]:
    """The blocking cycle call, built from `handlers.cycle.run_cycle` with the CLI's wiring
    (`daemon.bootstrap.cycle_deps`). The shared lock serializes applies with the watcher's reading of
    edited files; every file an apply writes is noted as our own. run_cycle takes no list of evidence tasks:
    the diagnosis names the tasks it needs itself (`tasks` is kept in the trigger's text)."""
    from handlers.cycle import run_cycle

    def start(task: str, trigger: str, tasks: list[str], key: str | None = None) -> Any:
        deps = cycle_deps(svc, lambda m: log.info("cycle", detail=m))
        deps.lock = lock
        root = apply_root(svc.config)
        deps.on_written = lambda rel: own.note(root / rel, sha256_file(root / rel))
        return run_cycle(deps, task, trigger=trigger, key=key)

    return start


class Daemon:
    def __init__(self, opts: Options, notifier: Notifier | None = None) -> None:
        self.opts = opts
        self.notifier = notifier or Notifier()
        self.watchdog = WatchdogPinger.from_env(self.notifier)
        self.stop_requested = False
        self.reload_requested = False
        self.own = OwnWrites()
        self.apply_lock = threading.Lock()
        self.jobs = JobQueue()
        self.future: Future[Any] | None = None
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autovault-step")
        self.debouncer = Debouncer(opts.debounce, opts.max_wait)
        self._status = ""
        self.abandoned = False  # a step still running at exit: the process must not wait for its thread

    # ---- start ---------------------------------------------------------------------------------------

    def run(self) -> int:
        cfg = load_config(self.opts.config, self.opts.env)
        lock = acquire_instance_lock(prepare_url(cfg.store), cfg.root)
        try:
            return self._run(cfg)
        finally:
            lock.release()

    def _run(self, cfg: VaultConfig) -> int:
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        self._signals()
        try:
            return self._started(cfg)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _started(self, cfg: VaultConfig) -> int:
        self.status("starting: recovering interrupted writes")
        self.recovered_paths = journal_paths(apply_root(cfg))
        recovery = recover(apply_root(cfg))
        if recovery.rolled_forward or recovery.conflicts:
            log.warning("recovered interrupted apply", rolled_forward=recovery.rolled_forward,
                        conflicts=recovery.conflicts)
        self.svc = bootstrap(cfg, env=self.opts.env, models=self.opts.models)
        self.svc.runner.clock = self.opts.clock  # run start times follow the daemon's clock (tests inject one)
        try:
            return self._serve()
        finally:
            self.worker.shutdown(wait=False, cancel_futures=True)
            self.svc.close()

    def _serve(self) -> int:
        svc = self.svc
        register_tasks(svc.store, svc.config)
        self.status("starting: catching up read models")
        svc.projections.catch_up()
        # Open cycles this daemon's predecessor started (not a CLI's, not one waiting for approval).
        interrupted = [c for c in svc.cycles.cycles(open_only=True) if c.phase not in RESTING and c.trigger != "cli"]
        self.recovered_cycle = interrupted[0].key if len(interrupted) == 1 else None
        for c in interrupted:
            svc.store.update_cycle(c.key, lambda cy: cy.failed(error="interrupted: the daemon stopped during the cycle")
                                   if cy.is_open else None)
            log.warning("cycle interrupted by a crash marked failed", cycle=c.key, task=c.task)
        self.state = WatchState(svc.store.engine)
        self.baseline = self.state.files()
        self.logs = LogTail(self.state, svc.store)
        self.first_start = not self.baseline  # no baseline yet: today's files ARE the baseline, no events
        self.watch = WatchSet.of(svc.config)
        self.ctx = self._context()
        self.scheduler = Scheduler(svc.config, self._last_daemon_runs(), self.opts.clock())
        self.watcher = VaultWatcher(self.watch)
        if not self.opts.once:
            self.watcher.start()
        try:
            self.status("starting: recording what changed while stopped")
            self._startup_scan()
            self.first_start = False
            self.recovered_paths = set()  # from now on a change to those files is someone else's
            svc.projections.catch_up()
            for task, key in gpu_jobs.resumable(svc):
                self.jobs.add(Job("experiment", task, "resume", key=key))
            policies.handle(policies.EventsRecorded(tuple(svc.config.tasks)), self.ctx)
            self.notifier.ready(self._idle_status())
            log.info("ready", vault=str(svc.config.root), watching=len(self.baseline))
            self._loop()
        finally:
            self.watcher.stop()
        return self._shutdown()

    def _signals(self) -> None:
        def stop(_sig: int, _frame: Any) -> None:
            self.stop_requested = True
            self.watcher_wake()

        def hup(_sig: int, _frame: Any) -> None:
            self.reload_requested = True
            self.watcher_wake()

        faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: every thread's stack to the log
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)

    def watcher_wake(self) -> None:
        w = getattr(self, "watcher", None)
        if w is not None:
            w.wake()

    def _context(self) -> policies.Context:
        svc = self.svc

        def quality() -> list[Any]:
            with svc.engine_connect() as conn:
                return [q for q in quality_table(conn) if q.task in svc.config.tasks]

        return policies.Context(
            config=svc.config, store=svc.store, clock=self.opts.clock, quality=quality,
            open_cycles=self._open_cycle_tasks, last_cycle_start=self._last_cycle_start,
            start_cycle=self._queue_cycle, queue_verification=self.jobs.verify, queue_run=self.jobs.rerun,
            queue_experiment=self._queue_experiment,
            refresh_findings=lambda start: refresh_after_events(svc, start_cycle=start),
            week_facts=lambda since: week_facts(self.svc, since), state_dir=state_dir(svc.config, self.opts.env),
            log=lambda m: log.info(m),
            complete=lambda *a, **kw: self.svc.models.complete(*a, **kw),  # the router a reload may replace
            secrets=lambda: secrets_of(self.svc.config, self.opts.env))

    # ---- what policies ask ------------------------------------------------------------------------------

    def _open_cycle_tasks(self) -> set[str]:
        return self.jobs.cycle_tasks() | {c.task for c in self.svc.cycles.cycles(open_only=True)}

    def _last_cycle_start(self, task: str) -> dt.datetime | None:
        last = self.svc.cycles.last_started(task)
        return None if last is None else last.astimezone(self.opts.clock().tzinfo)

    def _queue_cycle(self, task: str, trigger: str, tasks: list[str]) -> str:
        from handlers.cycle import new_key

        key = new_key(task)
        self.jobs.add(Job("cycle", task, trigger, list(tasks), key))
        return key

    def _queue_experiment(self, task: str, trigger: str) -> bool:
        key = gpu_jobs.queue_for(self.svc, task, trigger)
        if key is not None:
            self.jobs.add(Job("experiment", task, trigger, key=key))
        return key is not None

    def _last_daemon_runs(self) -> dict[str, dt.datetime]:
        now = self.opts.clock()
        with self.svc.engine_connect() as conn:
            started = last_started(conn, "daemon")
        return {task: at for task, text in started.items() if (at := parse_started(text, now)) is not None}

    # ---- the loop ------------------------------------------------------------------------------------

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self.stop_requested:
            mono = time.monotonic()
            timeout = self._timeout(mono, next_tick)
            for it in self._drain(timeout):
                if it is not None and self.watch.classify(it[0]) is not None:
                    self.debouncer.add(it[0], it[1])
            if self.reload_requested:
                self.reload_requested = False
                self.reload("SIGHUP")
            for path in self.debouncer.due(time.monotonic()):
                try:
                    self._on_path(path)
                except Exception as e:  # one unreadable file must not stop the service; it is retried on its next event
                    log.warning("could not process a watched file", path=path, error=f"{type(e).__name__}: {e}")
            self._collect()
            now = self.opts.clock()
            for task in self.scheduler.due(now):
                if self.jobs.schedule(task):
                    self.scheduler.mark(task, now)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK_S
                policies.handle(policies.Tick(now), self.ctx)
            self._dispatch()
            self.watchdog.tick()
            self.status(self._idle_status())
            if self.opts.once and self.jobs.running is None and len(self.debouncer) == 0 and self._next_job() is None:
                return  # --once: caught up; research work waiting for the window stays undone

    def _drain(self, timeout: float) -> list[tuple[str, float] | None]:
        """Block up to `timeout` for the first event, then take whatever else is already there."""
        events = self.watcher.events
        try:
            items = [events.get(timeout=timeout)]
        except queue.Empty:
            return []
        try:
            while len(items) < 10_000:
                items.append(events.get_nowait())
        except queue.Empty:
            pass
        return items

    def _timeout(self, mono: float, next_tick: float) -> float:
        limits = [next_tick - mono, 5.0]
        due = self.debouncer.next_due()
        if due is not None:
            limits.append(due - mono)
        wd = self.watchdog.seconds_until_due(mono)
        if wd is not None:
            limits.append(wd)
        nxt = self.scheduler.next_due()
        if nxt is not None:
            limits.append((nxt - self.opts.clock()).total_seconds())
        if self.opts.once:
            limits.append(0.05)
        return max(0.01, min(limits))

    def _next_job(self) -> int | None:
        """Index of the next job that may start now: scheduled runs always, research work inside the window."""
        if self.stop_requested:
            return None
        return self.jobs.next_index(policies.in_research_window(self.svc.config, self.opts.clock()))

    def _dispatch(self) -> None:
        i = self._next_job()
        if i is None:
            return
        job = self.jobs.start(i)
        self.status(f"running {job.kind} {job.task}" + (f" ({job.trigger})" if job.trigger else ""))
        self.future = self.worker.submit(self._do, job)
        self.future.add_done_callback(lambda _f: self.watcher_wake())

    def _do(self, job: Job) -> Any:
        svc = self.svc
        if job.kind == "cycle":
            factory = self.opts.cycle_factory or default_cycle_factory
            return factory(svc, self.apply_lock, self.own)(job.task, job.trigger, job.tasks, job.key)
        if job.kind == "experiment" and job.key:
            return gpu_jobs.run_job(svc, job.key, self.apply_lock, self.own)
        outcome = run_and_judge(job.task, config=svc.config, runner=svc.runner, store=svc.store,
                                complete=svc.models.complete, history=svc.history, read_text=svc.read_vault_text,
                                shadow=job.kind == "verify", source="daemon")
        for rel, digest in outcome.run.artifacts.items():
            self.own.note(svc.config.root / rel, digest or sha256_file(svc.config.root / rel))
        return outcome

    def _collect(self) -> None:
        if self.future is None or not self.future.done():
            return
        job, future = self.jobs.finish(), self.future
        self.future = None
        assert job is not None
        try:
            result = future.result()
        except Exception as e:
            log.warning("step failed", kind=job.kind, task=job.task, error=f"{type(e).__name__}: {e}")
            result = None
        self.svc.projections.catch_up()
        if job.kind == "cycle":
            outcome = str(getattr(result, "outcome", "failed"))
            log.info("cycle finished", task=job.task, outcome=outcome, cycle=job.key)
            delta = getattr(result, "delta", None)
            policies.handle(policies.CycleFinished(job.task, job.trigger, outcome, getattr(delta, "lever", None),
                                                   job.key), self.ctx)
        policies.handle(policies.EventsRecorded((job.task,)), self.ctx)

    # ---- watched paths -------------------------------------------------------------------------------

    def _on_path(self, path: str) -> None:
        kind = self.watch.classify(path)
        if kind == "log":
            tasks = self.ingest_log(Path(path))
            if tasks:
                self.svc.projections.catch_up()
                policies.handle(policies.EventsRecorded(tuple(tasks)), self.ctx)
        elif kind == "config":
            self.reload("vault.yml changed")
        elif kind == "editable":
            with self.apply_lock:  # an apply in flight finishes (and records its Changed) first
                self.check_file(Path(path).resolve())

    def _startup_scan(self) -> None:
        for path in self.watch.editable_files():
            with self.apply_lock:
                self.check_file(path)
        for gone in sorted(set(self.baseline) - {str(p) for p in self.watch.editable_files()}):
            if self.watch.classify(gone) == "editable" and not Path(gone).exists():
                self.check_file(Path(gone))  # deleted while we were down
        self._check_config_file()
        for path in self.watch.log_files():
            self.ingest_log(path)

    def _read(self, path: Path) -> tuple[str | None, str | None]:
        """(sha256, text for diffs) of a file; (None, None) when it is gone."""
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None, None
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        return digest, data.decode("utf-8", errors="replace") if len(data) <= MAX_TEXT else None

    def _remember(self, path: Path, digest: str | None, text: str | None) -> None:
        seen = None if digest is None else Seen(digest, self.svc.store.blobs.put(text) if text is not None else None)
        self.state.set_file(str(path), seen)
        if seen is None:
            self.baseline.pop(str(path), None)
        else:
            self.baseline[str(path)] = seen

    def _already_known(self, path: Path, rel: str, digest: str | None) -> bool:
        return self.own.claim(path, digest) or self.svc.changes.recorded(rel, digest)

    def check_file(self, path: Path) -> None:
        """A watched editable file: a new hash that autovault did not write becomes FileEdited."""
        digest, text = self._read(path)
        seen = self.baseline.get(str(path))
        if (seen.sha256 if seen else None) == digest:
            return
        rel = self.watch.rel(path) or path.name
        if seen is None and self.first_start:
            self._remember(path, digest, text)  # first start on this vault: the baseline, no event
            return
        if not self._already_known(path, rel, digest):
            before = self.svc.store.blobs.get_text(seen.blob) if seen and seen.blob else None
            diff = unified_diff(rel, before, text) if (seen is None or before is not None) and (
                digest is None or text is not None) else f"{rel}: changed (too large for a diff)\n"
            by, cycle = ("cycle", self.recovered_cycle) if str(path) in self.recovered_paths else ("human", None)
            policies.handle(policies.FileEdited(rel, seen.sha256 if seen else None, digest, diff, by, cycle),
                            self.ctx)
        self._remember(path, digest, text)

    def _check_config_file(self) -> None:
        source = self.svc.config.source.resolve()
        digest, text = self._read(source)
        seen = self.baseline.get(str(source))
        if seen is None:
            self._remember(source, digest, text)
        elif seen.sha256 != digest:
            before = self.svc.store.blobs.get_text(seen.blob) if seen.blob else None
            self.reload("vault.yml changed while stopped", previous_text=before)

    def ingest_log(self, path: Path) -> list[str]:
        """Ingest the complete lines appended since the stored offset; returns the tasks they named."""
        tasks, report = self.logs.ingest(path)
        if report.runs or report.scores:
            log.info("ingested", file=str(path), runs=report.runs, scores=report.scores)
            self.status(f"ingested {report.runs} runs and {report.scores} scores from {path.name}")
        return tasks

    # ---- reload ----------------------------------------------------------------------------------------

    def reload(self, why: str, previous_text: str | None = None) -> bool:
        """Load vault.yml again; `previous_text`: the text last seen, when the live config was loaded from the
        new file already (a change made while the daemon was down)."""
        svc = self.svc
        source = svc.config.source.resolve()
        live = reload_or_keep(svc, self.notifier)
        if live is None:
            return False
        new = svc.config
        old = live if previous_text is None else config_from(previous_text, new, self.opts.env, svc.outside.load_config)
        digest, text = self._read(source)
        seen = self.baseline.get(str(source))
        register_tasks(svc.store, new)
        self.scheduler.reload(new)
        self.watch = WatchSet.of(new)
        self.watcher.watch = self.watch
        self.ctx.config = new
        if seen is not None and seen.sha256 != digest and not self._already_known(source, source.name, digest):
            before = svc.store.blobs.get_text(seen.blob) if seen.blob else None
            by, cycle = ("cycle", self.recovered_cycle) if str(source) in self.recovered_paths else ("human", None)
            policies.handle(policies.ConfigEdited(source.name, old, new, seen.sha256, digest,
                                                  unified_diff(source.name, before, text), by, cycle), self.ctx)
        self._remember(source, digest, text)
        log.info("vault.yml reloaded", why=why, tasks=len(new.tasks))
        self.notifier.ready(f"reloaded vault.yml ({why})")
        return True

    # ---- stop ----------------------------------------------------------------------------------------

    def _shutdown(self) -> int:
        self.status("stopping: finishing the step in flight" if self.jobs.running else "stopping")
        deadline = time.monotonic() + self.opts.stop_grace
        while self.future is not None and not self.future.done() and time.monotonic() < deadline:
            self.notifier.extend_timeout(15 * 1_000_000)
            with contextlib.suppress(Exception):  # a timeout or the step's own error: the loop re-checks
                self.future.result(timeout=min(5.0, max(0.0, deadline - time.monotonic())))
        running = self.jobs.running
        if self.future is not None and not self.future.done() and running is not None:
            self.apply_lock.acquire()  # never released: the worker cannot start an apply now
            if running.kind == "cycle" and running.key:
                self.svc.store.update_cycle(running.key, lambda c: c.failed(error="interrupted: shutdown")
                                            if c.is_open else None)
            log.warning("step interrupted by shutdown", kind=running.kind, task=running.task)
            self.abandoned = True
        else:
            self._collect()
        self.notifier.stopping("stopped")
        log.info("stopped")
        return 0

    def status(self, text: str) -> None:
        self.watchdog.tick()  # also during a long start-up, which reports its steps here
        if text != self._status:
            self._status = text
            self.notifier.status(text)

    def _idle_status(self) -> str:
        running = self.jobs.running
        queued = f", {len(self.jobs)} queued" if len(self.jobs) else ""
        doing = f"running {running.kind} {running.task}" if running else "idle"
        return f"{doing}; watching {len(self.baseline)} files{queued}"


def run_service(opts: Options, notifier: Notifier | None = None) -> int:
    """Run until stopped; returns the exit status. When a step had to be abandoned at shutdown, the process
    exits here: the interpreter would otherwise join the worker thread and wait for the step anyway."""
    daemon = Daemon(opts, notifier)
    code = daemon.run()
    if daemon.abandoned:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code

"""The daemon's work queue: what waits for the one worker thread and what runs there now.

Scheduled live runs may start at any time and jump the queue; verifications, cycles and experiments wait for
the research window. A live run of a task also verifies a pending edit of it, so its queued verification is
dropped; runs and verifications are coalesced per task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RERUN = "rerun after a kept change"


@dataclass
class Job:
    kind: str  # scheduled | verify | cycle | experiment
    task: str
    trigger: str = ""
    tasks: list[str] = field(default_factory=list)
    key: str | None = None


@dataclass
class JobQueue:
    pending: list[Job] = field(default_factory=list)
    running: Job | None = None

    def __len__(self) -> int:
        return len(self.pending)

    def cycle_tasks(self) -> set[str]:
        """Tasks with a cycle queued or running here."""
        return {j.task for j in [*self.pending, *([self.running] if self.running else [])] if j.kind == "cycle"}

    def has_run(self, task: str) -> bool:
        """Is a live run of `task` queued or running?"""
        return any(j.kind == "scheduled" and j.task == task for j in self.pending) or \
            (self.running is not None and self.running.kind == "scheduled" and self.running.task == task)

    def add(self, job: Job) -> None:
        self.pending.append(job)

    def schedule(self, task: str) -> bool:
        """A due scheduled run first in the queue, unless one is queued or running already; whether it was added."""
        if self.has_run(task):
            return False
        self.pending.insert(0, Job("scheduled", task))
        return True

    def rerun(self, task: str) -> None:
        """A live run of `task` at the next free moment (a kept cycle changed it), unless one is already due."""
        if not self.has_run(task):
            self.pending.append(Job("scheduled", task, RERUN))

    def verify(self, task: str) -> None:
        if not any(j.kind == "verify" and j.task == task for j in self.pending):
            self.pending.append(Job("verify", task))

    def next_index(self, window_open: bool) -> int | None:
        """Index of the next job that may start now: nothing while one runs; scheduled runs always, the rest
        only inside the research window."""
        if self.running is not None:
            return None
        return next((i for i, j in enumerate(self.pending) if j.kind == "scheduled" or window_open), None)

    def start(self, i: int) -> Job:
        """Take job `i` as the running one (a live run drops the queued verification of its task)."""
        job = self.pending.pop(i)
        if job.kind == "scheduled":
            self.pending = [j for j in self.pending if not (j.kind == "verify" and j.task == job.task)]
        self.running = job
        return job

    def finish(self) -> Job | None:
        job, self.running = self.running, None
        return job

"""Where a job runs: in this process (`LocalExecutor`), or as a Ray task on a cluster (`RayExecutor`).

Both run the same `gpu.job.run_job`. The local executor reports every step as it happens (events, progress
bars, a sweep's pruner). A Ray task runs on another machine: it writes its artifacts in a temp folder there,
returns them as bytes with the step summaries and held-out losses it collected, and the driver replays those
reports and writes the files into the experiment's folder here — so the record is the same either way
(checkpoint resume is the local executor's; Ray retries a lost task itself, `max_retries`).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu.job import JobResult, JobSpec, Reporter, run_job
from gpu.lora import StepSummary

Job = Callable[[JobSpec, Reporter], JobResult]


class LocalExecutor:
    name = "local"

    def __init__(self, job: Job = run_job) -> None:
        self.job = job

    def run(self, spec: JobSpec, report: Reporter) -> JobResult:
        return self.job(spec, report)


@dataclass
class Collected:
    """A reporter that keeps what it is told, for a remote job to send back."""

    steps: list[StepSummary] = field(default_factory=list)
    instances: list[tuple[int, float]] = field(default_factory=list)

    def step(self, summary: StepSummary) -> None:
        self.steps.append(summary)

    def checkpoint(self, step: int, sha256: str) -> None: ...

    def instance(self, index: int, loss: float) -> None:
        self.instances.append((index, loss))


def remote_job(spec: JobSpec, job: Job = run_job) -> tuple[JobResult, list[StepSummary], list[tuple[int, float]]]:
    """The body of a Ray task: run in a temp folder on the worker, return the artifacts' bytes."""
    with tempfile.TemporaryDirectory(prefix="autovault-ray-") as tmp:
        collected = Collected()
        result = job(dataclasses.replace(spec, out_dir=tmp), collected)
        files = {p.relative_to(tmp).as_posix(): p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()}
        return dataclasses.replace(result, files=files), collected.steps, collected.instances


class RayExecutor:
    """Submits each job as a Ray task (`ray.remote`); `address` names a running cluster (None: a local Ray)."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: float | None = None, num_gpus: float = 0.0,
                 max_retries: int = 1, init: Mapping[str, Any] | None = None, job: Job = run_job) -> None:
        """`num_cpus`: what each task asks of the cluster (default: the job's threads); a task asking more than
        any node has would wait forever, so a small cluster must say so."""
        self.address, self.num_cpus, self.num_gpus, self.max_retries = address, num_cpus, num_gpus, max_retries
        self.init = dict(init or {})
        self.job = job

    def _ray(self) -> Any:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, **self.init)
        return ray

    def run(self, spec: JobSpec, report: Reporter) -> JobResult:
        ray = self._ray()
        cpus = self.num_cpus if self.num_cpus is not None else spec.threads
        task = ray.remote(num_cpus=cpus, num_gpus=self.num_gpus, max_retries=self.max_retries)(remote_job)
        result, steps, instances = ray.get(task.remote(spec, self.job))
        for s in steps:
            report.step(s)
        for i, loss in instances:
            report.instance(i, loss)
        out = Path(spec.out_dir)
        for rel, data in result.files.items():
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return dataclasses.replace(result, files={})


def executor_for(name: str, *, address: str | None = None) -> LocalExecutor | RayExecutor:
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address)
    raise ValueError(f"executor {name!r} is unknown — fix: use local or ray")


__all__ = ["Collected", "LocalExecutor", "RayExecutor", "executor_for", "remote_job"]

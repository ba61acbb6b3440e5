"""Experiments as events: queue, lease, run, fail, resume, sweep (Optuna in the store's database), Ray.

The job here is a double of `gpu.job.run_job` (the trainer is tested in test_gpu_train and test_gpu_smollm2):
its held-out losses are a known function of the params, so what the orchestration records can be checked.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

from adapters.config_loader import load_config
from adapters.eventstore import VaultStore, prepare_url
from gpu.executors import LocalExecutor
from gpu.job import JobResult, JobSpec, Reporter
from gpu.lease import DeviceLeases
from gpu.lora import StepSummary
from handlers import policies
from handlers.experiments import (
    ExperimentDeps,
    ExperimentError,
    interrupted,
    plan_experiment,
    queue,
    queued_event,
    run_experiment,
)
from handlers.experiments_sweep import parse_space, run_sweep
from projections.experiments import ExperimentsProjection, experiment_rows
from projections.runner import ProjectionRunner
from tests.gpu_vault import make_vault


def fake_job(spec: JobSpec, report: Reporter) -> JobResult:
    """Losses fall with lr and rank; one loss per held-out example (lower for the first)."""
    steps = int(spec.params["steps"])
    for s in range(1, steps + 1):
        report.step(StepSummary(s, 3.0 - s * float(spec.params["lr"]) * 100, float(spec.params["lr"]), 10, 0.01))
    level = 2.0 - float(spec.params["lr"]) * 500 - int(spec.params["rank"]) * 0.01
    losses = [level + 0.1 * i for i in range(len(spec.heldout))]
    for i, loss in enumerate(losses):
        report.instance(i, loss)
    Path(spec.out_dir).mkdir(parents=True, exist_ok=True)
    return JobResult(sum(losses) / len(losses), [3.0] * steps, 0.5, {"heldout_losses": losses}, {"gguf": "f" * 64})


def broken_job(spec: JobSpec, report: Reporter) -> JobResult:
    raise RuntimeError("CUDA error: out of memory\nsecond line")


@pytest.fixture
def setup(tmp_path: Path, store_url: str) -> Any:
    yield from _setup(tmp_path, store_url)


@pytest.fixture
def sqlite_setup(tmp_path: Path, sqlite_url: str) -> Any:
    yield from _setup(tmp_path, sqlite_url)


def _setup(tmp_path: Path, store_url: str) -> Any:
    cfg = load_config(make_vault(tmp_path, store=store_url, lines=10))
    store = VaultStore(cfg.store)
    runner = ProjectionRunner(store, [ExperimentsProjection()])
    deps = ExperimentDeps(config=cfg, store=store, executor=LocalExecutor(fake_job), leases=DeviceLeases(store.engine),
                          experiments=tmp_path / "experiments", holder="testhost:1:a")
    yield cfg, store, runner, deps
    store.close()


def rows(store: VaultStore, runner: ProjectionRunner, **kw: Any) -> list[Any]:
    runner.catch_up()
    with store.engine.connect() as conn:
        return experiment_rows(conn, curves=True, **kw)


def test_an_experiment_is_recorded_from_queue_to_finish(setup: Any) -> None:
    cfg, store, runner, deps = setup
    plan = plan_experiment(cfg, "planner", overrides={"steps": 3}, seed=7)
    key = queue(store, plan)
    assert rows(store, runner)[0].phase == "queued"
    outcome = run_experiment(deps, key, queued_event(store, key))
    assert outcome.outcome == "finished"
    [r] = rows(store, runner)
    assert (r.phase, r.seed, r.step, r.device) == ("finished", 7, 3, "local:cpu")
    assert [s for s, _ in r.losses] == [1, 2, 3] and r.metric == pytest.approx(outcome.result.metric)
    assert r.artifacts == {"gguf": "f" * 64} and r.params["steps"] == 3
    assert deps.leases.held("cpu") is None  # released


def test_a_failing_job_is_a_one_line_failure_and_a_changed_dataset_is_refused(setup: Any) -> None:
    cfg, store, runner, deps = setup
    deps.executor = LocalExecutor(broken_job)
    key = queue(store, plan_experiment(cfg, "planner"))
    out = run_experiment(deps, key, queued_event(store, key))
    assert out.outcome == "failed" and out.reason == "RuntimeError: CUDA error: out of memory second line"
    key2 = queue(store, plan_experiment(cfg, "planner", seed=1))
    with (cfg.root / "data" / "planner.jsonl").open("a") as f:
        f.write('{"prompt": "new", "completion": "NO-CHANGE", "label": "NO-CHANGE"}\n')
    out2 = run_experiment(deps, key2, queued_event(store, key2))
    assert out2.outcome == "failed" and "data/planner.jsonl" in out2.reason and "autovault train planner" in out2.reason
    assert [r.phase for r in rows(store, runner)] == ["failed", "failed"]


def test_bad_plans_are_one_line_errors(setup: Any) -> None:
    cfg, *_ = setup
    with pytest.raises(ExperimentError, match=r"tasks.planner.training.params.ranks: unknown training parameter"):
        plan_experiment(cfg, "planner", overrides={"ranks": 3})
    with pytest.raises(KeyError, match="unknown task"):
        plan_experiment(cfg, "nope")


def test_one_experiment_per_device_and_a_dead_holders_lease_is_taken_over(setup: Any) -> None:
    cfg, store, _runner, deps = setup
    leases: DeviceLeases = deps.leases
    key = queue(store, plan_experiment(cfg, "planner"))
    assert leases.acquire("cpu", "testhost:999999:x", "other")  # a live-looking holder on another "host"
    assert run_experiment(deps, key, queued_event(store, key)).outcome == "busy"
    import socket

    dead = f"{socket.gethostname()}:{2**22 + 12345}:y"  # this host, a pid that does not exist
    leases.release("cpu", "testhost:999999:x")
    assert leases.acquire("cpu", dead, "crashed")
    assert leases.held("cpu") is None  # its process is gone: stale
    assert run_experiment(deps, key, queued_event(store, key)).outcome == "finished"


def test_a_lease_not_renewed_goes_stale(tmp_path: Path) -> None:
    store = VaultStore(f"sqlite:///{tmp_path / 'e.db'}")
    now = [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)]
    leases = DeviceLeases(store.engine, ttl=60, clock=lambda: now[0])
    assert leases.acquire("cuda:0", "far:1:a", "k1")
    assert not leases.acquire("cuda:0", "far:2:b", "k2")
    now[0] += dt.timedelta(seconds=61)
    assert leases.acquire("cuda:0", "far:2:b", "k2") and leases.held("cuda:0") == ("far:2:b", "k2")
    store.close()


def test_interrupted_experiments_are_found_for_resume(setup: Any) -> None:
    cfg, store, runner, deps = setup
    a = queue(store, plan_experiment(cfg, "planner"))
    b = queue(store, plan_experiment(cfg, "planner", seed=2))
    store.update_experiment(b, lambda e: e.started(device="local:cpu", lease="gone:1:x", resumed_from=0))
    assert interrupted(rows(store, runner), deps.leases, "cpu") == [a, b]


def test_a_sweep_records_every_trial_in_the_store_and_optuna_in_the_same_database(setup: Any) -> None:
    import optuna

    cfg, store, runner, deps = setup
    space = parse_space(["rank=4,8", "lr=1e-4:1e-3", "steps=2"])
    report = run_sweep(deps, "planner", trials=4, store_url=prepare_url(cfg.store), space=space, sweep="s1")
    got = rows(store, runner, sweep="s1")
    assert len(got) == 4 and all(r.trigger.startswith("sweep:s1#") for r in got)
    assert {r.phase for r in got} <= {"finished", "pruned"} and report.best in {r.key for r in got}
    best = min((r for r in got if r.phase == "finished"), key=lambda r: r.metric)
    assert report.best == best.key
    study = optuna.load_study(study_name="autovault:s1", storage=prepare_url(cfg.store))
    assert len(study.trials) == 4  # the study lives beside the events
    again = run_sweep(deps, "planner", trials=1, store_url=prepare_url(cfg.store), space=space, sweep="s1")
    assert len(optuna.load_study(study_name="autovault:s1", storage=prepare_url(cfg.store)).trials) == 5
    assert again.trials  # a second run continues the same study


def test_policies_queue_experiments_on_low_scores_and_after_kept_data_deltas(tmp_path: Path) -> None:
    cfg = load_config(make_vault(tmp_path))
    asked: list[tuple[str, str]] = []

    class Q:
        def __init__(self, task: str, mean: float) -> None:
            self.task, self.rolling_mean = task, mean

    ctx = policies.Context(
        config=cfg, store=None, clock=lambda: dt.datetime(2026, 1, 1, 3, 0).astimezone(),
        quality=lambda: [Q("planner", 2.0)], open_cycles=set, last_cycle_start=lambda _t: None,
        start_cycle=lambda *a: None, queue_verification=lambda _t: None, refresh_findings=lambda _s: None,
        week_facts=lambda _d: None, state_dir=tmp_path,
        queue_experiment=lambda task, trigger: asked.append((task, trigger)) or True)  # type: ignore[arg-type]
    assert policies.experiment_on_low_score(policies.EventsRecorded(("planner",)), ctx) == ["planner"]
    assert policies.experiment_after_data_delta(policies.CycleFinished("planner", "loop", "kept", "data", "c1"), ctx)
    assert not policies.experiment_after_data_delta(policies.CycleFinished("planner", "loop", "kept", "prompt"), ctx)
    assert not policies.experiment_after_data_delta(policies.CycleFinished("planner", "loop", "discarded", "data"), ctx)
    assert asked == [("planner", "low_score:2.00"), ("planner", "data_delta:c1")]


@pytest.mark.skipif(os.environ.get("AUTOVAULT_SKIP_RAY") == "1", reason="AUTOVAULT_SKIP_RAY=1")
def test_the_ray_executor_runs_the_job_as_a_ray_task(sqlite_setup: Any) -> None:
    ray = pytest.importorskip("ray")
    from gpu.executors import RayExecutor

    cfg, store, runner, deps = sqlite_setup
    deps.executor = RayExecutor(init={"num_cpus": 1}, num_cpus=1, job=fake_job)
    key = queue(store, plan_experiment(cfg, "planner", overrides={"steps": 2}))
    try:
        out = run_experiment(deps, key, queued_event(store, key))
    finally:
        ray.shutdown()
    assert out.outcome == "finished"
    [r] = rows(store, runner)
    assert r.device == "ray:cpu" and [s for s, _ in r.losses] == [1, 2]  # the worker's steps, replayed here


def test_v1_experiment_events_are_upcast_on_read(tmp_path: Path) -> None:
    from sqlalchemy import text

    store = VaultStore(f"sqlite:///{tmp_path / 'e.db'}")
    store.queue_experiment("old", "planner", "", "embedded:smollm2-135m", "h", {"rank": 8})
    store.update_experiment("old", lambda e: e.started(device="cuda:0"))
    store.update_experiment("old", lambda e: e.finished(metric=1.0, losses=[2.0], duration_s=1.0, artifact="g"))
    codec = store.mapper.transcoder
    with store.engine.begin() as conn:  # rewrite the stored rows as v1 wrote them
        for row_id, state in conn.execute(text("SELECT id, state FROM autovault_events")).all():
            s = codec.decode(bytes(state))
            for k in ("class_version", "seed", "trigger", "data_files", "lease", "resumed_from", "metrics", "artifacts"):
                s.pop(k, None)
            conn.execute(text("UPDATE autovault_events SET state = :s WHERE id = :i"), {"s": codec.encode(s), "i": row_id})
    store.repository.cache = None  # read from the rows, not from memory
    queued = queued_event(store, "old")
    assert (queued.seed, queued.trigger, queued.data_files) == (0, "cli", {})
    assert store.get_experiment("old").phase == "finished"  # type: ignore[union-attr]
    from domain import ids

    finished = list(store.events.get(ids.experiment_id("old")))[-1]
    assert finished.artifacts == {"adapter": "g"} and finished.metrics == {}
    store.close()

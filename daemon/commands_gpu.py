"""`autovault experiments | train | sweep`: fine-tuning from the command line."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from adapters.eventstore import prepare_url
from daemon.bootstrap import Services, cycle_deps, experiment_deps
from daemon.open_vault import open_vault
from daemon.output import fmt_score, print_json, table
from gpu.paths import experiments_dir
from projections.experiments import ExperimentRow, experiment_rows


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    return (lambda _m: None) if args.json else (lambda m: print(f"  · {m}", file=sys.stderr, flush=True))


def _user_error(e: Exception) -> Exception:
    from daemon.errors import UserError

    return UserError(str(e))


@contextlib.contextmanager
def _progress(args: argparse.Namespace, total: int) -> Iterator[Callable[[Any], None]]:
    """A bar over training steps on a terminal; nothing when piped or --json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                  TimeElapsedColumn(), transient=True, disable=args.json or not sys.stderr.isatty()) as bar:
        tid = bar.add_task("training", total=total, loss="–")
        yield lambda s: bar.update(tid, completed=s.step, loss=f"{s.loss:.3f}")


def _deps(args: argparse.Namespace, svc: Services) -> Any:
    from gpu.executors import executor_for

    try:
        executor = executor_for(args.executor, address=args.ray_address)
    except ValueError as e:
        raise _user_error(e) from None
    return experiment_deps(svc, executor, progress=_say(args), device=args.device)


def _overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            from daemon.errors import UserError

            raise UserError(f"--set {item!r} — fix: write KEY=VALUE, e.g. --set steps=40")
        out[key] = value.split(",") if key == "targets" else value
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from handlers.experiments import ExperimentError, plan_experiment, queue, queued_event, run_experiment
    from handlers.experiments_verify import verify_adapter

    with open_vault(args.config) as svc:
        deps = _deps(args, svc)
        try:
            if args.resume:
                key = args.resume
            elif args.task:
                key = queue(svc.store, plan_experiment(svc.config, args.task, overrides=_overrides(args.set),
                                                       seed=args.seed))
            else:
                raise ExperimentError("name a TASK to train, or --resume KEY")
            queued = queued_event(svc.store, key)
            with _progress(args, int(queued.params.get("steps", 0))) as advance:
                deps.on_step = advance
                outcome = run_experiment(deps, key, queued)
            verdict = None
            if outcome.outcome == "finished" and not args.no_verify:
                _say(args)(f"{key}: verifying the adapter on {queued.task} (paired inputs against its model)")
                verdict = verify_adapter(cycle_deps(svc, _say(args)), svc.store, deps.experiments, key)
        except ExperimentError as e:
            raise _user_error(e) from None
        svc.projections.catch_up()
        with svc.engine_connect() as conn:
            rows = experiment_rows(conn, key=key, curves=True)
    result = {"experiment": key, "outcome": outcome.outcome, "reason": outcome.reason,
              "cycle": None if verdict is None else {"key": verdict.key, "outcome": verdict.outcome,
                                                     "reason": verdict.reason},
              "row": rows[0] if rows else None, "artifacts": str(deps.experiments / key)}
    if args.json:
        print_json(result)
    else:
        print(f"experiment {key}: {outcome.outcome} — {outcome.reason}")
        if rows:
            _detail(rows[0], deps.experiments)
        if verdict is not None:
            print(f"cycle {verdict.key}: {verdict.outcome} — {verdict.reason}")
    return 0 if outcome.outcome in ("finished", "busy") else 1


def cmd_sweep(args: argparse.Namespace) -> int:
    from handlers.experiments import ExperimentError
    from handlers.experiments_sweep import merge_sweep, parse_space, run_sweep
    from handlers.experiments_verify import verify_adapter

    with open_vault(args.config) as svc:
        deps = _deps(args, svc)
        say = _say(args)
        try:
            if args.merge:
                densities = [float(d) for d in args.densities.split(",")]
                report = merge_sweep(deps, args.task, [k.strip() for k in args.merge.split(",") if k.strip()],
                                     method=args.method, densities=densities, sweep=args.name, seed=args.seed)
            else:
                report = run_sweep(deps, args.task, trials=args.trials, store_url=prepare_url(svc.config.store),
                                   space=parse_space(args.space), sweep=args.name, seed=args.seed,
                                   prune=not args.no_prune, on_trial=lambda o: say(f"{o.key}: {o.outcome} {o.reason}"))
            verdict = None
            if args.verify and report.best:
                verdict = verify_adapter(cycle_deps(svc, say), svc.store, deps.experiments, report.best)
        except (ExperimentError, ValueError) as e:
            raise _user_error(e) from None
        svc.projections.catch_up()
        with svc.engine_connect() as conn:
            rows = experiment_rows(conn, sweep=report.sweep)
    if args.json:
        print_json({"sweep": report.sweep, "best": report.best, "experiments": rows,
                    "cycle": None if verdict is None else {"key": verdict.key, "outcome": verdict.outcome}})
    else:
        _table(rows, f"sweep {report.sweep}")
        print(f"best: {report.best or 'none finished'}")
        if verdict is not None:
            print(f"cycle {verdict.key}: {verdict.outcome} — {verdict.reason}")
    return 0


def cmd_experiments(args: argparse.Namespace) -> int:
    with open_vault(args.config) as svc:
        with svc.engine_connect() as conn:
            rows = experiment_rows(conn, task=args.task, sweep=args.sweep, key=args.key, curves=bool(args.key or args.plot))
        folder = experiments_dir(svc.config.source, svc.config.store, svc.env)
    if args.key and not rows:
        from daemon.errors import UserError

        raise UserError(f"no experiment {args.key!r}; `autovault experiments` lists them")
    if args.plot:
        plot_losses(rows, Path(args.plot))
    if args.json:
        print_json(rows)
    elif args.key:
        _detail(rows[0], folder)
    else:
        _table(rows, "experiments")
    return 0


def _table(rows: list[ExperimentRow], title: str) -> None:
    table(title, ["experiment", "task", "phase", "steps", "train loss", "held-out", "base", "pass", "effect", "outcome"],
          [(r.key, r.task, r.phase, r.step, fmt_score(r.loss), fmt_score(r.metric),
            fmt_score(r.metrics.get("base_heldout_loss")), _pct(r.metrics.get("pass_rate")),
            "" if r.effect is None else f"{r.effect:+.2f}", (r.outcome or "")[:80]) for r in rows])


def _pct(value: Any) -> str:
    return "" if value is None else f"{float(value):.0%}"


def _detail(r: ExperimentRow, folder: Path) -> None:
    print(f"{r.key} [{r.task}] {r.phase} on {r.device or '–'}, seed {r.seed}, trigger {r.trigger}")
    print(f"  params: {', '.join(f'{k}={v}' for k, v in sorted(r.params.items()) if k != 'merge')}")
    m = r.metrics
    if r.metric is not None:
        print(f"  held-out loss {r.metric:.4f} (base {m.get('base_heldout_loss', float('nan')):.4f}); "
              f"pass rate {_pct(m.get('pass_rate')) or '–'} (base {_pct(m.get('base_pass_rate')) or '–'}); "
              f"{m.get('tokens_per_s') or 0:.0f} tokens/s")
        parity = m.get("export_parity") or {}
        print(f"  GGUF export vs peft: loss gap {parity.get('loss_gap')}, greedy {parity.get('greedy_same')}/"
              f"{parity.get('greedy_steps')} same ({parity.get('greedy_ties')} ties), ok {parity.get('ok')}")
    if r.losses:
        print("  loss: " + " ".join(f"{s}:{loss:.3f}" for s, loss in r.losses))
    if r.cycle:
        print(f"  verified in cycle {r.cycle}: effect {r.effect}, {r.outcome}")
    print(f"  artifacts: {folder / r.key} (adapter.gguf, Modelfile: `ollama create {r.key} -f Modelfile`)")


def plot_losses(rows: list[ExperimentRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in rows:
        if r.losses:
            ax.plot([s for s, _ in r.losses], [v for _, v in r.losses], label=f"{r.key} ({r.phase})")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)

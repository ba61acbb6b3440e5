"""The `autovault` command line's grammar: every command's arguments, and where its implementation lives.

Parsing imports nothing of ours: `COMMANDS` names each implementation as "module:function", and `daemon.cli`
imports only the one module the command needs — `autovault --json status` never loads the cycle, the model
clients or the fine-tuning stack.
"""

from __future__ import annotations

import argparse
import os

COMMANDS: dict[str, str] = {
    "check": "daemon.commands:cmd_check",
    "ingest": "daemon.commands:cmd_ingest",
    "status": "daemon.commands_status:cmd_status",
    "tasks": "daemon.commands_status:cmd_tasks",
    "history": "daemon.commands_status:cmd_history",
    "run-task": "daemon.commands:cmd_run_task",
    "judge": "daemon.commands:cmd_judge",
    "signatures": "daemon.commands:cmd_signatures",
    "cycle": "daemon.commands_cycle:cmd_cycle",
    "verify": "daemon.commands_cycle:cmd_verify",
    "approve": "daemon.commands_cycle:cmd_approve",
    "reject": "daemon.commands_cycle:cmd_reject",
    "loop": "daemon.commands_cycle:cmd_loop",
    "ledger": "daemon.commands_cycle:cmd_ledger",
    "run": "daemon.commands_run:cmd_run",
    "service": "daemon.commands_service:cmd_service",
    "graph": "daemon.commands_graph:cmd_graph",
    "findings": "daemon.commands_graph:cmd_findings",
    "audit": "daemon.commands_audit:cmd_audit",
    "replay": "daemon.commands_audit:cmd_replay",
    "revert": "daemon.commands_audit:cmd_revert",
    "report": "daemon.commands_audit:cmd_report",
    "export": "daemon.commands_audit:cmd_export",
    "import": "daemon.commands_audit:cmd_import",
    "doctor": "daemon.commands_doctor:cmd_doctor",
    "experiments": "daemon.commands_gpu:cmd_experiments",
    "train": "daemon.commands_gpu:cmd_train",
    "sweep": "daemon.commands_gpu:cmd_sweep",
}
# Answers given before logging is set up or the command's module is loaded, when they can be (None: they cannot):
# `status` from a stamp of the last full read, with the standard library alone (`daemon.quick_status`).
QUICK: dict[str, str] = {
    "status": "daemon.quick_status:quick_status",
}
GRAPH_FORMATS = ("text", "dot", "mermaid", "png")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autovault", description="Autoresearch for a vault of LLM tasks.")
    p.add_argument("--config", "-c", default=os.environ.get("AUTOVAULT_CONFIG", "vault.yml"),
                   help="the vault.yml (default: $AUTOVAULT_CONFIG or ./vault.yml)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--log-level", default=os.environ.get("AUTOVAULT_LOG_LEVEL", "warning"))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_vault_commands, _cycle_commands, _service_commands, _graph_commands, _run_commands,
                _audit_commands, _doctor_commands, _gpu_commands):
        add(sub)
    _accept_json_anywhere(sub)
    return p


def _accept_json_anywhere(sub: argparse._SubParsersAction) -> None:
    """`autovault status --json` as well as `autovault --json status`; SUPPRESS keeps the global value."""
    for parser in sub.choices.values():
        if not any("--json" in a.option_strings for a in parser._actions):
            parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _accept_json_anywhere(action)


def _vault_commands(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("check", help="validate vault.yml against the schema and the disk")
    c.add_argument("path", nargs="?", help="vault.yml to check (default: --config)")

    c = sub.add_parser("ingest", help="record runs and scores from heartbeat JSONL logs")
    c.add_argument("paths", nargs="+")

    c = sub.add_parser("status", help="tasks, worst first")
    c.add_argument("--as-of", default=None, help="as it was at #POSITION or a time (read models folded privately)")
    c.add_argument("--signatures", action="store_true", help="add each task's failure signatures")

    sub.add_parser("tasks", help="the configured tasks")

    c = sub.add_parser("history", help="a task's runs and scores, newest first")
    c.add_argument("task")
    c.add_argument("--limit", type=int, default=20)
    c.add_argument("--all", action="store_true", help="shadow and verification runs too, not only live ones")
    c.add_argument("--cycle", default=None, help="the runs one cycle verified with (its baseline, candidate, A/A)")

    c = sub.add_parser("run-task", help="run a task once and judge the run")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("task", nargs="?")
    g.add_argument("--all", action="store_true", help="every enabled task, in pipeline order")
    c.add_argument("--shadow", action="store_true", help="run in a shadow copy: live files are never touched")
    c.add_argument("--no-judge", action="store_true")

    c = sub.add_parser("judge", help="judge the latest run of a task again")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("task", nargs="?")
    g.add_argument("--all", action="store_true")

    c = sub.add_parser("signatures", help="named failure patterns in recent runs")
    c.add_argument("task", nargs="?")


def _cycle_commands(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("cycle", help="one improvement cycle on a task: diagnose, propose, verify, decide")
    c.add_argument("task")
    c.add_argument("--propose-only", action="store_true", help="stop after the proposal and print its diff")

    c = sub.add_parser("verify", help="verify a proposed delta, or the human-applied state against its baseline")
    c.add_argument("cycle_id")
    c = sub.add_parser("approve", help="apply a kept delta that waits for approval")
    c.add_argument("cycle_id")
    c = sub.add_parser("reject", help="drop a delta that waits for approval (or a proposal)")
    c.add_argument("cycle_id")

    c = sub.add_parser("loop", help="chain cycles until every task reaches the target or patience runs out")
    c.add_argument("--target", type=float, default=None, help="default: research.target")
    c.add_argument("--patience", type=int, default=None, help="default: research.patience")
    c.add_argument("--max-cycles", type=int, default=None)
    c.add_argument("--jobs", type=int, default=None, help="parallel cycles on disjoint tasks (default research.jobs)")

    c = sub.add_parser("ledger", help="every change and cycle step; --tsv for results.tsv-style rows")
    c.add_argument("--tsv", action="store_true")
    c.add_argument("--task", default=None)
    c.add_argument("--limit", type=int, default=None)


def _service_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("service", help="install autovault as a systemd service")
    actions = p.add_subparsers(dest="service_action", required=True, metavar="ACTION")
    c = actions.add_parser("install", help="write the unit file (system-wide, or --user)")
    c.add_argument("--user", action="store_true", help="a user unit in ~/.config/systemd/user")
    c.add_argument("--force", action="store_true", help="replace a different existing unit")
    c.add_argument("--service-user", help="account the system unit runs as (default: the vault's owner)")
    c.add_argument("--unit-dir", help="write the unit here instead of the standard folder")


def _graph_commands(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("graph", help="the pipeline: tasks, artifacts, sizes, mismatched edges in red")
    c.add_argument("--format", choices=GRAPH_FORMATS, default="text")
    c.add_argument("--task", default=None, help="only this task's upstream and downstream")
    c.add_argument("--output", "-o", default=None, help="write here (png: default graph.png)")

    c = sub.add_parser("findings", help="interface mismatches, dead outputs and other data-flow findings")
    c.add_argument("--open", action="store_true", help="open findings only")


def _run_commands(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("run", help="the service: watch the vault, record, react, schedule (systemd Type=notify)")
    c.add_argument("--once", action="store_true",
                   help="catch up (downtime edits, new log lines, due runs, queued work) and exit")
    c.add_argument("--debounce", type=float, default=0.3, metavar="S",
                   help="seconds a changed file must stay quiet before it is read (default 0.3)")
    c.add_argument("--stop-grace", type=float, default=90.0, metavar="S",
                   help="on SIGTERM, seconds to let the step in flight finish (default 90)")


def _audit_commands(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("audit", help="where a task's score dropped, the changes in that window, the verdict")
    c.add_argument("task")
    c.add_argument("--since", default=None, help="#POSITION, a date/time, or an age (7d, 36h); default: the start")
    c.add_argument("--until", default=None, help="same forms; default: now")
    c.add_argument("--bisect", action="store_true",
                   help="rebuild the vault as of the window's changes and run the task to name the one")
    c.add_argument("--full-diff", action="store_true", help="print every diff line")

    c = sub.add_parser("replay", help="the read models folded up to a position or time (live ones untouched)")
    c.add_argument("--until", required=True, help="#POSITION, a date/time, or an age (7d, 36h)")
    c.add_argument("--ledger", type=int, default=10, help="ledger rows to show (default 10)")

    c = sub.add_parser("revert", help="undo a change through a verified cycle (approval rules apply)")
    c.add_argument("change", help="#POSITION of the change, or an audit key (reverts the change it named)")
    c.add_argument("--task", default=None, help="the task whose verification decides (default: the change's)")

    c = sub.add_parser("report", help="PNG + self-contained HTML: quality over time per task, changes, verdicts")
    c.add_argument("--out", default=None, help="folder (default: .autovault/report beside vault.yml)")
    c.add_argument("--task", action="append", help="only this task (repeatable)")
    c.add_argument("--since", default=None)

    c = sub.add_parser("export", help="the whole history (events and blobs) as JSONL (.gz compresses)")
    c.add_argument("file")
    c = sub.add_parser("import", help="load an exported history into an empty store")
    c.add_argument("file")


def _doctor_commands(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("doctor", help="skipped events, interrupted applies and orphaned shadows: what start-up found")


def _gpu_commands(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("experiments", help="fine-tuning experiments: what trained, how it scored, what was kept")
    c.add_argument("key", nargs="?", help="one experiment in detail (with its loss curve)")
    c.add_argument("--task")
    c.add_argument("--sweep")
    c.add_argument("--plot", metavar="PNG", help="draw the loss curves of the listed experiments into a PNG")

    c = sub.add_parser("train", help="train a LoRA adapter on a task's training data, export it, verify it on the task")
    c.add_argument("task", nargs="?")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override training.params (steps, rank, alpha, lr, batch_size, max_len, subset, …)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--resume", metavar="KEY", help="continue an interrupted experiment from its last checkpoint")
    c.add_argument("--no-verify", action="store_true", help="stop after training: no cycle on the task")
    _executor_args(c)

    c = sub.add_parser("sweep", help="search LoRA hyperparameters with Optuna, or merge adapters over TIES/DARE densities")
    c.add_argument("task")
    c.add_argument("--trials", type=int, default=8)
    c.add_argument("--space", action="append", default=[], metavar="KEY=A,B|LO:HI",
                   help="search axis: rank, alpha_x (alpha = alpha_x × rank), lr, steps, subset, …")
    c.add_argument("--name", help="sweep name (an existing one continues)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--no-prune", action="store_true", help="no WilcoxonPruner")
    c.add_argument("--merge", metavar="KEY,KEY", help="merge these finished adapters instead of training")
    c.add_argument("--method", default="ties", help="merge method: ties, dare_ties, dare_linear, magnitude_prune")
    c.add_argument("--densities", default="0.1,0.3,0.5,0.7")
    c.add_argument("--verify", action="store_true", help="verify the best experiment on the task (a cycle)")
    _executor_args(c)


def _executor_args(c: argparse.ArgumentParser) -> None:
    c.add_argument("--executor", choices=["local", "ray"], default="local")
    c.add_argument("--ray-address", default=None, help="a running Ray cluster (default: start a local one)")
    c.add_argument("--device", default="cpu", help="cpu, or cuda / cuda:N where torch sees a GPU")

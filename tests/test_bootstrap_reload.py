"""The one reload (`daemon.bootstrap.reload`): vault.yml read again and what depends on it rebuilt in place, the
way the service, the improvement loop and the benchmarks all take it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from adapters.config_loader import ConfigError
from daemon.bootstrap import Services, cycle_deps, reload, reloader
from testbed.cycle_vault import make_vault
from testbed.servers.ollama_server import OllamaServer
from testbed.servers.protocol import Reply

DAY = "2026-03-18"


def answered(svc: Services) -> str:
    """What a live run of `brief` got from its model, through the services' runner and router."""
    run = svc.runner.run("brief", svc.config.tasks["brief"], date=DAY)
    assert run.status == "ok", run.error
    return run.output


def edit(cfg: Path, old: str, new: str) -> None:
    text = cfg.read_text()
    assert old in text
    cfg.write_text(text.replace(old, new, 1))


def test_a_backends_change_rebuilds_the_router_and_the_runner(tmp_path: Path) -> None:
    with OllamaServer(lambda _r: Reply(text="the first server answers")) as first, \
            OllamaServer(lambda _r: Reply(text="the second server answers")) as second:
        fx = make_vault(tmp_path, host=first.host)
        with fx.svc as svc:
            router, runner = svc.models, svc.runner
            assert answered(svc) == "the first server answers"
            edit(fx.cfg, first.host, second.host)
            assert reload(svc) is svc
            assert svc.models is not router and svc.runner is not runner
            assert answered(svc) == "the second server answers"


def test_without_a_backends_change_the_router_stays_and_the_runner_keeps_its_clock(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    with fx.svc as svc:
        router = svc.models
        clock = lambda: dt.datetime(2026, 3, 18, 7, tzinfo=dt.UTC)  # noqa: E731
        svc.runner.clock = clock
        edit(fx.cfg, "expect: {min_words: 30}", "expect: {min_words: 35}")
        reload(svc)
        assert svc.config.tasks["brief"].expect.min_words == 35
        assert svc.models is router and svc.runner.clock is clock


def test_a_router_the_caller_gave_is_kept_across_a_backends_change(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)  # the in-process writer, handed to bootstrap
    with fx.svc as svc:
        router = svc.models
        edit(fx.cfg, "timeout: 10", "timeout: 11")
        reload(svc)
        assert svc.config.backends.ollama.timeout == 11 and svc.models is router


@pytest.mark.parametrize(("old", "new", "says"), [
    ("expect: {min_words: 30}", "expect: {min_words: many}", "min_words"),
    ("events.db", "other.db", "store or vault changed"),
])
def test_a_refused_file_changes_nothing(tmp_path: Path, old: str, new: str, says: str) -> None:
    fx = make_vault(tmp_path)
    with fx.svc as svc:
        config, runner, history = svc.config, svc.runner, svc.history
        edit(fx.cfg, old, new)
        with pytest.raises(ConfigError, match=says):
            reload(svc)
        assert svc.config is config and svc.runner is runner and svc.history is history


def test_the_loops_reload_rebuilds_the_verify_deps_and_keeps_the_lock_and_claims(tmp_path: Path) -> None:
    fx = make_vault(tmp_path)
    with fx.svc as svc:
        deps = cycle_deps(svc, lambda _m: None)
        deps.claimed.add("a delta being verified")
        edit(fx.cfg, "expect: {min_words: 30}", "expect: {min_words: 35}")
        fresh = reloader(svc, lambda _m: None)(deps)
        assert fresh.verify.config is svc.config and fresh.verify.config.tasks["brief"].expect.min_words == 35
        assert fresh.verify.runner is svc.runner
        assert fresh.lock is deps.lock and fresh.claimed == {"a delta being verified"}

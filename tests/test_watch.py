"""Watching: the debouncer (clock passed in, no sleeps), own-writes registry, what is watched, a real Observer."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import pytest

from adapters.atomic import write_atomic
from adapters.config_loader import load_config
from adapters.watch import Debouncer, OwnWrites, VaultWatcher, WatchSet, script_paths
from testbed.daemon_harness import DaemonVault


def test_burst_of_events_on_one_path_is_one_change_after_quiet() -> None:
    d = Debouncer(delay=0.3, max_wait=5)
    for t in (0.0, 0.1, 0.2, 0.25):  # temp write, rename, touch...
        d.add("p.md", t)
    assert d.due(0.5) == []  # 0.25 + 0.3 not reached
    assert d.next_due() == pytest.approx(0.55)
    assert d.due(0.55) == ["p.md"]
    assert d.due(10) == [] and len(d) == 0


def test_a_path_that_never_goes_quiet_is_handed_on_at_max_wait() -> None:
    d = Debouncer(delay=0.3, max_wait=1.0)
    seen = []
    for i in range(25):  # an event every 0.1 s for 2.5 s
        t = i / 10
        d.add("log.jsonl", t)
        seen += [t for _ in d.due(t)]
    assert seen == [1.0, 2.1]  # first event at 0.0 → out at 1.0; the next burst began at 1.1


def test_paths_come_out_in_the_order_they_first_changed() -> None:
    d = Debouncer(delay=0.1)
    d.add("b", 0.0)
    d.add("a", 0.05)
    d.add("b", 0.06)
    assert d.due(1.0) == ["b", "a"]


def test_own_writes_match_path_and_hash(tmp_path: Path) -> None:
    own = OwnWrites(per_path=2)
    f = tmp_path / "x.md"
    own.note(f, "h1")
    assert own.is_own(tmp_path / "." / "x.md", "h1")
    assert not own.is_own(f, "h2") and not own.is_own(tmp_path / "y.md", "h1") and not own.is_own(f, None)
    own.note(f, "h2")
    own.note(f, "h3")
    assert not own.is_own(f, "h1")  # only the newest few are remembered
    assert own.claim(f, "h3") and not own.claim(f, "h3")  # a claimed write is forgotten
    assert own.is_own(f, "h2")


@pytest.fixture
def watch(tmp_path: Path) -> WatchSet:
    v = DaemonVault.make(tmp_path, "http://127.0.0.1:9")
    v.notify.close()
    return WatchSet.of(load_config(v.cfg, {}))


def test_what_is_watched(watch: WatchSet) -> None:
    root = watch.root
    assert watch.classify(root / "prompts" / "brief.md") == "editable"
    assert watch.classify(root / "prompts" / "new-file.md") == "editable"  # research.editable glob
    assert watch.classify(root / "scripts" / "collect.sh") == "editable"
    assert watch.classify(watch.config_file) == "config"
    assert watch.classify(root / "logs" / "heartbeat.jsonl") == "log"
    assert watch.classify(root / "logs" / "2026" / "03.jsonl") == "log"
    for ignored in ("Briefs/2026-03-18.md", "prompts/.brief.md.x1.avtmp", "prompts/brief.md~",
                    ".autovault/journal/a.commit/manifest.json", "logs/readme.txt"):
        assert watch.classify(root / ignored) is None, ignored
    assert [p.name for p in watch.editable_files()] == ["brief.md", "notes.md", "collect.sh"]


def test_script_paths_of_commands() -> None:
    assert script_paths("scripts/collect.sh --days 3") == ["scripts/collect.sh"]
    assert script_paths("python3 ./scripts/post.py data/x.json -o /tmp/y") == ["scripts/post.py", "data/x.json"]
    assert script_paths(None) == []


def _next_for(events: queue.Queue[tuple[str, float] | None], watch: WatchSet, timeout: float = 10) -> set[str]:
    """Paths of the watched kind that arrive within `timeout` (blocking on the queue, not sleeping)."""
    deadline = time.monotonic() + timeout
    out: set[str] = set()
    while time.monotonic() < deadline:
        try:
            item = events.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if item is not None and watch.classify(item[0]) is not None:
            out.add(str(Path(item[0]).resolve()))
            return out
    return out


def test_observer_sees_an_atomic_save_and_an_append(watch: WatchSet) -> None:
    w = VaultWatcher(watch)
    w.start()
    try:
        target = watch.root / "prompts" / "brief.md"
        write_atomic(target, "new text\n")  # temp file + rename, like an editor
        assert str(target.resolve()) in _next_for(w.events, watch)
        log = watch.root / "logs" / "heartbeat.jsonl"
        with log.open("a") as fh:
            fh.write("{}\n")
        assert str(log.resolve()) in _next_for(w.events, watch)
    finally:
        w.stop()

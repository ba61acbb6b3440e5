"""The traced run behind every collector measurement: each program a script starts through PATH is on the record
with its arguments (and, for line tools, what it printed), exit statuses and outputs are those of an untraced run,
and the run is confined to its shadow copy. Real subprocesses throughout."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from adapters import process_trace
from adapters.process_trace import trace_script
from adapters.sandbox import Confinement
from handlers.collector_trace import collector_signatures, measure
from tests.collector_vault import make

ENV = {"PATH": os.environ.get("PATH", os.defpath)}


def script(root: Path, body: str, name: str = "c.sh") -> str:
    path = root / "scripts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    path.chmod(0o755)
    return f"scripts/{name}"


def test_every_program_is_recorded_with_its_arguments_and_output(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    for i in range(4):
        (tmp_path / f"notes/n{i}.md").write_text(f"title: note {i}\nbody {i}\n", encoding="utf-8")
    cmd = script(tmp_path, '#!/bin/sh\nfor f in notes/*.md; do\n  t=$(sed -n "s/^title: //p" "$f")\n'
                           '  echo "$(basename "$f") $t"\ndone\nhead -n 1 notes/n0.md\necho done\n')
    run = trace_script(tmp_path, cmd, env=ENV, timeout=30, output_cap=10_000)
    assert run.ok and run.stdout.splitlines()[0] == "n0.md note 0" and run.stdout.endswith("title: note 0\ndone\n")
    assert Counter(c.name for c in run.calls) == {"sed": 4, "basename": 4, "head": 1}  # echo is a builtin
    sed = [c for c in run.calls if c.name == "sed"]
    assert {c.args for c in sed} == {("-n", "s/^title: //p", f"notes/n{i}.md") for i in range(4)}
    assert all(c.output == f"note {c.args[2][7]}\n" for c in sed)  # each call's own output
    assert next(c for c in run.calls if c.name == "head").output == "title: note 0\n"
    assert all(Path(c.cwd) == tmp_path for c in run.calls)


def test_statuses_arguments_with_newlines_and_absolute_paths(tmp_path: Path) -> None:
    cmd = script(tmp_path, "#!/bin/sh\nawk 'BEGIN {\n  print \"multi\"\n}'\n/bin/echo direct\nsed -n p /nonexistent\n")
    run = trace_script(tmp_path, cmd, env=ENV, timeout=30, output_cap=10_000)
    assert run.returncode == 2 and not run.ok  # sed's own status, through the shim
    assert "nonexistent" in run.stderr_tail
    awk = next(c for c in run.calls if c.name == "awk")
    assert awk.args == ("BEGIN {\n  print \"multi\"\n}",) and awk.output == "multi\n"
    assert "echo" not in {c.name for c in run.calls}  # started by absolute path: not through PATH
    assert run.stdout == "multi\ndirect\n"


def test_a_hanging_script_is_killed_with_its_children(tmp_path: Path) -> None:
    cmd = script(tmp_path, "#!/bin/sh\nsleep 30 &\nsleep 30\n")
    run = trace_script(tmp_path, cmd, env=ENV, timeout=0.5, output_cap=100)
    assert run.timed_out and run.returncode is None and not run.ok


def test_a_confined_run_writes_only_inside_its_folder(tmp_path: Path) -> None:
    inside, outside = tmp_path / "shadow", tmp_path / "live"
    inside.mkdir()
    outside.mkdir()
    cmd = script(inside, f"#!/bin/sh\necho in > here.txt\necho out > {outside}/there.txt || echo refused\n")
    run = trace_script(inside, cmd, env=ENV, timeout=30, output_cap=1000, confinement=Confinement((inside,)))
    assert (inside / "here.txt").read_text() == "in\n" and not (outside / "there.txt").exists()
    assert "refused" in run.stdout


def test_measuring_never_touches_the_live_vault_and_follows_its_changes(tmp_path: Path) -> None:
    v = make(tmp_path, {"data/a.txt": "".join(f"entry number {i} of the list\n" for i in range(30)),
                        "scripts/c.sh": "#!/bin/sh\nhead -n 3 data/a.txt\necho x >> data/a.txt\n"},
             collect="scripts/c.sh", prompt="Summarise.\n{context}\n", inputs=["data/*.txt"])
    before = (v.root / "data/a.txt").read_text()
    first = measure("t", v.deps)
    assert first is not None and first.ok and first.calls == 1
    assert (v.root / "data/a.txt").read_text() == before  # it ran in a shadow copy
    assert measure("t", v.deps) is first  # nothing changed: the same measurement
    (v.root / "scripts/c.sh").write_text("#!/bin/sh\nhead -n 20 data/a.txt\n")
    again = measure("t", v.deps)
    assert again is not first and again is not None and again.calls == 1 and again.context.count("\n") == 20


def test_a_failing_collector_is_a_signature_of_its_own(tmp_path: Path) -> None:
    v = make(tmp_path, {"scripts/c.sh": "#!/bin/sh\necho partial\nexit 3\n"}, collect="scripts/c.sh",
             prompt="{context}")
    notes = collector_signatures("t", v.deps)
    assert [n.name for n in notes] == ["collector_failed"] and "exited 3" in notes[0].summary


@pytest.mark.parametrize("body", ["#!/bin/sh\ncat data/a.txt\n", "#!/usr/bin/env python3\nprint(open('data/a.txt').read())\n"])
def test_a_healthy_collector_has_no_signature(tmp_path: Path, body: str) -> None:
    v = make(tmp_path, {"data/a.txt": "".join(f"item {i}: something worth saying\n" for i in range(20)),
                        "scripts/c.sh": body}, collect="scripts/c.sh", prompt="List the items.\n{context}\n",
             said=["Not enough items to see a pattern."], inputs=["data/*.txt"])
    m = measure("t", v.deps)
    assert m is not None and m.ok and all(c.shape == "all" for c in m.coverage)
    assert collector_signatures("t", v.deps) == []


def test_a_measurement_is_kept_until_something_it_read_changes(tmp_path: Path) -> None:
    """Kept per task across changes elsewhere in the vault (another task's output, an unrelated prompt); measured
    again when its script, its prompt, an input it read, or the folder it lists changes."""
    v = make(tmp_path, {"data/a.txt": "".join(f"entry number {i} of the list\n" for i in range(30)),
                        "data/b.txt": "another entry of the other list\n", "Out/old.md": "an output\n",
                        "prompts/other.md": "another task's prompt\n",
                        "scripts/c.sh": "#!/bin/sh\nfor f in data/*.txt; do head -n 3 \"$f\"; done\n"},
             collect="scripts/c.sh", prompt="Summarise.\n{context}\n", inputs=["data/*.txt"])
    first = measure("t", v.deps)
    (v.root / "Out/old.md").write_text("an output, rewritten by its task\n")
    (v.root / "Out/new.md").write_text("a new output\n")
    (v.root / "prompts/other.md").write_text("edited\n")
    assert measure("t", v.deps) is first
    changes = [lambda: (v.root / "data/b.txt").write_text("another entry of the other lisT\n"),  # same size
               lambda: (v.root / "data/c.txt").write_text("a third list appears in the folder it lists\n"),
               lambda: (v.root / "prompts/t.md").write_text("Summarise briefly.\n{context}\n")]
    seen = [first]
    for change in changes:
        change()
        again = measure("t", v.deps)
        assert all(again is not m for m in seen)
        seen.append(again)
    assert "a third list" in seen[-1].context  # type: ignore[union-attr]


@pytest.mark.parametrize("inputs", [[], ["data/deep/*.txt"]])
def test_a_measurement_is_kept_without_inputs_or_with_files_two_folders_deep(tmp_path: Path,
                                                                            inputs: list[str]) -> None:
    """The stored stamp is checked as it was taken: no folder above those it holds is added on the check."""
    v = make(tmp_path, {"data/deep/a.txt": "".join(f"entry number {i} of the list\n" for i in range(30)),
                        "scripts/c.sh": "#!/bin/sh\nhead -n 3 data/deep/a.txt\n"},
             collect="scripts/c.sh", prompt="Summarise.\n{context}\n", inputs=inputs)
    first = measure("t", v.deps)
    assert first is not None and first.ok
    assert measure("t", v.deps) is first  # nothing changed: the same measurement
    (v.root / "data/deep/a.txt").write_text("entry number 0 of the list, rewritten\n")
    again = measure("t", v.deps)
    assert again is not first and again is not None and "rewritten" in again.context


def test_the_shim_folder_is_touched_each_time_it_is_reused(tmp_path: Path) -> None:
    """Kept for the process, it must not look a day old to another process's sweep of run temps."""
    (tmp_path / "f").write_text("x\n", encoding="utf-8")
    cmd = script(tmp_path, "#!/bin/sh\ncat f\n")
    first = trace_script(tmp_path, cmd, env=ENV, timeout=30, output_cap=10_000)
    top = process_trace._shims(ENV["PATH"], process_trace.CAPTURE).parent  # the folder the run used
    os.utime(top, (0, 0))
    again = trace_script(tmp_path, cmd, env=ENV, timeout=30, output_cap=10_000)
    assert first.ok and again.ok and [c.name for c in again.calls] == ["cat"]
    assert top.is_dir() and top.stat().st_mtime > 24 * 3600

"""A collector that passes too few of its input's items, found by measuring what it emits against the file (not by
reading `head -N`), and fixed by growing the cap that starves it, whatever holds the number: head, tail, sed, awk,
a byte count, a Python slice, a shell default, or the task's collect line. Every shape runs for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.bootstrap import bootstrap, diagnose_deps, register_tasks
from domain.runs import RunResult
from handlers.collector_trace import collector_signatures, measure
from handlers.diagnose import diagnose
from handlers.proposers import rules
from tests.collector_vault import CollectorVault, make

SIGNALS = "".join(f"2026-03-{d:02d} | source {d % 3} | signal {('alpha', 'beta', 'gamma')[d % 3] if d > 12 else d}\n"
                  for d in range(1, 41))
SAID = ["No clear trends: every signal appears only once."]
PY = "python3 - <<'PY'\nlines = open('data/s.txt').read().splitlines()\nprint('\\n'.join(lines[{cut}]))\nPY"

# (shape, collector body after the shebang); each keeps the first (or last) 8 of 40 lines
SHAPES = [
    ("head -N", "head -8 data/s.txt"),
    ("head -n N", "head -n 8 data/s.txt"),
    ("sed -n '1,Np'", "sed -n '1,8p' data/s.txt"),
    ("sed Nq", "sed 8q data/s.txt"),
    ("sed 'N,$d'", "sed '9,$d' data/s.txt"),
    ("tail -n N", "tail -n 8 data/s.txt"),
    ("tail -N piped", "cat data/s.txt | tail -8"),
    ("awk NR<=N", "awk 'NR<=8' data/s.txt"),
    ("head in $( )", 's=$(head -n 8 < data/s.txt)\nprintf "%s\\n" "$s"'),
    ("head -c bytes", "head -c 300 data/s.txt"),
    ("${LIMIT:-N}", 'n=${LIMIT:-8}\nhead -n "$n" data/s.txt'),
    ("python [:N]", PY.format(cut=":8")),
    ("python [-N:]", PY.format(cut="-8:")),
]


def starving(tmp: Path, body: str, said: list[str] = SAID, collect: str = "scripts/c.sh") -> CollectorVault:
    return make(tmp, {"data/s.txt": SIGNALS, "scripts/c.sh": f"#!/bin/sh\nset -eu\necho '## Signals'\n{body}\n"},
                collect=collect, prompt="Report the recurring signals below.\n\n{context}\n", said=said,
                inputs=["data/*.txt"])


@pytest.mark.parametrize(("shape", "body"), SHAPES, ids=[s for s, _ in SHAPES])
def test_found_by_coverage_and_fixed_by_growing_its_cap(tmp_path: Path, shape: str, body: str) -> None:
    v = starving(tmp_path, body)
    note = next(n for n in collector_signatures("t", v.deps) if n.name == "collector_starving")
    assert note.source == "trace" and note.evidence["path"] == "data/s.txt" and note.evidence["kept"] < 12
    assert note.evidence["widen"] is not None, shape
    ev = diagnose("t", v.deps)
    change = rules.widen_starving_head(ev, rules.base_texts(ev))
    assert change is not None and change.rule == "widen_head" and change.lever == "script"
    v.apply(rules.to_delta(ev, [change]))
    after = measure("t", v.deps)
    assert after is not None
    cov = next(c for c in after.coverage if c.path == "data/s.txt")
    assert cov.kept >= 30 and not cov.starved  # the trends past the cut now reach the model
    assert not [n for n in collector_signatures("t", v.deps) if n.name == "collector_starving"]


def test_repeated_rows_do_not_blur_a_tail(tmp_path: Path) -> None:
    """The same purchase on many days: rows passed verbatim are matched verbatim, never by their fields."""
    rows = "date,store,item,qty,price\n" + "".join(
        f"2026-03-{1 + d // 4:02d},{('Tesco', 'Lidl')[d % 2]},{('eggs', 'milk', 'bread')[d % 3]},1,2.35\n"
        for d in range(60))
    v = make(tmp_path, {"data/p.csv": rows, "scripts/c.sh": "#!/bin/sh\ntail -n 6 data/p.csv\n"},
             collect="scripts/c.sh", prompt="What do we buy again and again?\n{context}\n", said=SAID,
             inputs=["data/*.csv"])
    m = measure("t", v.deps)
    assert m is not None and [(c.kept, c.shape) for c in m.coverage] == [(6, "tail")]
    assert [n.name for n in collector_signatures("t", v.deps)] == ["collector_starving"]


def test_rows_passed_reformatted_are_counted_row_by_row(tmp_path: Path) -> None:
    """A Python collector sorting CSV rows newest first and printing `date | payee | amount` of the first 8."""
    rows = "".join(f"2026-04-{d:02d},{('GymFlex', 'StreamBox', 'Bakery', 'Cinema')[d % 4]},{10 + d}.50,card\n"
                   for d in range(1, 29))
    body = ("import csv\nrows = list(csv.DictReader(open('bank/2026-04.csv')))\nrows.sort(key=lambda r: r['date'], "
            "reverse=True)\nprint('date | payee | amount')\nfor r in rows[:8]:\n"
            "    print(f\"{r['date']} | {r['payee']} | {r['amount']}\")\n")
    v = make(tmp_path, {"bank/2026-04.csv": "date,payee,amount,memo\n" + rows, "scripts/c.py": body},
             collect="scripts/c.py", prompt="Which payees recur?\n{context}\n", said=["Every payee appears once."],
             inputs=["bank/*.csv"])
    note = next(n for n in collector_signatures("t", v.deps) if n.name == "collector_starving")
    assert (note.evidence["kept"], note.evidence["items"], note.evidence["shape"]) == (8, 28, "tail")
    ev = diagnose("t", v.deps)
    change = rules.widen_starving_head(ev, rules.base_texts(ev))
    assert change is not None and "rows[:28]" in str(change.texts["scripts/c.py"])


def test_a_number_on_the_collect_line_is_a_knob_in_vault_yml(tmp_path: Path) -> None:
    v = starving(tmp_path, 'head -n "$1" data/s.txt', collect="scripts/c.sh 8")
    ev = diagnose("t", v.deps)
    change = rules.widen_starving_head(ev, rules.base_texts(ev))
    assert change is not None and change.lever == "config" and list(change.texts) == ["vault.yml"]
    v.apply(rules.to_delta(ev, [change]))
    assert v.config.tasks["t"].collect == "scripts/c.sh 40"
    assert len(v.collect().splitlines()) == 41


@pytest.mark.parametrize("said", [
    ["Not enough data to see a pattern."], ["Only 8 entries were provided."], ["Each signal shows up once."],
    ["Insufficient data for a trend report."], ["- alpha — count=1\n- beta — count=1"],
])
def test_the_runs_say_it_in_many_ways(tmp_path: Path, said: list[str]) -> None:
    v = starving(tmp_path, "head -n 8 data/s.txt", said=said)
    assert [n.name for n in collector_signatures("t", v.deps)] == ["collector_starving"]


def test_too_few_blocks_while_following_the_format_is_starving_too(tmp_path: Path) -> None:
    v = make(tmp_path, {"data/s.txt": SIGNALS, "scripts/c.sh": "#!/bin/sh\ntail -n 6 data/s.txt\n"},
             collect="scripts/c.sh", prompt="One line per recurring signal: `- name — count=N`.\n{context}\n",
             said=["- gamma — count=2: twice"] * 3, inputs=["data/*.txt"],
             expect={"blocks": {"regex": "^- .+ — count=", "min": 3}})
    assert [n.name for n in collector_signatures("t", v.deps)] == ["collector_starving"]


@pytest.mark.parametrize(("why", "body", "said"), [
    ("the runs do not complain", "head -n 8 data/s.txt", ["- alpha — count=9\n- beta — count=9"]),
    ("everything passes", "cat data/s.txt", SAID),
    ("a filter, not a cut", "grep 'signal alpha' data/s.txt", SAID),
    ("most of the file passes", "head -n 30 data/s.txt", SAID),
])
def test_silent_where_nothing_starves(tmp_path: Path, why: str, body: str, said: list[str]) -> None:
    v = starving(tmp_path, body, said=said)
    assert collector_signatures("t", v.deps) == [], why


def test_runs_before_the_tasks_own_kept_change_no_longer_speak(tmp_path: Path) -> None:
    """Runs that complained ran on the old collector: once a cycle on the task changed its files, only runs made
    since count (no new run yet: no symptom, nothing to re-propose)."""
    v = starving(tmp_path, "head -n 8 data/s.txt")
    svc = bootstrap(v.config, env={}, store_url=f"sqlite:///{tmp_path / 'events.db'}")
    try:
        register_tasks(svc.store, svc.config)
        for day in range(10, 14):
            svc.store.record_run(RunResult(run_id=f"r{day}", task="t", started=f"2026-03-{day}T06:00:00Z",
                                           status="ok", model="ollama:m", options={}, output=SAID[0],
                                           done_reason="stop", prompt_tokens=10, output_tokens=10))
        svc.projections.catch_up()
        assert [n.name for n in collector_signatures("t", diagnose_deps(svc))] == ["collector_starving"]
        svc.store.start_cycle("c1", "t", "cycle", None, "test")
        svc.store.record_change("t", "scripts/c.sh", None, "0" * 64, "", by="cycle", cycle_id="c1")
        assert collector_signatures("t", diagnose_deps(svc)) == []
    finally:
        svc.close()


def test_one_markdown_section_is_a_selection_not_a_cut(tmp_path: Path) -> None:
    session = "# Day\n\n## Commits\n" + "".join(f"- commit {i} changed a file\n" for i in range(12)) + \
              "\n## Lessons\n- measure before changing things\n- one awk pass beats many seds\n"
    v = make(tmp_path, {"Sessions/s.md": session,
                        "scripts/c.sh": "#!/bin/sh\nawk '/^## Lessons/{f=1; next} f' Sessions/s.md\n"},
             collect="scripts/c.sh", prompt="Distil the lessons.\n{context}\n", said=SAID, inputs=["Sessions/*.md"])
    m = measure("t", v.deps)
    assert m is not None and [c.shape for c in m.coverage] == ["section"]
    assert collector_signatures("t", v.deps) == []


def test_the_widened_cap_stays_within_num_ctx(tmp_path: Path) -> None:
    long = "".join(f"2026-03-{1 + d % 28:02d} | feed | item {d} " + "with a long tail of words " * 6 + "\n"
                   for d in range(200))
    v = make(tmp_path, {"data/s.txt": long, "scripts/c.sh": "#!/bin/sh\nhead -n 10 data/s.txt\n"},
             collect="scripts/c.sh", prompt="Report the trends.\n{context}\n", said=SAID, inputs=["data/*.txt"],
             options={"num_ctx": 2048, "num_predict": 256})
    ev = diagnose("t", v.deps)
    change = rules.widen_starving_head(ev, rules.base_texts(ev))
    assert change is not None
    v.apply(rules.to_delta(ev, [change]))
    m = measure("t", v.deps)
    assert m is not None and m.size is not None and not m.size.overflow  # grown only as far as the window allows
    assert 10 < next(c.kept for c in m.coverage if c.path == "data/s.txt") < 50


@pytest.mark.parametrize("picker", ["ls -r Reports/audit-*.md | head -3", "ls Reports/audit-*.md | tail -n 3",
                                    "ls -r Reports/audit-*.md | sed -n '1,3p'"])
def test_lines_many_inputs_share_say_nothing_about_which_one_passed(tmp_path: Path, picker: str) -> None:
    """A judge reading the three newest of a task's reports whole: the older reports are not cut, they are not
    read, though their stock heading and closing line (the same in every report) are in the context."""
    stock = "# Subscription audit for the household\n{rows}\nNo payee recurs often enough to call it a subscription.\n"
    reports = {f"Reports/audit-2026-05-{d:02d}.md": stock.format(rows="".join(
        f"- payee {d}-{i} paid {d + i}.50 on day {d}\n" for i in range(6))) for d in range(1, 9)}
    v = make(tmp_path, {**reports, "scripts/c.sh": f"#!/bin/sh\nfor f in $({picker}); do cat \"$f\"; done\n"},
             collect="scripts/c.sh", prompt="Score each report.\n{context}\n",
             said=["subscription-audit: 2 — every payee appears once"], inputs=["Reports/*.md"])
    m = measure("t", v.deps)
    assert m is not None and {c.shape for c in m.coverage} <= {"all", "none"}, [c.as_dict() for c in m.coverage]
    assert collector_signatures("t", v.deps) == []

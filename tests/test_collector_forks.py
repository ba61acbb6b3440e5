"""A loop that starts several programs per input file, found by counting the programs a traced run starts per file,
and fixed by one awk pass per item (plus parameter expansions for basename/dirname): the collector prints exactly
what it printed before, with fewer programs. Real subprocesses; the counts come from the trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.collector_trace import collector_signatures, measure
from handlers.diagnose import diagnose
from handlers.proposers import rules
from handlers.proposers.fork_merge import bre_to_ere
from tests.collector_vault import CollectorVault, make


def note(i: int) -> str:
    return (f"---\ntitle: Item {i}\nowner: person{i}\nstatus: open\ndue: 2026-04-{i:02d}\n---\n\n# Item {i}\n\n"
            f"Words about item {i}, with a comma; and more.\nTODO: check {i}\nTODO: file {i}\n")


SHAPES = [
    ("sed fields", 'for f in notes/*.md; do\n  t=$(sed -n "s/^title: *//p" "$f")\n'
                   '  o=$(sed -n \'s/^owner: *//p\' "$f")\n  s=$(sed -n \'s/^status: *//p\' "$f")\n'
                   '  echo "$t | $o | $s"\ndone'),
    ("grep -c and wc -w", 'for f in notes/*.md; do\n  n=$(grep -c TODO "$f")\n  w=$(wc -w < "$f")\n'
                          '  echo "$(basename "$f"): $n todo, $w words"\ndone'),
    ("grep | cut, grep | sed", 'for f in notes/*.md; do\n  title=$(grep -m1 \'^title:\' "$f" | cut -d\' \' -f2-)\n'
                               '  st=$(grep \'^status:\' "$f" | sed \'s/^status: //\')\n  echo "$title: $st"\ndone'),
    ("while read, head, basename .md", 'ls notes/*.md | while read -r f; do\n  d=$(sed -n \'/^due:/p\' "$f")\n'
                                       '  h=$(head -n 1 "$f")\n  echo "$(basename "$f" .md) $d $h"\ndone'),
    ("awk print, wc -l | tr, dirname", 'for f in notes/*.md; do\n  own=$(grep "^owner:" "$f" | awk \'{print $2}\')\n'
                                       '  lines=$(wc -l < "$f" | tr -d \' \')\n  echo "$own $lines $(dirname "$f")"\ndone'),
    ("grep -E, tail -n 1, cut -d: -f2", 'for note in notes/*.md; do\n  last=$(grep -E \'^TODO: (check|file)\' "$note" '
                                        '| tail -n 1)\n  due=$(grep ^due: "$note" | cut -d: -f2)\n'
                                        '  printf "%s|%s\\n" "$last" "$due"\ndone'),
]


def vault(tmp: Path, body: str, n: int = 8) -> CollectorVault:
    files = {f"notes/n{i}.md": note(i) for i in range(1, n + 1)}
    return make(tmp, {**files, "scripts/c.sh": f"#!/bin/bash\nset -eu\n{body}\n"}, collect="scripts/c.sh",
                prompt="Summarise the items.\n\n{context}\n", inputs=["notes/*.md"])


@pytest.mark.parametrize(("shape", "body"), SHAPES, ids=[s for s, _ in SHAPES])
def test_found_by_counting_programs_and_fixed_with_the_same_output(tmp_path: Path, shape: str, body: str) -> None:
    v = vault(tmp_path, body)
    before = v.collect()
    loop = next(n for n in collector_signatures("t", v.deps) if n.name == "subprocess_loop")
    assert loop.source == "trace" and loop.evidence["items"] == 8 and loop.evidence["per_item"] >= 3
    ev = diagnose("t", v.deps)
    change = rules.one_awk_pass(ev, rules.base_texts(ev))
    assert change is not None and change.lever == "script", shape
    v.apply(rules.to_delta(ev, [change]))
    assert v.collect() == before  # the same text, byte for byte
    after = measure("t", v.deps)
    assert after is not None and after.forks is not None
    assert after.forks.calls <= 8 * (loop.evidence["per_item"] - 1) + 1 and after.forks.by_name.get("awk") == 8
    assert not [n for n in collector_signatures("t", v.deps) if n.name == "subprocess_loop"]


@pytest.mark.parametrize("split", ['echo "$line" | cut -d, -f{n}', "printf '%s\\n' \"$line\" | cut -f{n} -d,"])
def test_a_loop_over_table_rows_splits_fields_without_programs(tmp_path: Path, split: str) -> None:
    """`while read line` over CSV rows, fields cut by a program each, a date parsed per row and one that is the same
    for every row: counted per row, and fixed with the same output."""
    rows = "job,last,every\n" + "".join(f"job {i},2026-0{1 + i % 9}-1{i % 10},{7 * (i + 1)}\n" for i in range(12))
    fields = "\n".join(f"  {name}=$({split.format(n=n)})" for n, name in ((1, "job"), (2, "last"), (3, "every")))
    body = (f'today=2026-05-01\ntail -n +2 data/jobs.csv | while IFS= read -r line; do\n{fields}\n'
            '  left=$(( ( $(date -d "$last" +%s) - $(date -d "$today" +%s) ) / 86400 ))\n'
            '  echo "$job | $every | $left"\ndone')
    v = make(tmp_path, {"data/jobs.csv": rows, "scripts/c.sh": f"#!/bin/bash\nset -eu\n{body}\n"},
             collect="scripts/c.sh", prompt="Which jobs are due?\n{context}\n", inputs=["data/*.csv"])
    before = v.collect()
    loop = next(n for n in collector_signatures("t", v.deps) if n.name == "subprocess_loop")
    assert (loop.evidence["items"], loop.evidence["per_item"]) == (12, 5)
    ev = diagnose("t", v.deps)
    change = rules.one_awk_pass(ev, rules.base_texts(ev))
    assert change is not None
    v.apply(rules.to_delta(ev, [change]))
    assert v.collect() == before and "cut" not in v.root.joinpath("scripts/c.sh").read_text()
    after = measure("t", v.deps)
    assert after is not None and after.forks is not None and after.forks.by_name == {"date": 13, "tail": 1}


def test_the_fork_count_grows_with_the_vault_and_the_fix_stays_one_per_item(tmp_path: Path) -> None:
    small = measure("t", vault(tmp_path / "small", SHAPES[1][1], n=6).deps)
    large = measure("t", vault(tmp_path / "large", SHAPES[1][1], n=18).deps)
    assert small is not None and large is not None and small.forks is not None and large.forks is not None
    assert (small.forks.items, large.forks.items) == (6, 18)
    assert small.forks.per_item == large.forks.per_item == 3 and large.forks.calls == 3 * small.forks.calls


@pytest.mark.parametrize(("why", "body"), [
    ("one program over all files", "grep -H '^title:' notes/*.md | sed 's/^notes.//'"),
    ("one program per file", 'for f in notes/*.md; do head -n 2 "$f"; done'),
    ("a loop over few items", 'for f in notes/n1.md notes/n2.md; do sed -n p "$f"; grep x "$f" || true; done'),
    ("two programs per file: a pipeline doing its job", 'for f in notes/*.md; do sed -n p "$f" | grep -v x; done'),
])
def test_silent_where_no_loop_forks(tmp_path: Path, why: str, body: str) -> None:
    assert not [n for n in collector_signatures("t", vault(tmp_path, body).deps) if n.name == "subprocess_loop"], why


def test_reads_it_cannot_translate_are_left_alone(tmp_path: Path) -> None:
    body = 'for f in notes/*.md; do\n  a=$(sed -n \'s/^\\(title\\): \\(.*\\)/\\2/p\' "$f")\n  b=$(sort "$f" | uniq)\n' \
           '  echo "$a $b"\ndone'
    v = vault(tmp_path, body)
    ev = diagnose("t", v.deps)
    assert ev.has("subprocess_loop") and rules.one_awk_pass(ev, rules.base_texts(ev)) is None  # back-refs, sort


@pytest.mark.parametrize(("bre", "ere"), [
    ("^title: *", "^title: *"), ("a\\(b\\)c", "a(b)c"), ("x+y?", "x\\+y\\?"), ("a\\{2\\}", "a{2}"), ("(lit)", "\\(lit\\)"),
])
def test_basic_regular_expressions_read_as_awk_reads_them(bre: str, ere: str) -> None:
    assert bre_to_ere(bre) == ere

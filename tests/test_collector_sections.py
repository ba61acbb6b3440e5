"""Sections the prompt never asks for, leaking through a collector that means to pass only one: found by matching
what the collector emitted against the sections of the files it read, fixed by replacing the selecting command
(awk, sed or grep, whatever its pattern) with one that passes exactly the asked sections. Real subprocesses."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.collector_trace import collector_signatures, measure
from handlers.diagnose import diagnose
from handlers.proposers import rules
from tests.collector_vault import CollectorVault, make


def note(i: int, marks: str = "##") -> str:
    return (f"---\ntitle: Item {i}\n---\n\n# Item {i}\n\n{marks} Assets\n- laptop number {i} bought in 2024\n"
            f"- monitor {i} on the desk\n\n{marks} Action items\n- call the insurer about claim {i}\n"
            f"- send form {i} by post\n\n{marks} Archive\n- old receipt {i} from the 2019 shop\n\n"
            f"{marks} Links\n- https://example.org/item-{i} the shop page\n")


PROMPT = "List the household assets below, one line each.\n\n{context}\n"
LOOP = 'for f in notes/*.md; do\n  echo "== $f"\n  {cmd}\ndone'
SHAPES = [
    ("sed range, negated class", LOOP.format(cmd="sed -n '/^## A/,/^## [^A]/p' \"$f\"")),
    ("awk flag and exit", LOOP.format(cmd="awk 'f && /^## [^A]/{exit} /^## A/{f=1} f' \"$f\"")),
    ("awk exit, front matter cut", LOOP.format(cmd="sed '1,/^---$/d' \"$f\" | awk '/^## [^A]/{exit} {print}'")),
    ("grep -A", LOOP.format(cmd="grep -A 7 '^## Assets' \"$f\"")),
    ("awk range over all files", "awk '/^## Assets/,/^## Archive/' notes/*.md"),
    ("sed range to a named end", LOOP.format(cmd="sed -n '/^## Assets/,/^## Links/p' \"$f\"")),
    ("awk on stdin", LOOP.format(cmd="awk '/^## Ass/{p=1} /^## L/{p=0} p' < \"$f\"")),
]


def vault(tmp: Path, body: str, marks: str = "##", prompt: str = PROMPT) -> CollectorVault:
    files = {f"notes/n{i}.md": note(i, marks) for i in range(1, 5)}
    return make(tmp, {**files, "scripts/c.sh": f"#!/bin/sh\nset -eu\n{body}\n"}, collect="scripts/c.sh",
                prompt=prompt, inputs=["notes/*.md"])


@pytest.mark.parametrize(("shape", "body"), SHAPES, ids=[s for s, _ in SHAPES])
def test_found_by_the_sections_that_pass_and_fixed_to_the_asked_one(tmp_path: Path, shape: str, body: str) -> None:
    v = vault(tmp_path, body)
    note_ = next(n for n in collector_signatures("t", v.deps) if n.name == "section_regex_leak")
    assert note_.source == "trace" and note_.evidence["asked"] == ["Assets"]
    assert "Action items" in note_.evidence["leaked"]
    ev = diagnose("t", v.deps)
    change = rules.explicit_section(ev, rules.base_texts(ev))
    assert change is not None and change.lever == "script", shape
    v.apply(rules.to_delta(ev, [change]))
    out = v.collect()
    assert out.count("laptop number") == 4 and "insurer" not in out and "receipt" not in out and "https" not in out
    flow = measure("t", v.deps).sections  # type: ignore[union-attr]
    assert flow is not None and flow.passed == ("Assets",) and not flow.leaks
    assert not [n for n in collector_signatures("t", v.deps) if n.name == "section_regex_leak"]


def test_a_deeper_heading_level_and_another_wording_of_the_ask(tmp_path: Path) -> None:
    v = vault(tmp_path, LOOP.format(cmd="sed -n '/^### A/,/^### [^A]/p' \"$f\""), marks="###",
              prompt="From the asset lists below, name what needs insuring.\n\n{context}\n")
    ev = diagnose("t", v.deps)
    leak = ev.signature("section_regex_leak")
    assert leak is not None and leak.evidence["level"] == 3
    change = rules.explicit_section(ev, rules.base_texts(ev))
    assert change is not None
    v.apply(rules.to_delta(ev, [change]))
    assert "insurer" not in v.collect() and v.collect().count("### Assets") == 4


@pytest.mark.parametrize(("why", "body", "prompt"), [
    ("the whole note, nothing selected", LOOP.format(cmd='cat "$f"'), PROMPT),
    ("the selection names both sections", LOOP.format(cmd="awk '/^## (Assets|Action items)/{f=1; print; next} "
                                                           "/^## /{f=0} f' \"$f\""), PROMPT),
    ("exactly the asked section", LOOP.format(cmd="awk '/^## Assets/{f=1; print; next} /^## /{f=0} f' \"$f\""),
     PROMPT),
    ("the prompt asks for both", LOOP.format(cmd="sed -n '/^## Assets/,/^## Archive/p' \"$f\""),
     "List the assets and the action items below.\n{context}\n"),
    ("a prompt that names no section", LOOP.format(cmd="sed -n '/^## A/,/^## [^A]/p' \"$f\""),
     "Summarise the notes below.\n{context}\n"),
])
def test_silent_where_nothing_leaks(tmp_path: Path, why: str, body: str, prompt: str) -> None:
    v = vault(tmp_path, body, prompt=prompt)
    assert [n.name for n in collector_signatures("t", v.deps) if n.name == "section_regex_leak"] == [], why

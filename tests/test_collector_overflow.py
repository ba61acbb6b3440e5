"""A prompt that does not fit num_ctx, measured before any run: the collector's output rendered into the prompt and
counted (the task model's own tokenizer where its backend has one, else an estimate that says so); fixed by raising
num_ctx when the model's window allows, else by sizing the cap whose output dominates — `cat`, `tail`, `head`, `sed`
alike — from what its calls really printed. Real subprocesses; the embedded model's real tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.backends.embedded import EmbeddedBackend
from adapters.backends.ollama_backend import OllamaBackend
from domain.render import render_prompt
from handlers.collector_trace import collector_signatures, measure
from handlers.diagnose import diagnose
from handlers.proposers import rules
from testbed.servers import OllamaServer
from tests.collector_vault import CollectorVault, make

LOG = "".join(f"2026-{1 + d // 28:02d}-{1 + d % 28:02d} event {d} happened with some words attached to it\n"
              for d in range(300))
NOTES = {f"notes/n{i}.md": "".join(f"line {j} of note {i} with filler words\n" for j in range(60)) for i in range(6)}
SHAPES = [
    ("cat", "cat data/log.txt"),
    ("tail -n 500", "tail -n 500 data/log.txt"),
    ("head -200", "head -200 data/log.txt"),
    ("cat per file in a loop", 'for f in notes/*.md; do echo "== $f"; cat "$f"; done'),
    ("sed -n '1,300p'", "sed -n '1,300p' data/log.txt"),
    ("cat | head -n 300", "cat notes/*.md | head -n 300"),
    ("tail -300 per file", 'for f in notes/*.md; do tail -300 "$f"; done'),
]


def vault(tmp: Path, body: str, **options: int) -> CollectorVault:
    return make(tmp, {**NOTES, "data/log.txt": LOG, "scripts/c.sh": f"#!/bin/sh\nset -eu\n{body}\n"},
                collect="scripts/c.sh", prompt="Summarise what happened.\n\n{context}\n", inputs=["data/log.txt"],
                options={"num_ctx": 1024, "num_predict": 200, **options})


@pytest.mark.parametrize(("shape", "body"), SHAPES, ids=[s for s, _ in SHAPES])
def test_found_before_any_run_and_fixed_by_sizing_the_dominant_cap(tmp_path: Path, shape: str, body: str) -> None:
    v = vault(tmp_path, body)
    over = next(n for n in collector_signatures("t", v.deps) if n.name == "context_overflow")
    assert over.source == "trace" and over.evidence["exact"] is False and "estimate" in over.evidence["method"]
    ev = diagnose("t", v.deps)
    assert [d.meta["rules"] for d in rules.propose(ev)] == [["narrow_head"]]  # no window to raise into
    change = rules.narrow_overflowing_head(ev, rules.base_texts(ev))
    assert change is not None and change.lever == "script", shape
    v.apply(rules.to_delta(ev, [change]))
    size = measure("t", v.deps).size  # type: ignore[union-attr]
    assert size is not None and not size.overflow and size.tokens > 0.6 * (1024 - 200)  # fits, not starved
    assert not [n for n in collector_signatures("t", v.deps) if n.name == "context_overflow"]


def test_a_growing_log_keeps_its_newest_lines(tmp_path: Path) -> None:
    v = vault(tmp_path, "cat data/log.txt")
    ev = diagnose("t", v.deps)
    change = rules.narrow_overflowing_head(ev, rules.base_texts(ev))
    assert change is not None and "tail -n" in str(change.texts["scripts/c.sh"])
    v.apply(rules.to_delta(ev, [change]))
    assert v.collect().rstrip().endswith("event 299 happened with some words attached to it")


def test_a_loop_over_dated_files_keeps_the_newest_whole(tmp_path: Path) -> None:
    """Each diary passes whole (its `tail -n 200` never binds): keep fewer files, not fewer lines of each."""
    diary = {f"Diary/2026-04-{d:02d}.md": f"# {d} April\n" + "".join(f"- thing {j} that happened on day {d}\n"
                                                                     for j in range(12)) for d in range(1, 29)}
    v = make(tmp_path, {**diary, "scripts/c.sh": '#!/bin/sh\nfor f in Diary/*.md; do\n  echo "=== $f ==="\n'
                                                 '  tail -n 200 "$f"\ndone\n'},
             collect="scripts/c.sh", prompt="Review the week.\n\n{context}\n", inputs=["Diary/*.md"],
             options={"num_ctx": 2048})
    ev = diagnose("t", v.deps)
    change = rules.narrow_overflowing_head(ev, rules.base_texts(ev))
    assert change is not None and "for f in Diary/*.md" in change.description
    v.apply(rules.to_delta(ev, [change]))
    out = v.collect()
    kept = [line for line in out.splitlines() if line.startswith("=== ")]
    assert 5 <= len(kept) < 28 and kept[-1] == "=== Diary/2026-04-28.md ===" and out.count("- thing 11 ") == len(kept)
    assert not measure("t", v.deps).size.overflow  # type: ignore[union-attr]
    (v.root / "Diary/2026-04-29.md").write_text("# 29 April\n- the newest day\n")  # the diary grows: still the newest
    assert "=== Diary/2026-04-29.md ===" in v.collect() and "=== Diary/2026-04-01.md ===" not in v.collect()


def test_num_ctx_rises_when_the_model_window_allows(tmp_path: Path) -> None:
    v = vault(tmp_path, "tail -n 150 data/log.txt")
    with OllamaServer(context_length=32768) as ollama:
        v.models.register("ollama", OllamaBackend(ollama.host, timeout=10))
        ev = diagnose("t", v.deps)
        deltas = rules.propose(ev)
    size = ev.collector["size"]
    assert size["ceiling"] == 32768 and "context_length 32768" in size["window"]
    assert [d.meta["rules"] for d in deltas][:2] == [["raise_num_ctx"], ["narrow_head"]]  # the data stays whole first
    v.apply(deltas[0])
    num_ctx = v.config.tasks["t"].options.num_ctx
    assert num_ctx is not None and size["prompt_tokens"] + 200 < num_ctx <= 32768
    assert not [n for n in collector_signatures("t", v.deps) if n.name == "context_overflow"]


def test_the_embedded_model_counts_with_its_own_tokenizer(tmp_path: Path) -> None:
    log = "".join(LOG.splitlines(keepends=True)[:120])  # about 2,500 SmolLM2 tokens: over 2048, within 4096
    v = make(tmp_path, {"data/log.txt": log, "scripts/c.sh": "#!/bin/sh\ncat data/log.txt\n"}, collect="scripts/c.sh",
             prompt="Summarise what happened.\n\n{context}\n", inputs=["data/log.txt"],
             model="embedded:smollm2-135m", options={"num_ctx": 2048, "num_predict": 200})
    backend = EmbeddedBackend(n_ctx=4096, threads=2)
    v.models.register("embedded", backend)
    over = next(n for n in collector_signatures("t", v.deps) if n.name == "context_overflow")
    prompt = render_prompt("Summarise what happened.\n\n{context}\n", log, "2026-03-18", append_missing=True)
    assert over.evidence["exact"] is True and over.evidence["prompt_tokens"] == backend.count_tokens("smollm2-135m",
                                                                                                     prompt)
    assert over.evidence["ceiling"] == 4096  # num_ctx narrows the loaded window, never widens it
    ev = diagnose("t", v.deps)
    assert rules.propose(ev)[0].meta["rules"] == ["raise_num_ctx"]  # 2048 → the 4096 window
    narrow = rules.narrow_overflowing_head(ev, rules.base_texts(ev))
    assert narrow is not None
    v.apply(rules.to_delta(ev, [narrow]))
    tokens = backend.count_tokens("smollm2-135m", render_prompt("Summarise what happened.\n\n{context}\n",
                                                                v.collect(), "2026-03-18", append_missing=True))
    assert 0.7 * (2048 - 200) < tokens <= 2048 - 200  # sized by the real tokenizer: fits, and barely cut more


def test_an_unmeasurable_collector_still_gets_its_largest_cap_halved(tmp_path: Path) -> None:
    v = vault(tmp_path, "head -n 300 data/log.txt")
    ev = diagnose("t", v.deps)
    bare = type(ev)(**{**ev.__dict__, "collector": {}})
    change = rules.narrow_overflowing_head(bare, rules.base_texts(bare))
    assert change is not None and "head -n 150" in str(change.texts["scripts/c.sh"]) and "halved" in change.description


GROWN = LOG.replace("attached to it", "attached to it, and since the tasks got fixed a good deal more to say")


@pytest.mark.parametrize(("shape", "body"), SHAPES[:3] + SHAPES[5:6], ids=[s for s, _ in SHAPES[:3] + SHAPES[5:6]])
def test_a_raised_window_holds_a_context_that_keeps_growing(tmp_path: Path, shape: str, body: str) -> None:
    """The context a judge reads grows when the tasks it reads get fixed and write more: the raised num_ctx has
    headroom, and the collector's output is capped at what the new window holds, so the prompt's start (the
    instructions) is never what gets cut."""
    v = vault(tmp_path, body, num_ctx=2048)
    with OllamaServer(context_length=32768) as ollama:
        v.models.register("ollama", OllamaBackend(ollama.host, timeout=10))
        ev = diagnose("t", v.deps)
        change = rules.raise_num_ctx(ev, rules.base_texts(ev))
    assert change is not None and "capped at" in change.description, shape
    v.apply(rules.to_delta(ev, [change]))
    tc = v.config.tasks["t"]
    assert tc.output_cap == change.meta["output_cap"] and tc.options.num_ctx == change.meta["num_ctx"]
    assert len(v.collect().encode()) < tc.output_cap  # today's context passes whole
    (v.root / "data/log.txt").write_text(GROWN)
    for name in NOTES:
        (v.root / name).write_text(NOTES[name].replace("filler words", "filler words " * 8))
    grown = measure("t", v.deps)
    assert grown is not None and grown.size is not None and len(v.collect().encode()) > tc.output_cap
    assert not grown.size.overflow and grown.size.tokens > 0.6 * (tc.options.num_ctx - 200)  # cut to fit, not starved

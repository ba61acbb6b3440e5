"""Each signature on crafted runs: where it must fire (with its evidence) and where it must stay quiet."""

from __future__ import annotations

from typing import Any

import pytest

from domain.config import Requires, TaskConfig
from domain.runs import RunResult
from domain.signatures import DETECTORS, RunView, Signature, TaskHistory, detect_signatures

PROSE = [
    "The planner closed three goals today and the seeder wrote eleven notes on positional encoding.",
    "Two commits landed in linesheet: an index on tenant accounts and a fix to the received-items query.",
    "Quiet morning: the spacer reviewed forty cards and the quiz skipped Key Sources correctly this time.",
    "The blog writer published a 700-word piece on vault autoresearch after the drafter sent a full brief.",
    "Deepener training finished with eighteen examples; the format score held at one hundred percent.",
]


def view(i: int, output: str | None = None, **kw: Any) -> RunView:
    fields: dict[str, Any] = {
        "run_id": f"r{i}",
        "task": "t",
        "output": PROSE[i % len(PROSE)] if output is None else output,
        "started": f"2026-03-{10 + i:02d}T06:30:00Z",
        "model": "ollama:qwen3:8b",
        "num_predict": 600,
        "num_ctx": 8192,
        "prompt_tokens": 900,
        "output_tokens": 200,
        "artifacts": (f"Out/{i}.md",),
        "context": f"collected data for day {i}",
    }
    fields.update(kw)
    return RunView(**fields)


def history(runs: list[RunView], prompt_text: str = "", **cfg: Any) -> TaskHistory:
    consumers = cfg.pop("consumers", {})
    scores = cfg.pop("scores", {})
    dead_after = cfg.pop("dead_after", 3)
    config = TaskConfig(**{"prompt": "prompts/t.md", "model": "ollama:qwen3:8b", **cfg})
    return TaskHistory("t", config, runs, scores, prompt_text, consumers, dead_after)


def fired(h: TaskHistory, name: str) -> Signature | None:
    found = detect_signatures(h, only=[name])
    return found[0] if found else None


def clean(n: int = 5) -> list[RunView]:
    return [view(i) for i in range(n)]


def test_catalogue_names() -> None:
    assert set(DETECTORS) == {
        "truncated", "copied_example", "code_fences", "placeholder_leak", "context_overflow", "thinking_burn",
        "identical_across_days", "empty", "format_miss", "too_short_for_consumer", "dead_task", "wrong_model",
        "instruction_leak",
    }  # fmt: skip


def test_a_healthy_task_has_no_signatures() -> None:
    h = history(
        clean(),
        prompt_text="Summarise the day from {context}. Use ## headings. Example: - fix: retries on timeout",
        outputs=["Out/{date}.md"],
        candidates=["ollama:qwen3:8b", "ollama:gemma3:12b"],
        expect={"blocks": {"regex": r"^The |^Two |^Quiet |^Deepener ", "min": 1}},
        consumers={"writer": Requires(min_words=10)},
    )
    assert detect_signatures(h) == []


def test_unknown_name_and_empty_history() -> None:
    with pytest.raises(KeyError, match="known: empty"):
        detect_signatures(history(clean()), only=["nope"])
    assert detect_signatures(history([])) == []


# ---- per-run patterns --------------------------------------------------------------------------


def test_truncated_fires_on_the_newest_run_with_evidence() -> None:
    runs = [*clean(3), view(3, "## Commits\n- one\n## Go", done_reason="length", output_tokens=300, num_predict=300)]
    sig = fired(history(runs), "truncated")
    assert sig is not None and sig.lever == "config" and sig.severity == "high"
    assert sig.evidence["run_ids"] == ["r3"] and sig.evidence["num_predict"] == 300
    assert sig.evidence["tail"].endswith("## Go")


def test_truncated_cured_by_a_fix_does_not_fire() -> None:
    runs = [view(0, done_reason="length"), *[view(i) for i in range(1, 4)]]
    assert fired(history(runs), "truncated") is None


def test_truncated_fires_when_half_the_window_is_cut_even_if_the_newest_is_fine() -> None:
    runs = [view(0, done_reason="length"), view(1, done_reason="length"), view(2), view(3)]
    sig = fired(history(runs), "truncated")
    assert sig is not None and sig.evidence["count"] == 2


def test_context_overflow_lever_follows_the_collector() -> None:
    runs = [view(i, prompt_tokens=8192) for i in range(3)]
    sig = fired(history(runs, collect="scripts/judge.sh"), "context_overflow")
    assert sig is not None and sig.lever == "script" and sig.evidence["prompt_tokens"] == [8192] * 3
    sig = fired(history(runs), "context_overflow")
    assert sig is not None and sig.lever == "config"
    assert fired(history([view(i, prompt_tokens=8000) for i in range(3)]), "context_overflow") is None


def test_thinking_burn() -> None:
    sig = fired(history([view(i, thinking_tokens=250, num_predict=300) for i in range(3)]), "thinking_burn")
    assert sig is not None and sig.lever == "config" and sig.evidence["thinking_tokens"] == [250] * 3
    assert fired(history([view(i, thinking_tokens=100, num_predict=300) for i in range(3)]), "thinking_burn") is None


def test_empty_lever_depends_on_why() -> None:
    thinking = [view(i, "", thinking_tokens=300, num_predict=300) for i in range(3)]
    sig = fired(history(thinking), "empty")
    assert sig is not None and sig.lever == "config" and sig.severity == "high"
    nothing_collected = [view(i, " ", context="") for i in range(3)]
    sig = fired(history(nothing_collected, collect="scripts/c.sh"), "empty")
    assert sig is not None and sig.lever == "script"


def test_failed_runs_are_not_empty_outputs() -> None:
    assert fired(history([view(i, "", status="failed") for i in range(3)]), "empty") is None


def test_code_fences_only_where_prose_is_expected() -> None:
    runs = [view(i, "```markdown\n## Radar\n- Ollama\n```") for i in range(3)]
    sig = fired(history(runs), "code_fences")
    assert sig is not None and sig.evidence["first"] == "```markdown" and sig.lever == "prompt"
    assert fired(history(runs, expect={"prose": False}), "code_fences") is None


def test_placeholder_leak_notes_slots_the_prompt_contains() -> None:
    prompt = "Format:\n- [Tool]: one line on what it does\n"
    runs = [view(i, "- [Tool]: a new local model runner\n- [Tool]: another one") for i in range(2)]
    sig = fired(history(runs, prompt_text=prompt), "placeholder_leak")
    assert sig is not None and sig.evidence["slots"] == ["[Tool]"] and sig.evidence["in_prompt"] == ["[Tool]"]


RADAR_PROMPT = """Use this template:

```markdown
## New tools
- **[Tool]** ([Category]) — [One line on why it matters]
```

{context}
"""


def test_placeholder_leak_research_radar_sentence_slots_from_the_prompt() -> None:
    out = "```markdown\n## New tools\n- **Ollama 0.6** (runtime) — [One line on why it matters]\n```"
    sig = fired(history([view(i, out) for i in range(2)], prompt_text=RADAR_PROMPT), "placeholder_leak")
    assert sig is not None and sig.evidence["slots"] == ["[One line on why it matters]"]
    assert fired(history([view(i, out) for i in range(2)]), "placeholder_leak") is None  # needs the prompt


def test_prompt_slots_ignore_links_wikilinks_and_citations_the_prompt_shares() -> None:
    prompt = "Link goals with [[Goals]] and cite as [1]. See [the guide](https://x.y). {context}"
    out = "Linked [[Goals]], cited [1], read [the guide](https://x.y)."
    assert fired(history([view(i, out) for i in range(3)], prompt_text=prompt), "placeholder_leak") is None


def test_placeholder_leak_ignores_normal_brackets() -> None:
    runs = [
        view(i, "Read [the notes](https://x.y/z), see [[Attention]] and [1]; - [x] done; a[i] (see [Smith 2020]).")
        for i in range(3)
    ]
    assert fired(history(runs), "placeholder_leak") is None


def test_instruction_leak_morning_briefing() -> None:
    prompt = "## Commits\nCommits: N (or 'quiet — no commits' if 0)\n"
    runs = [view(i, "## Commits\nCommits: 0 (or 'quiet — no commits' if 0)") for i in range(2)]
    sig = fired(history(runs, prompt_text=prompt), "instruction_leak")
    assert sig is not None and sig.evidence["leaks"] == ["(or 'quiet — no commits' if 0)"]
    prose = [view(i, "It went well (or so it seemed), better (if you ask me) than before.") for i in range(3)]
    assert fired(history(prose, prompt_text=prompt), "instruction_leak") is None


def test_copied_example_session_reflection() -> None:
    prompt = "Reflect on the day.\nExample:\n## Reflection\n- 2026-03-10: Precision over scope\n\n{context}\n"
    copied = "## Reflection\n- 2026-03-10: Precision over scope"
    runs = [view(i, copied, context=f"commits for day {i}: fix planner retries") for i in range(3)]
    sig = fired(history(runs, prompt_text=prompt), "copied_example")
    assert sig is not None and sig.severity == "high" and sig.lever == "prompt"
    assert sig.evidence["copied"] == ["- 2026-03-10: Precision over scope"]
    assert sig.evidence["identical_streak"] == 3


def test_copied_example_guards() -> None:
    prompt = "Example:\n- fix: planner retries on timeout\n## Reflection\n"
    from_data = [view(0, "## Reflection\n- fix: planner retries on timeout", context="fix: planner retries on timeout")]
    assert fired(history(from_data, prompt_text=prompt), "copied_example") is None  # the data, not the example
    assert fired(history([view(0, "- fix: planner retries on timeout")]), "copied_example") is None  # no prompt
    assert fired(history([view(0, "## Reflection\nToday went fine.")], prompt_text=prompt), "copied_example") is None


def test_identical_across_days_fires_on_a_trailing_streak() -> None:
    text = "Positional encoding adds information about token order to the embeddings of a transformer model."
    runs = [view(0), *[view(i, text) for i in range(1, 4)]]
    sig = fired(history(runs, candidates=["ollama:qwen3:8b", "ollama:gemma3:12b"]), "identical_across_days")
    assert sig is not None and sig.evidence["run_ids"] == ["r1", "r2", "r3"] and sig.lever == "model"
    assert sig.evidence["days"] == ["2026-03-11", "2026-03-12", "2026-03-13"]
    near = [view(i, text.replace("token", f"token{i}")) for i in range(3)]
    sig = fired(history(near), "identical_across_days")
    assert sig is not None and sig.lever == "prompt" and sig.evidence["min_similarity"] < 1.0


def test_identical_across_days_guards() -> None:
    text = "Positional encoding adds information about token order to the embeddings of a transformer model."
    assert fired(history([view(0), view(1, text), view(2, text)]), "identical_across_days") is None  # only 2
    broken = [view(0, text), view(1, text), view(2, text), view(3)]
    assert fired(history(broken), "identical_across_days") is None  # the newest run differs
    same_input = [view(i, text, context="same collected data") for i in range(3)]
    assert fired(history(same_input), "identical_across_days") is None  # same input, same output
    assert fired(history([view(i, "") for i in range(4)]), "identical_across_days") is None  # that is `empty`


def test_format_miss_lesson_distiller() -> None:
    blocks = {"blocks": {"regex": r"^=== PRACTICE NOTE: .+ ===$", "min": 1}}
    narrative = [view(i, "As a consultant I recommend the team write practice notes.") for i in range(3)]
    sig = fired(history(narrative, expect=blocks), "format_miss")
    assert sig is not None and sig.evidence["regex"] == r"^=== PRACTICE NOTE: .+ ===$"
    good = [view(i, "=== PRACTICE NOTE: retries ===\nBack off on timeouts.") for i in range(3)]
    assert fired(history(good, expect=blocks), "format_miss") is None
    assert fired(history(narrative), "format_miss") is None  # no blocks declared


# ---- cross-run and cross-task patterns ---------------------------------------------------------


def test_too_short_for_consumer_drafter_to_writer() -> None:
    brief = " ".join(["fact"] * 211)
    runs = [view(i, brief) for i in range(3)]
    sig = fired(history(runs, consumers={"blog-writer": Requires(min_words=600)}), "too_short_for_consumer")
    assert sig is not None and sig.lever == "prompt"
    observed = sig.evidence["consumers"]["blog-writer"]
    assert observed["requires"] == {"min_words": 600} and observed["observed"]["r2"] == {"words": 211}
    cut = [view(i, brief, done_reason="length") for i in range(3)]
    sig = fired(history(cut, consumers={"blog-writer": Requires(min_words=600)}), "too_short_for_consumer")
    assert sig is not None and sig.lever == "config"


def test_too_short_for_consumer_guards_and_facts() -> None:
    long_brief = [view(i, " ".join(["fact"] * 700)) for i in range(3)]
    assert fired(history(long_brief, consumers={"w": Requires(min_words=600)}), "too_short_for_consumer") is None
    assert fired(history(long_brief), "too_short_for_consumer") is None
    three_facts = [view(i, "- a\n- b\n- c") for i in range(2)]
    sig = fired(history(three_facts, consumers={"w": Requires(min_facts=5)}), "too_short_for_consumer")
    assert sig is not None and sig.evidence["consumers"]["w"]["observed"]["r1"] == {"facts": 3}


def test_dead_task_lesson_distiller_needs_a_postprocessor() -> None:
    cfg: dict[str, Any] = {
        "outputs": ["Knowledge/practice--*.md"],
        "expect": {"blocks": {"regex": "^=== PRACTICE NOTE"}},
    }
    runs = [view(i, artifacts=()) for i in range(3)]
    sig = fired(history(runs, **cfg), "dead_task")
    assert sig is not None and sig.lever == "postprocess" and sig.evidence["outputs"] == ["Knowledge/practice--*.md"]
    sig = fired(history(runs, postprocess="scripts/pp.sh", **cfg), "dead_task")
    assert sig is not None and sig.lever == "script"


def test_dead_task_guards_and_configurable_n() -> None:
    cfg: dict[str, Any] = {"outputs": ["Out/{date}.md"]}
    assert fired(history([view(i, artifacts=()) for i in range(2)], **cfg), "dead_task") is None  # too few runs
    wrote_last = [view(0, artifacts=()), view(1, artifacts=()), view(2)]
    assert fired(history([*wrote_last, view(3, artifacts=())], **cfg), "dead_task") is None
    assert fired(history([view(i, artifacts=()) for i in range(3)]), "dead_task") is None  # no declared outputs
    four = [view(i, artifacts=()) for i in range(4)]
    assert fired(history(four, dead_after=5, **cfg), "dead_task") is None
    assert fired(history(four, dead_after=4, **cfg), "dead_task") is not None


def test_wrong_model_blog_writer() -> None:
    long = " ".join(["word"] * 700)
    runs = [
        view(0, long, model="ollama:gemma3:12b"),
        view(1, " ".join(["code"] * 241), model="ollama:qwen2.5-coder:14b"),
        view(2, long, model="ollama:qwen3:8b"),
        view(3, " ".join(["code"] * 241), model="ollama:qwen2.5-coder:14b"),
        view(4, long, model="ollama:gemma3:12b"),
    ]
    cfg: dict[str, Any] = {
        "expect": {"min_words": 600},
        "candidates": ["ollama:gemma3:12b", "ollama:qwen3:8b", "ollama:qwen2.5-coder:14b"],
    }
    sig = fired(history(runs, **cfg), "wrong_model")
    assert sig is not None and sig.lever == "model"
    assert sig.evidence["bad"] == ["ollama:qwen2.5-coder:14b"]
    assert sig.evidence["actions"] == {"ollama:qwen2.5-coder:14b": "drop from candidates"}
    assert sig.evidence["models"]["ollama:qwen2.5-coder:14b"]["contract_misses"] == 2


def test_wrong_model_guards_and_score_fallback() -> None:
    long = " ".join(["word"] * 700)
    models = ["a:x", "b:y", "a:x", "b:y"]
    passing = [view(i, long, model=m) for i, m in enumerate(models)]
    assert fired(history(passing, expect={"min_words": 600}), "wrong_model") is None
    failing = [view(i, "short", model=m) for i, m in enumerate(models)]
    assert fired(history(failing, expect={"min_words": 600}), "wrong_model") is None  # everyone fails: not the model
    one_model = [view(i, "short") for i in range(4)]
    assert fired(history(one_model, expect={"min_words": 600}), "wrong_model") is None
    scores = {"r0": 2.0, "r1": 4.5, "r2": 2.5, "r3": 4.0}
    sig = fired(history(passing, scores=scores), "wrong_model")
    assert sig is not None and sig.evidence["bad"] == ["a:x"] and sig.evidence["models"]["a:x"]["mean_score"] == 2.25


# ---- the whole catalogue -----------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [*_strings(k), *_strings(v)]]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def test_many_faults_sorted_by_severity_with_short_evidence() -> None:
    huge = "```\n[Tool] " + "word " * 5000 + "\n```"
    runs = [view(i, huge, done_reason="length", thinking_tokens=400, num_predict=600, artifacts=()) for i in range(3)]
    h = history(runs, outputs=["Out/x.md"], prompt_text="[Tool] " + "word " * 5000)
    found = detect_signatures(h)
    names = [s.name for s in found]
    assert {"truncated", "thinking_burn", "code_fences", "placeholder_leak", "dead_task"} <= set(names)
    ranks = [{"high": 3, "medium": 2, "low": 1}[s.severity] for s in found]
    assert ranks == sorted(ranks, reverse=True)
    for sig in found:
        assert sig.task == "t" and len(sig.summary) <= 200
        assert all(len(s) <= 200 for s in _strings(sig.evidence)), sig.name


def test_run_view_from_run_reads_budgets_from_options() -> None:
    run = RunResult(
        run_id="x", task="t", started="2026-03-18T06:30:00Z", status="ok", model="m:n",
        options={"num_ctx": 4096, "num_predict": 300}, output="hi", done_reason="stop",
        prompt_tokens=10, output_tokens=1, artifacts={"Out/a.md": "abc"},
    )  # fmt: skip
    v = RunView.from_run(run, failing=["min_words"])
    assert (v.num_ctx, v.num_predict, v.artifacts, v.failing) == (4096, 300, ("Out/a.md",), ("min_words",))

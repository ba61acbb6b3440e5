"""The judge: contract score, LLM verdict parsing, one retry on an unreadable answer, bounded prompts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.backends.base import BackendError, Message, ModelBackend
from domain.config import JudgeConfig, TaskConfig
from domain.runs import Completion, RunResult
from handlers.judge import (
    CONTRACT_JUDGE,
    STRICTER,
    VERDICT_SCHEMA,
    JudgeJob,
    default_rubric,
    excerpt,
    judge_many,
    judge_run,
    parse_verdict,
    total_cost,
)

GOOD = "## Commits\n- fix: planner retries on timeout\n## Goals\n- ship the spacer fix\n"


@dataclass
class ScriptedJudge:
    """A ModelBackend double: answers from a script, records every call."""

    answers: Sequence[str | Exception]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def complete(
        self,
        model: str,
        prompt: str | list[Message],
        options: dict[str, Any],
        *,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        self.calls.append({"model": model, "prompt": prompt, "options": options, "json_schema": json_schema})
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return Completion(answer, "stop", prompt_tokens=len(str(prompt)) // 4, output_tokens=len(answer) // 4)


def make_run(output: str = GOOD, task: str = "morning-briefing", run_id: str = "r1", **kw: Any) -> RunResult:
    fields: dict[str, Any] = {
        "run_id": run_id,
        "task": task,
        "started": "2026-03-18T06:30:00Z",
        "status": "ok",
        "model": "ollama:qwen3:8b",
        "options": {"num_predict": 600, "num_ctx": 8192},
        "output": output,
        "done_reason": "stop",
        "prompt_tokens": 800,
        "output_tokens": 120,
    }
    fields.update(kw)
    return RunResult(**fields)


TASK = TaskConfig(prompt="prompts/mb.md", model="ollama:qwen3:8b", expect={"sections": ["## Commits", "## Goals"]})
CFG = JudgeConfig(model="fake:judge", llm_weight=0.5)


def judge(answers: Sequence[str | Exception], run: RunResult | None = None, **kw: Any) -> tuple[Any, ScriptedJudge]:
    backend = ScriptedJudge(answers)
    _protocol: ModelBackend = backend  # the double speaks the real interface
    result = judge_run(run or make_run(), kw.pop("task", TASK), kw.pop("cfg", CFG), backend.complete, **kw)
    return result, backend


def test_valid_json_combines_with_the_contract_score() -> None:
    result, backend = judge(['{"score": 4, "reasons": ["specific", "complete"]}'])
    assert (result.contract_score, result.llm_score, result.score.score) == (5.0, 4.0, 4.5)
    assert result.llm_failure is None and result.cost.calls == 1 and result.cost.prompt_tokens > 0
    assert "judge: specific" in result.score.reasons
    assert result.score.judge.startswith(f"{CONTRACT_JUDGE}+llm/") and "fake:judge#" in result.score.judge
    call = backend.calls[0]
    assert call["model"] == "fake:judge" and call["json_schema"] == VERDICT_SCHEMA
    assert call["options"]["temperature"] == 0.0
    assert "## Commits, ## Goals" in call["prompt"] and default_rubric().splitlines()[0] in call["prompt"]


def test_fenced_json_and_score_line_fallback() -> None:
    fenced, _ = judge(['Here is my verdict:\n```json\n{"score": 3, "reasons": ["thin"]}\n```\nThanks!'])
    assert fenced.llm_score == 3.0 and "judge: thin" in fenced.score.reasons
    line, backend = judge(["Score: 4/5\n- covers commits\n- goals are vague"])
    assert line.llm_score == 4.0 and len(backend.calls) == 1
    assert "judge: covers commits" in line.score.reasons


def test_garbage_twice_is_a_judge_failure_not_a_score() -> None:
    result, backend = judge(["I liked it a lot.", "Really, quite good!"])
    assert len(backend.calls) == 2 and backend.calls[1]["prompt"].endswith(STRICTER)
    assert result.llm_score is None and result.llm_failure is not None
    assert "unreadable" in result.llm_failure and "quite good" in result.llm_failure
    assert result.score.score == result.contract_score == 5.0
    assert result.score.judge == CONTRACT_JUDGE
    assert "LLM judge failed" in result.score.reasons[0] and "contract score alone" in result.score.reasons[0]
    assert result.cost.calls == 2


def test_garbage_then_valid_is_retried_once() -> None:
    result, backend = judge(["<think>hmm</think> well...", '{"score": 2, "reasons": ["generic"]}', "unused"])
    assert len(backend.calls) == 2 and result.llm_score == 2.0 and result.llm_failure is None
    assert result.score.score == 3.5


def test_non_number_scores_are_rejected() -> None:
    result, backend = judge(['{"score": "excellent", "reasons": []}', '{"score": true, "reasons": []}'])
    assert len(backend.calls) == 2 and result.llm_failure is not None and result.llm_score is None


def test_backend_error_is_recorded_without_retry() -> None:
    result, backend = judge([BackendError("ollama at http://127.0.0.1:9 refused the connection")])
    assert len(backend.calls) == 1 and result.llm_failure is not None
    assert "BackendError" in result.llm_failure and "127.0.0.1:9" in result.llm_failure
    assert result.score.score == 5.0


@pytest.mark.parametrize(
    ("answer", "score"),
    [
        ('{"score": 9, "reasons": []}', 5.0),
        ('{"score": 0}', 1.0),
        ('{"Score": "4", "reason": "fine"}', 4.0),
        ('{"score": "8/10", "reasons": ["x"]}', 4.0),
        ('noise {not json} then {"score": 3.5, "reasons": ["ok"]} trailing', 3.5),
        ("<think>score: 1</think>My rating is 4 out of 5.", 4.0),
        ("I would give it a score of 2.", 2.0),
        ('{"verdict": {"score": 3, "reasons": ["nested"]}}', 3.0),
    ],
)
def test_parse_verdict_accepts(answer: str, score: float) -> None:
    verdict = parse_verdict(answer)
    assert verdict is not None and verdict.score == score


@pytest.mark.parametrize(
    "answer", ["", "Great output!", '{"reasons": ["no score"]}', '{"score": null}', '{"score": NaN}', "5 stars"]
)
def test_parse_verdict_rejects(answer: str) -> None:
    assert parse_verdict(answer) is None


def test_contract_failures_lower_the_score_and_reach_the_judge() -> None:
    cut = make_run("## Commits\n- fix: planner retries\n## Go", done_reason="length")
    result, backend = judge(['{"score": 3, "reasons": ["cut off"]}'], run=cut)
    assert result.contract_score == 2.5  # truncated -1.5, sections -1
    assert result.score.score == 2.75
    assert set(result.score.failing) == {"truncated", "sections"}
    assert "failed: sections, truncated" in backend.calls[0]["prompt"]


def test_nothing_to_read_and_no_model_skip_the_llm() -> None:
    empty, backend = judge(["unused"], run=make_run(""))
    assert backend.calls == [] and empty.score.score == 1.0 and empty.llm_failure is None
    failed, backend = judge(["unused"], run=make_run("partial", status="failed", error="timeout"))
    assert backend.calls == [] and failed.score.score == 1.0
    off, backend = judge(["unused"], cfg=JudgeConfig(model="fake:judge", llm_weight=0.0))
    assert backend.calls == [] and off.score.judge == CONTRACT_JUDGE
    alone = judge_run(make_run(), TASK, CFG, None)
    assert alone.score.score == 5.0 and alone.score.judge == CONTRACT_JUDGE and alone.cost.calls == 0
    assert "no judge model" in alone.score.reasons[0]


def test_previous_outputs_feed_the_distinct_check() -> None:
    task = TaskConfig(prompt="p.md", model="m:n", expect={"distinct_from_previous": 3})
    result = judge_run(make_run(GOOD), task, CFG, None, previous_outputs=["old", GOOD])
    assert "distinct_from_previous" in result.score.failing and result.contract_score == 3.5


def test_prompt_is_bounded_for_a_50k_word_output() -> None:
    words = [f"w{i}" for i in range(50_000)]
    lines = [" ".join(words[i : i + 10]) for i in range(0, len(words), 10)]
    huge = "\n".join(lines) + "\nTHE-LAST-LINE ends mid"
    cfg = JudgeConfig(model="fake:judge", context_lines=40, max_chars=3000)
    _, backend = judge(['{"score": 2, "reasons": ["long"]}'], run=make_run(huge), cfg=cfg)
    prompt = backend.calls[0]["prompt"]
    overhead = len(default_rubric()) + 1500
    assert len(prompt) <= cfg.max_chars + overhead, len(prompt)
    assert "w0 w1 w2" in prompt and "THE-LAST-LINE ends mid" in prompt  # head and tail
    assert "w25000 " not in prompt and "omitted" in prompt
    assert "50003 words" in prompt


def test_a_huge_rubric_and_a_single_giant_line_stay_bounded() -> None:
    giant = "word " * 50_000
    cfg = JudgeConfig(model="fake:judge", context_lines=40, max_chars=2000)
    _, backend = judge(['{"score": 2, "reasons": []}'], run=make_run(giant), cfg=cfg, rubric_text="rule " * 20_000)
    assert len(backend.calls[0]["prompt"]) <= 2000 + 4000 + 1500


def test_excerpt_keeps_short_outputs_whole_and_respects_the_line_budget() -> None:
    assert excerpt("a\nb\nc", 40, 3000) == ("a\nb\nc", "the whole output")
    text = "\n".join(f"line {i}" for i in range(100))
    shown, what = excerpt(text, 10, 3000)
    assert shown.startswith("line 0\n") and "line 9\n" in shown and "line 10\n" not in shown
    assert shown.endswith("line 99") and "line 97" in shown and "line 96" not in shown and "first" in what


def test_judge_many_one_task_at_a_time_one_prompt_per_run() -> None:
    backend = ScriptedJudge(['{"score": 4, "reasons": []}'])
    other = TaskConfig(prompt="p.md", model="m:n")
    jobs = [
        JudgeJob(make_run("## Commits\nA1\n## Goals\n", "a", "a1"), TASK),
        JudgeJob(make_run("B1 output text", "b", "b1"), other),
        JudgeJob(make_run("## Commits\nA2\n## Goals\n", "a", "a2"), TASK, rubric_text="Custom rubric for a."),
    ]
    results = judge_many(jobs, CFG, backend.complete)
    assert [r.score.run_id for r in results] == ["a1", "b1", "a2"]  # the jobs' order
    prompts = [c["prompt"] for c in backend.calls]
    assert ["A1" in prompts[0], "A2" in prompts[1], "B1" in prompts[2]] == [True, True, True]  # grouped by task
    assert all(sum(tag in p for tag in ("A1", "A2", "B1")) == 1 for p in prompts)  # never one giant prompt
    assert "Custom rubric for a." in prompts[1]
    assert total_cost(results).calls == 3

"""The weekly quality gate's top 3 next fixes: asked once of the vault's LLM proposer, else from the rules.

When vault.yml's `proposers` lists an LLM proposer (the first of anthropic / ollama / openai / embedded), its
model (`handlers.proposers.llm.proposer_spec`) is asked ONCE per report, through a JSON schema, given a
bounded summary of the week (kept deltas, regressions, worst tasks with their signatures and levers). The
answer is kept only when it is whole and valid: 1–3 items, every task one of the vault's, every lever a known
one. Anything else — no LLM proposer, nothing to fix, a failed call, a cut or malformed answer — gives the
rules' list (the worst tasks' strongest signatures), and the report says which source it used and why.
Every text that came from a model or an error is scrubbed of the configured API keys.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator

from adapters.backends.messages import scrub
from domain.config import VaultConfig
from domain.runs import Completion
from handlers.proposers.validate import ANSWER_SCHEMA, completion_problem

if TYPE_CHECKING:
    from handlers.policies import Fix, WeekFacts

Complete = Callable[..., Completion]  # ModelRouter.complete(spec, prompt, options, *, json_schema=...)

LLM_PROPOSERS = ("anthropic", "ollama", "openai", "embedded")
LEVERS: tuple[str, ...] = tuple(ANSWER_SCHEMA["properties"]["lever"]["enum"])
MAX_TEXT = 400  # characters of one recommendation field
SUMMARY_CHARS = 6000
NUM_PREDICT = 1024

RECOMMEND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["recommendations"],
    "properties": {
        "recommendations": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["task", "lever", "fix", "why"],
                "properties": {
                    "task": {"type": "string", "minLength": 1, "maxLength": 100},
                    "lever": {"type": "string", "enum": list(LEVERS)},
                    "fix": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
                    "why": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
                },
            },
        }
    },
}
_VALIDATOR = Draft202012Validator(RECOMMEND_SCHEMA)

SYSTEM = (
    "You are the weekly reviewer of autovault, which improves scheduled local-LLM tasks in a personal knowledge "
    "vault one verified change at a time. From the week's summary, name the 1 to 3 most valuable next fixes, "
    "most valuable first: each for one task named in the summary, with the lever to pull ("
    + ", ".join(LEVERS) + "), the fix in one sentence, and why (the signature or regression it addresses). "
    "Answer with the JSON object only."
)


@dataclass(frozen=True)
class Recommendation:
    task: str
    lever: str
    fix: str
    why: str
    rolling: float | None = None  # the task's rolling score, when known (rules)


@dataclass(frozen=True)
class TopFixes:
    """The report's top list, where it came from (`rules` or a model spec), and why that source."""

    items: list[Recommendation]
    source: str
    reason: str = ""
    cost: str = ""


class Unusable(ValueError):
    """The model's answer cannot be used; the message says why (it goes into the report)."""


# ---- which model -----------------------------------------------------------------------------------------


def llm_proposer(config: VaultConfig) -> str | None:
    """The first LLM proposer vault.yml lists, or None (rules only)."""
    return next((p for p in config.proposers if p in LLM_PROPOSERS), None)


def secrets_of(config: VaultConfig, env: Mapping[str, str]) -> tuple[str, ...]:
    """The API keys the configured backends read: never written into a report."""
    names = (config.backends.anthropic.api_key_env, config.backends.openai.api_key_env)
    return tuple(v for v in (env.get(n) or "" for n in names if n) if len(v) >= 4)


# ---- the two sources ---------------------------------------------------------------------------------


def rules_top(facts: WeekFacts, reason: str = "") -> TopFixes:
    """The worst tasks' strongest signatures: one per task first, then further signatures to fill 3."""
    chosen: list[Fix] = []
    for fix in facts.fixes:
        if fix.task not in {f.task for f in chosen}:
            chosen.append(fix)
    chosen += [f for f in facts.fixes if f not in chosen]
    items = [Recommendation(f.task, f.lever, f.signature, f.summary, f.rolling) for f in chosen[:3]]
    return TopFixes(items, "rules", reason)


def top_fixes(facts: WeekFacts, config: VaultConfig, complete: Complete | None,
              secrets: Iterable[str] = ()) -> TopFixes:
    """The report's top 3: the LLM proposer's when configured and its answer is usable, else the rules'."""
    name = llm_proposer(config)
    if name is None or complete is None:
        return rules_top(facts, "no LLM proposer configured")
    if not facts.fixes and not facts.regressions:
        return rules_top(facts, "no failure signature or regression this week: no model asked")
    from handlers.proposers.llm import proposer_spec

    spec = proposer_spec(name, config)
    keys = tuple(secrets)
    t0 = time.perf_counter()
    try:
        completion = complete(spec, messages(facts, config, summary_chars(name, config)), call_options(name, config),
                              json_schema=RECOMMEND_SCHEMA)
    except Exception as e:  # a failed call must not cost the week its report
        return rules_top(facts, _clean(f"{spec} failed: {type(e).__name__}: {e}", keys))
    cost = (f"1 call, {completion.prompt_tokens} prompt + {completion.output_tokens} output tokens, "
            f"{time.perf_counter() - t0:.1f} s")
    try:
        items = parse_recommendations(completion, config.tasks)
    except Unusable as e:
        return rules_top(facts, _clean(f"{spec}'s answer was not used: {e}", keys))
    items = [Recommendation(r.task, r.lever, _clean(r.fix, keys), _clean(r.why, keys)) for r in items]
    return TopFixes(items, spec, "", cost)


def parse_recommendations(completion: Completion, tasks: Iterable[str]) -> list[Recommendation]:
    """1–3 schema-valid items naming existing tasks; a cut, empty or malformed answer raises `Unusable`."""
    problem = completion_problem(completion)
    if problem is not None:
        raise Unusable(f"{problem.kind}: {problem.reason}")
    try:
        data = json.loads(_unfence(completion.text))
    except json.JSONDecodeError as e:
        raise Unusable(f"malformed: answer is not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise Unusable(f"malformed: {_schema_error(errors[0])}")
    known = set(tasks)
    items = [Recommendation(r["task"], r["lever"], _line(r["fix"]), _line(r["why"])) for r in data["recommendations"]]
    unknown = sorted({r.task for r in items if r.task not in known})
    if unknown:
        raise Unusable(f"unknown task {', '.join(repr(t[:60]) for t in unknown)}; the vault's tasks: "
                       f"{', '.join(sorted(known))}")
    return items


# ---- what the model is told --------------------------------------------------------------------------------


def messages(facts: WeekFacts, config: VaultConfig, max_chars: int) -> list[dict[str, str]]:
    user = week_summary(facts, config.tasks, max_chars)
    user += "\n\nAnswer with one JSON object: {\"recommendations\": [{\"task\", \"lever\", \"fix\", \"why\"}], " \
            "1 to 3 items, best first."
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def week_summary(facts: WeekFacts, tasks: Iterable[str], max_chars: int = SUMMARY_CHARS) -> str:
    """The week in a bounded text: every section clipped by item count, the whole by `max_chars`."""
    lines = [f"Tasks: {', '.join(sorted(tasks))}", "",
             f"Kept deltas this week ({len(facts.kept)}; {facts.discarded} discarded):"]
    lines += [f"- {k.task} [{k.lever}] {_line(k.description)[:160]} (effect {_num(k.effect, True)})"
              for k in facts.kept[:10]] or ["- none"]
    lines += ["", "Regressions (last week's mean score -> this week's):"]
    lines += [f"- {t}: {_num(a)} -> {_num(b)}" for t, a, b in facts.regressions[:10]] or ["- none"]
    lines += ["", "Worst tasks (rolling score) with their failure signatures -> lever:"]
    by_task: dict[str, list[Fix]] = {}
    for f in facts.fixes:
        by_task.setdefault(f.task, []).append(f)
    for task, fixes in list(by_task.items())[:5]:
        lines.append(f"- {task} (rolling {_num(fixes[0].rolling)}):")
        lines += [f"  - {f.signature} -> {f.lever}: {_line(f.summary)[:200]}" for f in fixes[:3]]
    if not by_task:
        lines.append("- none")
    text = "\n".join(lines)
    return text if len(text) <= max_chars else text[: max_chars - 15].rstrip() + "\n[… clipped]"


def summary_chars(name: str, config: VaultConfig) -> int:
    if name == "embedded":  # a small model with a small context: a short summary
        n_ctx = config.backends.embedded.n_ctx
        return max(600, min(SUMMARY_CHARS, (n_ctx - n_ctx // 3 - 400) * 3))
    return SUMMARY_CHARS


def call_options(name: str, config: VaultConfig) -> dict[str, Any]:
    options: dict[str, Any] = {"temperature": 0.0, "num_predict": NUM_PREDICT}
    if name == "embedded":
        options["num_predict"] = min(NUM_PREDICT, config.backends.embedded.n_ctx // 3)
    elif name == "ollama":
        options["think"] = False
    return options


# ---- the report's section --------------------------------------------------------------------------------


def render_top(top: TopFixes) -> list[str]:
    """The report lines of the top list, its source line first."""
    source = f"source: {top.source}" + (f" ({top.reason})" if top.reason else "") + (
        f" — {top.cost}" if top.cost else "")
    lines = [source, ""]
    for i, r in enumerate(top.items, start=1):
        if top.source == "rules":
            lines.append(f"{i}. `{r.task}` (rolling {_num(r.rolling)}): {r.fix} → lever **{r.lever}** — {r.why}")
        else:
            lines.append(f"{i}. `{r.task}` — lever **{r.lever}**: {r.fix} (why: {r.why})")
    return lines + ([] if top.items else ["- nothing stands out: no failure signature"])


def scrub_all(text: str, secrets: Sequence[str]) -> str:
    return _clean(text, secrets)


def _clean(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        text = scrub(text, s)
    return text


def _schema_error(e: Any) -> str:
    """One short line: where, and which rule failed — never the (model-written) instance itself."""
    where = "/".join(str(p) for p in e.absolute_path) or "(root)"
    if e.validator in ("maxItems", "minItems"):
        return f"{where}: {len(e.instance)} items, the schema wants 1 to 3"
    if e.validator == "enum":
        return f"{where}: not one of {', '.join(map(str, e.validator_value))}"
    if e.validator in ("required", "additionalProperties", "type"):
        return f"{where}: {e.message[:160]}"
    return f"{where}: fails {e.validator} ({e.validator_value})"


def _line(text: str) -> str:
    return " ".join(str(text).split())


def _unfence(text: str) -> str:
    body = text.strip()
    if body.startswith("```") and body.endswith("```") and body.count("```") == 2:
        body = body[3:-3]
        body = body[body.index("\n") + 1:] if "\n" in body else body
    return body


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"

"""The `rules` proposer: each failure signature the seed article fixed by hand, mapped to that same fix.

No model is called. A rule reads the `Evidence` (signatures, runs, the texts of the files it may edit) and
returns a `Change` (new texts for some paths) or None when it does not apply. `propose(evidence)` returns
deltas best first: when two or more rules apply and none of them needs approval, their composition comes first
(the seed fixed morning-briefing's num_predict and thinking in one cycle); then each rule alone in the order of
`RULES`. Every FileEdit carries the sha256 of the text the rule read (None for a new file).

Rule table (signature → lever → edit):
    format_miss (prompt shows the format) / wrong_model on the task's model → model   → tasks.T.model: the best
                                                 ranked candidate (handlers.candidates: history, backend probe)
    wrong_model on a pool member                                         → candidates → drop it from candidates
    dead_task / outputs_never_written / blocks_without_parser            → postprocess → new script + postprocess:
    format_miss / dead_task + a tool instruction in the prompt            → prompt  → emit blocks instead
    truncated                                                            → config  → options.num_predict ×2
    thinking_burn                                                        → config  → options.think: false
    copied_example / identical_across_days with an example section       → prompt  → example → its shape in words
    code_fences                                                          → prompt  → unfence + rule
    placeholder_leak                                                     → prompt  → slots → <descriptions>
                                                                                  (leaked <slots>: lines in words)
    instruction_leak                                                     → prompt  → conditional → own sentence
  (prompt parts are found by structure: domain.prompt_shapes)
  (collector signatures are measured on a traced shadow run: handlers.collector_trace)
    section_regex_leak                                                   → script  → the selecting command passes
                                                                                  exactly the asked sections
    collector_starving                                                   → script  → its cap (head/tail/sed/awk/
                                                                                  python/knob) ×5, within num_ctx
    context_overflow, the model allows a larger num_ctx                  → config  → options.num_ctx to fit with
                                                                                  headroom, output_cap at what it holds
    context_overflow                                                     → script  → the dominant cap (or bare cat)
                                                                                  sized to fit, from measured output
    subprocess_loop                                                      → script  → one awk pass per loop item
    too_short_for_consumer / too_small_for_consumer                      → prompt+config → size rule, num_predict
    training_data_imbalanced                                             → data    → drop thin surplus, or add mined
                                                                                             minority examples
    training_data_too_few with mined examples                            → data    → append mined examples
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.yaml_edit import YamlEditError, get_value, remove_item, set_value
from domain import prompt_shapes
from domain.checks import find_fences
from domain.delta import Delta, FileEdit, Lever
from domain.ids import sha256_text
from handlers import candidates
from handlers.collector_limits import script_limits
from handlers.collector_measure import SAFETY
from handlers.evidence import Evidence
from handlers.proposers import data_fixes, fork_merge, prompt_fixes, script_fixes
from projections.globs import matches

NAME = "rules"
NUM_PREDICT_CAP = 4096
HEADROOM = 1.3  # new num_predict ≥ this × the longest complete output
NARROW = 0.5  # an overflowing cap that could not be measured is halved
CTX_HEADROOM = 1.25  # a raised num_ctx leaves room over the measured prompt + num_predict: inputs grow
CAP_STEP = 1000  # a collector output cap is rounded down to this many bytes
DATA_LATER = ("verified by the data contract (audit); its effect on the model shows only after fine-tuning, "
              "a later GPU experiment")
SOLO_LEVERS = frozenset({"model", "candidates", "data", "postprocess"})  # a hypothesis of its own: never composed


@dataclass(frozen=True)
class Change:
    rule: str
    lever: Lever
    description: str
    rationale: str
    signatures: tuple[str, ...]
    texts: dict[str, str | None]  # path -> new text (None deletes)
    tasks: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


Texts = Mapping[str, str]
Rule = Callable[[Evidence, Texts], "Change | None"]


# ---- helpers ------------------------------------------------------------------------------------------


def _path(ev: Evidence, role: str) -> str | None:
    f = ev.file(role)
    return f.path if f is not None and f.complete else None


def _config_edit(ev: Evidence, texts: Texts, key: list[str | int], value: Any) -> str | None:
    text = texts.get(ev.config_name)
    if text is None:
        return None
    try:
        new = set_value(text, ["tasks", ev.task, *key], value)
    except YamlEditError:
        return None
    return None if new == text else new


def _option(ev: Evidence, texts: Texts, name: str) -> Any:
    text = texts.get(ev.config_name)
    return get_value(text, ["tasks", ev.task, "options", name]) if text else None


def _sig_names(ev: Evidence, *names: str) -> tuple[str, ...]:
    return tuple(s.name for s in ev.signatures if s.name in names)


def _round_up(n: float, step: int = 50) -> int:
    return int(math.ceil(n / step) * step)


# ---- config rules -------------------------------------------------------------------------------------


def cut_by_a_try(ev: Evidence) -> bool:
    """A delta on this task was discarded because its answers hit num_predict: what it asks for needs room, so
    the next try carries a larger budget with it (the fix itself was not wrong)."""
    return any(t.get("outcome") == "discarded" and "regressed: truncated" in str(t.get("reason", ""))
               for t in ev.tried)


def raise_num_predict(ev: Evidence, texts: Texts) -> Change | None:
    if not (ev.has("truncated") or cut_by_a_try(ev)) or ev.has("context_overflow"):
        return None  # an overflowing prompt truncates the answer: narrow the input first
    current = _option(ev, texts, "num_predict")
    observed = max(ev.output_tokens_complete, default=0)
    sig = ev.signature("truncated")
    cut = max((sig.evidence.get("output_tokens") or [0]) if sig else [0])
    base = current if isinstance(current, int) else max(cut, 128)
    new = min(NUM_PREDICT_CAP, _round_up(max(2 * base, HEADROOM * observed)))
    if new <= base:
        return None
    text = _config_edit(ev, texts, ["options", "num_predict"], new)
    if text is None:
        return None
    return Change("raise_num_predict", "config", f"{ev.task}: num_predict {current or 'unset'}→{new}",
                  f"truncated: runs stop at the token limit ({cut} tokens); longest complete output {observed}",
                  ("truncated",), {ev.config_name: text})


def disable_thinking(ev: Evidence, texts: Texts) -> Change | None:
    if not ev.has("thinking_burn") or _option(ev, texts, "think") is False:
        return None
    text = _config_edit(ev, texts, ["options", "think"], False)
    if text is None:
        return None
    return Change("disable_thinking", "config", f"{ev.task}: think false (the seed's /no_think)",
                  "thinking_burn: the hidden reasoning trace spends the answer's num_predict budget",
                  ("thinking_burn",), {ev.config_name: text})


def _failing_models(ev: Evidence) -> set[str]:
    bad = {m for m, st in ev.model_stats.items() if st.get("runs", 0) >= 2 and st.get("pass_rate", 1.0) < 0.5}
    wrong = ev.signature("wrong_model")
    if wrong:
        bad |= set(wrong.evidence.get("bad") or [])
    return bad


PROMPT_CAUSES = ("copied_example", "placeholder_leak", "instruction_leak", "code_fences", "truncated",
                 "thinking_burn", "context_overflow", "collector_starving", "section_regex_leak")


def _only_the_model(ev: Evidence, texts: Texts) -> bool:
    """The task's model missed the format in every run (at least 3) and nothing else explains it: no signature of
    the prompt, the options or the collector, and no tool instruction for the blocks rule to rewrite."""
    st = ev.model_stats.get(str(ev.config.get("model"))) or {}
    prompt = texts.get(_path(ev, "prompt") or "", "")
    return (st.get("runs", 0) >= 3 and st.get("pass_rate") == 0 and not ev.has(*PROMPT_CAUSES)
            and not prompt_shapes.tool_calls(prompt))


def swap_model(ev: Evidence, texts: Texts) -> Change | None:
    """A model that cannot follow a format the prompt spells out: the best ranked candidate (its runs here, its
    backend's health, never one already tried on this task, a coder without history on prose last)."""
    cfg = ev.config
    model = cfg.get("model")
    prompt = texts.get(_path(ev, "prompt") or "", "")
    blocks = (cfg.get("expect") or {}).get("blocks")
    bad = _failing_models(ev)
    format_fault = ev.has("format_miss") and blocks and (prompt_fixes.shows_format(prompt, blocks["regex"])
                                                         or _only_the_model(ev, texts))
    if not (format_fault or (ev.has("wrong_model") and model in bad)):
        return None
    ranked = list(ev.candidates) or [c.as_dict() for c in candidates.rank(cfg, ev.model_stats, bad=bad)]
    pick = next((c for c in ranked if not c["excluded"] and c["model"] not in bad), None)
    if pick is None:
        return None
    target = pick["model"]
    text = _config_edit(ev, texts, ["model"], target)
    if text is None:
        return None
    why = (f"passes the contract in {pick['pass_rate']:.0%} of its {pick['runs']} runs here" if pick["runs"]
           else f"no runs here yet, backend {pick['health']}")
    left_out = [f"{c['model']} ({c['excluded']})" for c in ranked if c["excluded"] and c["model"] != model]
    return Change("swap_model", "model", f"{ev.task}: model {model}→{target}",
                  f"{', '.join(sorted(bad)) or model} miss the declared format the prompt shows; {target}: {why}"
                  + (f"; not candidates: {'; '.join(left_out)}" if left_out else ""),
                  _sig_names(ev, "format_miss", "wrong_model", "identical_across_days"), {ev.config_name: text},
                  meta={"model": target, "ranking": [c["model"] for c in ranked if not c["excluded"]]})


def _prompt_at_fault(ev: Evidence, texts: Texts) -> bool:
    """A prompt fault every model of the pool would show (a copied example, literal slots, a leaking conditional,
    a fence the template itself shows): verifying the pool before it is fixed compares models on a broken prompt."""
    prompt = texts.get(_path(ev, "prompt") or "", "")
    return ev.has("copied_example", "placeholder_leak", "instruction_leak") or (
        ev.has("code_fences") and bool(find_fences(prompt)))


def drop_candidate(ev: Evidence, texts: Texts) -> Change | None:
    """A pool member that misses the contract where the others pass leaves the pool — once the prompt is sound."""
    wrong = ev.signature("wrong_model")
    text = texts.get(ev.config_name)
    if wrong is None or text is None or _prompt_at_fault(ev, texts):
        return None
    pool = list(ev.config.get("candidates", []))
    drop = [m for m in wrong.evidence.get("bad") or [] if m in pool and m != ev.config.get("model")]
    if not drop:
        return None
    try:
        for m in drop:
            text = remove_item(text, ["tasks", ev.task, "candidates"], m)
    except YamlEditError:
        return None
    return Change("drop_candidate", "candidates", f"{ev.task}: drop {', '.join(drop)} from candidates",
                  f"wrong_model: {', '.join(drop)} miss the length/format contract where the others pass",
                  ("wrong_model",), {ev.config_name: text})


# ---- prompt rules -------------------------------------------------------------------------------------


def _prompt_change(ev: Evidence, texts: Texts, rule: str, sigs: tuple[str, ...], fix: Callable[[str], str | None],
                   description: str, rationale: str) -> Change | None:
    path = _path(ev, "prompt")
    if path is None or not sigs:
        return None
    new = fix(texts[path])
    if new is None or new == texts[path]:
        return None
    return Change(rule, "prompt", f"{ev.task}: {description}", rationale, sigs, {path: new})


def structure_only_example(ev: Evidence, texts: Texts) -> Change | None:
    """The example the output copies (found by its label, heading or tag, else by the copied lines themselves)
    becomes a description of its shape."""
    sigs = _sig_names(ev, "copied_example", "identical_across_days")
    path = _path(ev, "prompt")
    if not sigs or path is None:
        return None
    copied = ev.signature("copied_example")
    quoted = [str(c).rstrip("…") for c in (copied.evidence.get("copied") or [])] if copied else []
    example = " ".join(" ".join(prompt_fixes.example_lines(texts[path], quoted)).casefold().split())
    if not example:
        return None
    if not any(" ".join(q.casefold().split()[:8]) in example for q in quoted) and not ev.has("identical_across_days"):
        return None
    return _prompt_change(ev, texts, "structure_only_example", sigs,
                          lambda t: prompt_fixes.structure_only_example(t, quoted),
                          "example replaced by a description of its shape",
                          "the model reproduces the prompt's concrete example instead of writing about today")


def unfence(ev: Evidence, texts: Texts) -> Change | None:
    return _prompt_change(ev, texts, "unfence", _sig_names(ev, "code_fences"), prompt_fixes.remove_fences,
                          "no code fences in the template, rule against them",
                          "code_fences: prose output wrapped in fences, as the template shows")


def describe_placeholders(ev: Evidence, texts: Texts) -> Change | None:
    leak = ev.signature("placeholder_leak")
    if leak is None:
        return None
    leaked = {str(x) for x in (leak.evidence.get("in_prompt") or [])}
    blocks = (ev.config.get("expect") or {}).get("blocks")
    in_words = any(x.startswith("<") for x in leaked)  # even described slots are repeated: say the lines in words
    return _prompt_change(ev, texts, "describe_placeholders", ("placeholder_leak",),
                          lambda t: prompt_fixes.describe_slots(t, only=leaked or None, in_words=in_words,
                                                                keep=blocks["regex"] if blocks else None),
                          "template slots described" + (" in words" if in_words else "") + ", rule against "
                          "literal placeholders",
                          "placeholder_leak: the template's slot text reaches the output literally")


def plain_instructions(ev: Evidence, texts: Texts) -> Change | None:
    return _prompt_change(ev, texts, "plain_instructions", _sig_names(ev, "instruction_leak"),
                          prompt_fixes.plain_conditionals, "conditional instruction stated as its own rule",
                          "instruction_leak: the parenthetical instruction is copied into the output")


def blocks_not_tools(ev: Evidence, texts: Texts) -> Change | None:
    blocks = (ev.config.get("expect") or {}).get("blocks")
    if not blocks:
        return None
    return _prompt_change(ev, texts, "blocks_not_tools",
                          _sig_names(ev, "format_miss", "dead_task", "outputs_never_written"),
                          lambda t: prompt_fixes.blocks_instead_of_tool(t, blocks["regex"]),
                          "emit declared blocks instead of calling a tool",
                          "the prompt asks for a tool the task cannot call; the contract wants blocks")


# ---- script rules -------------------------------------------------------------------------------------


def _script_change(ev: Evidence, rule: str, sigs: tuple[str, ...], path: str, new: str | None, description: str,
                   rationale: str, **meta: Any) -> Change | None:
    if new is None:
        return None
    return Change(rule, "script", f"{ev.task}: {description}", rationale, sigs, {path: new}, meta=meta)


def _measured(ev: Evidence, texts: Texts) -> str | None:
    """The collector's path when its text is still the one measured (sizes and spans refer to that text)."""
    path = _path(ev, "collect")
    m = ev.collector
    if path is None or not m or m.get("script") != path or sha256_text(texts[path]) != m.get("script_sha"):
        return None
    return path


def explicit_section(ev: Evidence, texts: Texts) -> Change | None:
    """The command selecting sections passes exactly those the prompt asks for, whatever tool and pattern it used."""
    leak = ev.signature("section_regex_leak")
    path = _path(ev, "collect")
    if leak is None or path is None:
        return None
    titles = [str(t) for t in leak.evidence.get("asked") or []]
    level, keep = int(leak.evidence.get("level") or 2), bool(leak.evidence.get("heading_kept"))
    if not titles:  # a lint without a measurement: the one input heading the prompt names
        marks = str(leak.evidence.get("awk", "## ").split("^", 1)[-1].split(" ", 1)[0]) or "##"
        letter = str(leak.evidence.get("letter", ""))
        prompt = texts.get(_path(ev, "prompt") or "", "").lower()
        options = [h[len(marks) + 1:] for h in ev.input_headings if h.startswith(f"{marks} {letter}")]
        titles = [t for t in options if t.lower() in prompt][:1]
        level, keep = len(marks), False
    if not titles:
        return None
    leaked = ", ".join(str(t) for t in leak.evidence.get("leaked") or []) or "other sections"
    return _script_change(ev, "explicit_section", ("section_regex_leak",), path,
                          script_fixes.extract_sections(texts[path], titles, level, keep),
                          f"collector passes only {', '.join(repr(t) for t in titles)}",
                          f"section_regex_leak: {leaked} reach the context beside what the prompt asks for",
                          section=titles[0])


def _collect_line(ev: Evidence, texts: Texts, resize: Mapping[str, Any]) -> str | None:
    """vault.yml with a number on the task's collect line resized (a knob, not a script edit)."""
    collect = str(ev.config.get("collect") or "")
    start, stop = int(resize["start"]), int(resize["stop"])
    if collect[start:stop] != str(int(resize["old"]) + int(resize.get("offset") or 0)):
        return None
    return _config_edit(ev, texts, ["collect"], collect[:start] + str(resize["new"]) + collect[stop:])


def widen_starving_head(ev: Evidence, texts: Texts) -> Change | None:
    """The cap that starves the task (whatever tool holds it) grows, within the file and the room num_ctx leaves."""
    sig = ev.signature("collector_starving")
    resize = sig.evidence.get("widen") if sig is not None else None
    if sig is None or not resize or ev.has("context_overflow"):
        return None
    sigs = ("collector_starving", *_sig_names(ev, "format_miss", "identical_across_days", "empty"))
    what = f"collector `{resize['shape']}` → {resize['new']} of {sig.evidence.get('path')}"
    if resize["file"] == ev.config_name:
        text = _collect_line(ev, texts, resize)
        return None if text is None else Change("widen_head", "config", f"{ev.task}: {what}", resize["why"], sigs,
                                                {ev.config_name: text}, meta={"resize": dict(resize)})
    path = _measured(ev, texts)
    if path is None or resize["file"] != path:
        return None
    return _script_change(ev, "widen_head", sigs, path, script_fixes.resized(texts[path], resize), what,
                          f"collector_starving: {resize['why']}", file=sig.evidence.get("path"))


def context_cap(size: Mapping[str, Any], num_ctx: int) -> int | None:
    """Bytes of collector output that still fit `num_ctx` beside the template and num_predict, at the measured
    tokens per character (None when the measurement cannot say)."""
    tokens, template, chars = size.get("prompt_tokens"), size.get("template_tokens"), size.get("context_chars")
    if not tokens or template is None or not chars or tokens <= template:
        return None
    room = num_ctx - (size.get("num_predict") or 0) - template - math.ceil(SAFETY * num_ctx)
    cap = math.floor(room * chars / (tokens - template) / CAP_STEP) * CAP_STEP
    return cap if cap > chars else None


def raise_num_ctx(ev: Evidence, texts: Texts) -> Change | None:
    """An overflowing prompt that fits the model's real window: raise num_ctx instead of cutting the data, with
    headroom, and cap the collector's output at what the new window holds. The context grows when the tasks it
    reads write more (they get fixed too): past the headroom the cap cuts the context's end, where an overflow
    would cut the prompt's start — the instructions."""
    size = ev.collector.get("size") or {}
    ceiling, tokens = size.get("ceiling"), size.get("prompt_tokens")
    if not ev.has("context_overflow") or not ceiling or not tokens:
        return None
    need = min(ceiling, _round_up((tokens + (size.get("num_predict") or 0)) * CTX_HEADROOM, 256))
    if need < tokens + (size.get("num_predict") or 0) + math.ceil(SAFETY * need) or need <= (size.get("num_ctx") or 0):
        return None
    text = _config_edit(ev, texts, ["options", "num_ctx"], need)
    if text is None:
        return None
    desc = f"{ev.task}: num_ctx {size.get('num_ctx')}→{need}"
    cap = context_cap(size, need)
    if cap is not None and cap < ev.task_config().output_cap:
        capped = _config_edit(ev, {**texts, ev.config_name: text}, ["output_cap"], cap)
        if capped is not None:
            text, desc = capped, f"{desc}, collector output capped at {cap} bytes"
    return Change("raise_num_ctx", "config", desc,
                  f"context_overflow: the prompt is {tokens} tokens ({size.get('method')}); the model allows "
                  f"{ceiling} ({size.get('window')}); the cap keeps a growing context inside the new window",
                  ("context_overflow",), {ev.config_name: text}, meta={"num_ctx": need, "output_cap": cap})


def narrow_overflowing_head(ev: Evidence, texts: Texts) -> Change | None:
    """The cap (or bare `cat`) whose output dominates the context, sized from what its calls printed so the
    prompt fits; a collector that could not be measured has its largest cap halved."""
    if not ev.has("context_overflow"):
        return None
    measured = _measured(ev, texts)
    size = ev.collector.get("size") or {}
    for r in ev.collector.get("trims") or []:
        new = script_fixes.resized(texts[measured], r) if measured is not None and r["file"] == measured else None
        if new is not None and measured is not None:
            return _script_change(ev, "narrow_head", ("context_overflow",), measured, new,
                                  f"collector `{r['shape']}` → {r['new']}",
                                  f"context_overflow: {size.get('prompt_tokens')} tokens ({size.get('method')}) + "
                                  f"num_predict {size.get('num_predict')} > num_ctx {size.get('num_ctx')}; "
                                  f"{r['why']}; ~{r['tokens_after']} tokens after", resize=dict(r))
    path = _path(ev, "collect")
    if path is None or ev.collector.get("trims"):
        return None
    limits = [lim for lim in script_limits(texts[path], python=path.endswith(".py")) if lim.n >= 4]
    if not limits:
        return None
    lim = max(limits, key=lambda x: x.n)
    new_n = max(1, math.floor(lim.n * NARROW))
    return _script_change(ev, "narrow_head", ("context_overflow",), path,
                          texts[path][:lim.start] + str(new_n + lim.offset) + texts[path][lim.stop:],
                          f"collector `{lim.shape}` → {new_n} (halved: not measured)",
                          "context_overflow: the collected context fills num_ctx and the answer is cut or garbled")


def one_awk_pass(ev: Evidence, texts: Texts) -> Change | None:
    """Per-item reads of a loop (sed/grep/wc/head/cut… per file) become one awk pass per item."""
    path = _path(ev, "collect")
    sig = ev.signature("subprocess_loop")
    if path is None or sig is None:
        return None
    per, items = sig.evidence.get("per_item"), sig.evidence.get("items")
    measured = f"{per} programs per input item over {items} items" if per else "several programs per loop item"
    return _script_change(ev, "one_awk_pass", ("subprocess_loop",), path, fork_merge.merge_loop_reads(texts[path]),
                          "fewer programs per loop item (one awk pass, parameter expansions, invariants once)",
                          f"subprocess_loop: {measured}; the cost grows with the vault")


# ---- postprocessor ------------------------------------------------------------------------------------


def add_postprocessor(ev: Evidence, texts: Texts) -> Change | None:
    cfg = ev.config
    blocks = (cfg.get("expect") or {}).get("blocks")
    outputs = cfg.get("outputs") or []
    sigs = _sig_names(ev, "dead_task", "outputs_never_written", "blocks_without_parser")
    if not sigs or not blocks or cfg.get("postprocess") or not outputs:
        return None
    header = prompt_fixes.block_header(blocks["regex"])
    pattern = next((o for o in outputs if o.count("*") == 1), None)
    if header is None or pattern is None:
        return None
    script = script_fixes.postprocessor(ev.task, header, pattern)
    collect = (cfg.get("collect") or "").split()
    folder = (collect[0].rpartition("/")[0] if collect else "") or "scripts"
    path = f"{folder}/_postproc-{ev.task}.sh"
    if script is None or path in texts:
        return None
    config = _config_edit(ev, texts, ["postprocess"], path)
    if config is None:
        return None
    new: dict[str, str | None] = {path: script, ev.config_name: config}
    prompt_path = _path(ev, "prompt")
    if prompt_path is not None:
        prompt = texts[prompt_path]
        fixed = prompt_fixes.blocks_instead_of_tool(prompt, blocks["regex"])
        if fixed is None and not prompt_fixes.shows_format(prompt, blocks["regex"]):
            fixed = prompt_fixes.add_rule(prompt, prompt_fixes.block_rule(header))
        if fixed is not None and fixed != prompt:
            new[prompt_path] = fixed
    room = raise_num_predict(ev, {**texts, ev.config_name: config}) if cut_by_a_try(ev) else None
    if room is not None:  # the blocks did not fit last time: the budget grows with them
        new[ev.config_name] = room.texts[ev.config_name]
    return Change("add_postprocessor", "postprocess", f"{ev.task}: add {path} writing {pattern} from blocks"
                  + (f"; {room.description.removeprefix(f'{ev.task}: ')}" if room else ""),
                  "declared blocks but nothing turns them into the declared output files", sigs, new)


# ---- cross-task: producer too small for its consumer --------------------------------------------------


def grow_for_consumer(ev: Evidence, texts: Texts) -> Change | None:
    """A producer too thin for its consumers: the words and fact bullets they require made explicit in its prompt,
    the sections they read added as headings, and room in num_predict for the words."""
    sigs = _sig_names(ev, "too_short_for_consumer", "too_small_for_consumer")
    prompt_path = _path(ev, "prompt")
    if not sigs or prompt_path is None:
        return None
    consumers = [n for n in ev.downstream if any(n.requires.get(k) for k in ("min_words", "min_facts", "sections"))]
    if not consumers:
        return None
    need = max(consumers, key=lambda n: (n.requires.get("min_words") or 0, n.requires.get("min_facts") or 0))
    words = max(n.requires.get("min_words") or 0 for n in consumers) or None
    facts = max(n.requires.get("min_facts") or 0 for n in consumers) or None
    prompt = texts[prompt_path]
    read = list(dict.fromkeys(s for n in consumers for s in n.requires.get("sections") or []))
    shown = [s for s in read if prompt_fixes.has_heading(prompt, s)]
    new_prompt = prompt_fixes.require_size(prompt, words, facts, shown[0] if shown else None) or prompt
    new_prompt = prompt_fixes.require_sections(new_prompt, read, need.task) or new_prompt
    if new_prompt == prompt:
        return None
    new: dict[str, str | None] = {prompt_path: new_prompt}
    asked = [f"at least {words} words" if words else "", f"{facts} specific facts" if facts else "",
             f"sections {', '.join(s for s in read if s not in shown)}" if len(shown) < len(read) else ""]
    desc = f"{ev.task}: {' and '.join(a for a in asked if a)} for {', '.join(n.task for n in consumers)}"
    current = _option(ev, texts, "num_predict")
    tpw = float((need.observed or {}).get("tokens_per_word") or 1.6)
    wanted = _round_up(max(words or 0, 1) * tpw * 1.5, 100)
    if words and isinstance(current, int) and current < wanted:
        value = min(NUM_PREDICT_CAP, max(wanted, 2 * current))
        config = _config_edit(ev, texts, ["options", "num_predict"], value)
        if config is not None:
            new[ev.config_name] = config
            desc += f", num_predict {current}→{value}"
    return Change("grow_for_consumer", "mixed" if len(new) > 1 else "prompt", desc,
                  "; ".join(f"{n.task} requires {n.requires}; observed {n.observed}" for n in consumers), sigs, new,
                  tasks=(ev.task, *dict.fromkeys(n.task for n in consumers)))


# ---- training data ------------------------------------------------------------------------------------


def _data_paths(ev: Evidence) -> dict[str, str]:
    return {p: f.text for p, f in ev.files.items() if f.role == "data" and f.complete}


def rebalance_data(ev: Evidence, texts: Texts) -> Change | None:
    """A dominant label over max_class_share: drop its thinnest surplus when the set stays ≥ min_examples, else
    add mined examples of the other labels (diagnosis planned which, or recorded why neither works)."""
    sig = ev.signature("training_data_imbalanced")
    training = ev.config.get("training") or {}
    data = {p: texts[p] for p in _data_paths(ev)}
    if sig is None or not data or not training.get("label_field"):
        return None
    why = (f"label {sig.evidence['label']} is {sig.evidence['share']} of the data > {sig.evidence['max_class_share']}"
           f"; {DATA_LATER}")
    plan = ev.balance.get("plan", "drop")
    if plan == "add":
        added = list(ev.balance.get("examples") or [])
        path = sorted(data)[0]
        new = data_fixes.append_examples(texts[path], added)
        if new is None:
            return None
        labels = ", ".join(sorted({str(m.get(training["label_field"])) for m in added}))
        return Change("rebalance_data", "data", f"{ev.task}: add {len(added)} mined {labels} examples", why,
                      ("training_data_imbalanced",), {path: new},
                      meta={"added": len(added), "sources": [m.get("source") for m in added]})
    if plan != "drop":
        return None  # the diagnosis says why neither dropping nor adding can work
    result = data_fixes.drop_surplus(data, training["label_field"], str(sig.evidence["label"]),
                                     float(sig.evidence["max_class_share"]))
    if result is None:
        return None
    changed, removed = result
    return Change("rebalance_data", "data", f"{ev.task}: drop {removed} thin {sig.evidence['label']} examples", why,
                  ("training_data_imbalanced",), dict(changed), meta={"removed": removed})


def mine_data(ev: Evidence, texts: Texts) -> Change | None:
    if not ev.has("training_data_too_few") or not ev.mined:
        return None  # nothing to mine: the audit's signature stays, for a person or a later run
    data = sorted(_data_paths(ev))
    if not data:
        return None
    new = data_fixes.append_examples(texts[data[0]], list(ev.mined))
    if new is None:
        return None
    return Change("mine_data", "data", f"{ev.task}: add {len(ev.mined)} examples mined from high-scoring runs",
                  f"training_data_too_few: fewer examples than min_examples; {DATA_LATER}", ("training_data_too_few",),
                  {data[0]: new}, meta={"sources": [m.get("source") for m in ev.mined], "added": len(ev.mined)})


RULES: tuple[tuple[str, Rule], ...] = (
    ("swap_model", swap_model),
    ("drop_candidate", drop_candidate),
    ("add_postprocessor", add_postprocessor),
    ("blocks_not_tools", blocks_not_tools),
    ("raise_num_predict", raise_num_predict),
    ("disable_thinking", disable_thinking),
    ("structure_only_example", structure_only_example),
    ("unfence", unfence),
    ("describe_placeholders", describe_placeholders),
    ("plain_instructions", plain_instructions),
    ("explicit_section", explicit_section),
    ("widen_head", widen_starving_head),
    ("raise_num_ctx", raise_num_ctx),
    ("narrow_head", narrow_overflowing_head),
    ("one_awk_pass", one_awk_pass),
    ("grow_for_consumer", grow_for_consumer),
    ("rebalance_data", rebalance_data),
    ("mine_data", mine_data),
)


# ---- deltas -------------------------------------------------------------------------------------------


def base_texts(ev: Evidence) -> dict[str, str]:
    return {p: f.text for p, f in ev.files.items() if f.complete}


def to_delta(ev: Evidence, changes: list[Change]) -> Delta:
    """One Delta from one or more changes (composed in order on the same texts)."""
    final: dict[str, str | None] = {}
    for c in changes:
        final.update(c.texts)
    edits = tuple(FileEdit(path=p, before_hash=ev.files[p].sha256 if p in ev.files else None, after=t,
                           in_config=p == ev.config_name) for p, t in final.items())
    levers = {c.lever for c in changes}
    lever: Lever = next(iter(levers)) if len(levers) == 1 else "mixed"
    tasks = tuple(dict.fromkeys(t for c in changes for t in (c.tasks or (ev.task,))))
    desc = changes[0].description if len(changes) == 1 else f"{ev.task}: " + "; ".join(
        c.description.removeprefix(f"{ev.task}: ") for c in changes)
    return Delta(task=ev.task, lever=lever, description=desc, rationale=" | ".join(c.rationale for c in changes),
                 edits=edits, proposer=NAME, signatures=tuple(dict.fromkeys(s for c in changes for s in c.signatures)),
                 tasks=tasks, meta={"rules": [c.rule for c in changes],
                                    **{k: v for c in changes for k, v in c.meta.items()}})


def changes(ev: Evidence) -> list[Change]:
    """Every rule that applies to the evidence as it is, in rule order."""
    texts = base_texts(ev)
    return [c for _, rule in RULES if (c := rule(ev, texts)) is not None]


def _needs_approval(ev: Evidence, change: Change) -> bool:
    return any(p != ev.config_name and any(matches(g, p) for g in ev.approve) for p in change.texts)


def compose(ev: Evidence, applicable: list[Change]) -> list[Change]:
    """Re-run the applicable rules one after another on the evolving texts, so their edits stack."""
    texts = base_texts(ev)
    out = []
    wanted = {c.rule for c in applicable}
    for name, rule in RULES:
        if name not in wanted:
            continue
        c = rule(ev, texts)
        if c is not None:
            out.append(c)
            texts.update({p: t for p, t in c.texts.items() if t is not None})
    return out


def propose(ev: Evidence) -> list[Delta]:
    """Candidate deltas, best first; [] when no rule applies."""
    found = changes(ev)
    deltas: list[Delta] = []
    free = [c for c in found if not _needs_approval(ev, c) and c.lever not in SOLO_LEVERS]
    if len(free) >= 2:
        deltas.append(to_delta(ev, compose(ev, free)))
    deltas += [to_delta(ev, [c]) for c in found]
    seen: set[str] = set()
    unique = []
    for d in deltas:
        if d.content_hash not in seen:
            seen.add(d.content_hash)
            unique.append(d)
    return unique


__all__ = ["NAME", "RULES", "Change", "base_texts", "changes", "compose", "propose", "to_delta"]

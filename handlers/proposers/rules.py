"""The `rules` proposer: each failure signature the seed article fixed by hand, mapped to that same fix.

No model is called. A rule reads the `Evidence` (signatures, runs, the texts of the files it may edit) and
returns a `Change` (new texts for some paths) or None when it does not apply. `propose(evidence)` returns
deltas best first: when two or more rules apply and none of them needs approval, their composition comes first
(the seed fixed morning-briefing's num_predict and thinking in one cycle); then each rule alone in the order of
`RULES`. Every FileEdit carries the sha256 of the text the rule read (None for a new file).

Rule table (signature → lever → edit):
    format_miss (prompt shows the format) / wrong_model on the task's model → model   → tasks.T.model
    wrong_model on a pool member                                         → candidates → drop it from candidates
    dead_task / outputs_never_written / blocks_without_parser            → postprocess → new script + postprocess:
    format_miss + "use the X tool" in the prompt                         → prompt  → emit blocks instead
    truncated                                                            → config  → options.num_predict ×2
    thinking_burn                                                        → config  → options.think: false
    copied_example / identical_across_days with an Example block         → prompt  → structure-only example
    code_fences                                                          → prompt  → unfence + rule
    placeholder_leak                                                     → prompt  → slots → <descriptions> + rule
    instruction_leak                                                     → prompt  → conditional → own sentence
    section_regex_leak (lint)                                            → script  → explicit section boundary
    collector starving (head -N, "no trends")                            → script  → head ×5
    context_overflow with head -N                                        → script  → head ÷2
    subprocess_loop (lint)                                               → script  → one awk pass
    too_short_for_consumer / too_small_for_consumer                      → prompt+config → size rule, num_predict
    training_data_imbalanced                                             → data    → drop thin surplus examples
    training_data_too_few with mined examples                            → data    → append mined examples
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.yaml_edit import YamlEditError, get_value, remove_item, set_value
from domain.delta import Delta, FileEdit, Lever
from handlers.diagnose import Evidence
from handlers.proposers import data_fixes, prompt_fixes, script_fixes
from projections.globs import matches

NAME = "rules"
NUM_PREDICT_CAP = 4096
HEADROOM = 1.3  # new num_predict ≥ this × the longest complete output
STARVING = re.compile(
    r"\b(no (?:clear |visible )?(?:trends?|patterns?)|not enough (?:data|items|signals)|too few|"
    r"(?:appears?|seen) (?:only )?once|count=1\b)", re.IGNORECASE)
WIDEN, NARROW = 5.0, 0.5
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


def raise_num_predict(ev: Evidence, texts: Texts) -> Change | None:
    if not ev.has("truncated") or ev.has("context_overflow"):
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


def swap_model(ev: Evidence, texts: Texts) -> Change | None:
    """A model that cannot follow a format the prompt spells out: use the candidate that can."""
    cfg = ev.config
    model = cfg.get("model")
    prompt = texts.get(_path(ev, "prompt") or "", "")
    blocks = (cfg.get("expect") or {}).get("blocks")
    bad = _failing_models(ev)
    format_fault = ev.has("format_miss") and blocks and prompt_fixes.shows_format(prompt, blocks["regex"])
    if not (format_fault or (ev.has("wrong_model") and model in bad)):
        return None
    stats = ev.model_stats
    passing = sorted((m for m, st in stats.items() if m not in bad and m != model and st.get("pass_rate", 0) >= 0.5),
                     key=lambda m: (-(stats[m].get("pass_rate") or 0), -(stats[m].get("mean_score") or 0), m))
    pool = [m for m in cfg.get("candidates", []) if m not in bad and m != model]
    target = next(iter(passing), None) or next(iter(pool), None)
    if target is None:
        return None
    text = _config_edit(ev, texts, ["model"], target)
    if text is None:
        return None
    why = (f"pass rate {stats[target]['pass_rate']:.0%} in history" if target in stats
           else "the first other candidate (no history)")
    return Change("swap_model", "model", f"{ev.task}: model {model}→{target}",
                  f"{', '.join(sorted(bad)) or model} miss the declared format the prompt shows; {target}: {why}",
                  _sig_names(ev, "format_miss", "wrong_model", "identical_across_days"), {ev.config_name: text})


def drop_candidate(ev: Evidence, texts: Texts) -> Change | None:
    wrong = ev.signature("wrong_model")
    text = texts.get(ev.config_name)
    if wrong is None or text is None:
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
    sigs = _sig_names(ev, "copied_example", "identical_across_days")
    path = _path(ev, "prompt")
    if not sigs or path is None:
        return None
    example = " ".join(prompt_fixes.example_lines(texts[path]))
    copied = ev.signature("copied_example")
    quoted = [c for c in (copied.evidence.get("copied") or []) if c.strip() and c.strip()[:40] in example] if copied else []
    if not quoted and not ev.has("identical_across_days"):
        return None
    return _prompt_change(ev, texts, "structure_only_example", sigs, prompt_fixes.structure_only_example,
                          "structure-only example + do-not-copy rule",
                          "the model reproduces the prompt's concrete example instead of writing about today")


def unfence(ev: Evidence, texts: Texts) -> Change | None:
    return _prompt_change(ev, texts, "unfence", _sig_names(ev, "code_fences"), prompt_fixes.remove_fences,
                          "no code fences in the template, rule against them",
                          "code_fences: prose output wrapped in fences, as the template shows")


def describe_placeholders(ev: Evidence, texts: Texts) -> Change | None:
    return _prompt_change(ev, texts, "describe_placeholders", _sig_names(ev, "placeholder_leak"),
                          prompt_fixes.describe_slots, "template slots described, rule against literal placeholders",
                          "placeholder_leak: the template's [Slot] text reaches the output literally")


def plain_instructions(ev: Evidence, texts: Texts) -> Change | None:
    return _prompt_change(ev, texts, "plain_instructions", _sig_names(ev, "instruction_leak"),
                          prompt_fixes.plain_conditionals, "conditional instruction stated as its own rule",
                          "instruction_leak: the parenthetical instruction is copied into the output")


def blocks_not_tools(ev: Evidence, texts: Texts) -> Change | None:
    blocks = (ev.config.get("expect") or {}).get("blocks")
    if not blocks:
        return None
    return _prompt_change(ev, texts, "blocks_not_tools", _sig_names(ev, "format_miss", "dead_task"),
                          lambda t: prompt_fixes.blocks_instead_of_tool(t, blocks["regex"]),
                          "emit declared blocks instead of calling a tool",
                          "the prompt asks for a tool the task cannot call; the contract wants blocks")


# ---- script rules -------------------------------------------------------------------------------------


def _script_change(ev: Evidence, rule: str, sigs: tuple[str, ...], path: str, new: str | None, description: str,
                   rationale: str, **meta: Any) -> Change | None:
    if new is None:
        return None
    return Change(rule, "script", f"{ev.task}: {description}", rationale, sigs, {path: new}, meta=meta)


def explicit_section(ev: Evidence, texts: Texts) -> Change | None:
    leak = ev.signature("section_regex_leak")
    path = _path(ev, "collect")
    if leak is None or path is None:
        return None
    letter = str(leak.evidence.get("letter", ""))
    marks = str(leak.evidence.get("awk", "## ").split("^", 1)[-1].split(" ", 1)[0]) or "##"
    options = [h for h in ev.input_headings if h.startswith(f"{marks} {letter}")]
    prompt = texts.get(_path(ev, "prompt") or "", "").lower()
    wanted = [h for h in options if h[len(marks) + 1:].lower() in prompt] or (options if len(options) == 1 else [])
    if not wanted:
        return None
    section = wanted[0]
    return _script_change(ev, "explicit_section", ("section_regex_leak",), path,
                          script_fixes.explicit_section(texts[path], section),
                          f"collector reads only '{section}' (explicit section boundary)",
                          f"'[^{letter}]' lets every other '{marks} {letter}…' section into the context",
                          section=section)


def widen_starving_head(ev: Evidence, texts: Texts) -> Change | None:
    path = _path(ev, "collect")
    if path is None or ev.has("context_overflow"):
        return None
    said = " ".join([*ev.judge_reasons, *(r.output for r in ev.runs)])
    if not STARVING.search(said):
        return None
    for file, lines in sorted(ev.script_inputs.items()):
        scaled = script_fixes.scale_head(texts[path], WIDEN, limit=lines, file=file)
        if scaled is not None and lines >= 2 * scaled[1]:
            new, old_n, new_n = scaled
            sigs = _sig_names(ev, "format_miss", "identical_across_days", "empty") or ("collector_starving",)
            return _script_change(ev, "widen_head", sigs, path, new, f"collector head -{old_n}→-{new_n} of {file}",
                                  f"{old_n} of {lines} items cannot show a pattern; the output says so", file=file)
    return None


def narrow_overflowing_head(ev: Evidence, texts: Texts) -> Change | None:
    path = _path(ev, "collect")
    if path is None or not ev.has("context_overflow"):
        return None
    scaled = script_fixes.scale_head(texts[path], NARROW)
    if scaled is None or scaled[1] < 4:
        return None
    new, old_n, new_n = scaled
    return _script_change(ev, "narrow_head", ("context_overflow",), path, new,
                          f"collector head -{old_n}→-{new_n} per item",
                          "context_overflow: the collected context fills num_ctx and the answer is cut or garbled")


def one_awk_pass(ev: Evidence, texts: Texts) -> Change | None:
    path = _path(ev, "collect")
    if path is None or not ev.has("subprocess_loop"):
        return None
    return _script_change(ev, "one_awk_pass", ("subprocess_loop",), path, script_fixes.one_awk_pass(texts[path]),
                          "one awk pass per note instead of one sed per field",
                          "subprocess_loop: forks grow with the vault (4 sed per note)")


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
            fixed = prompt_fixes.add_rule(prompt, f"Output each item as a block starting with a line "
                                                  f"{header[0]}<title>{header[1]}.")
        if fixed is not None and fixed != prompt:
            new[prompt_path] = fixed
    return Change("add_postprocessor", "postprocess", f"{ev.task}: add {path} writing {pattern} from blocks",
                  "declared blocks but nothing turns them into the declared output files", sigs, new)


# ---- cross-task: producer too small for its consumer --------------------------------------------------


def grow_for_consumer(ev: Evidence, texts: Texts) -> Change | None:
    sigs = _sig_names(ev, "too_short_for_consumer", "too_small_for_consumer")
    prompt_path = _path(ev, "prompt")
    if not sigs or prompt_path is None:
        return None
    consumers = [n for n in ev.downstream if n.requires.get("min_words") or n.requires.get("min_facts")]
    if not consumers:
        return None
    need = max(consumers, key=lambda n: (n.requires.get("min_words") or 0, n.requires.get("min_facts") or 0))
    words, facts = need.requires.get("min_words"), need.requires.get("min_facts")
    sections = [s for s in need.requires.get("sections") or [] if s.lower() in texts[prompt_path].lower()]
    new_prompt = prompt_fixes.require_size(texts[prompt_path], words, facts, sections[0] if sections else None)
    if new_prompt is None:
        return None
    new: dict[str, str | None] = {prompt_path: new_prompt}
    current = _option(ev, texts, "num_predict")
    tpw = float((need.observed or {}).get("tokens_per_word") or 1.6)
    wanted = _round_up(max(words or 0, 1) * tpw * 1.5, 100)
    desc = f"{ev.task}: at least {words} words and {facts} specific facts for {need.task}"
    if isinstance(current, int) and current < wanted:
        value = min(NUM_PREDICT_CAP, max(wanted, 2 * current))
        config = _config_edit(ev, texts, ["options", "num_predict"], value)
        if config is not None:
            new[ev.config_name] = config
            desc += f", num_predict {current}→{value}"
    return Change("grow_for_consumer", "mixed" if len(new) > 1 else "prompt", desc,
                  f"{need.task} requires {need.requires}; observed {need.observed}", sigs, new,
                  tasks=(ev.task, need.task))


# ---- training data ------------------------------------------------------------------------------------


def _data_paths(ev: Evidence) -> dict[str, str]:
    return {p: f.text for p, f in ev.files.items() if f.role == "data" and f.complete}


def rebalance_data(ev: Evidence, texts: Texts) -> Change | None:
    sig = ev.signature("training_data_imbalanced")
    training = ev.config.get("training") or {}
    data = {p: texts[p] for p in _data_paths(ev)}
    if sig is None or not data or not training.get("label_field"):
        return None
    result = data_fixes.drop_surplus(data, training["label_field"], str(sig.evidence["label"]),
                                     float(sig.evidence["max_class_share"]))
    if result is None:
        return None
    changed, removed = result
    return Change("rebalance_data", "data", f"{ev.task}: drop {removed} thin {sig.evidence['label']} examples",
                  f"label {sig.evidence['label']} is {sig.evidence['share']} of the data > {sig.evidence['max_class_share']}"
                  f"; {DATA_LATER}",
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

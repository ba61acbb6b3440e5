"""What a delta changes, as verification weighs it: the candidate's vault.yml validated where the live one sits,
the contract both arms are judged by (the task's own, plus what its consumers require), the models a pool
delta moves, whether the collector changed, and whether the candidate is simpler (fewer words in the task's
prompt and scripts).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from adapters.config_loader import ConfigError
from domain.config import BlockSpec, TaskConfig, VaultConfig
from handlers.ports import LoadConfig
from handlers.tasks import consumers_of
from projections.globs import overlaps


def load_config_text(text: str, live: VaultConfig, root: Path, env: Mapping[str, str], *,
                     load: LoadConfig) -> VaultConfig:
    """Validate vault.yml text as if it sat where the live one does, but with its vault folder at `root`
    (a shadow holding the delta's other files), so a config naming a file the same delta creates is valid.
    Raises ConfigError naming the live vault.yml. Writes only in a temp folder and in `root`."""
    cfg_dir, vault = live.source.resolve().parent, live.root.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="autovault-config-"))
    made: Path | None = None
    try:
        if cfg_dir == vault or vault in cfg_dir.parents:  # vault.yml inside the vault: the same place in `root`
            folder = root / cfg_dir.relative_to(vault)
            if not folder.exists():
                folder.mkdir(parents=True)
                made = folder
            path = folder / f".autovault-check-{uuid.uuid4().hex}.yml"
        else:  # the vault below or beside vault.yml's folder: a symlink at the vault's relative place
            parts = Path(os.path.relpath(vault, cfg_dir)).parts
            ups = next((i for i, part in enumerate(parts) if part != ".."), len(parts))
            base = tmp.joinpath(*[f"u{i}" for i in range(ups)])
            base.mkdir(parents=True, exist_ok=True)
            link = tmp.joinpath(*parts[ups:])
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(root, target_is_directory=True)
            path = base / live.source.name
        path.write_text(text, encoding="utf-8")
        try:
            return load(path, dict(env))
        except ConfigError as e:
            raise ConfigError([dataclasses.replace(p, file=str(live.source)) if p.file == str(path) else p
                               for p in e.problems]) from None
        finally:
            path.unlink(missing_ok=True)
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


BULLET_BLOCKS = r"^\s*(?:[-*+]|\d+[.)])\s+\S"  # what `requires.min_facts` counts (domain.checks.count_bullets)


def verification_contract(config: VaultConfig, name: str) -> TaskConfig:
    """The task as judged in verification: its own `expect`, plus what its consumers `require` of its output
    (more words, sections, more fact bullets) — so a delta that feeds a starving downstream task shows as an
    improvement. Facts become a bullet-block minimum: raised on the task's own block clause when that counts
    bullets, added when it has none (a clause of another kind cannot say it, and is left as it is)."""
    task = config.task(name)
    needs = consumers_of(config, name, overlaps).values()
    words = [r.min_words for r in needs if r.min_words is not None]
    sections = [s for r in needs for s in r.sections if s not in task.expect.sections]
    facts = max((r.min_facts for r in needs if r.min_facts is not None), default=0)
    blocks = _fact_blocks(task.expect.blocks, facts)
    if not words and not sections and blocks is task.expect.blocks:
        return task
    least = max([*words, task.expect.min_words or 0])
    expect = task.expect.model_copy(update={"min_words": least or None, "blocks": blocks,
                                            "sections": [*task.expect.sections, *dict.fromkeys(sections)]})
    return task.model_copy(update={"expect": expect})


def _fact_blocks(blocks: BlockSpec | None, facts: int) -> BlockSpec | None:
    if not facts:
        return blocks
    if blocks is None:
        return BlockSpec(regex=BULLET_BLOCKS, min=facts)
    counts_bullets = bool(re.search(blocks.regex, "- a fact", re.MULTILINE)) and not re.search(
        blocks.regex, "a line of prose", re.MULTILINE)
    if not counts_bullets or blocks.min >= facts:
        return blocks
    return blocks.model_copy(update={"min": facts, "max": None if blocks.max is None else max(blocks.max, facts)})


def pool_slots(base: Sequence[str], cand: Sequence[str]) -> tuple[list[str], list[str]]:
    """For a candidate-pool delta, the models each arm runs: the runs that change hands. Dropping a model
    compares it with the pool that takes over its runs; adding one compares it with the pool it joins.
    Equal pools: ([], []) — both arms run the task's `model`."""
    if list(base) == list(cand):
        return [], []
    removed = [m for m in base if m not in cand]
    added = [m for m in cand if m not in base]
    return (removed or list(base)), (added or list(cand))


def task_scripts(task: TaskConfig) -> set[str]:
    """The files whose size the simplicity criterion weighs: the prompt, the collector, the postprocessor."""
    return {task.prompt} | command_paths(task.collect) | command_paths(task.postprocess)


def command_paths(command: str | None) -> set[str]:
    """The words of a script command line that may be vault files (the script and its file arguments)."""
    if not command:
        return set()
    try:
        return {t for t in shlex.split(command) if not t.startswith("-")}
    except ValueError:
        return set()


def collector_paths(task: TaskConfig) -> set[str]:
    return command_paths(task.collect)


def collector_changed(base: TaskConfig, cand: TaskConfig, edited: Sequence[str]) -> bool:
    if (base.collect, base.output_cap) != (cand.collect, cand.output_cap):
        return True
    return bool(collector_paths(base) & set(edited))


def simpler(before: Mapping[str, str | None], after: Mapping[str, str | None],
            eligible: set[str] | None = None) -> bool:
    """Fewer words across the edited vault files, all of them the task's prompt or scripts (`eligible`); a
    delta that only edits config, or that edits anything else (training data, other tasks' files), is not."""
    if not after or (eligible is not None and not set(after) <= eligible):
        return False
    words = sum(len((before.get(p) or "").split()) for p in after)
    return sum(len((t or "").split()) for t in after.values()) < words


__all__ = ["BULLET_BLOCKS", "collector_changed", "collector_paths", "command_paths", "load_config_text", "pool_slots",
           "simpler", "task_scripts", "verification_contract"]

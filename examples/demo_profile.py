"""Write the demo's vault.yml: the example vault's config with a profile that lets a loop finish in minutes
on two CPU cores.

    python examples/demo_profile.py vault.yml .autovault/demo/vault.yml

Why this profile: a delta is kept only on repeated, paired runs. With a sampling model or an LLM judge in
the score, the noise floor calls for 24–96 inputs per arm (`domain.acceptance`), about 70 embedded runs per
cycle. Greedy decoding with a repeat penalty (`backends.embedded`: every run of one input is the same text)
and contract-only judging (`judge.llm_weight: 0`: the score is a function of that text) make the A/A
comparison measure zero spread, so verification decides on 3 paired inputs — the same rule, fewer samples.
Every other setting is the example vault's own. Edits keep vault.yml's comments (`adapters.yaml_edit`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from adapters.config_loader import ConfigError, load_config
from adapters.yaml_edit import set_value

PROFILE: dict[tuple[str, ...], Any] = {
    ("vault",): "vault",  # the copy beside the demo's vault.yml
    ("store",): "sqlite:///events.db",
    ("backends", "embedded", "temperature"): 0,
    ("backends", "embedded", "repeat_penalty"): 1.15,
    ("judge", "llm_weight"): 0,
}


def demo_config(text: str) -> str:
    for path, value in PROFILE.items():
        text = set_value(text, list(path), value)
    return text


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: demo_profile.py SOURCE_VAULT_YML DEMO_VAULT_YML", file=sys.stderr)
        return 2
    source, target = Path(argv[0]), Path(argv[1])
    target.write_text(demo_config(source.read_text(encoding="utf-8")), encoding="utf-8")
    try:
        load_config(target)
    except ConfigError as e:
        print(f"demo_profile: {target} does not validate: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

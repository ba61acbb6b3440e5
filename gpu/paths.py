"""Where experiment artifacts live, and how a model spec names an adapter.

Artifacts (the peft adapter, the GGUF LoRA, the Ollama Modelfile, checkpoints, the loss plot) go to
`<experiments>/<experiment key>/`, outside the vault: a discarded adapter must never sit among the vault's
files, and the daemon may write there under systemd. `<experiments>` is $AUTOVAULT_EXPERIMENTS, else the
folder of a SQLite store + `/experiments` (writable by the service: the store is), else `.autovault/experiments`
beside vault.yml. The CLI and the daemon compute the same folder from the same vault.yml and environment.

A task uses a kept adapter through its model spec: `embedded:smollm2-135m+lora:<experiment key>` (or
`+lora:/path/to/adapter.gguf`); the embedded backend resolves the key to `<experiments>/<key>/adapter.gguf`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

LORA = "+lora:"
ADAPTER_FILE = "adapter.gguf"


def experiments_dir(config_source: Path, store_url: str, env: Mapping[str, str]) -> Path:
    if env.get("AUTOVAULT_EXPERIMENTS"):
        return Path(env["AUTOVAULT_EXPERIMENTS"]).expanduser()
    if store_url.startswith("sqlite:///"):
        db = store_url[len("sqlite:///"):].partition("?")[0]
        path = Path(db).expanduser()
        if not path.is_absolute():
            path = config_source.resolve().parent / path
        return path.parent / "experiments"
    return config_source.resolve().parent / ".autovault" / "experiments"


def split_spec(name: str) -> tuple[str, str | None]:
    """`smollm2-135m+lora:KEY` → ('smollm2-135m', 'KEY'); a name without an adapter → (name, None)."""
    base, sep, ref = name.partition(LORA)
    return (base, ref) if sep and ref else (name, None)


def with_adapter(model_spec: str, ref: str) -> str:
    """The task's model spec pointing at an adapter (any adapter it named before is replaced)."""
    return split_spec(model_spec)[0] + LORA + ref


def adapter_file(experiments: Path | None, ref: str) -> Path:
    """An adapter reference → its GGUF file: a path ending in .gguf as given, else an experiment key."""
    if ref.endswith(".gguf"):
        return Path(ref).expanduser()
    if experiments is None:
        raise FileNotFoundError(f"adapter {ref!r}: no experiments folder is known to resolve it")
    return experiments / ref / ADAPTER_FILE


__all__ = ["ADAPTER_FILE", "LORA", "adapter_file", "experiments_dir", "split_spec", "with_adapter"]

"""Which configured Anthropic models the installed client says are deprecated: hosted models retire on a date,
and a vault that names one stops improving overnight without any change of its own."""

from __future__ import annotations

from collections.abc import Iterable

CURRENT_DEFAULT = "claude-sonnet-5-5"


def retiring(models: Iterable[str]) -> dict[str, str]:
    """model → the end-of-life date the installed `anthropic` client announces, for the deprecated ones."""
    try:  # the table lives in a private module of the client; without it there is nothing to warn about
        from anthropic._data import DEPRECATED_MODELS
    except ImportError:
        return {}
    table = {str(k): str(v) for k, v in dict(DEPRECATED_MODELS).items()}
    return {m: table[m] for m in models if m in table}


def anthropic_models(specs: Iterable[str | None], default: str) -> list[str]:
    """Anthropic model names among `backend:name` specs, plus the backend's default model."""
    names = [default]
    for spec in specs:
        if spec and spec.startswith("anthropic:"):
            names.append(spec.split(":", 1)[1])
    return sorted(set(names))

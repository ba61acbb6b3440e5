"""Constrained strings of vault.yml: checks that need only the text, so any code building a config gets them.

Checks that need the disk (does the file exist, is it inside the vault root) live in `adapters.config_checks`.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

from domain.schedule import parse_schedule

TASK_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
OUTPUT_PLACEHOLDERS = ("date", "name")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def check_schedule(value: str) -> str:
    parse_schedule(value)
    return value


def check_task_name(value: str) -> str:
    if not TASK_NAME.fullmatch(value):
        raise ValueError(f"task name {value!r} must be lowercase letters, digits and '-', not starting with '-'")
    return value


def check_vault_glob(value: str) -> str:
    """Relative to the vault root and unable to climb out of it (pathlib globs take no absolute patterns)."""
    if not value.strip():
        raise ValueError("empty pattern")
    if value.startswith(("/", "~", "\\")) or re.match(r"[A-Za-z]:[\\/]", value):
        raise ValueError(f"pattern {value!r} must be relative to the vault root, not absolute")
    depth = 0
    for part in PurePosixPath(value).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise ValueError(f"pattern {value!r} leads outside the vault")
    return value


def check_output_pattern(value: str) -> str:
    check_vault_glob(value)
    unknown = [n for n in _PLACEHOLDER.findall(value) if n not in OUTPUT_PLACEHOLDERS]
    if unknown:
        raise ValueError(f"output {value!r} uses {{{unknown[0]}}}; only {{date}} and {{name}} are filled in")
    rest = _PLACEHOLDER.sub("", value)
    if "{" in rest or "}" in rest:
        raise ValueError(f"output {value!r} has an unmatched brace")
    return value


def check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def check_store_url(value: str) -> str:
    if value.startswith("sqlite:///"):
        if not value[len("sqlite:///") :].partition("?")[0]:
            raise ValueError(f"store {value!r} names no database file")
        return value
    if re.match(r"postgresql(\+[a-z0-9_]+)?://.", value):
        return value
    raise ValueError(f"store {value!r} must start with sqlite:/// or postgresql:// (or postgresql+psycopg://)")


ScheduleSpec = Annotated[str, AfterValidator(check_schedule)]
TaskName = Annotated[str, AfterValidator(check_task_name)]
VaultGlob = Annotated[str, AfterValidator(check_vault_glob)]
OutputPattern = Annotated[str, AfterValidator(check_output_pattern)]
HttpUrl = Annotated[str, AfterValidator(check_http_url)]
StoreUrl = Annotated[str, AfterValidator(check_store_url)]

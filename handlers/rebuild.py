"""The vault's files as they were at an event position, rebuilt from the events and the blob store.

For each file the task's `Changed` events name, the hash it had at position P is the `after` of the last change
at or before P (or the `before` of the first one after it). Its text is found, in this order, as
1. a blob stored under that very hash (the daemon keeps every watched file's text there),
2. the live file, when it still has that hash,
3. a text inside the delta blob of the cycle that wrote or replaced it (a delta keeps both sides),
4. a recorded diff applied forwards or backwards from a neighbouring text already found —
and every text found is checked against the hash; a file that cannot be rebuilt is an error naming it, never a
guess. vault.yml as of P is the text of the `Vault` version on record then (`handlers.config_history`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from domain.ids import sha256_text
from domain.patch import PatchError, apply_diff
from projections.changes import Change

ReadBlob = Callable[[str], str | None]
ReadLive = Callable[[str], str | None]


class RebuildError(LookupError):
    """A file's text at some point is not on record."""


@dataclass(frozen=True)
class Step:
    position: int
    before: str | None
    after: str | None
    diff_hash: str | None
    cycle: str | None


@dataclass(frozen=True)
class ConfigVersion:
    position: int
    text_hash: str  # sha256 of vault.yml as loaded
    blob: str | None  # the blob of its (password-masked) text


def file_steps(changes: Iterable[Change], config_file: str) -> dict[str, list[Step]]:
    """path -> its changes in order (vault.yml left out: `ConfigVersion`s say it better)."""
    out: dict[str, list[Step]] = {}
    for c in changes:
        for f in c.files:
            if f.path != config_file:
                out.setdefault(f.path, []).append(Step(c.position, f.before, f.after, f.diff_hash, c.cycle))
    return out


class VaultAt:
    """Rebuilds vault files and vault.yml as of any position (see the module docstring)."""

    def __init__(self, steps: Mapping[str, Sequence[Step]], configs: Sequence[ConfigVersion], *, live: ReadLive,
                 live_config: str | None, blob: ReadBlob, delta_texts: Callable[[str], Iterable[str]]) -> None:
        self.steps = {p: sorted(s, key=lambda x: x.position) for p, s in steps.items()}
        self.configs = sorted(configs, key=lambda c: c.position)
        self.live = live
        self.live_config = live_config
        self.blob = blob
        self.delta_texts = delta_texts
        self._known: dict[str, str] = {}  # sha256 -> text, every text found so far

    @property
    def paths(self) -> list[str]:
        return sorted(self.steps)

    def hash_at(self, path: str, position: int) -> str | None:
        steps = self.steps.get(path, [])
        done = [s for s in steps if s.position <= position]
        if done:
            return done[-1].after
        return steps[0].before if steps else None

    def files_at(self, position: int) -> dict[str, str | None]:
        """Every file the task's changes name, as of `position` (None: the file did not exist then)."""
        return {path: self.text(path, self.hash_at(path, position)) for path in self.steps}

    def config_at(self, position: int) -> str | None:
        """vault.yml's text as of `position`; None when it is the live one (or none is on record before it)."""
        done = [c for c in self.configs if c.position <= position]
        if not done:
            return None
        version = done[-1]
        if self.live_config is not None and sha256_text(self.live_config) == version.text_hash:
            return None
        text = self.blob(version.blob) if version.blob else None
        if text is None:
            raise RebuildError(f"vault.yml as of #{version.position}: its text is not in the blob store")
        return text

    # ---- finding a text for a hash -------------------------------------------------------------------

    def text(self, path: str, digest: str | None) -> str | None:
        if digest is None:
            return None
        found = self._known.get(digest) or self._direct(path, digest)
        if found is None:
            self._walk(path)
            found = self._known.get(digest)
        if found is None:
            raise RebuildError(f"{path}: no text on record for version {digest[:12]} (no blob, no delta, and no "
                               "recorded diff leads to it)")
        return found

    def _remember(self, text: str | None, digest: str | None = None) -> str | None:
        if text is None:
            return None
        h = sha256_text(text)
        if digest is not None and h != digest:
            return None
        self._known[h] = text
        return text

    def _direct(self, path: str, digest: str) -> str | None:
        for source in (lambda: self.blob(digest), lambda: self.live(path)):
            text = self._remember(source(), digest)
            if text is not None:
                return text
        for step in self.steps.get(path, []):
            if step.cycle is not None and digest in (step.before, step.after):
                for candidate in self.delta_texts(step.cycle):
                    self._remember(candidate)
                if digest in self._known:
                    return self._known[digest]
        return None

    def _walk(self, path: str) -> None:
        """Apply recorded diffs from texts already known until no new text is found."""
        steps = self.steps.get(path, [])
        live = self.live(path)
        self._remember(live)
        for s in steps:  # seed with any side found directly
            for h in (s.before, s.after):
                if h is not None and h not in self._known:
                    self._direct(path, h)
        progress = True
        while progress:
            progress = False
            for s in steps:
                diff = self.blob(s.diff_hash) if s.diff_hash else None
                if diff is None:
                    continue
                for have, want, reverse in ((s.before, s.after, False), (s.after, s.before, True)):
                    if want is None or want in self._known or (have is not None and have not in self._known):
                        continue
                    try:
                        made = apply_diff(self._known.get(have) if have else None, diff, reverse=reverse)
                    except PatchError:
                        continue
                    if self._remember(made, want) is not None:
                        progress = True


def delta_texts_of(read_blob: ReadBlob, cycle_blob: Callable[[str], str | None]) -> Callable[[str], list[str]]:
    """cycle key -> every text its recorded delta holds (the texts it was made against and its new texts)."""

    def texts(cycle: str) -> list[str]:
        digest = cycle_blob(cycle)
        raw = read_blob(digest) if digest else None
        if raw is None:
            return []
        try:
            data = json.loads(raw)
        except ValueError:
            return []
        out = [e.get("after") for e in data.get("edits", [])] + list((data.get("before") or {}).values())
        return [t for t in out if isinstance(t, str)]

    return texts

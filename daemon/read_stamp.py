"""A stamp of what a full read of the vault derived, so that the next `status` can answer with the standard library.

Opening a vault for reading (`daemon.read_models`) loads vault.yml through pydantic, checks it against the disk
and reads the read models through SQLAlchemy: about a second of imports for a query that takes milliseconds.
When that read finds the write side with nothing to do, it leaves this stamp in the user's cache folder: what it
derived from vault.yml (the task names, the config hashes that must be on record, the read models' table shapes,
the database to open) under a key of everything that derivation read — vault.yml's bytes, the environment
variables that override it, every entry of the vault tree (name, mode, inode; a file's size, mtime, ctime too) and
autovault's own files and installed packages. `daemon.quick_status` recomputes the key: equal, and it reads the
database with its bare driver (the live checks — journals, positions, config on record — still run there);
different, missing or unreadable, and the command takes the full path, which writes a new stamp.

Every input is hashed before the full path reads it, so a change made meanwhile leaves a key that the next read
no longer matches; an entry modified in the last `RACY_NS` (one clock tick could hide a second change, as git's
"racily clean" files) means no stamp this time, and a folder reached through a symlink means none at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from adapters.config_env import DEFAULT_STORE, ENV_OVERRIDES, resolve_store

STAMP_VERSION: Final = 1
RACY_NS: Final = 2_000_000_000
PRE_READ_BYTES: Final = 1 << 20  # as `adapters.config_loader.MAX_BYTES`: a larger vault.yml is refused there
STATE_DIR: Final = ".autovault"  # the store, apply journals, demo runs: state, never an input of vault.yml
_PACKAGES: Final = ("domain", "projections", "handlers", "adapters", "daemon")
_KEY_ENV: Final = (*dict.fromkeys(var for var, _ in ENV_OVERRIDES), "HOME")  # HOME: `vault: ~/notes`


@dataclass(frozen=True)
class Place:
    """Where a vault's inputs are, as vault.yml names them."""

    config: str  # vault.yml, absolute, symlinks resolved
    vault: str  # the vault root as vault.yml names it, absolute; the loader resolves its symlinks
    store: str  # the store URL as the loader resolves it (a relative SQLite path made absolute)


@dataclass(frozen=True)
class Pending:
    """A full read's inputs, hashed before it loaded them."""

    place: Place
    root: str  # `place.vault` resolved, when the key was made
    key: str


@dataclass(frozen=True)
class Stamp:
    place: Place
    key: str
    db: dict[str, str]  # `adapters.raw_db.connect_info`: never a password
    journals: str  # where apply journals live (`adapters.atomic.journals_waiting`)
    fingerprints: dict[str, str]  # read model → table-shape fingerprint
    subjects: dict[str, str]  # config subject → hash that must be on record
    tasks: tuple[str, ...]


def before_load(config: Path, env: Mapping[str, str] | None = None) -> Pending | None:
    """Hash a vault's inputs before the full path loads them; None when vault.yml cannot be pre-read (the
    loader then says what is wrong) or the inputs cannot be stamped now (a racy entry, a linked folder)."""
    env = os.environ if env is None else env
    place = _pre_read(config, env)
    if place is None:
        return None
    root = os.path.realpath(place.vault)
    key = inputs_key(place, env, racy_after=time.time_ns() - RACY_NS)
    return Pending(place, root, key) if key is not None else None


def _pre_read(config: Path, env: Mapping[str, str]) -> Place | None:
    """`vault:` and `store:` read as the loader reads them; a guess, which `matches` checks against the loaded
    config before anything is written."""
    import yaml

    try:
        source = config.resolve()
        if source.stat().st_size > PRE_READ_BYTES:
            return None  # the loader refuses it, and says why
        data = yaml.safe_load(source.read_bytes())
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("vault"), str):
        return None
    base = source.parent
    store = (env.get("AUTOVAULT_STORE") or "").strip() or data.get("store") or DEFAULT_STORE
    if not isinstance(store, str):
        return None
    vault = os.path.abspath(base / os.path.expanduser(data["vault"]))
    return Place(str(source), vault, resolve_store(store, base))


def matches(pending: Pending, root: Path, store: str) -> bool:
    """Did the pre-read find what the loader found?"""
    return pending.root == str(root) and pending.place.store == store


def inputs_key(place: Place, env: Mapping[str, str], *, racy_after: int | None = None) -> str | None:
    """One hash of everything a full read derives its answer from; None when the vault cannot be walked, a
    folder in it is a symlink, or (with `racy_after`) an entry is newer than that."""
    try:
        with open(place.config, "rb") as text:
            config_sha = hashlib.file_digest(text, "sha256").hexdigest()
        root = os.path.realpath(place.vault)
        tree = tree_digest(root, _store_files(place.store), racy_after)
    except OSError:
        return None
    if tree is None:
        return None
    inputs = {"v": STAMP_VERSION, "config": place.config, "config_sha": config_sha, "root": root, "tree": tree,
              "env": {var: env.get(var, "") for var in _KEY_ENV}, "code": code_digest()}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _store_files(store: str) -> frozenset[str]:
    """A SQLite store kept inside the vault changes with every event: not an input."""
    if not store.startswith("sqlite:///"):
        return frozenset()
    path = store.removeprefix("sqlite://").partition("?")[0]
    return frozenset(os.path.realpath(path + suffix) for suffix in ("", "-wal", "-shm", "-journal"))


def tree_digest(root: str, skip: frozenset[str], racy_after: int | None) -> str | None:
    """Every entry under `root` (its state folders and `skip` aside), in name order; None for a linked folder or
    (with `racy_after`) a file modified after that."""
    digest = hashlib.sha256()
    folders = [root]
    while folders:
        with os.scandir(folders.pop()) as found:
            entries = sorted(found, key=lambda e: e.name)
        for entry in entries:
            if entry.path in skip or (entry.name == STATE_DIR and entry.is_dir(follow_symlinks=False)):
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = os.stat(entry.path)
                except OSError:
                    target = None  # dangling: the loader reports it if vault.yml names it
                if target is not None and stat.S_ISDIR(target.st_mode):
                    return None  # what lies behind a linked folder is not walked: never stamp it
                if target is not None and not _fold(digest, entry.path + " ->", target, racy_after):
                    return None
            if not _fold(digest, entry.path, st, racy_after):
                return None
            if stat.S_ISDIR(st.st_mode):
                folders.append(entry.path)
    return digest.hexdigest()


def _fold(digest: Any, path: str, st: os.stat_result, racy_after: int | None) -> bool:
    """Fold one entry; False when it is racily new. A folder's listing is walked, so its own times (which a
    temporary file or the store's journal moves) say nothing more."""
    digest.update(os.fsencode(path))
    if stat.S_ISDIR(st.st_mode):
        digest.update(f"\0{st.st_mode}\0{st.st_ino}\n".encode())
        return True
    if racy_after is not None and st.st_mtime_ns >= racy_after:
        return False
    digest.update(f"\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n".encode())
    return True


def code_digest() -> str:
    """autovault's own files (code, rubrics, schemas) and the installed packages, by name, size and mtime."""
    digest = hashlib.sha256(sys.version.encode())
    home = Path(__file__).resolve().parents[1]
    for package in _PACKAGES:
        for folder, subfolders, files in os.walk(home / package):
            subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
            for name in sorted(files):
                st = os.stat(os.path.join(folder, name))
                digest.update(f"{folder}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode(errors="surrogateescape"))
    for entry in sys.path:  # an install or upgrade adds and removes folders here, which changes its mtime
        if entry.endswith("-packages") and os.path.isdir(entry):
            digest.update(f"{entry}\0{os.stat(entry).st_mtime_ns}\n".encode(errors="surrogateescape"))
    return digest.hexdigest()


def stamp_file(config: str, env: Mapping[str, str] | None = None) -> Path:
    """The stamp of one vault.yml, in the user's cache folder."""
    env = os.environ if env is None else env
    cache = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "autovault" / "status" / f"{hashlib.sha256(config.encode()).hexdigest()[:32]}.json"


def save(stamp: Stamp, env: Mapping[str, str] | None = None) -> None:
    """Write the stamp (owner-only, replaced whole); a cache that cannot be written is no error."""
    target = stamp_file(stamp.place.config, env)
    with contextlib.suppress(OSError):
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".stamp-")  # created 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(asdict(stamp), out, sort_keys=True)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise


def load(config: Path, env: Mapping[str, str] | None = None) -> Stamp | None:
    """The stamp of `config`, if there is a readable one of this version."""
    try:
        source = str(config.resolve())
        raw = json.loads(stamp_file(source, env).read_text(encoding="utf-8"))
        stamp = Stamp(place=Place(**raw.pop("place")), **{**raw, "tasks": tuple(raw["tasks"])})
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return stamp if stamp.place.config == source else None

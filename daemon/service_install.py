"""`autovault service install [--user]`: render systemd/autovault.service with this machine's paths.

The unit gets absolute paths only (systemd has no working directory or PATH to resolve against): the
venv's `autovault`, vault.yml and the folders the daemon writes (ReadWritePaths through ProtectSystem=strict):
the vault root, the folder of vault.yml (a kept config change replaces the file atomically: a temp file and a
rename there), the journal folder `.autovault` at the apply root (the folder holding vault and vault.yml) and
a SQLite store outside the vault. A folder inside another listed one is left out. The file is written atomically and never replaces a different unit
unless `force=True`; the caller prints `InstallResult.commands` for the user to run (we do not run
systemctl: installing a service is the user's decision, and the manager may be on another bus).

User unit (`user=True`): no User= (the user manager runs it as that user) and no ordering on
network-online.target (a system target a user manager cannot see); PrivateUsers=yes in the template is what
lets a user manager apply ProtectSystem=, PrivateTmp=, PrivateDevices= and the Protect* settings.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from adapters.atomic import write_atomic
from adapters.config_loader import load_config
from domain.config import VaultConfig
from handlers.apply import apply_root

UNIT_NAME = "autovault.service"
TEMPLATE = Path(__file__).resolve().parent.parent / "systemd" / UNIT_NAME
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
_USER_DROPPED = re.compile(r"^(?:(?:User|Group)=.*|(?:After|Wants)=network-online\.target)\n", re.MULTILINE)
_UNSAFE = re.compile(r'["\\\n$;]')


class ServiceInstallError(RuntimeError):
    """The unit cannot be written; str() is one line with the fix."""


@dataclass(frozen=True)
class InstallResult:
    path: Path  # the unit file written
    changed: bool  # False when an identical unit was already there
    user: bool
    unit: str  # the rendered text
    commands: tuple[str, ...]  # what the user runs next, in order
    warnings: tuple[str, ...] = ()

    def instructions(self) -> str:
        head = f"{'wrote' if self.changed else 'unchanged'} {self.path}"
        return "\n".join([head, *(f"  {c}" for c in self.commands), *(f"warning: {w}" for w in self.warnings)])


def user_unit_dir(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "systemd" / "user"


def find_executable() -> Path:
    """The `autovault` beside the running interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "autovault"
    if beside.is_file() and os.access(beside, os.X_OK):
        return Path(os.path.abspath(beside))
    found = shutil.which("autovault")
    if found:
        return Path(os.path.abspath(found))
    raise ServiceInstallError(
        "autovault executable not found beside the interpreter or on PATH — fix: install autovault into a venv "
        "(pip install -e .) or pass exec_path"
    )


def commands(user: bool, unit: str = "autovault") -> tuple[str, ...]:
    ctl, journal = ("systemctl --user", "journalctl --user") if user else ("sudo systemctl", "journalctl")
    steps = [f"{ctl} daemon-reload && {ctl} enable --now {unit}", f"{journal} -u {unit} -f"]
    if user:
        steps.append("loginctl enable-linger $USER   # keep it running while you are logged out")
    return tuple(steps)


def _quote(path: Path, what: str) -> str:
    text = str(path)
    if not path.is_absolute():
        raise ServiceInstallError(f"{what}: {text!r} is not absolute — fix: give an absolute path")
    if _UNSAFE.search(text):
        raise ServiceInstallError(
            f'{what}: {text!r} contains a character systemd would interpret (" \\ $ ; newline) — fix: move it to a plain path'
        )
    text = text.replace("%", "%%")
    return f'"{text}"' if any(c.isspace() for c in text) else text


def _store_folder(store: str) -> Path | None:
    """The folder of a SQLite store."""
    url = make_url(store)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(os.path.abspath(url.database)).parent


def writable_folders(config: VaultConfig) -> list[Path]:
    """What the daemon writes besides the vault, minus what a listed folder (or the vault) already covers."""
    vault = Path(os.path.abspath(config.root))
    wanted = [Path(os.path.abspath(config.source)).parent, Path(os.path.abspath(apply_root(config))) / ".autovault",
              _store_folder(str(config.store))]
    out: list[Path] = []
    for folder in wanted:
        if folder is None or any(folder == c or c in folder.parents for c in [vault, *out]):
            continue
        out = [c for c in out if folder not in c.parents]
        out.append(folder)
    return out


def _warnings(folders: list[Path]) -> tuple[str, ...]:
    home = Path.home()
    return tuple(f"{f} becomes writable for the service because vault.yml lives there — move vault.yml into the "
                 "vault or a folder of its own for a tighter unit" for f in folders if f in (home, Path("/")))


def _service_user(vault: Path, service_user: str | None) -> str:
    name = service_user or pwd.getpwuid(vault.stat().st_uid).pw_name
    if name == "root":
        raise ServiceInstallError(
            f"{vault}: owned by root, so the service would run as root — fix: chown the vault to the account "
            "that should run autovault, or pass the user name"
        )
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*\$?", name):
        raise ServiceInstallError(f"user {name!r} is not a valid user name — fix: pass an existing account name")
    return name


def render_unit(
    template: str,
    *,
    exec_path: Path,
    config_path: Path,
    vault: Path,
    state: list[Path],
    user: bool,
    service_user: str | None = None,
) -> str:
    """Fill the placeholders; for a user unit also drop what a user manager cannot honour."""
    state_paths = " ".join("-" + _quote(p, "writable folder") for p in state)
    values = {
        "@EXEC@": _quote(exec_path, "executable"),
        "@CONFIG@": _quote(config_path, "config"),
        "@VAULT@": _quote(vault, "vault"),
        "@STATE@": state_paths,
        "@USER@": service_user or "",
    }
    text = template
    if user:
        text = _USER_DROPPED.sub("", text).replace("WantedBy=multi-user.target", "WantedBy=default.target")
    elif not service_user:
        raise ServiceInstallError("a system unit needs User= — fix: pass the account that should run autovault")
    lines = text.splitlines(keepends=True)
    for key, value in values.items():  # comments keep the placeholder names they document
        lines = [line if line.startswith("#") else line.replace(key, value) for line in lines]
    text = "".join(lines)
    text = re.sub(r"^(ReadWritePaths=.*?) +$", r"\1", text, flags=re.MULTILINE)
    return text


def install_unit(
    config_path: Path | str,
    *,
    user: bool,
    unit_dir: Path | str | None = None,
    exec_path: Path | str | None = None,
    force: bool = False,
    service_user: str | None = None,
) -> InstallResult:
    """Write the rendered unit; raise ServiceInstallError (one line) when it cannot or would clobber one."""
    config = Path(os.path.abspath(config_path))
    loaded = load_config(config)  # ConfigError (one line per problem) for a vault.yml the daemon could not run
    vault = Path(os.path.abspath(loaded.root))
    executable = Path(os.path.abspath(exec_path)) if exec_path else find_executable()
    if not (executable.is_file() and os.access(executable, os.X_OK)):
        raise ServiceInstallError(f"{executable}: not an executable file — fix: pass the venv's bin/autovault")
    if not TEMPLATE.is_file():
        raise ServiceInstallError(
            f"{TEMPLATE}: unit template missing — fix: run from an autovault checkout (pip install -e .)"
        )
    state = writable_folders(loaded)
    journal = Path(os.path.abspath(apply_root(loaded))) / ".autovault"
    if journal in state:
        journal.mkdir(exist_ok=True)  # ReadWritePaths needs it to exist when the service starts
    unit = render_unit(
        TEMPLATE.read_text(),
        exec_path=executable,
        config_path=config,
        vault=vault,
        state=state,
        user=user,
        service_user=None if user else _service_user(vault, service_user),
    )
    target = Path(unit_dir or (user_unit_dir() if user else SYSTEM_UNIT_DIR)) / UNIT_NAME
    changed = _write(target, unit, force)
    return InstallResult(target, changed, user, unit, commands(user), _warnings(state))


def _write(target: Path, unit: str, force: bool) -> bool:
    try:
        current = target.read_bytes()
    except FileNotFoundError:
        write_atomic(target, unit, expected_hash=None)
        return True
    if current == unit.encode():
        return False
    if not force:
        raise ServiceInstallError(
            f"{target}: a different unit is already installed — fix: compare it with the new one, "
            "then re-run with --force to replace it"
        )
    write_atomic(target, unit, expected_hash=hashlib.sha256(current).hexdigest())
    return True

"""The sandbox vault scripts run in (adapters.sandbox, adapters.confine), exercised with real processes: what a
confined script may write, that it has no network, that it cannot reach the daemon, that a sandbox which
cannot be made refuses to run anything, and how the runner and vault.yml's `sandbox:` knobs use it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters import confine, subprocesses
from adapters import sandbox as sb
from adapters.config_loader import ConfigError, load_config
from adapters.runner import TaskRunner
from adapters.sandbox import Confinement, SandboxPolicy, launch, output_dirs, policy_of
from adapters.subprocesses import run_script, script_env
from adapters.workspace import ShadowWorkspace
from domain.config import TaskConfig
from domain.runs import Completion
from handlers.collector_cost import collector_cpu
from testbed.safety_vault import Listener

pytestmark = pytest.mark.skipif(sb.unavailable_reason() is not None, reason=str(sb.unavailable_reason()))


def sh(script: str, confinement: Confinement | None, cwd: Path) -> tuple[int | None, str, str]:
    result = run_script(["sh", "-c", script], cwd=cwd, env=script_env(os.environ), timeout=30, output_cap=1 << 20,
                        confinement=confinement)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


@pytest.fixture
def place(tmp_path: Path) -> tuple[Path, Path]:
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    return inside, outside


@pytest.fixture
def listener() -> Iterator[Listener]:
    port = Listener()
    yield port
    port.close()


WRITES = [
    ("create a file", "echo x > {outside}/a"),
    ("append to a file", "echo x >> {outside}/existing"),
    ("truncate a file", ": > {outside}/existing"),
    ("make a folder", "mkdir {outside}/d"),
    ("remove a file", "rm {outside}/existing"),
    ("make a symlink", "ln -s /etc/passwd {outside}/l"),
    ("make a fifo", "mkfifo {outside}/f"),
    ("move a file out", "echo x > {inside}/m && mv {inside}/m {outside}/m"),
    ("hard-link a file out", "echo x > {inside}/h && ln {inside}/h {outside}/h"),
    ("write through a symlink", "ln -s {outside}/existing {inside}/via && echo x >> {inside}/via"),
    ("python open", "python3 -c \"open('{outside}/p', 'w').write('x')\""),
    ("cp into", "cp /etc/hostname {outside}/c"),
    ("touch a new file", "touch {outside}/new"),
]


@pytest.mark.parametrize("what,command", WRITES, ids=[w for w, _ in WRITES])
def test_a_confined_script_cannot_change_anything_outside_its_folders(place: tuple[Path, Path], what: str,
                                                                      command: str) -> None:
    inside, outside = place
    (outside / "existing").write_text("kept\n")
    before = sorted((p.name, p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"") for p in outside.iterdir())
    code, _, err = sh(command.format(inside=inside, outside=outside), Confinement((inside,)), inside)
    assert "denied" in err or "not permitted" in err or "Errno" in err, err
    assert code != 0, what
    after = sorted((p.name, p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"") for p in outside.iterdir())
    assert after == before, what


def test_a_confined_script_works_normally_inside_its_folders(place: tuple[Path, Path]) -> None:
    inside, _ = place
    script = ("set -e; mkdir -p a/b; echo one > a/b/x; echo two >> a/b/x; mv a/b/x a/y; ln -s y a/z; cat a/z; "
              "t=$(mktemp); echo tmp > $t; cat $t; echo quiet > /dev/null; echo err > /dev/stderr; "
              "echo out > /dev/stdout; rm -r a; awk 'BEGIN{print \"awk\" > \"/dev/stderr\"}'; "
              "python3 -c 'import subprocess; print(subprocess.run([\"echo\", \"child\"], capture_output=True, "
              "text=True).stdout.strip())'")
    code, out, err = sh(script, Confinement((inside,)), inside)
    assert code == 0, err
    assert out.split() == ["one", "two", "tmp", "out", "child"] and "err" in err and "awk" in err
    assert list(inside.iterdir()) == []


def test_the_private_tmpdir_is_writable_and_removed_afterwards(place: tuple[Path, Path]) -> None:
    inside, _ = place
    code, out, _ = sh('echo x > "$TMPDIR/t" && echo "$TMPDIR"', Confinement((inside,)), inside)
    tmp = Path(out.strip())
    assert code == 0 and tmp.name.startswith("autovault-tmp-") and not tmp.exists()


NETWORK = [
    ("tcp connect", "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 3)'"),
    ("tcp via bash", "bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}'"),
    ("udp", "python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b\"x\", "
            "(\"127.0.0.1\", {port}))'"),
    ("ipv6", "python3 -c 'import socket; socket.socket(socket.AF_INET6)'"),
    ("unix socket", "python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"/run/x.sock\")'"),
    ("tcp listen", "python3 -c 'import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen()'"),
]


@pytest.mark.parametrize("what,command", NETWORK, ids=[w for w, _ in NETWORK])
def test_a_confined_script_has_no_network(place: tuple[Path, Path], listener: Listener, what: str,
                                          command: str) -> None:
    inside, _ = place
    code, _, err = sh(command.format(port=listener.port), Confinement((inside,)), inside)
    assert code != 0 and ("Permission denied" in err or "not permitted" in err), (what, err)
    assert listener.accepted == 0


def test_network_true_leaves_the_network_open(place: tuple[Path, Path], listener: Listener) -> None:
    inside, outside = place
    command = NETWORK[0][1].format(port=listener.port)
    code, _, err = sh(command, Confinement((inside,), network=True), inside)
    assert code == 0, err
    code, _, _ = sh(f"echo x > {outside}/a", Confinement((inside,), network=True), inside)
    assert code != 0  # the file system stays confined


def test_a_confined_script_cannot_signal_or_trace_the_daemon(place: tuple[Path, Path]) -> None:
    inside, _ = place
    me = os.getpid()
    code, out, _ = sh(f"kill -0 {me} && echo signalled; python3 -c \"import ctypes; "
                      f"print('attached' if ctypes.CDLL(None).ptrace(16, {me}, None, None) == 0 else '')\"; "
                      f"head -c1 /proc/{me}/mem && echo mem; true", Confinement((inside,)), inside)
    assert code == 0 and "attached" not in out and "mem" not in out
    if confine.landlock_abi() >= 6:
        assert "signalled" not in out


def test_a_sandbox_that_cannot_be_made_runs_nothing(place: tuple[Path, Path]) -> None:
    """The launcher under a filter that forbids Landlock (as an old systemd unit's SystemCallFilter would):
    it says so in one line and exits without running the command."""
    inside, _ = place
    canary = inside / "ran"
    launcher = Confinement((inside,)).launcher(["sh", "-c", f"touch {canary}"])
    then = "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
    proc = subprocess.run([sys.executable, "-c", denying(444, then), str(Path(confine.__file__).parents[1]),
                           *launcher[1:]], capture_output=True, text=True, timeout=60)
    assert proc.returncode == confine.REFUSED and not canary.exists()
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(confine.MARK) and "Landlock is unavailable" in line and "it was not run" in line


def denying(syscall: int, then: str) -> str:
    """Python source that forbids one system call to itself and its children (EPERM), then runs `then`."""
    return ("import os, sys; sys.path.insert(0, sys.argv[1]); from adapters import confine as c; "
            "c._check(c._libc().prctl(38, 1, 0, 0, 0), 'nnp'); "
            f"_, ref = c._program([(0x20, 0, 0, 0), (0x15, 0, 1, {syscall}), (0x06, 0, 0, 0x00050001), "
            "(0x06, 0, 0, 0x7fff0000)]); c._check(c._libc().prctl(22, 2, ref, 0, 0), 'seccomp'); " + then)


@pytest.mark.parametrize("large", [False, True], ids=["forked-child", "launcher"])
def test_a_child_that_cannot_confine_itself_never_execs(place: tuple[Path, Path], large: bool) -> None:
    """Landlock available to prepare a ruleset but not to enforce it: the forked child fails before exec, and so
    does the launcher a large process starts its scripts through — the same one-line refusal."""
    inside, _ = place
    canary = inside / "ran"
    then = ("from adapters import subprocesses; from adapters.sandbox import Confinement, SandboxUnavailable\n"
            f"subprocesses.LARGE_PROCESS_BYTES = {0 if large else 1 << 60}\n"
            "try:\n"
            f"    subprocesses.run_script(['sh', '-c', 'touch {canary}'], cwd=sys.argv[2], env=dict(os.environ), "
            "timeout=30, output_cap=99, confinement=Confinement((sys.argv[2],)))\n"
            "except SandboxUnavailable as e:\n    print(e)")
    proc = subprocess.run([sys.executable, "-c", denying(446, "\n" + then).replace("; \n", "\n"),
                           str(Path(confine.__file__).parents[1]), str(inside)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(confine.MARK) and "it was not run" in proc.stdout and not canary.exists()


def test_the_runner_refuses_to_run_a_script_it_cannot_confine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = vault(tmp_path, "#!/bin/sh\ntouch ran\necho context\n")
    monkeypatch.setattr(sb, "unavailable_reason", lambda: "Landlock is unavailable (test)")
    run = TaskRunner(root, Model()).run("t", task(), date="2026-03-18")
    assert run.status == "failed" and run.error is not None and not (root / "ran").exists()
    assert run.error.startswith("collect: scripts/c.sh was not run: autovault sandbox: cannot confine scripts")
    assert "\n" not in run.error
    assert collector_cpu(root, "scripts/c.sh", day="2026-03-18", task="t", timeout=10, confine=sb.confined,
                         base_env=os.environ) is None
    assert not (root / "ran").exists()
    live = TaskRunner(root, Model(), sandbox=SandboxPolicy(live=False)).run("t", task(), date="2026-03-18")
    assert live.status == "ok" and (root / "ran").exists()  # `sandbox.live: false`: live runs as before


def test_a_large_process_confines_its_scripts_through_the_launcher(place: tuple[Path, Path],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Past LARGE_PROCESS_BYTES a script starts through the launcher instead of a forked preexec_fn, confined alike
    (its refusal: `test_a_child_that_cannot_confine_itself_never_execs`)."""
    inside, outside = place
    monkeypatch.setattr(subprocesses, "LARGE_PROCESS_BYTES", 0)
    script = f"echo hi; touch {outside}/escaped; touch {inside}/ok"
    res = run_script(["sh", "-c", script], cwd=inside, env=dict(os.environ), timeout=30, output_cap=99,
                     confinement=Confinement((inside,)))
    assert res.stdout == b"hi\n" and (inside / "ok").exists() and not (outside / "escaped").exists()


class Model:
    def complete(self, model: str, prompt: object, options: dict[str, object], **_: object) -> Completion:
        return Completion(text="an answer", done_reason="stop", prompt_tokens=3, output_tokens=2, model=model)


def task(**kw: object) -> TaskConfig:
    return TaskConfig.model_validate({"prompt": "p.md", "model": "ollama:x", "collect": "scripts/c.sh",
                                      "outputs": ["Out/{date}.md"], **kw})


def vault(tmp_path: Path, script: str) -> Path:
    root = tmp_path / "vault"
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "c.sh").write_text(script)
    (root / "p.md").write_text("{context}\n")
    return root


BREACH = ('#!/bin/sh\necho "$AUTOVAULT_DATE" > Out/note.txt && echo out-ok\n'
          'echo x > "$VAULT_ROOT/p2.md" && echo vault-ok\n'
          'echo x > {outside}/o && echo outside-ok\n'
          'python3 -c \'import socket; socket.create_connection(("127.0.0.1", {port}), 3)\' 2>/dev/null && echo net-ok\n'
          'echo done\n')


def test_live_and_shadow_runs_follow_the_policy(tmp_path: Path, listener: Listener) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = vault(tmp_path, BREACH.format(outside=outside, port=listener.port))
    (root / "Out").mkdir()

    def ran(policy: SandboxPolicy, shadow: bool = False) -> set[str]:
        runner = TaskRunner(root, Model(), sandbox=policy)
        run = runner.run("t", task(), date="2026-03-18", shadow=shadow)
        assert run.status == "ok", run.error
        return {line for line in run.context.split() if line.endswith("-ok")}

    assert ran(SandboxPolicy()) == {"out-ok", "vault-ok"}  # default: the vault, no network
    assert ran(SandboxPolicy(writable="outputs")) == {"out-ok"}  # only the outputs' folders
    assert ran(SandboxPolicy(network=True)) == {"out-ok", "vault-ok", "net-ok"}
    assert ran(SandboxPolicy(write=(outside,))) == {"out-ok", "vault-ok", "outside-ok"}
    assert ran(SandboxPolicy(live=False)) == {"out-ok", "vault-ok", "outside-ok", "net-ok"}
    for policy in (SandboxPolicy(), SandboxPolicy(live=False, network=True, write=(outside,))):
        assert ran(policy, shadow=True) == {"out-ok", "vault-ok"}  # a shadow: only itself, never the network


def test_a_failed_confined_script_says_it_was_sandboxed(tmp_path: Path) -> None:
    root = vault(tmp_path, "#!/bin/sh\necho x > /etc/autovault-test || exit 4\n")
    run = TaskRunner(root, Model()).run("t", task(), date="2026-03-18")
    assert run.error is not None and "exited 4" in run.error
    assert "sandboxed: writes only to the vault and $TMPDIR, no network; see `sandbox:` in vault.yml" in run.error


def test_the_cost_measurement_of_a_collector_is_confined_to_its_shadow(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = vault(tmp_path, f"#!/bin/sh\ntouch {outside}/measured\necho x\n")
    with ShadowWorkspace.create(root) as ws:
        collector_cpu(ws.root, "scripts/c.sh", day="2026-03-18", task="t", timeout=10, confine=sb.confined,
                      base_env=os.environ)
    assert not (outside / "measured").exists()


def test_output_folders_are_the_literal_part_of_each_pattern(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    got = output_dirs(root, ["Briefings/{date}.md", "Knowledge/seed--*.md", "a/b/{name}/x.md", "top.md", "../x/y.md"])
    assert got == (root / "Briefings", root / "Knowledge", root / "a" / "b", root)
    assert (root / "a" / "b").is_dir()


def test_launch_without_a_confinement_changes_nothing() -> None:
    with launch(["true"], {"A": "1"}, None) as (argv, env):
        assert argv == ["true"] and env == {"A": "1"}


def test_vault_yml_sandbox_knobs(tmp_path: Path) -> None:
    (tmp_path / "p.md").write_text("x")
    base = "vault: .\ntasks:\n  t: {prompt: p.md, model: 'ollama:x'}\n"
    cfg = tmp_path / "vault.yml"
    cfg.write_text(base)
    assert policy_of(load_config(cfg, {}).sandbox) == SandboxPolicy()
    cfg.write_text(base + "sandbox: {live: false, network: true, writable: outputs, write: ['/var/cache/x', '~/c']}\n")
    policy = policy_of(load_config(cfg, {}).sandbox)
    assert (policy.live, policy.network, policy.writable) == (False, True, "outputs")
    assert policy.write == (Path("/var/cache/x"), Path("~/c").expanduser())
    for bad, word in (("{writable: everything}", "writable"), ("{write: [cache]}", "absolute"), ("{nework: true}", "nework")):
        cfg.write_text(base + f"sandbox: {bad}\n")
        with pytest.raises(ConfigError, match=word):
            load_config(cfg, {})


def test_the_launcher_needs_only_the_standard_library() -> None:
    """It runs with -I -S before every script: nothing of ours, no third-party package, not even typing."""
    proc = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", str(Path(confine.__file__)), "--", "true"],
                          capture_output=True, text=True, timeout=60)
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert proc.returncode == 0 and "ctypes" in imported
    assert not imported & {"typing", "adapters", "pydantic", "dataclasses", "pathlib"}, imported

"""The Linux binary runs anywhere its CPU runs Linux, needing no system libc.

Each test starts the committed binary in one hostile setting and checks that relay really worked:
`--version` matches the sources and a `hook` run registers a session in the store. Cases needing
root, unshare, chroot, qemu or a prepared Debian 11 root skip with the reason when those are
missing (pytest -ra prints it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from binary_support import (
    BIN,
    add_busybox_musl,
    fresh_copy,
    hook_input,
    in_root,
    linux_binary,
    make_root,
    require_root,
    require_tool,
    require_unshare,
    source_version,
)
from conftest import file_registry

NOBODY = 54321  # a uid/gid with no passwd entry


def as_nobody(setpriv: str) -> list[str]:
    """argv prefix running a command as NOBODY with no supplementary groups."""
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def registered(store: Path) -> dict:
    return file_registry(store)["agents"]


def check_in_root(root: Path, env: dict[str, str]) -> None:
    """`--version` and a hook run inside the root (with exactly `env`); the store is /tmp/store."""
    version = in_root(root, ["/relay", "--version"], env=env)
    assert version.returncode == 0, version.stderr.decode()
    assert version.stdout.decode().strip() == source_version()
    hook = in_root(root, ["/relay", "hook"], env={**env, "AGENT_RELAY_HOME": "/tmp/store"}, input=hook_input("/tmp"))
    assert hook.returncode == 0, hook.stderr.decode()
    assert hook.stderr == b"", hook.stderr.decode()
    assert len(registered(root / "tmp" / "store")) == 1


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A world-readable temp dir (pytest's tmp_path is 0700: other uids cannot enter it)."""
    path = Path(tempfile.mkdtemp(prefix="relay-port-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_empty_chroot(tmp_path: Path) -> None:
    """Only the binary, /tmp, /dev/null and /proc: no libc, no shell, no passwd, no locales."""
    root = make_root(tmp_path / "root", linux_binary())
    check_in_root(root, env={"LANG": "en_US.UTF-8"})
    # With no HOME and no passwd it fell back to a private per-uid dir under /tmp.
    cache = root / "tmp" / "session-relay-0"
    assert cache.is_dir() and (cache.stat().st_mode & 0o777) == 0o700


def test_busybox_musl_chroot(tmp_path: Path) -> None:
    """An Alpine-like root: busybox sh and musl, no glibc, no C.UTF-8; started from the shell."""
    root = make_root(tmp_path / "root", linux_binary())
    add_busybox_musl(root)
    env = {"PATH": "/bin", "HOME": "/root", "LANG": "en_US.UTF-8"}
    check_in_root(root, env=env)
    shell = in_root(root, ["/bin/sh", "-c", "/relay --version && echo via-sh"], env=env)
    assert shell.stdout.decode().split() == [*source_version().split(), "via-sh"]
    assert (root / "root" / ".cache" / "session-relay").is_dir()


def test_debian_11(tmp_path: Path) -> None:
    """glibc 2.31 (older than the build host's): the bundled loader and libc are used."""
    require_unshare()
    bullseye = Path(os.environ.get("RELAY_TEST_DEBIAN11_ROOT", "/var/cache/relay-tests/bullseye"))
    if not (bullseye / "etc" / "debian_version").exists():
        pytest.skip(f"no Debian 11 root at {bullseye} (.ci/run makes it with debootstrap)")
    assert (bullseye / "etc" / "debian_version").read_text().startswith("11")
    root = tmp_path / "root"
    # A throwaway copy of the shared root keeps the cached one clean (and costs ~1 s).
    subprocess.run(["cp", "-a", str(bullseye), str(root)], check=True)
    make_root(root, linux_binary())
    env = {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    check_in_root(root, env=env)
    shell = in_root(root, ["/bin/sh", "-c", "ldd --version | head -1; /relay --version"], env=env)
    out = shell.stdout.decode()
    assert "2.31" in out and source_version() in out, out


def test_env_i_on_the_host(tmp_path: Path) -> None:
    """`env -i` on this host (Debian 12 here and in CI, the issue's "Debian 12" case): no PATH, HOME,
    TMPDIR or locale at all."""
    binary = linux_binary()
    store = tmp_path / "store"
    result = subprocess.run(
        ["env", "-i", f"AGENT_RELAY_HOME={store}", str(binary), "hook"],
        input=hook_input(str(tmp_path)),
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert len(registered(store)) == 1


@pytest.fixture
def nobody_tmp() -> Iterator[None]:
    """Held while a test uses NOBODY's fixed dirs /tmp/session-relay-NOBODY and /dev/shm/...: one test
    plants a foreign dir there, another expects a fresh one. The lock is machine-wide (flock on a file
    in /tmp), so xdist's workers and other checkouts' runs on this machine take turns."""
    import fcntl

    with open(f"/tmp/relay-tests-uid-{NOBODY}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.mark.usefixtures("nobody_tmp")
def test_uid_without_passwd_entry_or_home(shared_dir: Path) -> None:
    """`docker run --user N`: no HOME and getpwuid() fails -> a private dir under /tmp."""
    require_root()
    setpriv = require_tool("setpriv")
    binary = fresh_copy(linux_binary(), shared_dir / "relay")
    store = shared_dir / "store"
    store.mkdir()
    os.chown(store, NOBODY, NOBODY)
    cache = Path(f"/tmp/session-relay-{NOBODY}")
    shutil.rmtree(cache, ignore_errors=True)
    try:
        result = subprocess.run(
            [*as_nobody(setpriv), "env", "-i", f"AGENT_RELAY_HOME={store}", str(binary), "hook"],
            input=hook_input(str(shared_dir)),
            capture_output=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert len(registered(store)) == 1
        assert cache.stat().st_uid == NOBODY and (cache.stat().st_mode & 0o777) == 0o700
    finally:
        shutil.rmtree(cache, ignore_errors=True)


@pytest.mark.usefixtures("nobody_tmp")
def test_foreign_tmp_dir_is_not_trusted(shared_dir: Path) -> None:
    """A per-uid cache dir planted under /tmp by someone else is skipped, never executed from."""
    require_root()
    setpriv = require_tool("setpriv")
    binary = fresh_copy(linux_binary(), shared_dir / "relay")
    planted = Path(f"/tmp/session-relay-{NOBODY}")
    shutil.rmtree(planted, ignore_errors=True)
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)  # owned by root, writable by all: an attacker's dir
    try:
        result = subprocess.run(
            [*as_nobody(setpriv), "env", "-i", str(binary), "--version"],
            capture_output=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert list(planted.iterdir()) == []
        assert Path(f"/dev/shm/session-relay-{NOBODY}").is_dir()  # the next candidate
    finally:
        shutil.rmtree(planted, ignore_errors=True)
        shutil.rmtree(f"/dev/shm/session-relay-{NOBODY}", ignore_errors=True)


def run_in_namespace(setup: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
    """Run argv after the shell commands `setup` in a private mount namespace."""
    unshare = require_unshare()
    return subprocess.run(
        [unshare, "--mount", "sh", "-c", f'{setup} && exec "$@"', "sh", *argv],
        capture_output=True,
        check=False,
        **kw,
    )


def test_read_only_install_dir(tmp_path: Path) -> None:
    """A checkout on a read-only mount: launcher and binary still run (the cache is elsewhere)."""
    binary = linux_binary()
    install = tmp_path / "install"
    (install / "bin").mkdir(parents=True)
    shutil.copy2(BIN.parent / "launcher", install / "launcher")
    shutil.copy2(binary, install / "bin" / binary.name)
    store = tmp_path / "store"
    result = run_in_namespace(
        f"mount --bind {install} {install} && mount -o remount,bind,ro {install} {install}"
        f" && ! touch {install}/probe 2>/dev/null",
        ["env", f"XDG_CACHE_HOME={tmp_path}/cache", f"AGENT_RELAY_HOME={store}", str(install / "launcher"), "hook"],
        input=hook_input(str(tmp_path)),
    )
    assert result.returncode == 0, result.stderr.decode()
    assert len(registered(store)) == 1


@pytest.mark.parametrize("tmp_options", ["ro", "noexec"])
def test_tmp_read_only_or_noexec_falls_back(tmp_path: Path, tmp_options: str) -> None:
    """No HOME, no passwd entry and /tmp unusable: the bundle goes to /dev/shm instead."""
    require_root()
    setpriv = require_tool("setpriv")
    binary = Path(tempfile.mkdtemp(prefix="relay-port-", dir="/var/tmp")) / "relay"
    binary.parent.chmod(0o755)
    fresh_copy(linux_binary(), binary)
    store = binary.parent / "store"
    store.mkdir()
    os.chown(store, NOBODY, NOBODY)
    # Fresh tmpfs mounts on /tmp and /dev/shm, visible only inside the namespace.
    setup = f"mount -t tmpfs -o {tmp_options},mode=1777 tmpfs /tmp && mount -t tmpfs -o mode=1777 tmpfs /dev/shm"
    script = f"{binary} hook && ls -ld /dev/shm/session-relay-{NOBODY} && ls /tmp | wc -l"
    try:
        result = run_in_namespace(
            setup,
            [*as_nobody(setpriv), "env", "-i", f"AGENT_RELAY_HOME={store}", "/bin/sh", "-c", script],
            input=hook_input("/"),
        )
        assert result.returncode == 0, result.stderr.decode()
        lines = result.stdout.decode().splitlines()
        assert lines[0].startswith("drwx------"), lines  # the private fallback dir
        assert lines[-1].strip() == "0", "nothing may be written to an unusable /tmp"
        assert len(registered(store)) == 1
    finally:
        shutil.rmtree(binary.parent, ignore_errors=True)


def test_xdg_cache_on_noexec_mount_is_skipped(tmp_path: Path) -> None:
    """$XDG_CACHE_HOME on a noexec mount: skipped for the next candidate (~/.cache)."""
    binary = fresh_copy(linux_binary(), tmp_path / "relay")
    noexec, home = tmp_path / "noexec", tmp_path / "home"
    noexec.mkdir()
    home.mkdir()
    result = run_in_namespace(
        f"mount -t tmpfs -o noexec tmpfs {noexec}",
        ["env", "-i", f"XDG_CACHE_HOME={noexec}", f"HOME={home}", str(binary), "--version"],
    )
    assert result.returncode == 0, result.stderr.decode()
    assert (home / ".cache" / "session-relay").is_dir()


def test_missing_locale(tmp_path: Path) -> None:
    """LANG/LC_ALL naming a locale that is not installed (Nuitka's runtime would abort)."""
    binary = linux_binary()
    store = tmp_path / "store"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AGENT_RELAY_HOME": str(store)}
    env |= {"LANG": "xx_XX.UTF-8", "LC_ALL": "yy_YY.ISO-8859-1", "LC_MESSAGES": "zz_ZZ"}
    result = subprocess.run([str(binary), "hook"], input=hook_input(str(tmp_path)), env=env, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    assert len(registered(store)) == 1


def test_twenty_simultaneous_first_runs(tmp_path: Path) -> None:
    """20 processes start a never-unpacked binary at once: all succeed, one bundle is published."""
    binary = fresh_copy(linux_binary(), tmp_path / "relay")
    cache = tmp_path / "cache"
    env = {"PATH": os.environ["PATH"], "XDG_CACHE_HOME": str(cache)}
    procs = [subprocess.Popen([str(binary), "--version"], env=env, stdout=subprocess.PIPE) for _ in range(20)]
    outputs = [p.communicate(timeout=120)[0].decode().strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * 20
    assert outputs == [source_version()] * 20
    entries = sorted(p.name for p in (cache / "session-relay").iterdir())
    assert len(entries) == 2 and entries[0] == ".lock", entries  # one bundle, no temp leftovers
    assert (cache / "session-relay" / entries[1] / ".complete").exists()


def test_old_bundles_are_pruned(tmp_path: Path) -> None:
    """A first run removes other versions' bundles unused for a week and crashed extractions."""
    binary = fresh_copy(linux_binary(), tmp_path / "relay")
    base = tmp_path / "cache" / "session-relay"
    old, recent, crashed = base / ("a" * 20), base / ("b" * 20), base / ".tmp-cccc-1"
    for d in (old, recent, crashed):
        d.mkdir(parents=True)
        (d / ".complete").touch()
    week_ago = time.time() - 8 * 86400
    os.utime(old / ".complete", (week_ago, week_ago))
    env = {"PATH": os.environ["PATH"], "XDG_CACHE_HOME": str(tmp_path / "cache")}
    subprocess.run([str(binary), "--version"], env=env, check=True, capture_output=True)
    assert not old.exists() and not crashed.exists()
    assert recent.exists()


def start_bus(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start `relay bus` and wait until it answered a ping (so it sits in its read loop)."""
    bus = subprocess.Popen([*argv, "bus"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert bus.stdin and bus.stdout
    bus.stdin.write(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}\n')
    bus.stdin.flush()
    reply = json.loads(bus.stdout.readline())
    assert reply["id"] == 1 and reply["result"] == {}
    return bus


def test_exit_code_stdio_signals_and_no_child_process(tmp_path: Path) -> None:
    """The stub execs: the pid we started is relay itself (no child, loader in place of the stub),
    stdin/stdout are the program's, and the exit status and a signal's outcome are exactly those
    of relay run from source."""
    binary = linux_binary()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AGENT_RELAY_HOME": str(tmp_path / "store"),
        "PYTHONPATH": str(BIN.parent),
    }
    source = [sys.executable, "-m", "relay"]
    for args in (["no-such-command"], ["--version"], ["inbox", str(uuid.uuid4())]):
        frozen = subprocess.run([str(binary), *args], env=env, capture_output=True)
        expected = subprocess.run([*source, *args], env=env, capture_output=True)
        assert (frozen.returncode, frozen.stdout) == (expected.returncode, expected.stdout), args

    outcomes = []
    for argv in ([str(binary)], source):
        bus = start_bus(argv, env)
        try:
            if argv == [str(binary)]:
                exe = os.readlink(f"/proc/{bus.pid}/exe")
                assert exe.endswith("/ld.so"), exe  # the bundled loader replaced the stub
                children = Path(f"/proc/{bus.pid}/task/{bus.pid}/children")
                if children.exists():
                    assert children.read_text().split() == []
            bus.send_signal(signal.SIGTERM)
            outcomes.append(bus.wait(timeout=30))
        finally:
            bus.kill()
            bus.wait()
    assert outcomes[0] == outcomes[1], outcomes


def test_spawned_programs_see_the_callers_locale_and_path(tmp_path: Path) -> None:
    """The payload runs under LC_ALL=C; `wake` must hand `claude` the caller's locale back."""
    binary = linux_binary()
    fake_bin = tmp_path / "fakebin"
    fake_bin.mkdir()
    dump = tmp_path / "env.txt"
    claude = fake_bin / "claude"
    claude.write_text(f"#!/bin/sh\nenv > {dump}\necho '{{}}'\n")
    claude.chmod(0o755)
    env = {
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "AGENT_RELAY_HOME": str(tmp_path / "store"),
        "LANG": "de_DE.UTF-8",
        "LC_MESSAGES": "fr_FR.UTF-8",
    }
    argv = ["wake", "--id", str(uuid.uuid4()), "--dir", str(tmp_path), "--tool", "claude"]
    result = subprocess.run([str(binary), *argv, "--", "hi"], env=env, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    seen = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    assert seen.get("LANG") == "de_DE.UTF-8" and seen.get("LC_MESSAGES") == "fr_FR.UTF-8"
    assert "LC_ALL" not in seen and "RELAY_ORIG_LOCALE" not in seen
    # Nuitka's start sets PATH to "/" and PYTHONHOME to its own dir while the interpreter starts and
    # puts the caller's back (without importing os: build/patch_nuitka.py); relay found `claude` on
    # that PATH, and the program it started sees the caller's PATH exactly, and no PYTHONHOME.
    assert seen.get("PATH") == env["PATH"] and "PYTHONHOME" not in seen


def test_aarch64_binary_under_qemu(tmp_path: Path) -> None:
    """Smoke run of the committed aarch64 binary through qemu-user (binfmt_misc)."""
    binary = BIN / "relay-aarch64-unknown-linux-musl"
    if not binary.exists():
        pytest.skip(f"{binary.name} not built (build/build-linux-aarch64.sh)")
    if os.uname().machine != "aarch64":
        handler = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
        if not handler.exists() or "enabled" not in handler.read_text():
            pytest.skip("qemu-aarch64 binfmt handler not enabled (qemu-user-static, binfmt-support)")
    store = tmp_path / "store"
    env = {"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    version = subprocess.run([str(binary), "--version"], env=env, capture_output=True, timeout=120)
    assert version.returncode == 0, version.stderr.decode()
    assert version.stdout.decode().strip() == source_version()
    hook = subprocess.run(
        [str(binary), "hook"],
        env={**env, "AGENT_RELAY_HOME": str(store)},
        input=hook_input(str(tmp_path)),
        capture_output=True,
        timeout=120,
    )
    assert hook.returncode == 0, hook.stderr.decode()
    assert len(registered(store)) == 1

"""Helpers for the tests of the frozen binaries and the launcher (test_launcher, test_portability,
test_freshness, benchmarks/bench_binary.py).

Everything that needs a privilege or a tool checks for it and skips with a printed reason
(`pytest -ra` shows it); nothing here installs anything. What CI installs for these tests is in
.ci/run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / "bin"
LINUX_TRIPLES = ("x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl")
ALL_TRIPLES = (*LINUX_TRIPLES, "x86_64-apple-darwin", "aarch64-apple-darwin")


def load_source_hash():
    """build/source_hash.py as a module (build/ is not a package)."""
    spec = importlib.util.spec_from_file_location("source_hash", REPO / "build" / "source_hash.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def host_triple() -> str | None:
    cpu = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
    system = {"Linux": "unknown-linux-musl", "Darwin": "apple-darwin"}
    machine, name = platform.machine(), platform.system()
    if machine not in cpu or name not in system:
        return None
    return f"{cpu[machine]}-{system[name]}"


def host_binary() -> Path:
    """This machine's committed binary, or skip (with the reason) when there is none."""
    triple = host_triple()
    if triple is None:
        pytest.skip(f"no relay binary exists for {platform.system()} {platform.machine()}")
    path = BIN / f"relay-{triple}"
    if not path.exists():
        pytest.skip(f"{path.relative_to(REPO)} not built (build/build.sh)")
    return path


def linux_binary() -> Path:
    """The Linux binary of this machine's CPU; the portability tests are Linux-only."""
    if platform.system() != "Linux":
        pytest.skip("portability tests of the Linux binaries need Linux")
    return host_binary()


def fresh_copy(binary: Path, dest: Path) -> Path:
    """A copy of `binary` that has never been unpacked anywhere on this machine.

    The stub names its cache dir by the payload hash stored in the trailer (build/pack.py layout:
    ... [64 hex chars][offset u64][size u64]["RELAYPK1"]), so a copy whose stored hash is replaced
    with random hex is a genuinely new binary to it, while the payload itself (verified by the zstd
    frame checksum) is unchanged. Without this, the warm path would find a bundle left by another
    run in ~/.cache or /tmp and the test would not exercise a first run.
    """
    data = bytearray(binary.read_bytes())
    assert data[-8:] == b"RELAYPK1", f"{binary} has no extractor trailer"
    start = len(data) - 8 - 16 - 64
    data[start : start + 64] = (uuid.uuid4().hex + uuid.uuid4().hex).encode()
    dest.write_bytes(bytes(data))
    dest.chmod(0o755)
    return dest


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (chroot, mount namespaces, other uids)")


def require_tool(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if not path:
        pytest.skip(f"{name} not installed (see .ci/run for the packages CI installs)")
    return path


def require_unshare() -> str:
    """unshare(1) that can really create a mount namespace here (containers may forbid it)."""
    require_root()
    tool = require_tool("unshare")
    probe = subprocess.run([tool, "--mount", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare --mount not permitted here: {probe.stderr.strip()}")
    return tool


def hook_input(cwd: str) -> bytes:
    return f'{{"session_id": "{uuid.uuid4()}", "cwd": "{cwd}"}}'.encode()


def source_version() -> str:
    """What `relay --version` prints, read from the sources (the binary must agree)."""
    namespace: dict[str, str] = {}
    exec((REPO / "relay" / "__init__.py").read_text(), namespace)
    return f"relay {namespace['__version__']}"


def make_root(root: Path, binary: Path) -> Path:
    """A minimal root: the binary as /relay, a sticky /tmp, mount points for /dev/null and /proc."""
    for sub in ("tmp", "dev", "proc"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "dev" / "null").touch()
    shutil.copy2(binary, root / "relay")
    return root


def add_busybox_musl(root: Path) -> None:
    """Turn a minimal root into an Alpine-like one: busybox (static) as /bin/sh and friends, musl's
    loader and libc, an /etc/passwd -- and no glibc anywhere."""
    busybox = require_tool("busybox")
    musl = Path("/usr/lib/x86_64-linux-musl/libc.so")
    if platform.machine() == "aarch64":
        musl = Path("/usr/lib/aarch64-linux-musl/libc.so")
    if not musl.exists():
        pytest.skip(f"{musl} missing: apt-get install musl")
    (root / "bin").mkdir(exist_ok=True)
    (root / "lib").mkdir(exist_ok=True)
    (root / "etc").mkdir(exist_ok=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in ("sh", "ls", "cat", "env", "id"):
        (root / "bin" / applet).symlink_to("busybox")
    loader = f"ld-musl-{platform.machine()}.so.1"
    shutil.copy2(musl, root / "lib" / loader)
    (root / "lib" / "libc.musl.so.1").symlink_to(loader)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "root").mkdir(exist_ok=True)


def in_root(
    root: Path,
    argv: list[str],
    *,
    userspec: str | None = None,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess:
    """Run argv inside `root` with /dev/null and /proc mounted, in a private mount namespace (the
    mounts vanish with it), with exactly `env` as the environment (`env -i` semantics)."""
    unshare = require_unshare()
    chroot = require_tool("chroot")
    script = 'mount --bind /dev/null "$1/dev/null" && mount -t proc proc "$1/proc" && shift && exec "$@"'
    spec = [f"--userspec={userspec}"] if userspec else []
    clean_env = [shutil.which("env") or "/usr/bin/env", "-i"]
    clean_env += [f"{k}={v}" for k, v in (env or {}).items()]
    return subprocess.run(
        [unshare, "--mount", "sh", "-c", script, "sh", str(root), *clean_env, chroot, *spec, str(root), *argv],
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
    )

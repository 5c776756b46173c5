"""The POSIX sh launcher: platform mapping, finding bin/ through symlinks and relative
paths, passing arguments untouched, RELAY_LAUNCHER, and what happens without a binary.

Each test builds a throwaway checkout: a copy of the real launcher plus a fake bin/relay-<triple>
(a sh script that prints RELAY_LAUNCHER and its argv), and runs it under dash, busybox sh and bash.
Other platforms are faked with a `uname` script first on PATH -- the launcher has no other knob.
busybox sh runs its own `uname` applet whatever PATH says, so faked platforms use dash and bash.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from binary_support import REPO, host_binary, host_triple, require_tool, source_version

LAUNCHER = REPO / "launcher"
SHELLS = {"dash": ["dash"], "bash": ["bash"], "busybox": ["busybox", "sh"]}
# Arguments a careless launcher would mangle: spaces, empty, globs, options, quotes, newlines.
TRICKY_ARGS = ["send", "a b", "", "*", "--", "-n", "$HOME", "it's", 'say "hi"', "x\ny", "\\"]

FAKE_BINARY = """#!/bin/sh
printf 'launcher=%s\\n' "$RELAY_LAUNCHER"
printf 'binary=%s\\n' "$0"
for arg in "$@"; do printf 'arg=[%s]\\n' "$arg"; done
"""


def shell(name: str) -> list[str]:
    require_tool(SHELLS[name][0])
    return SHELLS[name]


def checkout(root: Path, triples: tuple[str, ...] = ()) -> Path:
    """A copy of the launcher with fake binaries for `triples`; returns the launcher path."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(LAUNCHER, root / "launcher")
    for triple in triples:
        fake = root / "bin" / f"relay-{triple}"
        fake.write_text(FAKE_BINARY)
        fake.chmod(0o755)
    return root / "launcher"


def fake_uname(dir_: Path, system: str, machine: str) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    script = dir_ / "uname"
    script.write_text(
        f'#!/bin/sh\ncase "$1" in -s) echo {system} ;; -m) echo {machine} ;; -sm) echo {system} {machine} ;; esac\n'
    )
    script.chmod(0o755)
    return dir_


def run(argv: list[str], *, path_prefix: Path | None = None, cwd: Path | None = None, **env):
    # No python on PATH unless asked: the source fallback must not hide a missing binary.
    path = "/usr/bin:/bin" if path_prefix is None else f"{path_prefix}:/usr/bin:/bin"
    full_env = {"PATH": path, "HOME": "/nonexistent", **env}
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=full_env, timeout=30, check=False)


def parse(out: str) -> tuple[str, str, list[str]]:
    """(RELAY_LAUNCHER, binary path, args) from the fake binary's output."""
    launcher = binary = ""
    args: list[str] = []
    current: list[str] | None = None
    for line in out.split("\n"):
        if line.startswith("launcher="):
            launcher = line[len("launcher=") :]
        elif line.startswith("binary="):
            binary = line[len("binary=") :]
        elif line.startswith("arg=["):
            current = [line[len("arg=[") :]]
            args.append("")
        elif current is not None:
            current.append(line)
        if current is not None:
            joined = "\n".join(current)
            if joined.endswith("]"):
                args[-1] = joined[:-1]
                current = None
    return launcher, binary, args


@pytest.mark.parametrize("sh", SHELLS)
def test_args_pass_untouched_and_launcher_is_exported(tmp_path: Path, sh: str) -> None:
    triple = host_triple()
    if triple is None:
        pytest.skip("this machine's platform has no binary name")
    launcher = checkout(tmp_path / "repo", (triple,))
    result = run([*shell(sh), str(launcher), *TRICKY_ARGS])
    assert result.returncode == 0, result.stderr
    exported, binary, args = parse(result.stdout)
    assert exported == str(launcher.resolve())
    assert binary == str(launcher.resolve().parent / "bin" / f"relay-{triple}")
    assert args == TRICKY_ARGS


@pytest.mark.parametrize("sh", SHELLS)
def test_through_symlinks_and_relative_paths(tmp_path: Path, sh: str) -> None:
    """~/.local/bin/relay -> a relative symlink -> the launcher, run by absolute path, by a
    relative path from another directory, and by name through PATH."""
    triple = host_triple()
    if triple is None:
        pytest.skip("this machine's platform has no binary name")
    launcher = checkout(tmp_path / "my checkout", (triple,))  # a space in the path, too
    local_bin = tmp_path / "home" / ".local" / "bin"
    local_bin.mkdir(parents=True)
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "hop").symlink_to(os.path.relpath(launcher, tmp_path / "links"))
    (local_bin / "relay").symlink_to(tmp_path / "links" / "hop")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    expected = str(launcher.resolve())

    for argv, kw in (
        ([str(local_bin / "relay"), "x"], {}),
        (["../home/.local/bin/relay", "x"], {"cwd": elsewhere}),
        (["../my checkout/launcher", "x"], {"cwd": elsewhere}),
    ):
        result = run([*shell(sh), *argv], **kw)
        assert result.returncode == 0, (argv, result.stderr)
        assert parse(result.stdout)[0] == expected, argv
        assert parse(result.stdout)[2] == ["x"]
    # By name through PATH (the shell of the #! line is used here: /bin/sh).
    result = run(["relay", "x"], path_prefix=local_bin)
    assert result.returncode == 0, result.stderr
    assert parse(result.stdout)[0] == expected


@pytest.mark.parametrize("sh", SHELLS)
def test_a_symlinked_directory_on_the_way_is_left_to_relay(tmp_path: Path, sh: str) -> None:
    """A path through a symlinked directory is exported absolute but as named (resolving it would
    take a process at every start); it still names the launcher, and bin/ is found through it."""
    triple = host_triple()
    if triple is None:
        pytest.skip("this machine's platform has no binary name")
    launcher = checkout(tmp_path / "real" / "repo", (triple,))
    (tmp_path / "plugins").symlink_to(tmp_path / "real")
    result = run([*shell(sh), str(tmp_path / "plugins" / "repo" / "launcher"), "x"])
    assert result.returncode == 0, result.stderr
    exported, binary, args = parse(result.stdout)
    assert exported.startswith("/") and os.path.realpath(exported) == str(launcher.resolve())
    assert os.path.realpath(binary) == str(launcher.resolve().parent / "bin" / f"relay-{triple}")
    assert args == ["x"]


@pytest.mark.parametrize("sh", SHELLS)
@pytest.mark.parametrize("how", ["absolute", "dot-slash", "sh-launcher", "root-with-a-trailing-slash"])
def test_the_common_starts_run_no_process_but_relay(tmp_path: Path, sh: str, how: str) -> None:
    """The hook runs at every prompt and tool call: started by absolute path (as the CLIs' hook
    configs do), as ./launcher or as `sh launcher`, the launcher forks nothing and execs only the
    binary (one execve for the shell, one for relay)."""
    strace = require_tool("strace")
    triple = host_triple()
    if triple is None:
        pytest.skip("this machine's platform has no binary name")
    if not Path("/proc/sys/kernel/arch").is_file():
        pytest.skip("a kernel before 6.1: the platform takes one `uname` process")
    launcher = checkout(tmp_path / "repo", (triple,))
    binary = tmp_path / "repo" / "bin" / f"relay-{triple}"
    binary.write_text("#!/bin/sh\n:\n")  # a builtin only: it forks nothing either
    script = {
        "absolute": str(launcher),
        "dot-slash": "./launcher",
        "sh-launcher": "launcher",
        "root-with-a-trailing-slash": f"{launcher.parent}//launcher",  # "${PLUGIN_ROOT}/launcher", ROOT ending in /
    }[how]
    trace = tmp_path / "trace"
    result = run(
        [strace, "-f", "-qq", "-o", str(trace), "-e", "trace=fork,vfork,clone,clone3,execve", *shell(sh), script, "x"],
        cwd=launcher.parent,
    )
    assert result.returncode == 0, result.stderr
    calls = [line.split(None, 1)[1] for line in trace.read_text().splitlines() if "(" in line]
    assert [c for c in calls if c.startswith(("fork", "vfork", "clone"))] == [], calls
    assert [c.split("(", 1)[0] for c in calls] == ["execve", "execve"], calls
    assert os.path.normpath(calls[1].split('"')[1]) == str(binary), calls


@pytest.mark.parametrize("sh", ["dash", "bash"])
@pytest.mark.parametrize(
    ("system", "machine", "triple"),
    [
        ("Darwin", "arm64", "aarch64-apple-darwin"),
        ("Darwin", "x86_64", "x86_64-apple-darwin"),
        ("Linux", "aarch64", "aarch64-unknown-linux-musl"),
        ("Linux", "arm64", "aarch64-unknown-linux-musl"),
        ("Linux", "x86_64", "x86_64-unknown-linux-musl"),
        ("Linux", "amd64", "x86_64-unknown-linux-musl"),
    ],
)
def test_platform_mapping(tmp_path: Path, sh: str, system: str, machine: str, triple: str) -> None:
    launcher = checkout(tmp_path / "repo", tuple(t for t in _all_triples()))
    fake = fake_uname(tmp_path / "fake", system, machine)
    result = run([*shell(sh), str(launcher), "--version"], path_prefix=fake)
    assert result.returncode == 0, result.stderr
    _, binary, args = parse(result.stdout)
    assert binary.endswith(f"/bin/relay-{triple}") and args == ["--version"]


def _all_triples() -> tuple[str, ...]:
    cpus, systems = ("x86_64", "aarch64"), ("unknown-linux-musl", "apple-darwin")
    return tuple(f"{c}-{s}" for c in cpus for s in systems)


@pytest.mark.parametrize("sh", ["dash", "bash"])
def test_unsupported_platform(tmp_path: Path, sh: str) -> None:
    launcher = checkout(tmp_path / "repo", _all_triples())
    fake = fake_uname(tmp_path / "fake", "SunOS", "sparc64")
    result = run([*shell(sh), str(launcher), "--version"], path_prefix=fake)
    assert result.returncode == 127
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "no binary for this platform (SunOS sparc64)" in lines[0]


@pytest.mark.parametrize("sh", SHELLS)
def test_missing_binary_names_file_and_build_command(tmp_path: Path, sh: str) -> None:
    triple = host_triple()
    if triple is None:
        pytest.skip("this machine's platform has no binary name")
    launcher = checkout(tmp_path / "repo")
    result = run([*shell(sh), str(launcher), "hook"])
    assert result.returncode == 127
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert f"bin/relay-{triple} is missing" in lines[0] and "build/build.sh" in lines[0]


def test_darwin_binary_missing_says_how_to_build(tmp_path: Path) -> None:
    """This checkout's state on a Mac before the darwin legs were built by CI."""
    launcher = checkout(tmp_path / "repo", ("x86_64-unknown-linux-musl",))
    fake = fake_uname(tmp_path / "fake", "Darwin", "arm64")
    result = run(["dash", str(launcher)], path_prefix=fake)
    assert result.returncode == 127
    assert "bin/relay-aarch64-apple-darwin is missing" in result.stderr


@pytest.mark.parametrize("sh", SHELLS)
def test_not_executable_binary(tmp_path: Path, sh: str) -> None:
    triple = host_triple()
    if triple is None:
        pytest.skip("this machine's platform has no binary name")
    launcher = checkout(tmp_path / "repo", (triple,))
    (tmp_path / "repo" / "bin" / f"relay-{triple}").chmod(0o644)
    result = run([*shell(sh), str(launcher)])
    assert result.returncode == 127
    assert "not executable" in result.stderr


def test_source_fallback_without_binary(tmp_path: Path) -> None:
    """A development checkout without a binary runs the package with a python3 that has orjson."""
    python = shutil.which("python3")
    probe = subprocess.run([python or "python3", "-c", "import orjson"], capture_output=True)
    if not python or probe.returncode != 0:
        pytest.skip("no python3 with orjson on PATH")
    launcher = checkout(tmp_path / "repo")
    package = tmp_path / "repo" / "relay"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        "import os, sys\nprint('from-source', os.environ['RELAY_LAUNCHER'], sys.argv[1:])\n"
    )
    result = run(["dash", str(launcher), "a b", ""], path_prefix=Path(python).parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"from-source {launcher.resolve()} ['a b', '']"


def test_source_fallback_prefers_the_checkouts_venv(tmp_path: Path) -> None:
    """Without a binary (macOS before a release), the .venv that ./run-tests made runs the sources,
    even with no suitable python3 on PATH: `./run-tests` then `./launcher demo` works as written."""
    import sys

    launcher = checkout(tmp_path / "repo")
    package = tmp_path / "repo" / "relay"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("import sys\nprint('from-venv', sys.argv[1:])\n")
    venv_python = tmp_path / "repo" / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')  # this venv has orjson
    venv_python.chmod(0o755)
    result = run(["dash", str(launcher), "demo"], path_prefix=tmp_path / "empty")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-venv ['demo']"
    venv_python.unlink()
    missing = run(["dash", str(launcher), "demo"], path_prefix=tmp_path / "empty")
    if missing.returncode == 127:  # this machine's /usr/bin/python3 has no orjson: the hint says what to do
        assert "run ./run-tests once" in missing.stderr


def test_source_fallback_finds_the_run_tests_venv_through_a_symlinked_directory(tmp_path: Path) -> None:
    """./run-tests names its venv after the checkout's real path; the launcher, which leaves a
    symlinked directory in its own path unresolved, still finds that venv."""
    import sys

    checkout(tmp_path / "real" / "repo")
    real = (tmp_path / "real" / "repo").resolve()
    package = real / "relay"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("import sys\nprint('from-tests-venv', sys.argv[1:])\n")
    sum_ = subprocess.run(["cksum"], input=str(real).encode(), capture_output=True, check=True).stdout.split()[0]
    venv_python = (
        tmp_path / "cache" / "session-relay" / "tests" / f"{real.name}-{sum_.decode()}" / "venv" / "bin" / "python"
    )
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')  # this venv has orjson
    venv_python.chmod(0o755)
    (tmp_path / "plugins").symlink_to(tmp_path / "real")
    launcher = tmp_path / "plugins" / "repo" / "launcher"
    result = run(
        ["dash", str(launcher), "demo"], path_prefix=tmp_path / "empty", XDG_CACHE_HOME=str(tmp_path / "cache")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-tests-venv ['demo']"


def test_real_checkout_runs_the_committed_binary() -> None:
    """./launcher of this checkout runs bin/relay-<host triple>, the same version as the sources."""
    host_binary()
    result = run([str(LAUNCHER), "--version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == source_version()


def test_shellcheck_clean() -> None:
    shellcheck = require_tool("shellcheck")
    scripts = [LAUNCHER, *sorted((REPO / "build").glob("*.sh"))]
    result = subprocess.run([shellcheck, "--shell=sh", *map(str, scripts)], capture_output=True)
    assert result.returncode == 0, result.stdout.decode()


PLANTED = '#!/bin/sh\n: > "{mark}"\necho {reply}\n'


@pytest.mark.parametrize("sh", ["dash", "bash"])
@pytest.mark.parametrize("entry", ["", ".", "planted"], ids=["empty", "dot", "relative"])
def test_commands_in_the_cwd_are_never_run(tmp_path: Path, sh: str, entry: str) -> None:
    """docs/security.md: an empty or relative PATH entry means the current directory; the launcher
    looks up `uname` and `python3` only in PATH's absolute directories, so a `uname` or `python3`
    planted where the caller stands is never run. The caller's PATH still reaches relay as given."""
    launcher = checkout(tmp_path / "repo", (host_triple(),))
    binary = tmp_path / "repo" / "bin" / f"relay-{host_triple()}"
    binary.write_text('#!/bin/sh\nprintf "path=%s\\n" "$PATH"\n')
    cwd = tmp_path / "cwd"
    planted = cwd / (entry if entry not in ("", ".") else "")
    planted.mkdir(parents=True, exist_ok=True)
    marks = {name: tmp_path / f"{name}-ran" for name in ("uname", "python3", "python")}
    for name, mark in marks.items():
        script = planted / name
        script.write_text(PLANTED.format(mark=mark, reply="Linux x86_64"))
        script.chmod(0o755)
    path = f"{entry}::{entry}:/usr/bin:/bin"

    def run_launcher() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*shell(sh), str(launcher), "--version"],
            capture_output=True,
            text=True,
            cwd=cwd,
            env={"PATH": path, "HOME": "/nonexistent"},
            timeout=30,
            check=False,
        )

    result = run_launcher()
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"path={path}\n"
    assert [name for name, mark in marks.items() if mark.exists()] == []

    # No binary: the source fallback's python3 is not the planted one either.
    binary.unlink()
    (tmp_path / "repo" / "relay").mkdir()
    (tmp_path / "repo" / "relay" / "__main__.py").write_text("")
    result = run_launcher()
    assert [name for name, mark in marks.items() if mark.exists()] == []

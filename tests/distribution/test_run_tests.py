"""./run-tests leaves nothing in the clone.

Codex (`codex plugin add`) and Claude Code (`claude plugin install`) both copy a local clone whole
into their plugin cache, git-ignored files included; Codex takes `.git` too. A venv, the npm-installed
test clients, bytecode, the pytest cache or Hypothesis' database made inside the clone would be copied
with the plugin (hundreds of MB). So `./run-tests` keeps all of it under the user's cache dir, and the
launcher's source fallback finds that venv there.

The run here is real (the script, pytest, xdist, a test module that imports the sources and runs
them in subprocesses) except for the two downloads: `python3 -m venv` makes a "venv" whose python is
this test's interpreter and whose pip installs nothing, and `npm install` only makes `node_modules`.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import realclients as rc

FAKE_PYTHON = """#!/bin/sh
# python3 for ./run-tests without downloads: a venv runs the real interpreter, its pip does nothing.
printf '%s\\n' "$*" >>{log}
if [ "$1" = -m ] && [ "$2" = venv ]; then
    shift 2
    [ "$1" = --without-pip ] && shift
    mkdir -p "$1/bin" && cp "$0" "$1/bin/python" && exit 0
fi
if [ "$1" = -m ] && [ "$2" = pip ]; then exit 0; fi
exec {python} "$@"
"""

FAKE_NPM = """#!/bin/sh
printf 'npm %s in %s\\n' "$*" "$(pwd -P)" >>{log}
mkdir -p node_modules/.bin
"""


def tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The plugin's files as a fresh clone has them, without bin/ so that the launcher runs the sources."""
    copy = rc.plugin_copy(tmp_path / "my clone")
    for name in ("bin", "session_relay.egg-info"):
        if (copy / name).is_dir():
            subprocess.run(["rm", "-rf", str(copy / name)], check=True)
    return copy


def test_run_tests_keeps_its_venv_clients_and_caches_outside_the_clone(clone: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "calls.log"
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "python3").write_text(FAKE_PYTHON.format(log=shlex.quote(str(log)), python=shlex.quote(sys.executable)))
    (fake_bin / "npm").write_text(FAKE_NPM.format(log=shlex.quote(str(log))))
    for script in fake_bin.iterdir():
        script.chmod(0o755)
    # Nothing of this run's own settings: bytecode must be written (it is what would land in relay/
    # and tests/), and the script chooses where it goes.
    drop = {"PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "HYPOTHESIS_STORAGE_DIRECTORY", "PYTHONPATH"}
    drop |= {"RELAY_CLIENTS_DIR", "XDG_CACHE_HOME", "PYTHON", "RELAY_CMD", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST_")}
    env.update(HOME=str(home), PATH=f"{fake_bin}:/usr/bin:/bin")
    before = tree(clone)

    # Two workers, a module that uses Hypothesis and runs `python -m relay` from the clone's sources.
    done = subprocess.run(
        [str(clone / "run-tests"), "-q", "-n", "2", "tests/domain/test_ids.py", "tests/faces/test_demo.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout, done.stdout[-3000:]

    assert tree(clone) - before == set(), "./run-tests left these in the clone"
    [state] = (home / ".cache" / "session-relay" / "tests").iterdir()
    assert state.name.startswith("my clone-")
    assert (state / "venv" / "bin" / "python").exists()
    assert (state / "pycache").is_dir(), "bytecode was not redirected (or not written at all)"
    calls = log.read_text()
    # The dependencies were installed from pyproject.toml, not `pip install -e .` (which writes
    # session_relay.egg-info into the clone).
    assert f"-m pip install -q --disable-pip-version-check -r {state}/requirements.txt" in calls
    assert "pytest-xdist==" in (state / "requirements.txt").read_text()
    if rc.why_not_runnable() is None:  # root, unshare and ip: the script installs the clients
        assert f"npm install --no-audit --no-fund --loglevel=error in {state}/clients" in calls

    # The launcher without a binary runs the sources with that venv's Python, before any python3 on PATH.
    log.write_text("")
    ran = subprocess.run(
        [str(clone / "launcher"), "--version"],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("relay "), ran.stdout
    assert "-P -m relay --version" in log.read_text()

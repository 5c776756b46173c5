"""Shared fixtures: a private store, a scrubbed environment, and the program under test.

Black-box tests run the program the way the agent CLIs do, as a subprocess, through RELAY_CMD
(a shell-style command line; default `python -m relay` from this checkout). `.ci/run` runs the
suite again with RELAY_CMD=./launcher, so the same tests check the committed frozen binary.
"""

import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import realclients
import redis_server as redis_server_mod

REPO = Path(__file__).resolve().parent.parent

# Variables a developer's or an agent's shell may carry that would change what relay does.
_SCRUBBED = (
    "AGENT_RELAY_HOME",
    "AGENT_RELAY_URL",
    "SESSION_RELAY_HOME",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_PROJECT_DIR",
    "CLAUDE_PLUGIN_ROOT",
    "CLAUDE_CONFIG_DIR",
    "CLAUDECODE",
    "CODEX_HOME",
    "RELAY_PROJECT_DIR",
    "RELAY_CLAUDE_PROJECTS",
    "RELAY_CODEX_SESSIONS",
    "RELAY_LAUNCHER",
    "RELAY_TEST_KILL_AT",
    "RELAY_ORIG_LOCALE",
)


def relay_command() -> list[str]:
    """The program under test as an argv prefix."""
    configured = os.environ.get("RELAY_CMD")
    if configured:
        words = shlex.split(configured)
        if words and not os.path.isabs(words[0]) and os.sep in words[0]:
            words[0] = str(REPO / words[0])  # `./launcher` means the checkout's launcher
        return words
    return [sys.executable, "-m", "relay"]


def new_id() -> str:
    """A fresh session id."""
    return str(uuid.uuid4())


def queued_to(stdout: bytes | str) -> str:
    """Where `relay send` says it queued a message (`queued -> WHERE ID`), checking the line's shape
    and that ID is a message id."""
    text = (stdout.decode() if isinstance(stdout, bytes) else stdout).removesuffix("\n")
    assert text.startswith("queued -> ") and "\n" not in text, text
    where, _, message_id = text[len("queued -> ") :].rpartition(" ")
    assert str(uuid.UUID(message_id)) == message_id, text
    return where


@pytest.fixture
def relay_cmd() -> list[str]:
    """The program under test as an argv prefix."""
    return relay_command()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A scrubbed environment with a private store, HOME and empty transcript roots.

    It is also applied to this process (for in-process tests) and is what `run_relay` uses.
    """
    for name in _SCRUBBED:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    values = {
        "HOME": str(home),
        "AGENT_RELAY_HOME": str(tmp_path / "store"),
        "RELAY_CLAUDE_PROJECTS": str(tmp_path / "claude-projects"),
        "RELAY_CODEX_SESSIONS": str(tmp_path / "codex-sessions"),
        "PYTHONPATH": str(REPO),
        # Run from inside a Codex session, a bus would take that session as its own by process
        # ancestry (relay/codex_session.py); tests decide identities themselves. Tests of the
        # ancestry lookup remove this.
        "RELAY_NO_ANCESTRY": "1",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return dict(os.environ)


@pytest.fixture
def store_home(env: dict[str, str]) -> Path:
    """The private store directory (not created yet)."""
    return Path(env["AGENT_RELAY_HOME"])


RunRelay = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def run_relay(relay_cmd: list[str], env: dict[str, str], tmp_path: Path) -> RunRelay:
    """Run the program under test: run_relay(*args, input=str|bytes, env={...}, cwd=...)."""

    def run(
        *args: str,
        input: str | bytes | None = None,
        extra_env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess:
        merged = {**env, **(extra_env or {})}
        return subprocess.run(
            [*relay_cmd, *args],
            input=input.encode() if isinstance(input, str) else input,
            capture_output=True,
            env=merged,
            cwd=str(cwd or tmp_path),
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator["realclients.Sandbox"]:
    """A private HOME for the real CLIs (tests/realclients.py); nothing it started outlives the test.
    The plugin tests, which install the plugin as part of it, define their own."""
    box = realclients.Sandbox(tmp_path / "box")
    try:
        yield box
    finally:
        box.stop_leftovers()


# -- the Redis store's server (SPEC §16) -----------------------------------------------------------


def require_redis() -> None:
    """The Redis tests need redis-py (the `test` extra) and Debian's redis-server. Without them they
    skip, unless RELAY_REQUIRE_REDIS=1 (as `.ci/run` sets): then they fail."""
    missing = None
    try:
        import redis  # noqa: F401
    except ImportError:
        missing = "redis-py is not installed (pip install -e '.[test]')"
    if missing is None and redis_server_mod.redis_server_path() is None:
        missing = "redis-server is not installed (apt-get install redis-server)"
    if missing is not None:
        if os.environ.get("RELAY_REQUIRE_REDIS") == "1":
            pytest.fail(f"{missing} and RELAY_REQUIRE_REDIS=1")
        pytest.skip(missing)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator["redis_server_mod.RedisServer"]:
    """One real redis-server for the whole session (127.0.0.1, a free port, a password, a throwaway
    dir). Tests take `redis_url`, which empties it first. No redis-server fails the test instead of
    skipping when RELAY_REQUIRE_REDIS=1 (as `.ci/run` sets)."""
    require_redis()
    server = redis_server_mod.RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator["redis_server_mod.RedisServer"]:
    """The same over TLS (`rediss://`), its certificate signed by a throwaway CA (`server.ca`)."""
    require_redis()
    binary = redis_server_mod.redis_server_path()
    if binary is None or not redis_server_mod.supports_tls(binary):
        if os.environ.get("RELAY_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server with TLS is required (RELAY_REQUIRE_REDIS=1)")
        pytest.skip("this redis-server was built without TLS")
    server = redis_server_mod.RedisServer(tmp_path_factory.mktemp("redis-tls"), tls=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: "redis_server_mod.RedisServer") -> str:
    """The URL (with its password) of an emptied Redis for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def rediss_url(redis_tls_server: "redis_server_mod.RedisServer") -> str:
    """The rediss:// URL of an emptied TLS Redis for this test."""
    redis_tls_server.flush()
    return redis_tls_server.url

"""Shared fixtures: a private store, a scrubbed environment, and the program under test.

Black-box tests run the program the way the agent CLIs do, as a subprocess, through RELAY_CMD
(a shell-style command line; default `python -m relay` from this checkout). `.ci/run` runs the
suite again with RELAY_CMD=./launcher, so the same tests check the committed frozen binary.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
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


# The fence around delivered mail (docs/delivery.md): both tags carry one fresh random boundary.
FENCE_OPEN = re.compile(r'<session-relay-mail boundary="([A-Za-z0-9]{16,})">')


def fence_parts(text: str) -> tuple[str, list[str], list[str], list[str]]:
    """(boundary, lines before, lines inside, lines after) of a fenced text, checking its shape: one
    open tag alone on its line, its boundary announced by the line before it, and exactly one line
    that is the closing tag carrying the same boundary."""
    lines = text.split("\n")
    opens = [at for at, line in enumerate(lines) if FENCE_OPEN.fullmatch(line)]
    assert len(opens) == 1, text
    start = opens[0]
    found = FENCE_OPEN.fullmatch(lines[start])
    assert found is not None
    boundary = found.group(1)
    close = f'</session-relay-mail boundary="{boundary}">'
    assert lines.count(close) == 1, text
    end = lines.index(close)
    assert start < end, text
    assert start >= 1 and f'boundary="{boundary}"' in lines[start - 1] and "ends only at" in lines[start - 1]
    return boundary, lines[:start], lines[start + 1 : end], lines[end + 1 :]


def plain_tags(text: str) -> str:
    """A fenced text (checked by fence_parts) with its two tags written without their boundary, and
    the boundary elsewhere as B: for tests about what is inside, not about the boundary itself."""
    boundary = fence_parts(text)[0]
    text = text.replace(f'<session-relay-mail boundary="{boundary}">', "<session-relay-mail>")
    text = text.replace(f'</session-relay-mail boundary="{boundary}">', "</session-relay-mail>")
    return text.replace(boundary, "B")


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
    """Where `relay send` says it queued a message (`queued -> WHERE ID` on its first line), checking
    the line's shape and that ID is a message id. A second line may say the recipient is not running."""
    lines = (stdout.decode() if isinstance(stdout, bytes) else stdout).removesuffix("\n").split("\n")
    text, *rest = lines
    assert len(rest) <= 1 and all(" reads this when it starts or is woken " in line for line in rest), lines
    assert text.startswith("queued -> "), text
    where, _, message_id = text[len("queued -> ") :].rpartition(" ")
    assert str(uuid.UUID(message_id)) == message_id, text
    return where


@pytest.fixture(autouse=True)
def _current_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Lets tests/realclients.py see which test asks for a client (it checks the real_clients mark)."""
    realclients.current_test = request.node
    try:
        yield
    finally:
        realclients.current_test = None


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
        # ancestry (relay/agents/codex.py); tests decide identities themselves. Tests of the
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


# -- the Redis store's server (docs/redis-store.md) ------------------------------------------------


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


# -- one black-box suite, two stores ----------------------------------------------------------------

WORLDS = ("files", "redis")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "files_only(reason): a test that reads or plants the file store's own files; it runs only in the "
        "`files` world of a module parametrised by the `world` fixture",
    )
    config.addinivalue_line(
        "markers",
        "real_clients: runs the real Claude Code, Codex or MCP Inspector (tests/realclients.py); .ci/run "
        "runs these again against the older releases still supported (tests/clients/compat)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses `world` (usually a module's `pytestmark = pytest.mark.usefixtures("world")`)
    runs once per store; a `files_only` test only on files. The reason is required, so it is stated."""
    if "world" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("files_only")
    if marker is not None and not (marker.args or marker.kwargs.get("reason")):
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: files_only needs a reason")
    metafunc.parametrize("world", ["files"] if marker else list(WORLDS), indirect=True)


@pytest.fixture
def world(request: pytest.FixtureRequest, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The store the black-box commands run against: `files` (AGENT_RELAY_HOME, the default) or
    `redis` (AGENT_RELAY_URL of this test's emptied Redis, set in `env`, hence in every run_relay and
    in this process). Local state (error.log, watcher locks) stays under AGENT_RELAY_HOME either way.
    Without redis-py or redis-server the redis world skips, or fails under RELAY_REQUIRE_REDIS=1."""
    name = str(request.param)
    if name == "redis":
        url = request.getfixturevalue("redis_url")
        env["AGENT_RELAY_URL"] = url
        monkeypatch.setenv("AGENT_RELAY_URL", url)
    return name


def stored_registry(store_home: Path) -> dict:
    """{"agents": {id: entry}, "names": {name: id}} as the store this test's world holds it: the
    file store's registry.json (empty when absent), or Redis's relay:agents/relay:names with each
    entry's `host` left out (tests/store/test_redis_hosts.py checks hosts), so one assertion fits both."""
    url = os.environ.get("AGENT_RELAY_URL")
    if not url:
        return file_registry(store_home)
    import redis

    with redis.Redis.from_url(url, socket_timeout=5) as client:
        agents = {k.decode(): json.loads(v) for k, v in client.hgetall("relay:agents").items()}
        names = {k.decode(): v.decode() for k, v in client.hgetall("relay:names").items()}
    for entry in agents.values():
        entry.pop("host", None)
    return {"agents": agents, "names": names}


def file_registry(store_home: Path) -> dict:
    """{"agents", "names"} of a file store: a registry.json not yet migrated as it stands, else
    gathered from its agents/<id>.json and names/<name>.json files (docs/store.md)."""
    legacy = store_home / "registry.json"
    if legacy.exists():
        return json.loads(legacy.read_text())
    agents: dict = {}
    names: dict = {}
    for path in sorted((store_home / "agents").glob("*.json")):
        entry = json.loads(path.read_text())
        agents[entry["id"]] = entry
    for path in sorted((store_home / "names").glob("*.json")):
        names.update(json.loads(path.read_text()))
    return {"agents": agents, "names": names}


def mailbox_lines(store_home: Path, session_id: str) -> list[bytes]:
    """The session's queued mail, oldest first, each message's JSON as the store keeps it (a
    mailbox line on files; the stream entry's `m` field on Redis, byte-identical to that line)."""
    url = os.environ.get("AGENT_RELAY_URL")
    if not url:
        path = store_home / "mailbox" / f"{session_id}.jsonl"
        if not path.exists():
            return []
        start = 0  # the read cursor (docs/store.md): "<inode> <offset>" of the first untaken byte
        cursor = store_home / "mailbox" / f"{session_id}.offset"
        if cursor.exists():
            inode, offset = (int(field) for field in cursor.read_text().split())
            start = offset if inode == path.stat().st_ino else 0
        return path.read_bytes()[start:].splitlines()
    import redis

    with redis.Redis.from_url(url, socket_timeout=5) as client:
        return [fields[b"m"] for _, fields in client.xrange(f"relay:mbox:{session_id}")]


def plant_registry(store_home: Path, data: dict) -> None:
    """Replace the registry with `data` ({"agents", "names"}) as written by hand, bypassing every
    check (a planted or hostile store): registry.json on files, the two hashes on Redis."""
    url = os.environ.get("AGENT_RELAY_URL")
    if not url:
        store_home.mkdir(mode=0o700, exist_ok=True)
        for sub in ("agents", "names"):  # what is planted replaces the registry: the next access migrates it
            shutil.rmtree(store_home / sub, ignore_errors=True)
        (store_home / "registry.json").write_text(json.dumps(data))
        return
    import redis

    with redis.Redis.from_url(url, socket_timeout=5) as client:
        client.delete("relay:agents", "relay:names")
        for session_id, entry in data.get("agents", {}).items():
            client.hset("relay:agents", session_id, json.dumps(entry))
        for name, session_id in data.get("names", {}).items():
            client.hset("relay:names", name, session_id)


def plant_mail(store_home: Path, recipient: str, messages: list[dict]) -> None:
    """Queue these messages as they are (no face's checks): appended to the mailbox file on files,
    enqueued through the Redis store (a stream entry is the same JSON) on Redis."""
    url = os.environ.get("AGENT_RELAY_URL")
    if not url:
        for sub in ("", "mailbox"):
            (store_home / sub).mkdir(mode=0o700, exist_ok=True)
        with (store_home / "mailbox" / f"{recipient}.jsonl").open("a", encoding="utf-8") as out:
            for message in messages:
                out.write(json.dumps(message, ensure_ascii=False) + "\n")
        return
    from relay.store.contract import open_store

    store = open_store()
    for message in messages:
        store.enqueue(recipient, message)


def plant_receipt(store_home: Path, receipt: dict) -> None:
    """Keep a receipt as written by hand (no face): receipts/<id>.json on files, the receipt hash on Redis."""
    message_id = str(receipt["id"])
    url = os.environ.get("AGENT_RELAY_URL")
    if not url:
        receipts = store_home / "receipts"
        receipts.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = receipts / f"{message_id}.json"
        path.write_text(json.dumps(receipt))
        path.chmod(0o600)
        return
    import redis

    with redis.Redis.from_url(url, socket_timeout=5) as client:
        client.hset(f"relay:rcpt:{message_id}", mapping={"doc": json.dumps(receipt), "changed": repr(time.time())})


def store_snapshot(store_home: Path) -> dict[str, object]:
    """Everything the store holds, to compare before and after: every path under `store_home`
    (mode, size, mtime, ctime, inode) and, on Redis, every key's DUMP (a stream's dump holds its
    consumer groups and their pending claims, so a take put back shows too)."""
    found: dict[str, object] = {}
    if store_home.exists():
        for path in [store_home, *sorted(store_home.rglob("*"))]:
            info = path.lstat()
            key = str(path.relative_to(store_home))
            found[key] = (info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
    url = os.environ.get("AGENT_RELAY_URL")
    if url:
        import redis

        with redis.Redis.from_url(url, socket_timeout=5) as client:
            for key in sorted(client.scan_iter(count=1000)):
                found[f"redis {key.decode()}"] = client.dump(key)
    return found


@pytest.fixture
def rediss_url(redis_tls_server: "redis_server_mod.RedisServer") -> str:
    """The rediss:// URL of an emptied TLS Redis for this test."""
    redis_tls_server.flush()
    return redis_tls_server.url

"""The hook runs at every prompt and after every tool call: with nothing to deliver it must not
import the modules that dominate a Python start. Checked on the sources, in
a fresh `python3 -I -S` per event, by listing sys.modules after the hook ran."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import new_id

REPO = Path(__file__).resolve().parents[2]
# What a short-lived path must not import (each costs from ~1 ms to ~10 ms of every start).
HEAVY = ("inspect", "typing", "re", "json", "orjson", "pathlib", "dataclasses", "contextlib", "signal")

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from relay.faces import cli
try:
    cli.main(sys.argv[3:])
finally:
    with open(sys.argv[2], "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
"""


def modules_after(
    tmp_path: Path,
    env: dict[str, str],
    argv: list[str],
    stdin: bytes = b"",
    allowed_codes: tuple[int, ...] = (0,),
    flags: tuple[str, ...] = ("-I", "-S"),
) -> set[str]:
    listing = tmp_path / "modules.txt"
    done = subprocess.run(
        [sys.executable, *flags, "-c", PROBE, str(REPO), str(listing), *argv],
        input=stdin,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in allowed_codes, done.stderr
    return set(listing.read_text().split())


@pytest.mark.parametrize("event", ["SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "SessionEnd"])
@pytest.mark.parametrize("tool", [[], ["codex"], ["qwen"]], ids=["claude", "codex", "qwen"])
def test_hook_with_nothing_to_deliver_imports_nothing_heavy(env, store_home, tmp_path, event, tool):
    sid = new_id()
    payload = {"session_id": sid, "hook_event_name": event, "cwd": str(tmp_path)}
    # the session exists (registered) and has a watcher-free, empty mailbox: the common case
    modules_after(tmp_path, env, ["hook", *tool], json.dumps({**payload, "hook_event_name": "SessionStart"}).encode())
    loaded = modules_after(tmp_path, env, ["hook", *tool], json.dumps(payload).encode())
    assert "relay.faces.hook" in loaded  # the probe really ran the hook
    assert sorted(loaded & set(HEAVY)) == []
    # the journal (docs/journal.md) is loaded only by what writes an event: not here
    assert sorted(m for m in loaded if "journal" in m) == []


def test_only_a_numbered_sessions_start_loads_the_name_moving_code(env, store_home, tmp_path):
    """A session may take its project's name over only when it was numbered (`proj-2`): the start of
    one named after its dir, or renamed, does not load relay.usecases.names (~1.3 M instructions)."""

    def start(sid: str) -> set[str]:
        event = {"session_id": sid, "hook_event_name": "SessionStart", "cwd": str(tmp_path)}
        loaded = modules_after(tmp_path, env, ["hook"], json.dumps(event).encode())
        assert "relay.faces.hook" in loaded  # the probe really ran the hook
        return loaded

    first, second = new_id(), new_id()
    start(first)
    assert "relay.usecases.names" not in start(first)  # named after its dir
    start(second)  # proj was held (by a session no longer running): proj-2, then proj taken over
    assert "relay.usecases.names" in start(first)  # numbered at its start (proj-2): it may take proj back
    modules_after(tmp_path, env, ["register", "frontend", "--id", second])
    assert "relay.usecases.names" not in start(second)  # renamed: its project's name is not its to take


# How many modules the hook with nothing to deliver may import beyond a bare `python3 -I -S` that
# has imported os (whether os is loaded is checked on its own, below): relay's own (seven package
# __init__s among them) and _json, errno, fcntl, select. Each one more is paid at every start, in the
# frozen binary as much as here; raise a figure only in a commit that means that cost. Neither
# adapter loads relay.host (processes, transcripts) here; Claude's and Codex's adapters are not
# loaded at all (relay.agents.hook_moment names their events).
# At SessionEnd, which writes, the whole local store is loaded; relay.store.glance (the read-only
# questions the store shares with the quick path) is one of its modules.
# relay.util.paths names files without os (one module more on every path since the store reads and
# writes through posix alone, so delivering mail loads no os either).
HOOK_MODULES = {"claude": 31, "codex": 31, "gemini": 33, "qwen": 33}
# The SessionStart of a registered session that changes nothing writes nothing and loads no store
# (relay.store.files, fileio, lock, relay.util.faults stay out): it reads its entry and its dir's
# marker through relay.store.markers and glance, and checks the entry with relay.store.base's rule.
START_HOOK_MODULES = {"claude": 26, "codex": 26, "gemini": 26, "qwen": 27}
# At a prompt, after a tool call and at the end of a turn with nothing to deliver, the store is only
# asked (relay.store.glance): relay.store.files, fileio, lock, base, relay.util.clock and faults stay out.
QUICK_HOOK_MODULES = {"claude": 23, "codex": 23, "gemini": 23, "qwen": 24}
QUICK_MOMENTS = ("UserPromptSubmit", "PostToolUse", "Stop")


def _event_name(tool: str, moment: str) -> str:
    """What `tool` calls relay's `moment` in its hook events (its adapter's table)."""
    from relay.agents import adapter

    return next(name for name, known in adapter(tool).EVENTS.items() if known == moment)


@pytest.mark.parametrize("moment", ["SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "SessionEnd"])
@pytest.mark.parametrize("tool", sorted(HOOK_MODULES))
def test_hook_with_nothing_to_deliver_keeps_to_its_module_budget(env, store_home, tmp_path, moment, tool):
    bare = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import os, sys; print(' '.join(sys.modules))"],  # the probe's own
        capture_output=True,
        check=True,
        text=True,
    ).stdout.split()
    argv = ["hook"] if tool == "claude" else ["hook", tool]
    payload = {"session_id": new_id(), "hook_event_name": _event_name(tool, moment), "cwd": str(tmp_path)}
    start = {**payload, "hook_event_name": _event_name(tool, "SessionStart")}
    modules_after(tmp_path, env, argv, json.dumps(start).encode())
    extra = modules_after(tmp_path, env, argv, json.dumps(payload).encode()) - set(bare)
    if tool in ("claude", "codex"):  # the probe really ran this CLI's hook, without its whole adapter
        assert "relay.agents.hook_protocol" in extra and f"relay.agents.{tool}" not in extra
    else:
        assert f"relay.agents.{tool}" in extra  # the probe really ran this CLI's hook
    assert sorted(name for name in extra if name.startswith("relay.host")) == []
    assert ("relay.store.markers" in extra) is (moment == "SessionStart")  # the only event that reads one
    budget = {"SessionStart": START_HOOK_MODULES, "SessionEnd": HOOK_MODULES}.get(moment, QUICK_HOOK_MODULES)
    assert len(extra) <= budget[tool], " ".join(sorted(extra))


@pytest.mark.parametrize("moment", QUICK_MOMENTS)
@pytest.mark.parametrize("tool", sorted(HOOK_MODULES))
def test_the_hook_with_nothing_to_deliver_loads_neither_os_nor_the_store(env, store_home, tmp_path, moment, tool):
    """The commonest starts of all (docs/startup.md): a frozen start that imports os pays millions of
    instructions for it, and relay.store.files millions more, so these events ask the store's few
    read-only questions through relay.store.glance, written against posix."""
    argv = ["hook"] if tool == "claude" else ["hook", tool]
    sid = new_id()
    start = {"session_id": sid, "hook_event_name": _event_name(tool, "SessionStart"), "cwd": str(tmp_path)}
    modules_after(tmp_path, env, argv, json.dumps(start).encode())
    payload = {**start, "hook_event_name": _event_name(tool, moment), "prompt": "hello"}
    loaded = modules_after(tmp_path, env, argv, json.dumps(payload).encode())
    assert "relay.faces.hook" in loaded and "relay.store.layout" in loaded  # the probe really asked the store
    store_modules = {"relay.store.files", "relay.store.fileio", "relay.store.lock", "relay.store.base"}
    assert sorted(loaded & {"os", *store_modules}) == []
    # not vacuous: with mail waiting, the same event opens the whole store to take it; it names files
    # through relay.util.paths and posix, so taking, showing and confirming mail loads no os either.
    # Codex's hints first ask its sandbox settings (config.toml, real paths) through its adapter.
    modules_after(tmp_path, env, ["send", sid, "--", "something to take"])
    delivering = modules_after(tmp_path, env, argv, json.dumps(payload).encode())
    assert store_modules <= delivering
    if tool != "codex":
        assert sorted(delivering & {"os", "_collections_abc", "stat", "posixpath"}) == []


@pytest.mark.parametrize("tool", sorted(HOOK_MODULES))
def test_a_registered_sessions_start_loads_neither_os_nor_the_store(env, store_home, tmp_path, tool):
    """A resume, /clear or compaction starts a registered session again, changing nothing: the start
    asks relay.store.markers.unchanged_start (the entry and the dir's marker, read through
    relay.store.glance) and, with nothing to write, deliver or collect, does not open the store. A
    first start writes, and loads it (the control: the probe sees it when loaded); neither loads os."""
    argv = ["hook"] if tool == "claude" else ["hook", tool]
    start = {"session_id": new_id(), "hook_event_name": _event_name(tool, "SessionStart"), "cwd": str(tmp_path)}
    store_modules = {"relay.store.files", "relay.store.fileio", "relay.store.lock"}
    first = modules_after(tmp_path, env, argv, json.dumps(start).encode())
    assert store_modules <= first and "os" not in first  # the store writes through posix alone
    again = modules_after(tmp_path, env, argv, json.dumps(start).encode())
    assert "relay.faces.hook" in again and "relay.store.markers" in again  # the probe really checked the start
    assert sorted(again & store_modules) == []


def test_version_loads_no_os(env, tmp_path):
    """`relay --version` (a CLI's plugin check runs it) imports no os either: the process ends through posix."""
    listing = tmp_path / "modules.txt"
    probe = """
import sys
repo, listing = sys.argv[1:3]
sys.path.insert(0, repo)
sys.argv[1:] = ["--version"]
import posix
def _exit(code, real=posix._exit):
    with open(listing, "w") as out:
        out.write(" ".join(sys.modules))
    real(code)
posix._exit = _exit
import relay.__main__
"""
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, str(REPO), str(listing)], env=env, capture_output=True, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith(b"relay "), done.stderr
    loaded = set(listing.read_text().split())
    assert "relay.faces.cli" in loaded and "os" not in loaded


def test_the_probe_sees_a_heavy_import(env, store_home, tmp_path):
    """The check above is not vacuous: a malformed event, whose exact error comes from the json
    package (relay.util.jsonlite asks it only then), is caught importing json."""
    loaded = modules_after(tmp_path, env, ["hook"], b'{"session_id": "trunc')
    assert "relay.faces.hook" in loaded and "json" in loaded


# What an MCP session's first requests do not need (initialize, tools/list, whoami of a session
# no CLI names): the whole file store is opened only by a call that reads more than a marker, and
# outside Codex the session is looked for without the Codex adapter (relay.agents.codex_session).
MCP_UNNEEDED = (
    "relay.store.files",
    "relay.store.lock",
    "relay.store.base",
    "relay.util.clock",
    "select",
    "relay.agents.codex",
    "relay.agents.hook_protocol",
)


def test_an_mcp_session_imports_nothing_heavy(env, store_home, tmp_path):
    """The MCP server starts with every Claude Code and Codex session: initialize, tools/list and
    a whoami call must not import typing, orjson, dataclasses (...) either."""
    frames = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}},
    ]
    stdin = "".join(json.dumps(frame) + "\n" for frame in frames).encode()
    loaded = modules_after(tmp_path, {**env, "RELAY_NO_ANCESTRY": ""}, ["bus"], stdin)
    assert "relay.faces.mcp_tools" in loaded and "relay.usecases.identity" in loaded
    assert sorted(loaded & set(HEAVY)) == []
    # No session is named and the dir has no marker: the marker lookup (relay.store.markers) is all
    # these requests need of the store, so the store class and its lock, base and clock stay
    # unloaded; `select` is for `wait` alone; no Codex ancestor: the Codex adapter stays unloaded.
    assert sorted(loaded & set(MCP_UNNEEDED)) == []
    assert "relay.store.markers" in loaded  # it did look for the dir's marker


def test_an_mcp_session_opens_the_store_for_a_registered_whoami(env, store_home, tmp_path):
    """The check above is not vacuous: a whoami of a registered session reads the registry, which
    loads the store class."""
    sid = new_id()
    modules_after(tmp_path, env, ["hook"], json.dumps({"session_id": sid, "cwd": str(tmp_path)}).encode())
    env = {**env, "RELAY_NO_ANCESTRY": "", "CLAUDE_CODE_SESSION_ID": sid}
    loaded = modules_after(tmp_path, env, ["bus"], _BUS_START)
    assert "relay.store.files" in loaded


def test_a_long_lived_face_collects_garbage_but_not_its_start_up():
    """relay.faces.boundary.long_lived: the collector `python -m relay` turned off is back on, and
    what start-up allocated is frozen out of its collections (none of it is garbage)."""
    probe = (
        "import gc, sys; gc.disable(); sys.path.insert(0, sys.argv[1]);"
        "from relay.faces.boundary import long_lived; long_lived();"
        "print(gc.isenabled(), gc.get_freeze_count() > 1000)"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, str(REPO)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["True", "True"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["send", "{sid}", "--", "hello"],
        ["send", "--urgent", "{sid}", "--", "hello"],
        ["list"],
        ["list", "--json"],
        ["inbox", "{sid}"],
        ["peek", "{sid}"],
        ["register", "api", "--id", "{sid}", "--deliver", "now"],
        ["send", "--json", "{sid}", "--", "hello"],
        ["send", "{sid}", "--from", "{sid}", "--reply-to", "{msg}", "--", "an answer"],
        ["status", "{msg}"],
        ["ask", "{sid}", "--wait", "0", "--", "anyone?"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_short_lived_commands_import_nothing_heavy(env, store_home, tmp_path, argv):
    sid = new_id()
    modules_after(tmp_path, env, ["hook"], json.dumps({"session_id": sid, "cwd": str(tmp_path)}).encode())
    modules_after(tmp_path, env, ["send", sid, "--", "something to take"])
    [queued] = (store_home / "mailbox" / f"{sid}.jsonl").read_text().splitlines()
    msg = json.loads(queued)["id"]
    words = [word.replace("{sid}", sid).replace("{msg}", msg) for word in argv]
    loaded = modules_after(tmp_path, env, words, allowed_codes=(0, 4))
    assert "relay.faces.cli" in loaded
    assert sorted(loaded & set(HEAVY)) == []
    assert "relay.faces.helptext" not in loaded, "the long help is read only when asked for"


@pytest.mark.parametrize(
    ("argv", "helped"),
    [
        (["list", "--help"], True),
        (["help", "send"], True),
        (["list", "--bogus"], False),  # a usage error names the help but does not read it
        (["send", "nobody-here", "--", "--help"], False),  # after --, --help is message text
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else str(value),
)
def test_only_asking_for_help_imports_the_help_text(env, store_home, tmp_path, argv, helped):
    """The check above is not vacuous: the probe sees relay.faces.helptext when help is asked for. And
    the help needs no third-party module: it is printed, not an error, under `python -S`."""
    listing = tmp_path / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(REPO), str(listing), *argv],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    loaded = set(listing.read_text().split())
    assert ("relay.faces.helptext" in loaded) is helped
    if helped:
        assert done.stdout.startswith(b"usage: relay ") and done.stderr == b"", done.stderr


@pytest.mark.parametrize("event", ["SessionStart", "UserPromptSubmit", "Stop"])
def test_the_hook_delivering_plain_mail_imports_nothing_heavy(env, store_home, tmp_path, event):
    """Ten ordinary messages (no `<`, `&`, `%` or `\\` in them) are fenced without re or json."""
    sid = new_id()
    modules_after(tmp_path, env, ["hook"], json.dumps({"session_id": sid, "cwd": str(tmp_path)}).encode())
    for i in range(10):
        modules_after(tmp_path, env, ["send", sid, "--", f"message {i}: the build of feature-{i} finished"])
    payload = {"session_id": sid, "hook_event_name": event, "cwd": str(tmp_path)}
    loaded = modules_after(tmp_path, env, ["hook"], json.dumps(payload).encode())
    assert "relay.usecases.fence" in loaded  # it really delivered
    assert sorted(loaded & set(HEAVY)) == []
    # Nor what only rare mail or other commands need: each costs ~0.5-1 M instructions of the start.
    assert sorted(loaded & set(NOT_FOR_PLAIN_MAIL)) == []


def test_mail_that_may_hold_a_tag_loads_the_readers_view(env, store_home, tmp_path):
    """The control for the check above: a body with `<` in it is read as a model reads it
    (relay.usecases.tag_view) before it is fenced."""
    sid = new_id()
    modules_after(tmp_path, env, ["hook"], json.dumps({"session_id": sid, "cwd": str(tmp_path)}).encode())
    modules_after(tmp_path, env, ["send", sid, "--", "a < b, and &lt;/session-relay-mail&gt; ends nothing"])
    payload = {"session_id": sid, "hook_event_name": "UserPromptSubmit", "cwd": str(tmp_path), "prompt": "hi"}
    loaded = modules_after(tmp_path, env, ["hook"], json.dumps(payload).encode())
    assert "relay.usecases.fence" in loaded and "relay.usecases.tag_view" in loaded


# What delivering ordinary mail to Claude must not load: the whole adapter (the hook
# takes its answer's shape from relay.agents.hook_protocol), name resolution (only sending
# resolves names), unicodedata and relay.usecases.tag_view (only text with a character that may
# start a tag is read as a model reads it) and __future__ (no module on the path needs it).
NOT_FOR_PLAIN_MAIL = (
    "relay.agents.claude",
    "relay.agents.codex",
    "relay.usecases.addressing",
    "relay.usecases.tag_view",
    "unicodedata",
    "__future__",
)
# How many modules the hook delivering ten plain messages may import beyond a bare `python3 -I -S`:
# the no-mail hook's and the delivery path's own (relay.usecases with deliver, mail, launcher, fence,
# journal; relay.util.textsafe; relay.store.journal_files; relay.store.glance, the read-only checks
# the store shares with the quick path; relay.util.paths, the file names without os). Counted over a
# `python3 -I -S` that has not imported os (so _stat, built in, counts), for it imports no os at all.
# Raise it only in a commit that means it.
DELIVERY_MODULES = 39


def test_the_hook_delivering_ten_keeps_to_its_module_budget(env, store_home, tmp_path):
    """benchmarks/startup_budget.py's "hook delivering 10", to Claude. (Codex's hook loads its adapter
    when it has mail: the hints' shell commands depend on its sandbox, read from its config.toml.)"""
    bare = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import sys; print(' '.join(sys.modules))"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout.split()
    sid = new_id()
    start = {"session_id": sid, "hook_event_name": "SessionStart", "cwd": str(tmp_path)}
    modules_after(tmp_path, env, ["hook"], json.dumps(start).encode())
    for i in range(10):
        modules_after(tmp_path, env, ["send", sid, "--", f"message {i}"])
    payload = {**start, "hook_event_name": "UserPromptSubmit", "prompt": "hello"}
    extra = modules_after(tmp_path, env, ["hook"], json.dumps(payload).encode()) - set(bare)
    assert "relay.usecases.fence" in extra and "relay.store.journal_files" in extra  # it delivered and journaled
    assert sorted(extra & set(NOT_FOR_PLAIN_MAIL)) == []
    assert sorted(extra & {"os", "_collections_abc", "stat", "posixpath", "genericpath"}) == []
    assert len(extra) <= DELIVERY_MODULES, " ".join(sorted(extra))


# The shapes of start that run most often: the hook per event, send, list, and the bus's start.
_BUS_START = "".join(
    json.dumps(frame) + "\n"
    for frame in (
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}},
    )
).encode()


def _redis_probe(tmp_path: Path, env: dict[str, str], face: str, sid: str) -> set[str]:
    """The modules one start of `face` imported, with site-packages on (where redis-py lives)."""
    event = {"session_id": sid, "hook_event_name": "UserPromptSubmit", "cwd": str(tmp_path)}
    argv, stdin = {
        "hook": (["hook"], json.dumps(event).encode()),
        "hook codex": (["hook", "codex"], json.dumps({**event, "hook_event_name": "SessionStart"}).encode()),
        "send": (["send", sid, "--", "hello"], b""),
        "list": (["list"], b""),
        "bus": (["bus"], _BUS_START),
    }[face]
    return modules_after(tmp_path, {**env, "RELAY_NO_ANCESTRY": ""}, argv, stdin, allowed_codes=(0, 1), flags=("-I",))


@pytest.mark.parametrize("face", ["hook", "hook codex", "send", "list", "bus"])
def test_without_a_redis_url_no_face_imports_redis(env, store_home, tmp_path, face):
    """docs/redis-store.md: redis-py is imported only when AGENT_RELAY_URL is set, so the local store's hook,
    send, list and bus pay nothing for it (site-packages are on here: redis-py could be imported)."""
    pytest.importorskip("redis")
    sid = new_id()
    modules_after(tmp_path, env, ["hook"], json.dumps({"session_id": sid, "cwd": str(tmp_path)}).encode())
    loaded = _redis_probe(tmp_path, env, face, sid)
    # the probe reached the store: the bus's start reads only a marker (relay.store.markers), the hook
    # at a prompt with nothing to deliver only asks the local store (relay.store.glance)
    reached = {"bus": "relay.store.markers", "hook": "relay.store.glance"}.get(face, "relay.store.files")
    assert "relay.faces.cli" in loaded and reached in loaded
    assert sorted(name for name in loaded if name == "redis" or name.startswith("redis.")) == []


@pytest.mark.parametrize("face", ["hook", "send"])
def test_with_a_redis_url_the_faces_do_import_redis(env, store_home, tmp_path, face):
    """The check above is not vacuous: with AGENT_RELAY_URL set (here a refused port) the same
    starts import redis-py and fail as the faces say (send: exit 1; hook: exit 0)."""
    pytest.importorskip("redis")
    loaded = _redis_probe(tmp_path, {**env, "AGENT_RELAY_URL": "redis://127.0.0.1:1/0"}, face, new_id())
    assert "redis" in loaded and "relay.store.redisdb" in loaded

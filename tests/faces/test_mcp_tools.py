"""relay.tools.call in-process: every tool, every error path, what reaches the store."""

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import mailbox_lines, new_id, stored_registry

from relay.faces import mcp_tools as tools
from relay.store.contract import open_store
from relay.usecases.mail import MAX_BODY_BYTES
from relay.util.errors import LockBusy, RelayError

if TYPE_CHECKING:
    from relay.store.contract import StoreAPI

# Through the tools, in-process: each test runs on the file store and on Redis (conftest's `world`).
pytestmark = pytest.mark.usefixtures("world")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


@pytest.fixture
def me(env, project, monkeypatch: pytest.MonkeyPatch) -> str:
    session_id = new_id()
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", session_id)
    return session_id


@pytest.fixture
def store(env, world) -> "StoreAPI":
    """The store of this test's world (conftest's `world`: files, or Redis)."""
    return open_store()


def ok(store: "StoreAPI", name: str, arguments: Any = None) -> dict[str, Any]:
    result, finish = tools.call(store, name, {} if arguments is None else arguments)
    json.dumps(result)  # it must be JSON for the wire
    if finish is not None:
        finish(True)
    return result


def fails(store: "StoreAPI", name: str, arguments: Any) -> str:
    with pytest.raises(RelayError) as caught:
        tools.call(store, name, arguments)
    return str(caught.value)


def stored_mail(store_home: Path) -> list[object]:
    """Every mailbox that holds mail: files under mailbox/ and inflight/, or streams not empty on Redis."""
    found: list[object] = []
    for sub in ("mailbox", "inflight"):
        if (store_home / sub).is_dir():
            found += [p for p in (store_home / sub).iterdir() if p.suffix == ".jsonl"]
    url = os.environ.get("AGENT_RELAY_URL")
    if url:
        import redis

        with redis.Redis.from_url(url, socket_timeout=5) as client:
            found += [key for key in client.scan_iter(match="relay:mbox:*") if client.xlen(key)]
    return found


def test_known_names_exactly_the_eight_tools():
    assert [t["name"] for t in tools.TOOLS] == [
        "whoami",
        "register",
        "roster",
        "send",
        "inbox",
        "discover",
        "status",
        "wait",
    ]
    for name in ("whoami", "register", "roster", "send", "inbox", "discover"):
        assert tools.known(name)
    for name in ("", "WHOAMI", "peek", "wake", "__init__"):
        assert not tools.known(name)
    assert tools.SERVER_INFO["name"] == "session-relay-bus"


# -- whoami ----------------------------------------------------------------------------------------


def test_whoami_unregistered_with_id(store, me, project):
    got = ok(store, "whoami")
    assert got["registered"] is False
    assert (got["id"], got["dir"]) == (me, str(project))
    assert "register" in got["note"]


def test_whoami_without_any_id(store, env, project):
    got = ok(store, "whoami")
    assert got == {"registered": False, "id": None, "dir": str(project), "note": got["note"]}
    assert "hook" in got["note"]


def test_whoami_registered(store, me, project, world):
    ok(store, "register", {"name": "api"})
    got = ok(store, "whoami")
    assert got["registered"] is True
    assert (got["id"], got["name"], got["dir"], got["tool"]) == (me, "api", str(project), "claude")
    shared = {"host"} if world == "redis" else set()  # a store several machines share says where
    assert set(got) == {"registered", "id", "dir", "name", "tool", "lastSeen", "deliver", *shared}
    assert got["deliver"] == "turn"


def test_whoami_through_the_marker(store, env, project, tmp_path, monkeypatch):
    me = new_id()
    store.set_marker(str(project), me)
    store.register(me, directory=str(project), tool="codex")
    assert ok(store, "whoami")["id"] == me  # cwd
    monkeypatch.chdir(tmp_path)
    assert ok(store, "whoami")["id"] is None
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(project))
    got = ok(store, "whoami")
    assert (got["id"], got["tool"], got["registered"]) == (me, "codex", True)
    monkeypatch.setenv("RELAY_PROJECT_DIR", "${CLAUDE_PROJECT_DIR}")
    assert ok(store, "whoami")["id"] == me
    monkeypatch.setenv("RELAY_PROJECT_DIR", str(tmp_path))
    assert ok(store, "whoami")["id"] is None


# -- register --------------------------------------------------------------------------------------


def test_register_self_and_rename(store, me, project, store_home):
    first = ok(store, "register", {"name": "one"})
    assert (first["registered"], first["id"], first["name"], first["dir"]) == (True, me, "one", str(project))
    second = ok(store, "register", {"name": "two"})
    assert second["name"] == "two"
    registry = stored_registry(store_home)
    assert registry["names"] == {"two": me}
    assert registry["agents"][me]["name"] == "two"


def test_register_keeps_an_existing_dir(store, me, tmp_path):
    store.register(me, directory="/somewhere/else")
    assert ok(store, "register", {"name": "n"})["dir"] == "/somewhere/else"
    assert ok(store, "register", {"name": "n", "dir": "/new/dir"})["dir"] == "/new/dir"


def test_register_names_no_other_session_registered_or_not(store, me, store_home):
    """Naming an unregistered id would let a session register a made-up id sharing the prefix of a
    running, unregistered session and catch the mail sent to that prefix: only itself, then."""
    other = new_id()
    for arguments in ({"name": "other", "id": other, "dir": "/o"}, {"name": "renamed", "id": other}):
        text = fails(store, "register", arguments)
        assert "is not you" in text and "leave out `id`" in text and "relay register" in text
    assert stored_registry(store_home)["agents"] == {}
    got = ok(store, "register", {"name": "mine", "id": me.upper()})  # its own id, in any case
    assert (got["id"], got["name"]) == (me, "mine")


def test_register_cannot_repoint_another_sessions_dir_or_tool(store, me, store_home):
    victim = new_id()
    store.register(victim, name="victim", directory="/victim/project", tool="codex")
    before = stored_registry(store_home)
    for arguments in (
        {"name": "victim", "id": victim, "dir": "/attacker"},
        {"name": "mine-now", "id": victim.upper()},
    ):
        assert "is not you" in fails(store, "register", arguments)
    assert stored_registry(store_home) == before


def test_register_moves_a_name_from_a_session_that_is_not_running(store, me):
    other = new_id()
    store.register(other, name="Shared")
    ok(store, "register", {"name": "shared"})  # the same name ignoring case
    roster = {a["id"]: a["name"] for a in ok(store, "roster")["agents"]}
    assert roster == {other: None, me: "shared"}


@pytest.mark.parametrize("name", ["cli", "CLI", "user", "System", "relay", "RELAY", "session-relay", "Session-Relay"])
def test_register_refuses_reserved_names(store, me, store_home, name):
    assert "reserved" in fails(store, "register", {"name": name})
    assert stored_registry(store_home)["agents"] == {}


def test_register_without_a_known_id(store, env, project, store_home):
    text = fails(store, "register", {"name": "x"})
    assert "unknown" in text and "relay register" in text
    assert stored_registry(store_home)["agents"] == {}
    # an explicit id cannot stand in for it: nothing tells it is this session's
    assert "unknown" in fails(store, "register", {"name": "x", "id": new_id()})
    assert stored_registry(store_home)["agents"] == {}


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        ({}, "`name` is required"),
        ({"name": ""}, "`name`"),
        ({"name": 3}, "`name`"),
        ({"name": True}, "`name`"),
        ({"name": "x" * 65}, "`name`"),
        ({"name": "x", "id": "nope"}, "`id`"),
        ({"name": "x", "id": 5}, "`id`"),
        ({"name": "x", "dir": ""}, "`dir`"),
        ({"name": "x", "dir": "relative"}, "absolute"),
        ({"name": "x", "dir": 1}, "`dir`"),
        ({"name": "x", "tool": "codex"}, "`tool`"),
        ({"name": " padded"}, "`name`"),
        ({"name": "a\nb"}, "`name`"),
        ({"name": "web app"}, "`name`"),
        ({"name": "api$(touch /tmp/x)"}, "`name`"),
        ({"name": "Zoë"}, "`name`"),
        ({"name": "-flag"}, "'-'"),
        ({"name": "123e4567-e89b-12d3-a456-426614174000"}, "session id"),
        ({"name": "cli"}, "reserved"),
    ],
)
def test_register_errors_store_nothing(store, me, store_home, arguments, needle):
    text = fails(store, "register", arguments)
    assert needle in text, text
    assert stored_registry(store_home)["agents"] == {}


# -- roster ----------------------------------------------------------------------------------------


def test_roster_empty_and_sorted(store, env, project):
    assert ok(store, "roster") == {"agents": []}
    ids = [new_id() for _ in range(4)]
    for session_id, name in zip(ids, ["delta", "Bravo", "alpha", None], strict=True):
        if name:
            store.register(session_id, name=name)
        else:
            store.register(session_id)
    names = [a.get("name") or a["id"] for a in ok(store, "roster")["agents"]]
    assert names == sorted(names)
    assert set(names) == {"delta", "Bravo", "alpha", ids[3]}


def test_roster_refuses_arguments(store, env):
    assert "unknown argument `all`" in fails(store, "roster", {"all": True})


# -- send ------------------------------------------------------------------------------------------


def test_send_by_name_and_by_id(store, me, store_home):
    bob = new_id()
    store.register(bob, name="bob", directory="/b", tool="codex")
    ok(store, "register", {"name": "alice"})
    got = ok(store, "send", {"to": "bob", "body": "one"})
    assert (got["ok"], got["delivered_to"], got["recipient_dir"]) == (True, "bob", "/b")
    assert "wake bob" in got["hint"]
    ok(store, "send", {"to": bob, "body": "two"})
    lines = mailbox_lines(store_home, bob)
    messages = [json.loads(line) for line in lines]
    assert [m["body"] for m in messages] == ["one", "two"]
    assert [m.get("byName") for m in messages] == [True, None]  # only mail to the name follows the name
    for message in messages:
        assert set(message) - {"byName"} == {"id", "ts", "from", "fromName", "to", "toName", "body"}
        assert (message["from"], message["fromName"], message["to"], message["toName"]) == (me, "alice", bob, "bob")


def test_send_from_an_unknown_session(store, env, project, store_home):
    target = new_id()
    got = ok(store, "send", {"to": target, "body": "anon"})
    assert got["delivered_to"] == target and got["recipient_dir"] is None
    assert "--id" in got["hint"]
    (message,) = [json.loads(x) for x in mailbox_lines(store_home, target)]
    assert (message["from"], message["fromName"]) == (None, None)


def test_send_to_myself_is_allowed(store, me):
    ok(store, "send", {"to": me, "body": "note to self"})
    assert [m["body"] for m in ok(store, "inbox")["messages"]] == ["note to self"]


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        ({"body": "x"}, "`to` is required"),
        ({"to": "bob"}, "`body` is required"),
        ({"to": "bob", "body": 1}, "`body`"),
        ({"to": ["bob"], "body": "x"}, "`to`"),
        ({"to": None, "body": "x"}, "`to`"),
        ({"to": "bob", "body": "x", "cc": "z"}, "`cc`"),
        ({"to": "nobody", "body": "x"}, "roster"),
        ({"to": "nobody", "body": "x"}, "discover"),
        ({"to": "--config=evil", "body": "x"}, "roster"),
        ({"to": "bob", "body": "   \n\t"}, "empty"),
        ({"to": "bob", "body": "a\x00b"}, "NUL"),
        ({"to": "bob", "body": "x" * (MAX_BODY_BYTES + 1)}, "too long"),
        ({"to": "bob", "body": "é" * (MAX_BODY_BYTES // 2 + 1)}, "too long"),
        ({"to": "bob", "body": "\ud800"}, "UTF-8"),
    ],
)
def test_send_errors_store_nothing(store, me, store_home, arguments, needle):
    store.register(new_id(), name="bob")
    text = fails(store, "send", arguments)
    assert needle in text, text
    assert stored_mail(store_home) == []


def test_send_largest_body(store, me, store_home):
    bob = new_id()
    ok(store, "send", {"to": bob, "body": "x" * MAX_BODY_BYTES})
    (line,) = mailbox_lines(store_home, bob)
    assert len(json.loads(line)["body"]) == MAX_BODY_BYTES


@pytest.mark.files_only("holds the file store's .lock; Redis has no store-wide lock")
def test_send_when_the_lock_is_busy(store, me, store_home, monkeypatch):
    import subprocess
    import sys

    from relay.store import lock

    monkeypatch.setattr(lock, "DEADLINE_SECONDS", 0.2)
    monkeypatch.setattr(lock.FileLock.__init__, "__defaults__", (0.2, False))
    store_home.mkdir(mode=0o700, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,os,sys; fd=os.open(sys.argv[1], os.O_RDWR|os.O_CREAT, 0o600);"
            "fcntl.lockf(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
            str(store_home / ".lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline() == b"held\n"
        started = time.monotonic()
        with pytest.raises(LockBusy) as caught:
            tools.call(store, "send", {"to": new_id(), "body": "x"})
        assert "lock busy" in str(caught.value)
        assert time.monotonic() - started < 2.5
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    assert stored_mail(store_home) == []
    ok(store, "send", {"to": new_id(), "body": "now it works"})


# -- inbox -----------------------------------------------------------------------------------------


def test_inbox_takes_the_mail_once(store, me, store_home):
    ok(store, "send", {"to": me, "body": "a"})
    ok(store, "send", {"to": me, "body": "b"})
    result, finish = tools.call(store, "inbox", {})
    assert result["count"] == 2
    assert [m["body"] for m in result["messages"]] == ["a", "b"]
    assert finish is not None
    finish(True)
    assert ok(store, "inbox") | {"note": ""} == {"count": 0, "messages": [], "remaining": 0, "note": ""}
    assert stored_mail(store_home) == []


def test_inbox_not_written_keeps_the_mail(store, me):
    ok(store, "send", {"to": me, "body": "keep me"})
    result, finish = tools.call(store, "inbox", {})
    assert result["count"] == 1
    finish(False)
    again = ok(store, "inbox")
    assert [m["body"] for m in again["messages"]] == ["keep me"]
    assert again["messages"][0]["redelivered"] is True
    assert again["messages"][0]["id"] == result["messages"][0]["id"]
    assert ok(store, "inbox")["count"] == 0


def test_inbox_empty_has_a_finisher_that_is_harmless(store, me, store_home):
    result, finish = tools.call(store, "inbox", {})
    assert result | {"note": ""} == {"count": 0, "messages": [], "remaining": 0, "note": ""}
    finish(True)
    finish_result, finish2 = tools.call(store, "inbox", {})
    finish2(False)
    assert finish_result["count"] == 0


def test_inbox_without_a_known_id(store, env, project):
    assert "unknown" in fails(store, "inbox", {})


def test_inbox_refuses_arguments(store, me):
    ok(store, "send", {"to": me, "body": "x"})
    assert "`peek`" in fails(store, "inbox", {"peek": True})
    assert ok(store, "inbox")["count"] == 1


def test_inbox_only_my_mail(store, me):
    other = new_id()
    ok(store, "send", {"to": other, "body": "not yours"})
    assert ok(store, "inbox")["count"] == 0
    assert [m["body"] for m in store.peek(other)] == ["not yours"]


# -- discover --------------------------------------------------------------------------------------


def _claude(env: dict[str, str], session_id: str, cwd: str, age: float, folder: str = "-p") -> None:
    path = Path(env["RELAY_CLAUDE_PROJECTS"]) / folder / f"{session_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cwd": cwd}) + "\n")
    when = time.time() - age
    os.utime(path, (when, when))


def test_discover_rows(store, me, env, project):
    near, far = new_id(), new_id()
    _claude(env, me, str(project), 1)
    _claude(env, near, str(project), 1000)
    _claude(env, far, "/far", 30)
    got = ok(store, "discover")
    assert [r["id"] for r in got["sessions"]] == [near, far]
    assert got["count"] == 2
    assert "project dir" in got["note"]
    # no CLI process runs them: not live, and the note says what live means and when to wake
    assert [r["live"] for r in got["sessions"]] == [False, False]
    assert all("active" not in r for r in got["sessions"])
    assert "`live: true`" in got["note"] and "`live: false`" in got["note"] and "`wake`" in got["note"]
    got = ok(store, "discover", {"activeWithinMin": 1})
    assert [r["id"] for r in got["sessions"]] == [far]
    assert ok(store, "discover", {"tool": "codex"})["sessions"] == []


def test_discover_accepts_integer_and_float_minutes(store, me, env):
    _claude(env, new_id(), "/x", 10)
    assert ok(store, "discover", {"activeWithinMin": 1})["count"] == 1
    assert ok(store, "discover", {"activeWithinMin": 0.01})["count"] == 0
    assert ok(store, "discover", {"activeWithinMin": 1e308})["count"] == 1
    assert ok(store, "discover", {"activeWithinMin": 10**400})["count"] == 1  # no float overflow


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        ({"activeWithinMin": True}, "`activeWithinMin` must be a number, got bool"),
        ({"activeWithinMin": "5"}, "`activeWithinMin`"),
        ({"activeWithinMin": 0}, "greater than 0"),
        ({"activeWithinMin": -5}, "greater than 0"),
        ({"tool": "aider"}, "`tool` must be one of"),
        ({"tool": None}, "`tool`"),
        ({"limit": 3}, "unknown argument `limit`"),
    ],
)
def test_discover_errors(store, me, arguments, needle):
    assert needle in fails(store, "discover", arguments)


@pytest.mark.parametrize("arguments", [None, [], "x", 3, [{"name": "x"}]])
@pytest.mark.parametrize("tool", ["whoami", "register", "roster", "send", "inbox", "discover", "status", "wait"])
def test_non_object_arguments_are_refused(store, me, tool, arguments):
    assert fails(store, tool, arguments) == f"invalid arguments for {tool}: arguments must be a JSON object"


def test_errors_start_with_the_tool_name(store, me):
    assert fails(store, "send", {}).startswith("invalid arguments for send: ")


def test_finisher_is_none_except_for_inbox(store, me):
    for name, arguments in [
        ("whoami", {}),
        ("register", {"name": "n"}),
        ("roster", {}),
        ("send", {"to": me, "body": "x"}),
        ("discover", {}),
    ]:
        _, finish = tools.call(store, name, arguments)
        assert finish is None, name
    _, finish = tools.call(store, "inbox", {})
    assert callable(finish)
    finish(True)


# -- the caller named in params._meta (Codex) ------------------------------------------------------


def test_meta_names_the_session(store, env, project):
    codex_id = new_id()
    result, _ = tools.call(store, "register", {"name": "cx"}, {"sessionId": codex_id})
    assert (result["id"], result["tool"], result["dir"]) == (codex_id, "codex", str(project))
    result, _ = tools.call(store, "whoami", {}, {"threadId": codex_id})
    assert (result["registered"], result["id"]) == (True, codex_id)
    assert ok(store, "whoami")["id"] is None  # nothing is cached between calls


@pytest.mark.parametrize("meta", [None, {}, "x", [], {"sessionId": "not-a-uuid"}, {"sessionId": 5}])
def test_meta_without_a_uuid_names_nobody(store, env, project, meta):
    result, _ = tools.call(store, "whoami", {}, meta)
    assert result["id"] is None


def test_env_session_id_wins_over_meta(store, me):
    result, _ = tools.call(store, "whoami", {}, {"sessionId": new_id()})
    assert result["id"] == me

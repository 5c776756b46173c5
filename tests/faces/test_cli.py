"""The people-facing CLI (docs/cli.md): help, exit codes, one-line errors, `--` and flag values, commands."""

import fcntl
import json
import os
import re
from pathlib import Path

import pytest
from agent_files import fake_agent_cli, read_record
from conftest import file_registry, new_id, queued_to, stored_registry
from hypothesis import given
from hypothesis import strategies as st

from relay import __version__
from relay.agents.claude import WAKE_OPTIONS as CLAUDE_WAKE_OPTIONS
from relay.faces.argv import parse
from relay.faces.commands import SHAPES

# Black-box through the faces: each test runs on the file store and on Redis (conftest's `world`).
pytestmark = pytest.mark.usefixtures("world")

COMMANDS = ("discover", "list", "register", "send", "inbox", "peek", "wake", "hook", "bus", "demo")
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def one_line_error(result) -> str:
    """The stderr of a failed run: exactly one non-empty line, no traceback, nothing on stdout."""
    err = result.stderr.decode()
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.strip()
    assert "Traceback" not in err
    assert result.stdout == b""
    return err


def registry(store_home: Path) -> dict:
    return stored_registry(store_home)


def peek(run_relay, who):
    result = run_relay("peek", who)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- version and help -------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(run_relay, flag):
    result = run_relay(flag)
    assert result.returncode == 0
    assert result.stdout.decode() == f"relay {__version__}\n"


@pytest.mark.parametrize("args", [("--help",), ("-h",), ("help",), ()])
def test_help(run_relay, args, store_home):
    result = run_relay(*args)
    assert result.returncode == 0
    out = result.stdout.decode()
    assert "usage: relay" in out
    for command in COMMANDS:
        assert f"  {command} " in out
    assert not store_home.exists()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_command_help(run_relay, command, flag, store_home, tmp_path):
    result = run_relay(command, flag, input=b"")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "usage" in out.lower() and f"relay {command}" in out, (command, out)
    assert not store_home.exists()


def test_command_help_wins_over_missing_arguments(run_relay):
    for args in (("register", "--help"), ("send", "--help"), ("register", "x", "--id", "--help")):
        result = run_relay(*args)
        # `register x --id --help`: --help is the value of --id, so it is no help request
        if args[-2] == "--id":
            assert result.returncode == 2
            assert "invalid session id '--help'" in one_line_error(result)
        else:
            assert result.returncode == 0 and b"usage" in result.stdout


# -- exit codes and one-line errors -----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("frobnicate",),
        ("list", "--bogus"),
        ("list", "extra"),
        ("list", "--json=1"),
        ("register",),
        ("register", "alice"),
        ("register", "alice", "--id"),
        ("register", "alice", "--id", "11111111-1111-4111-8111-111111111111", "--tool", "vim"),
        ("register", "alice", "--id", "11111111-1111-4111-8111-111111111111", "--tool", ""),
        ("register", "alice", "bob", "--id", "11111111-1111-4111-8111-111111111111"),
        ("send",),
        ("send", "bob"),
        ("send", "bob", "--"),
        ("send", "bob", "--dry", "run"),
        ("send", "--id"),
        ("inbox",),
        ("inbox", "a", "b"),
        ("peek",),
        ("peek", "--json"),
        ("wake",),
        ("wake", "--id", "11111111-1111-4111-8111-111111111111"),
        ("wake", "--id", "11111111-1111-4111-8111-111111111111", "--dir", "/tmp"),
        ("wake", "--id", "11111111-1111-4111-8111-111111111111", "--dir", "/tmp", "--tool", "vim"),
        ("wake", "bob", "--now"),
        ("discover", "--within", "soon"),
        ("discover", "--within", "0"),
        ("discover", "--within", "-1"),
        ("discover", "--tool", "aider"),
        ("discover", "--limit"),
        ("bus", "extra"),
        ("demo", "--fast"),
    ],
)
def test_usage_errors_exit_2(run_relay, args, store_home):
    result = run_relay(*args, input=b"")
    assert result.returncode == 2, (args, result.returncode, result.stderr)
    one_line_error(result)
    assert not (store_home / "agents").exists()
    assert not (store_home / "mailbox").exists() or not any((store_home / "mailbox").iterdir())


SID = "11111111-1111-4111-8111-111111111111"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("register", "alice", "--id", SID, "--deliver", "sometimes"), ("--deliver", "now", "turn", "start")),
        (("register", "alice", "--id", SID, "--deliver", "NOW"), ("--deliver", "now", "turn", "start")),
        (("register", "alice", "--id", SID, "--deliver", ""), ("--deliver", "now", "turn", "start")),
        (("register", "alice", "--id", SID, "--tool", "aider"), ("--tool", "claude", "codex")),
        (("register", "alice", "--id", "not-a-uuid"), ("--id", "UUID")),
        (("register", "alice", "--id", "abc12"), ("--id", "8 hex")),
        (("send", "--id", "../../etc/passwd", "--", "hi"), ("--id", "UUID")),
        (("wake", "--id", "-p", "--dir", "/tmp", "--tool", "claude"), ("--id", "UUID")),
        (("discover", "--limit", "2.5"), ("--limit", "whole number")),
        (("discover", "--within", "nan"), ("--within", "positive number")),
        (("gc", "--older-than", "soon"), ("--older-than", "number")),
        (("ask", "bob", "--wait", "99999", "--", "q"), ("--wait", "0 to 3600")),
        (("doorbell", "--per-minute", "many"), ("--per-minute", "number")),
        (("doorbell", "--serve", "--per-minute", "1.5"), ("--per-minute", "whole number")),
    ],
)
def test_a_bad_option_value_is_a_usage_error(run_relay, store_home, args, named):
    """Every option value out of its allowed set exits 2 with one line naming the option and what it
    allows, and changes nothing."""
    result = run_relay(*args, input=b"")
    assert result.returncode == 2, (args, result.returncode, result.stderr)
    err = one_line_error(result)
    for word in named:
        assert word in err, (word, err)
    assert registry(store_home)["agents"] == {}
    assert not (store_home / "mailbox").exists() or not any((store_home / "mailbox").iterdir())


def test_unknown_option_names_the_option_and_hints_at_dashdash(run_relay):
    err = one_line_error(run_relay("send", "bob", "--dry"))
    assert "--dry" in err and "--" in err and "usage" in err


@pytest.mark.parametrize(
    "args",
    [
        ("send", "nobody", "--", "hi"),
        ("inbox", "nobody"),
        ("peek", "nobody"),
        ("wake", "nobody"),
        ("wake", "nobody", "--dry"),
    ],
)
def test_unknown_session_exits_1(run_relay, args):
    result = run_relay(*args)
    assert result.returncode == 1
    err = one_line_error(result)
    assert "nobody" in err
    assert "relay list" in err or "discover" in err  # says what to do


def test_wake_missing_dir_exits_1(run_relay, tmp_path):
    sid = new_id()
    gone = tmp_path / "gone"
    assert run_relay("register", "old", "--id", sid, "--dir", str(gone)).returncode == 0
    result = run_relay("wake", "old", extra_env={"PATH": f"{tmp_path / 'nobin'}:{os.environ['PATH']}"})
    assert result.returncode == 1
    err = one_line_error(result)
    assert str(gone) in err and "does not exist" in err


@pytest.mark.files_only(
    "holds the file store's .lock; Redis has no store-wide lock (test_redis_faces covers its faults)"
)
def test_lock_busy_exits_1(run_relay, store_home):
    sid = new_id()
    assert run_relay("register", "alice", "--id", sid).returncode == 0
    before = file_registry(store_home)
    fd = os.open(store_home / ".lock", os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_relay("register", "bob", "--id", new_id(), timeout=30)
        send = run_relay("send", "alice", "--", "hi", timeout=30)
    finally:
        os.close(fd)
    assert result.returncode == 1
    assert one_line_error(result) == "session-relay: lock busy (held > 3s)\n"
    assert send.returncode == 1 and "lock busy" in one_line_error(send)
    assert file_registry(store_home) == before
    assert peek(run_relay, "alice")["count"] == 0


# -- `--` and flag values ---------------------------------------------------------------------


def test_send_everything_after_dashdash_is_the_message(run_relay, store_home):
    bob = new_id()
    assert run_relay("register", "bob", "--id", bob).returncode == 0
    result = run_relay("send", "bob", "--", "please", "--dry", "run")
    assert result.returncode == 0, result.stderr
    assert queued_to(result.stdout) == "bob"
    result = run_relay("send", "bob", "--", "--id", "x", "--", "-h", "--help", "  two  spaces ")
    assert result.returncode == 0, result.stderr
    mail = peek(run_relay, "bob")
    assert [m["body"] for m in mail["messages"]] == ["please --dry run", "--id x -- -h --help   two  spaces "]
    for message in mail["messages"]:
        assert message["fromName"] == "cli"
        assert message["from"] is None
        assert message["to"] == bob and message["toName"] == "bob"
        assert ISO.match(message["ts"])


def test_message_words_that_look_like_interpreter_flags(run_relay):
    # A frozen Python must not read these as its own -c/-m/-X options: they are message words.
    bob = new_id()
    run_relay("register", "bob", "--id", bob)
    words = ["run", "python", "-m", "pytest", "-c", "x=1", "-X", "dev", "-W", "error", "-E", "-S", "-I"]
    result = run_relay("send", "bob", "--", *words)
    assert result.returncode == 0, result.stderr
    assert queued_to(result.stdout) == "bob"
    assert peek(run_relay, "bob")["messages"][0]["body"] == " ".join(words)


def test_send_words_without_dashdash(run_relay):
    bob = new_id()
    run_relay("register", "bob", "--id", bob)
    assert run_relay("send", "bob", "hello", "world").returncode == 0
    assert peek(run_relay, "bob")["messages"][0]["body"] == "hello world"


def test_wake_everything_after_dashdash_is_the_message_not_a_dry_run(run_relay, tmp_path):
    bob, project = new_id(), tmp_path / "proj"
    project.mkdir()
    record = tmp_path / "record.jsonl"
    fake_agent_cli(tmp_path / "bin", record, "claude")
    assert run_relay("register", "bob", "--id", bob, "--dir", str(project)).returncode == 0
    result = run_relay(
        "wake", "bob", "--", "please", "--dry", "run", extra_env={"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    )
    assert result.returncode == 0, result.stderr
    assert b"fake-claude stdout" in result.stdout  # it really rang: not a dry run
    runs = read_record(record)
    assert len(runs) == 1
    assert runs[0]["argv"][:-1] == ["-p", "--resume", bob, "--output-format", "json", *CLAUDE_WAKE_OPTIONS, "--"]
    assert [m["body"] for m in peek(run_relay, "bob")["messages"]] == ["please --dry run"]  # queued as mail


@pytest.mark.parametrize("value", ["--config=evil", "-c", "--help", "not-a-uuid", "../../etc/passwd"])
def test_flag_value_is_the_next_argument_as_given(run_relay, store_home, value):
    result = run_relay("register", "x", "--id", value)
    assert result.returncode == 2, result.stderr  # a malformed option value: a usage error
    err = one_line_error(result)
    assert f"--id: invalid session id {value!r}" in err
    assert "UUID" in err
    assert registry(store_home)["agents"] == {}
    assert not (store_home / "agents").exists()


def test_send_id_flag_value_refused(run_relay, store_home):
    result = run_relay("send", "--id", "--config=evil", "--", "hi")
    assert result.returncode == 2
    assert "'--config=evil'" in one_line_error(result)
    assert not (store_home / "mailbox").exists() or not any((store_home / "mailbox").iterdir())


def test_option_equals_form(run_relay, store_home):
    sid = new_id()
    assert run_relay("register", "eq", f"--id={sid}", "--tool=codex", "--dir=/srv/eq").returncode == 0
    entry = registry(store_home)["agents"][sid]
    assert (entry["name"], entry["tool"], entry["dir"]) == ("eq", "codex", "/srv/eq")


# -- register / list --------------------------------------------------------------------------


def test_register_and_list(run_relay, store_home, tmp_path, world):
    a, b = new_id(), new_id()
    result = run_relay("register", "zeta", "--id", a, "--dir", "rel/dir", "--tool", "codex")
    assert result.returncode == 0, result.stderr
    assert "zeta" in result.stdout.decode() and a in result.stdout.decode()
    assert run_relay("register", "alpha", "--id", b).returncode == 0
    data = registry(store_home)
    assert data["names"] == {"zeta": a, "alpha": b}
    assert data["agents"][a]["dir"] == str(tmp_path / "rel" / "dir")  # relative to the caller's cwd
    assert data["agents"][a]["tool"] == "codex"
    assert data["agents"][b]["tool"] == "claude" and data["agents"][b]["dir"] is None
    assert ISO.match(data["agents"][a]["lastSeen"])

    listed = run_relay("list", "--json")
    assert listed.returncode == 0
    entries = json.loads(listed.stdout)
    assert [e["name"] for e in entries] == ["alpha", "zeta"]
    shared = {"host"} if world == "redis" else set()  # a store several machines share says where
    assert set(entries[0]) == {"id", "dir", "name", "tool", "lastSeen", "deliver", *shared}
    assert entries[0]["deliver"] == "turn"  # the default, shown though not stored

    text = run_relay("list").stdout.decode().splitlines()
    assert len(text) == 2
    assert text[0].split()[:4] == ["alpha", "claude", b, "turn"]
    if world == "redis":  # HOST before DIR (tests/store/test_redis_hosts.py)
        assert text[1].split()[:6] == ["zeta", "codex", a, "turn", entries[1]["host"], str(tmp_path / "rel" / "dir")]
    else:
        assert text[1].split()[:5] == ["zeta", "codex", a, "turn", str(tmp_path / "rel" / "dir")]


def test_register_upserts_and_rebinds_name(run_relay, store_home):
    a, b = new_id(), new_id()
    run_relay("register", "one", "--id", a, "--dir", "/srv/a", "--tool", "codex")
    run_relay("register", "two", "--id", a)  # renaming keeps dir and tool
    data = registry(store_home)
    assert data["names"] == {"two": a}
    assert (data["agents"][a]["dir"], data["agents"][a]["tool"]) == ("/srv/a", "codex")
    run_relay("register", "two", "--id", b)  # the name moves to b
    data = registry(store_home)
    assert data["names"] == {"two": b}
    assert data["agents"][a]["name"] is None


@pytest.mark.parametrize("name", ["-dash", "11111111-1111-4111-8111-111111111111", "a\nb", " pad"])
def test_register_bad_name_exits_1(run_relay, store_home, name):
    result = run_relay("register", name, "--id", new_id())
    assert result.returncode in (1, 2)
    one_line_error(result)
    assert registry(store_home)["agents"] == {}


def test_list_empty(run_relay):
    result = run_relay("list")
    assert result.returncode == 0 and result.stdout.strip()
    assert json.loads(run_relay("list", "--json").stdout) == []


# -- send / inbox / peek ----------------------------------------------------------------------


def test_send_by_id(run_relay, store_home):
    unregistered, registered = new_id(), new_id()
    result = run_relay("send", "--id", unregistered, "--", "to", "an", "unregistered", "session")
    assert result.returncode == 0, result.stderr
    assert queued_to(result.stdout) == f"{unregistered}"
    run_relay("register", "carol", "--id", registered)
    result = run_relay("send", "--id", registered, "hi", "carol")
    assert queued_to(result.stdout) == "carol"
    assert peek(run_relay, unregistered)["messages"][0]["body"] == "to an unregistered session"
    assert peek(run_relay, registered)["messages"][0]["body"] == "hi carol"
    # a bare UUID as TO works too (a discovered session that never registered)
    assert queued_to(run_relay("send", unregistered, "--", "again").stdout) == f"{unregistered}"


def test_inbox_prints_and_takes(run_relay):
    bob = new_id()
    run_relay("register", "bob", "--id", bob)
    run_relay("send", "bob", "--", "first")
    run_relay("send", "bob", "--", "second ünïcødé 🎉")
    result = run_relay("inbox", "bob")
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert set(got) == {"count", "messages", "remaining"}
    assert got["count"] == 2
    assert [m["body"] for m in got["messages"]] == ["first", "second ünïcødé 🎉"]
    assert {"id", "ts", "from", "fromName", "to", "toName", "body"} <= set(got["messages"][0])
    again = json.loads(run_relay("inbox", bob).stdout)  # by id; nothing left
    assert again == {"count": 0, "messages": [], "remaining": 0}


def test_peek_does_not_take_and_marks_state(run_relay):
    bob = new_id()
    run_relay("register", "bob", "--id", bob)
    run_relay("send", "bob", "--", "keep me")
    first = peek(run_relay, "bob")
    second = peek(run_relay, bob)
    assert first["count"] == second["count"] == 1
    assert first["messages"][0]["state"] == "pending"
    assert first["messages"][0]["body"] == "keep me"
    taken = json.loads(run_relay("inbox", "bob").stdout)
    assert taken["count"] == 1 and "state" not in taken["messages"][0]


def test_peek_on_fresh_store_creates_nothing(run_relay, store_home):
    sid = new_id()
    assert peek(run_relay, sid) == {"count": 0, "messages": [], "remaining": 0}
    assert not store_home.exists()


def test_empty_message_refused(run_relay):
    bob = new_id()
    run_relay("register", "bob", "--id", bob)
    result = run_relay("send", "bob", "--", "   ")
    assert result.returncode == 1
    assert "empty" in one_line_error(result)
    assert peek(run_relay, "bob")["count"] == 0


# -- in-process: the parser ---------------------------------------------------------------------

_WORDS = st.lists(
    st.sampled_from(["--", "-", "--dry", "--id", "-h", "--help", "-c", "x=1", "", " "]) | st.text(), max_size=8
)


@given(
    before=st.sampled_from([["bob"], ["bob", "--dry"], ["--id", "11111111-1111-4111-8111-111111111111"]]), after=_WORDS
)
def test_parse_everything_after_the_first_dashdash_is_verbatim(before, after):
    parsed = parse("wake", SHAPES["wake"], [*before, "--", *after])
    assert parsed.words == after
    assert parsed.help is False
    assert parsed.message == (" ".join(after) if after else None)


@given(value=st.text(min_size=1).filter(lambda v: v != "--"))
def test_parse_flag_value_is_the_next_argument_as_given(value):
    parsed = parse("register", SHAPES["register"], ["x", "--id", value])
    assert parsed.options["--id"] == value

"""Id prefixes (issue 12): anywhere an id is accepted, a unique start of a known id with at least 8
hex digits works. Session ids are known from the registry; message ids from the receipts the
caller may see. An ambiguous prefix is a one-line error listing the candidates; a shorter one is
refused as too short; a registered name wins over a prefix (relay.usecases.addressing.lookup).

Black-box through the program under test (RELAY_CMD): the CLI's TO/WHO, --id, --from,
--reply-to and status MSG_ID, and the MCP bus's to, replyTo, status and wait.
"""

import json
import os
from pathlib import Path

import pytest
from conftest import mailbox_lines, new_id, queued_to
from conftest import plant_receipt as keep_receipt
from test_autoname import project, registry, start
from test_bus import by_id, call, run_bus, tool_json, tool_result
from transcripts import fake_agent_cli

# Black-box through the faces: each test runs on the file store and on Redis (conftest's `world`).
pytestmark = pytest.mark.usefixtures("world")

A1 = "abcdef01-1111-4000-8000-000000000001"
A2 = "abcdef01-2222-4000-8000-000000000002"


def ok(result) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def refused(result) -> str:
    """The one-line error of a command that failed with exit 1."""
    err = result.stderr.decode()
    assert result.returncode == 1, (result.returncode, err)
    assert err.count("\n") == 1, err
    return err


def peek(run_relay, who: str) -> dict:
    return json.loads(ok(run_relay("peek", who)))


def sent_id(run_relay, *args: str) -> str:
    return json.loads(ok(run_relay("send", "--json", *args)))["id"]


@pytest.fixture
def api(run_relay, store_home, tmp_path) -> str:
    """A session started in a dir named `api` (so it is named `api`)."""
    sid = new_id()
    start(run_relay, sid, project(tmp_path, "api"))
    return sid


# -- session ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [lambda s: s[:8], lambda s: s[:8].upper(), lambda s: s[:9], lambda s: s[:14]])
def test_register_with_an_id_prefix(run_relay, store_home, api, cut):
    """`relay register alice --id bdc0b8c7` used to fail with exit 1."""
    out = ok(run_relay("register", "alice", "--id", cut(api)))
    assert out.startswith(f"registered alice -> {api} ")
    assert registry(store_home)["names"] == {"alice": api}


def test_send_inbox_peek_by_prefix(run_relay, store_home, api):
    assert queued_to(ok(run_relay("send", api[:8], "--", "one"))) == "api"
    assert queued_to(ok(run_relay("send", "--id", api[:10], "--", "two"))) == "api"
    assert [m["body"] for m in peek(run_relay, api[:8])["messages"]] == ["one", "two"]
    assert all(m["to"] == api for m in peek(run_relay, api[:8])["messages"])
    taken = json.loads(ok(run_relay("inbox", api[:12].upper())))
    assert taken["count"] == 2
    assert peek(run_relay, "api")["count"] == 0


def test_send_from_a_prefix(run_relay, store_home, api, tmp_path):
    other = new_id()
    start(run_relay, other, project(tmp_path, "web"))
    ok(run_relay("send", "api", "--from", other[:8], "--", "hi"))
    (message,) = peek(run_relay, "api")["messages"]
    assert (message["from"], message["fromName"]) == (other, "web")


def test_wake_by_prefix(run_relay, store_home, api, tmp_path):
    fake_agent_cli(tmp_path / "bin", tmp_path / "record.jsonl", "claude")
    path = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    by_who = json.loads(ok(run_relay("wake", api[:8], "--dry", extra_env=path)))
    by_id = json.loads(ok(run_relay("wake", "--id", api[:8], "--dir", str(tmp_path), "--tool", "claude", "--dry")))
    for planned in (by_who, by_id):
        assert api in planned["args"]  # the whole id reaches the agent CLI's argv


def test_an_ambiguous_prefix_lists_the_candidates(run_relay, store_home):
    ok(run_relay("register", "one", "--id", A1))
    ok(run_relay("register", "two", "--id", A2))
    for args in (
        ("send", "abcdef01", "--", "x"),
        ("send", "--id", "ABCDEF01-", "--", "x"),
        ("register", "three", "--id", "abcdef01"),
        ("peek", "abcdef01"),
        ("wake", "abcdef01", "--dry"),
    ):
        err = refused(run_relay(*args))
        assert "matches 2 sessions" in err and f"{A1} (one)" in err and f"{A2} (two)" in err, (args, err)
    assert mailbox_lines(store_home, A1) == []
    # one more character makes it unique
    assert queued_to(ok(run_relay("send", "abcdef01-2", "--", "x"))) == "two"


@pytest.mark.parametrize(
    "args",
    [
        ("send", "abcdef0", "--", "x"),
        ("send", "--id", "abcdef0", "--", "x"),
        ("register", "alice", "--id", "abcdef0"),
        ("inbox", "abcd"),
        ("wake", "--id", "abcdef0", "--dir", "/tmp", "--tool", "claude", "--dry"),
        ("status", "abcdef0"),
    ],
)
def test_a_prefix_under_8_hex_characters_is_too_short(run_relay, store_home, args):
    ok(run_relay("register", "one", "--id", A1))
    result = run_relay(*args)
    if "--id" in args:  # a malformed option value is a usage error (exit 2) naming the option
        assert result.returncode == 2, result.stderr
        err = result.stderr.decode()
        assert err.count("\n") == 1 and "--id" in err, err
    else:
        err = refused(result)
    assert "too short" in err and "at least 8 hex characters" in err, err


def test_a_prefix_that_matches_no_known_id(run_relay, store_home, api):
    missing = "01234567" if not api.startswith("01234567") else "fedcba98"
    err = refused(run_relay("send", missing, "--", "x"))
    assert f"no registered session id starts with {missing!r}" in err
    err = refused(run_relay("register", "x", "--id", missing))
    assert "no registered session id starts with" in err and "relay discover" in err


def test_a_registered_name_wins_over_a_prefix(run_relay, store_home, tmp_path):
    """`deadbeef` is both the name of one session and the start of another's id: the name wins;
    a longer prefix still reaches the other."""
    holder_of_id = "deadbeef-0000-4000-8000-00000000000a"
    named = new_id()
    ok(run_relay("register", "x", "--id", holder_of_id))
    ok(run_relay("register", "deadbeef", "--id", named))
    assert queued_to(ok(run_relay("send", "deadbeef", "--", "hi"))) == "deadbeef"
    assert peek(run_relay, named)["count"] == 1 and peek(run_relay, holder_of_id)["count"] == 0
    assert queued_to(ok(run_relay("send", "deadbeef-0", "--", "hi"))) == "x"


# -- message ids ----------------------------------------------------------------------------------


def test_status_and_reply_to_by_message_prefix(run_relay, store_home, api, tmp_path):
    web = new_id()
    start(run_relay, web, project(tmp_path, "web"))
    question = sent_id(run_relay, "api", "--from", "web", "--", "question?")
    line = ok(run_relay("status", question[:8]))
    assert line.startswith(f"{question} -> api: queued")
    ok(run_relay("send", "web", "--from", "api", "--reply-to", question[:8], "--", "answer"))
    found = json.loads(ok(run_relay("status", question[:10].upper(), "--json")))
    assert found["id"] == question and found["state"] == "replied"
    (reply,) = peek(run_relay, "web")["messages"]
    assert reply["replyTo"] == question


def plant_receipt(store_home: Path, message_id: str, sender: str, to: str) -> None:
    receipt = {"id": message_id, "from": sender, "to": to, "toName": None, "thread": message_id}
    receipt.update(queuedAt="2026-12-01T00:00:00.000Z", deliveredAt=None, repliedAt=None, replyId=None)
    keep_receipt(store_home, receipt)


def test_an_ambiguous_message_prefix_lists_the_candidates(run_relay, store_home, api):
    other = new_id()
    plant_receipt(store_home, A1, other, api)
    plant_receipt(store_home, A2, other, other)
    err = refused(run_relay("status", "abcdef01"))
    assert "matches 2 messages" in err and A1 in err and A2 in err
    assert ok(run_relay("status", "abcdef01-2")).startswith(f"{A2} -> {other}: ")  # a planted receipt: state from mail
    # a session sees only its own mail: for `api` the same prefix names one message
    replies, _ = run_bus(run_relay, call(1, "status", {"id": "abcdef01"}), extra_env={"CLAUDE_CODE_SESSION_ID": api})
    assert tool_json(by_id(replies)[1])["id"] == A1


def test_mcp_faces_take_prefixes(run_relay, store_home, api, tmp_path):
    web = new_id()
    start(run_relay, web, project(tmp_path, "web"))
    as_web = {"CLAUDE_CODE_SESSION_ID": web}
    replies, _ = run_bus(run_relay, call(1, "send", {"to": api[:8], "body": "question?"}), extra_env=as_web)
    sent = tool_json(by_id(replies)[1])
    assert sent["delivered_to"] == "api"
    question = sent["id"]
    replies, _ = run_bus(
        run_relay,
        call(1, "send", {"to": "web", "body": "answer", "replyTo": question[:8]}),
        extra_env={"CLAUDE_CODE_SESSION_ID": api},
    )
    tool_json(by_id(replies)[1])
    replies, _ = run_bus(
        run_relay,
        call(2, "status", {"id": question[:8]}),
        call(3, "wait", {"id": question[:9], "timeoutSec": 0}),
        call(4, "status", {"id": question[:7]}),
        call(5, "send", {"to": "abcdef01", "body": "x"}),
        extra_env=as_web,
    )
    answers = by_id(replies)
    assert tool_json(answers[2])["state"] == "replied"
    waited = tool_json(answers[3])
    assert waited["replied"] is True and waited["message"]["body"] == "answer"
    is_error, text = tool_result(answers[4])
    assert is_error and "at least 8" in text
    is_error, text = tool_result(answers[5])
    assert is_error and "no registered session id starts with 'abcdef01'" in text

"""Conversations (docs/delivery.md), black-box through RELAY_CMD: message ids, threads, replies,
delivery state through real takes and replies, `status`, `ask` and the MCP `wait`."""

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import new_id, queued_to
from test_bus import Bus, by_id, call, run_bus, tool_json, tool_result
from test_liveness import Procs, named_copy, proc_start, write_session

# Black-box through the faces: each test runs on the file store and on Redis (conftest's `world`).
pytestmark = pytest.mark.usefixtures("world")

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture
def procs():
    found = Procs()
    yield found
    found.close()


def register(run_relay, name: str, session_id: str | None = None) -> str:
    session_id = session_id or new_id()
    done = run_relay("register", name, "--id", session_id, "--dir", "/tmp", "--tool", "claude")
    assert done.returncode == 0, done.stderr
    return session_id


def send_json(run_relay, *args: str, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """`relay send ARGS... --json -- MESSAGE`, its JSON."""
    cut = args.index("--")
    done = run_relay("send", *args[:cut], "--json", *args[cut:], extra_env=extra_env)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def status(run_relay, message_id: str) -> dict[str, Any]:
    done = run_relay("status", message_id, "--json")
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def pending(run_relay, who: str) -> list[dict[str, Any]]:
    done = run_relay("peek", who)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)["messages"]


def hook_text(run_relay, session_id: str, tmp_path: Path, event: str = "UserPromptSubmit") -> str:
    payload = {"session_id": session_id, "cwd": str(tmp_path), "hook_event_name": event, "prompt": "go"}
    done = run_relay("hook", input=json.dumps(payload))
    assert done.returncode == 0, done.stderr.decode()
    if not done.stdout.strip():
        return ""
    return json.loads(done.stdout)["hookSpecificOutput"]["additionalContext"]


def as_session(session_id: str) -> dict[str, str]:
    return {"CLAUDE_CODE_SESSION_ID": session_id}


# -- ids and threads ---------------------------------------------------------------------------


def test_send_prints_the_message_id_that_the_stored_message_carries(run_relay):
    register(run_relay, "bob")
    done = run_relay("send", "bob", "--", "hello")
    assert done.returncode == 0, done.stderr
    assert queued_to(done.stdout) == "bob"
    printed = done.stdout.decode().splitlines()[0].split()[-1]
    [stored] = pending(run_relay, "bob")
    assert stored["id"] == printed and UUID.match(printed)
    assert "thread" not in stored and "replyTo" not in stored  # plain mail keeps 0.1's shape


def test_send_json_gives_id_thread_recipient_and_its_state(run_relay):
    bob = register(run_relay, "bob")
    sent = send_json(run_relay, "bob", "--", "hello")
    assert set(sent) == {"id", "thread", "to", "toName", "recipient"}
    assert sent["thread"] == sent["id"] and (sent["to"], sent["toName"]) == (bob, "bob")
    assert sent["recipient"]["state"] == "idle" and "wake" in sent["recipient"]["detail"]
    unknown = send_json(run_relay, "--id", new_id(), "--", "to nobody yet")
    assert unknown["recipient"]["state"] == "unknown" and unknown["toName"] is None


def test_a_reply_joins_its_parents_thread_and_a_new_message_starts_its_own(run_relay):
    alice, bob = register(run_relay, "alice"), register(run_relay, "bob")
    question = send_json(run_relay, "bob", "--from", "alice", "--", "q1")
    answer = send_json(run_relay, alice, "--from", "bob", "--reply-to", question["id"], "--", "a1")
    again = send_json(run_relay, bob, "--from", "alice", "--reply-to", answer["id"], "--", "follow-up")
    fresh = send_json(run_relay, "bob", "--from", "alice", "--", "new topic")
    assert answer["thread"] == again["thread"] == question["id"]
    assert fresh["thread"] == fresh["id"] != question["id"]
    [stored] = [m for m in pending(run_relay, "alice") if m["id"] == answer["id"]]
    assert (stored["replyTo"], stored["thread"], stored["from"], stored["fromName"]) == (
        question["id"],
        question["id"],
        bob,
        "bob",
    )


def test_reply_to_an_unknown_message_is_an_error_and_queues_nothing(run_relay):
    register(run_relay, "bob")
    for bad in (new_id(), "not-an-id", "--config=evil"):
        done = run_relay("send", "bob", "--reply-to", bad, "--", "hi")
        assert done.returncode == 1, done.stderr
        assert done.stderr.decode().count("\n") == 1 and "replyTo" in done.stderr.decode()
    assert pending(run_relay, "bob") == []


def test_send_from_an_unregistered_session_is_refused(run_relay):
    register(run_relay, "bob")
    done = run_relay("send", "bob", "--from", "ghost", "--", "hi")
    assert done.returncode == 1 and b"--from" in done.stderr and b"relay list" in done.stderr
    assert pending(run_relay, "bob") == []


# -- delivery state ----------------------------------------------------------------------------


def test_state_goes_queued_taken_delivered_replied_through_real_takes(run_relay, store_home):
    alice = register(run_relay, "alice")
    bob = register(run_relay, "bob")
    sent = send_json(run_relay, "bob", "--from", "alice", "--", "are you there")
    first = status(run_relay, sent["id"])
    assert first["state"] == "queued" and first["deliveredAt"] is None and first["queuedAt"]
    assert (first["to"], first["toName"]) == (bob, "bob")

    # a taker killed after claiming, before its ack: taken, not delivered
    killed = run_relay("inbox", "bob", extra_env={"RELAY_TEST_KILL_AT": "take:claimed"})
    assert killed.returncode != 0
    assert status(run_relay, sent["id"])["state"] == "taken"
    # and one killed after printing but before the ack: still not delivered
    killed = run_relay("inbox", "bob", extra_env={"RELAY_TEST_KILL_AT": "take:before-ack"})
    assert killed.returncode != 0 and b"are you there" in killed.stdout
    assert status(run_relay, sent["id"])["state"] == "taken"

    shown = run_relay("inbox", "bob")
    assert json.loads(shown.stdout)["messages"][0]["id"] == sent["id"]
    delivered = status(run_relay, sent["id"])
    assert delivered["state"] == "delivered" and delivered["deliveredAt"]

    reply = send_json(run_relay, alice, "--from", "bob", "--reply-to", sent["id"], "--", "yes")
    replied = status(run_relay, sent["id"])
    assert replied["state"] == "replied" and replied["replyId"] == reply["id"] and replied["repliedAt"]
    assert status(run_relay, reply["id"])["state"] == "queued"


def test_the_hook_marks_mail_delivered_only_once_its_output_was_written(run_relay, tmp_path):
    bob = register(run_relay, "bob")
    sent = send_json(run_relay, "bob", "--", "via the hook")
    payload = json.dumps({"session_id": bob, "cwd": str(tmp_path), "hook_event_name": "UserPromptSubmit"})
    killed = run_relay("hook", input=payload, extra_env={"RELAY_TEST_KILL_AT": "take:before-ack"})
    assert killed.returncode != 0
    assert status(run_relay, sent["id"])["state"] == "taken"
    assert "via the hook" in hook_text(run_relay, bob, tmp_path)
    assert status(run_relay, sent["id"])["state"] == "delivered"


def test_first_reply_wins_and_later_replies_are_ordinary_mail(run_relay):
    alice = register(run_relay, "alice")
    register(run_relay, "bob")
    register(run_relay, "carol")
    question = send_json(run_relay, "bob", "--from", "alice", "--", "who takes it")
    first = send_json(run_relay, alice, "--from", "bob", "--reply-to", question["id"], "--", "bob does")
    second = send_json(run_relay, alice, "--from", "alice", "--reply-to", question["id"], "--", "me too")
    assert status(run_relay, question["id"])["replyId"] == first["id"]
    replies, _ = run_bus(
        run_relay, call(1, "wait", {"id": question["id"], "timeoutSec": 0}), extra_env=as_session(alice)
    )
    got = tool_json(by_id(replies)[1])
    assert got["replied"] is True and got["message"]["id"] == first["id"] and got["message"]["body"] == "bob does"
    assert [m["id"] for m in pending(run_relay, "alice")] == [second["id"]]


def test_status_of_unknown_ids_is_a_one_line_error(run_relay):
    for bad in (new_id(), "nope", "--json"):
        done = run_relay("status", bad)
        assert done.returncode in (1, 2), done
        assert done.stderr.decode().count("\n") == 1 and done.stdout == b""
    assert run_relay("status").returncode == 2


def test_status_line_for_people(run_relay):
    register(run_relay, "bob")
    sent = send_json(run_relay, "bob", "--", "x")
    line = run_relay("status", sent["id"]).stdout.decode()
    assert line.startswith(f"{sent['id']} -> bob: queued (queuedAt ") and line.count("\n") == 1


# -- MCP status and wait -------------------------------------------------------------------------


def test_mcp_status_shows_only_messages_the_session_sent_or_received(run_relay):
    alice, bob, carol = register(run_relay, "alice"), register(run_relay, "bob"), register(run_relay, "carol")
    to_bob = send_json(run_relay, "bob", "--from", "alice", "--", "private")
    for who, allowed in ((alice, True), (bob, True), (carol, False)):
        replies, _ = run_bus(run_relay, call(1, "status", {"id": to_bob["id"]}), extra_env=as_session(who))
        is_error, text = tool_result(by_id(replies)[1])
        if allowed:
            assert is_error is False and json.loads(text)["state"] == "queued"
        else:
            assert is_error is True and "unknown message id" in text and "private" not in text
    # nor may a third session reply to it (which would end the asker's wait)
    replies, _ = run_bus(
        run_relay,
        call(1, "send", {"to": "alice", "body": "hijack", "replyTo": to_bob["id"]}),
        extra_env=as_session(carol),
    )
    assert tool_result(by_id(replies)[1])[0] is True
    assert status(run_relay, to_bob["id"])["state"] == "queued"


def test_mcp_send_returns_id_thread_and_recipient_state(run_relay):
    alice = register(run_relay, "alice")
    bob = register(run_relay, "bob")
    replies, _ = run_bus(
        run_relay, call(1, "send", {"to": "bob", "body": "q", "expectsReply": True}), extra_env=as_session(alice)
    )
    sent = tool_json(by_id(replies)[1])
    assert UUID.match(sent["id"]) and sent["thread"] == sent["id"]
    assert sent["recipient"]["state"] == "idle"
    [stored] = pending(run_relay, "bob")
    assert stored["expectsReply"] is True and stored["from"] == alice
    replies, _ = run_bus(
        run_relay, call(1, "send", {"to": alice, "body": "a", "replyTo": sent["id"]}), extra_env=as_session(bob)
    )
    answer = tool_json(by_id(replies)[1])
    assert answer["thread"] == sent["id"]
    assert status(run_relay, sent["id"])["replyId"] == answer["id"]


def test_mcp_wait_before_and_after_a_reply(run_relay, relay_cmd, env, tmp_path):
    alice, bob = register(run_relay, "alice"), register(run_relay, "bob")
    question = send_json(run_relay, "bob", "--from", "alice", "--", "ping?")
    bus = Bus(relay_cmd, {**env, **as_session(alice)}, tmp_path, tmp_path / "bus.err")
    try:
        early = tool_json(bus.ask(call(1, "wait", {"id": question["id"], "timeoutSec": 0.3})))
        assert early == {"replied": False, "state": "queued"}

        # a reply sent by another process while the bus waits ends the wait at once
        later = f'sleep 1; exec "$@" send {alice} --from bob --reply-to {question["id"]} -- pong'
        replier = subprocess.Popen(
            ["sh", "-c", later, "sh", *relay_cmd],
            env=env,
            cwd=tmp_path,
        )
        started = time.monotonic()
        got = tool_json(bus.ask(call(2, "wait", {"id": question["id"], "timeoutSec": 30}), timeout=40))
        waited = time.monotonic() - started
        assert replier.wait(timeout=30) == 0
        assert (
            got["replied"] is True and got["message"]["body"] == "pong" and got["message"]["replyTo"] == question["id"]
        )
        assert waited < 15, waited
        assert "UNTRUSTED" in got["note"]
        # the reply was taken, once
        assert pending(run_relay, "alice") == []
        after = tool_json(bus.ask(call(3, "wait", {"id": question["id"], "timeoutSec": 0})))
        assert after["replied"] is True and after["message"] is None and after["reply"]["state"] == "delivered"
    finally:
        assert bus.close() == 0
    assert status(run_relay, question["id"])["state"] == "replied"
    del bob


def test_mcp_wait_returns_when_the_client_sends_something_else(run_relay, relay_cmd, env, tmp_path):
    alice = register(run_relay, "alice")
    register(run_relay, "bob")
    question = send_json(run_relay, "bob", "--from", "alice", "--", "slow?")
    bus = Bus(relay_cmd, {**env, **as_session(alice)}, tmp_path, tmp_path / "bus.err")
    try:
        # one round trip first, so the server is up and reading when the wait arrives: a ping sent
        # while the server still starts would sit in its read buffer with the wait (a known gap)
        bus.send({"jsonrpc": "2.0", "id": 0, "method": "ping"})
        assert bus.recv(timeout=30)["id"] == 0
        started = time.monotonic()
        bus.send(call(1, "wait", {"id": question["id"], "timeoutSec": 50}))
        time.sleep(0.5)
        bus.send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
        replies = by_id([bus.recv(timeout=20), bus.recv(timeout=20)])
        assert time.monotonic() - started < 10
        assert tool_json(replies[1]) == {"replied": False, "state": "queued"}
        assert replies[2]["result"] == {}
    finally:
        assert bus.close() == 0


def test_mcp_wait_refuses_foreign_ids_and_bad_timeouts(run_relay):
    alice, carol = register(run_relay, "alice"), register(run_relay, "carol")
    register(run_relay, "bob")
    question = send_json(run_relay, "bob", "--from", "alice", "--", "mine")
    replies, _ = run_bus(
        run_relay,
        call(1, "wait", {"id": question["id"], "timeoutSec": 0}),
        call(2, "wait", {"id": question["id"], "timeoutSec": 51}),
        call(3, "wait", {"id": question["id"], "timeoutSec": -1}),
        call(4, "wait", {"id": "x", "timeoutSec": 1}),
        extra_env=as_session(carol),
    )
    got = by_id(replies)
    for request_id in (1, 2, 3, 4):
        assert tool_result(got[request_id])[0] is True, got[request_id]
    assert "unknown message id" in tool_result(got[1])[1]
    assert "at most 50" in tool_result(got[2])[1] and "at least 0" in tool_result(got[3])[1]
    del alice


# -- ask -------------------------------------------------------------------------------------------


def start_ask(run_relay, relay_cmd, env, tmp_path, *args: str) -> tuple[subprocess.Popen, dict[str, Any]]:
    """`relay ask bob ARGS...` running in the background, and its question once it is queued."""
    asker = subprocess.Popen(
        [*relay_cmd, "ask", "bob", *args], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 20
    while not (queued := pending(run_relay, "bob")) and time.monotonic() < deadline:
        time.sleep(0.1)
    [question] = queued
    return asker, question


def test_ask_prints_the_reply_another_process_sends(run_relay, relay_cmd, env, tmp_path):
    register(run_relay, "bob")
    asker, question = start_ask(run_relay, relay_cmd, env, tmp_path, "--wait", "30", "--", "what", "is", "2+2")
    assert question["body"] == "what is 2+2" and question["expectsReply"] is True
    minted = question["from"]
    assert UUID.match(minted) and question["fromName"] is None
    # the recipient sees a question with its exact answer line
    text = hook_text(run_relay, question["to"], tmp_path)
    assert f"id {question['id']}, expects a reply): what is 2+2" in text
    assert f"send {minted} --reply-to {question['id']} -- REPLY" in text
    done = run_relay("send", minted, "--reply-to", question["id"], "--", "four")
    assert done.returncode == 0, done.stderr
    out, err = asker.communicate(timeout=30)
    assert asker.returncode == 0, err
    assert out == b"four\n"
    assert status(run_relay, question["id"])["state"] == "replied"
    assert pending(run_relay, minted) == []


def test_ask_times_out_with_exit_4_and_leaves_the_question_queued(run_relay):
    register(run_relay, "bob")
    started = time.monotonic()
    done = run_relay("ask", "bob", "--wait", "0.5", "--", "anyone?")
    assert time.monotonic() - started < 10
    assert done.returncode == 4 and done.stdout == b""
    err = done.stderr.decode()
    assert err.count("\n") == 2  # bob is not running (said at once), then the time ran out
    assert err.startswith("relay: bob is not running: it reads this when it starts or is woken")
    [question] = pending(run_relay, "bob")
    assert question["id"] in err and f"relay status {question['id']}" in err
    assert status(run_relay, question["id"])["state"] == "queued"


def test_ask_from_a_registered_session_and_json(run_relay, relay_cmd, env, tmp_path):
    alice = register(run_relay, "alice")
    register(run_relay, "bob")
    asker, question = start_ask(
        run_relay, relay_cmd, env, tmp_path, "--from", "alice", "--wait", "30", "--json", "--", "status?"
    )
    assert question["from"] == alice and question["fromName"] == "alice"
    # unrelated mail for alice stays hers
    assert run_relay("send", "alice", "--", "unrelated").returncode == 0
    assert run_relay("send", alice, "--from", "bob", "--reply-to", question["id"], "--", "green").returncode == 0
    out, err = asker.communicate(timeout=30)
    assert asker.returncode == 0, err
    reply = json.loads(out)
    assert (reply["body"], reply["replyTo"], reply["fromName"]) == ("green", question["id"], "bob")
    assert [m["body"] for m in pending(run_relay, "alice")] == ["unrelated"]


@pytest.mark.parametrize("wait", ["-1", "3601", "soon", "nan"])
def test_ask_bad_wait_is_a_usage_error_and_queues_nothing(run_relay, wait):
    register(run_relay, "bob")
    done = run_relay("ask", "bob", "--wait", wait, "--", "q")
    assert done.returncode == 2 and b"--wait" in done.stderr
    assert pending(run_relay, "bob") == []


# -- what the recipient sees --------------------------------------------------------------------


def test_hook_shows_ids_and_who_can_be_answered(run_relay, tmp_path):
    register(run_relay, "alice")
    bob = register(run_relay, "bob")
    from_cli = send_json(run_relay, "bob", "--", "from a person")
    from_alice = send_json(run_relay, "bob", "--from", "alice", "--", "fyi")
    text = hook_text(run_relay, bob, tmp_path)
    assert re.search(rf"\n- from cli \([0-9T:.Z-]+, id {from_cli['id']}, no reply address\): from a person\n", text)
    assert re.search(rf"\n- from alice \([0-9T:.Z-]+, id {from_alice['id']}\): fyi\n", text)
    assert "To answer" not in text  # nothing here asked for an answer


def test_inbox_results_carry_the_answer_for_questions(run_relay, tmp_path):
    alice, bob = register(run_relay, "alice"), register(run_relay, "bob")
    replies, _ = run_bus(
        run_relay, call(1, "send", {"to": "bob", "body": "q?", "expectsReply": True}), extra_env=as_session(alice)
    )
    question = tool_json(by_id(replies)[1])["id"]
    replies, _ = run_bus(run_relay, call(1, "inbox"), extra_env=as_session(bob))
    [message] = tool_json(by_id(replies)[1])["messages"]
    assert message["id"] == question and message["expectsReply"] is True
    assert f"replyTo {question}" in message["answer"] and f"--reply-to {question}" in message["answer"]


def test_a_claude_model_is_told_to_answer_with_relays_send_not_its_own_sendmessage(run_relay, tmp_path):
    """Claude Code has a SendMessage tool of its own that reaches Claude sessions only: where a
    Claude model reads how to answer (the hook's text, a question's answer in `inbox`), relay's
    `send` is named and SendMessage ruled out; a Codex model, which has no SendMessage, is not told."""
    alice, bob = register(run_relay, "alice"), register(run_relay, "bob")
    not_native = "Claude's SendMessage cannot reach non-Claude sessions"

    def ask() -> str:
        replies, _ = run_bus(
            run_relay, call(1, "send", {"to": "bob", "body": "q?", "expectsReply": True}), extra_env=as_session(alice)
        )
        return tool_json(by_id(replies)[1])["id"]

    question = ask()
    text = hook_text(run_relay, bob, tmp_path)
    [answer_line] = [line for line in text.splitlines() if line.startswith("  To answer: ")]
    assert answer_line.startswith(f"  To answer: the session-relay `send` tool with to {alice} and replyTo {question}")
    assert not_native in answer_line
    [reply_line] = [line for line in text.splitlines() if line.startswith("Reply with ")]
    assert "session-relay `send` tool" in reply_line and not_native in reply_line

    question = ask()
    replies, _ = run_bus(run_relay, call(1, "inbox"), extra_env=as_session(bob))  # bob's bus runs in Claude
    [message] = tool_json(by_id(replies)[1])["messages"]
    assert message["id"] == question and "`send` tool" in message["answer"] and not_native in message["answer"]

    ask()
    payload = {"session_id": bob, "cwd": str(tmp_path), "hook_event_name": "UserPromptSubmit", "prompt": "go"}
    done = run_relay("hook", "codex", input=json.dumps(payload))
    text = json.loads(done.stdout)["hookSpecificOutput"]["additionalContext"]
    assert "To answer: the session-relay `send` tool" in text and "SendMessage" not in text


# -- where the recipient is --------------------------------------------------------------------


def test_recipient_state_live_idle_ended(run_relay, procs, tmp_path, env):
    config = tmp_path / "claude-config"
    bob = register(run_relay, "bob")
    extra = {"CLAUDE_CONFIG_DIR": str(config)}
    proc = procs.start(["claude", "60"], executable=named_copy(tmp_path, "claude"))
    write_session(config, proc.pid, bob, procStart=proc_start(proc.pid))
    assert send_json(run_relay, "bob", "--", "a", extra_env=extra)["recipient"]["state"] == "live"
    procs.stop(proc)  # its sessions file is left behind: a dead process does not count
    assert send_json(run_relay, "bob", "--", "b", extra_env=extra)["recipient"]["state"] == "idle"
    end = {"session_id": bob, "cwd": "/tmp", "hook_event_name": "SessionEnd"}
    assert run_relay("hook", input=json.dumps(end)).returncode == 0
    ended = send_json(run_relay, "bob", "--", "c", extra_env=extra)["recipient"]
    assert ended["state"] == "ended" and "ended at" in ended["detail"]

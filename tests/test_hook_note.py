"""The bus tells the model, once, that its session was never registered because the SessionStart hook
did not run (e.g. Codex holding an untrusted hook), and how the user fixes it; never when the session
is registered. Spoken to over the real MCP wire: newline-delimited JSON-RPC to `relay bus`."""

import json

from conftest import new_id
from test_bus import HOOK_NOTE, by_id, call, req, run_bus

INIT = req(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}})


def contents(reply: dict) -> list[str]:
    content = reply["result"]["content"]
    assert all(item["type"] == "text" for item in content), content
    return [item["text"] for item in content]


def notes(replies: list) -> dict:
    """id -> the hook note that reply carries (None when it has none)."""
    found = {}
    for request_id, reply in by_id(replies).items():
        if request_id == 0:  # initialize
            continue
        texts = contents(reply)
        assert len(texts) in (1, 2), texts
        found[request_id] = texts[1] if len(texts) == 2 else None
    return found


def test_an_unregistered_codex_session_hears_once_how_to_trust_the_hook(run_relay):
    session = new_id()
    meta = {"_meta": {"sessionId": session}}
    replies, _ = run_bus(
        run_relay,
        INIT,
        req(1, "tools/call", {"name": "roster", "arguments": {}, **meta}),
        req(2, "tools/call", {"name": "roster", "arguments": {}, **meta}),
        req(3, "tools/call", {"name": "whoami", "arguments": {}, **meta}),
    )
    got = notes(replies)
    assert got[1] is not None and got[1].startswith(HOOK_NOTE)
    assert '/hooks and choose "Trust all and continue"' in got[1] and "doctor" in got[1]
    assert json.loads(contents(by_id(replies)[1])[0]) == {"agents": []}  # the result itself is unchanged
    assert got[2] is None and got[3] is None  # once per bus process


def test_an_unregistered_claude_session_is_told_to_check_the_plugin_and_restart(run_relay):
    replies, _ = run_bus(run_relay, INIT, call(1, "roster"), extra_env={"CLAUDE_CODE_SESSION_ID": new_id()})
    note = notes(replies)[1]
    assert note is not None and note.startswith(HOOK_NOTE)
    assert "claude plugin list" in note and "restart" in note and "Trust all" not in note


def test_a_session_registered_by_its_hook_gets_no_note(run_relay):
    session = new_id()
    hook = run_relay("hook", input=json.dumps({"session_id": session, "cwd": "/tmp"}))
    assert hook.returncode == 0, hook.stderr
    replies, _ = run_bus(
        run_relay, INIT, call(1, "roster"), call(2, "whoami"), extra_env={"CLAUDE_CODE_SESSION_ID": session}
    )
    assert notes(replies) == {1: None, 2: None}


def test_the_note_rides_on_an_error_too_and_is_judged_before_a_first_register(run_relay):
    # No session id at all: inbox fails, and its error carries the note.
    replies, _ = run_bus(run_relay, INIT, call(1, "inbox"), call(2, "inbox"))
    assert by_id(replies)[1]["result"]["isError"] is True
    got = notes(replies)
    assert got[1] is not None and got[1].startswith(HOOK_NOTE) and got[2] is None
    # A first `register` names the session, but its hook still never ran: the note is still due.
    replies, _ = run_bus(
        run_relay, INIT, call(1, "register", {"name": "x"}), extra_env={"CLAUDE_CODE_SESSION_ID": new_id()}
    )
    assert by_id(replies)[1]["result"]["isError"] is False
    assert notes(replies)[1] is not None

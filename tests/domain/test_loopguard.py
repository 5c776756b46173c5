"""The loop guard's counter (docs/wake.md): mail carries the RELAY_HOPS of the process that sent it,
through the CLI and through the MCP server, black-box through RELAY_CMD."""

import json

import pytest
from conftest import mailbox_lines, new_id
from test_bus import by_id, call, run_bus, tool_json, tool_result

# Black-box through the faces: each test runs on the file store and on Redis (conftest's `world`).
pytestmark = pytest.mark.usefixtures("world")


def stored(store_home, recipient: str) -> list[dict]:
    return [json.loads(line) for line in mailbox_lines(store_home, recipient)]


def test_cli_send_and_ask_carry_relay_hops(run_relay, store_home):
    bob = new_id()
    assert run_relay("send", "--id", bob, "--", "from a person").returncode == 0
    assert run_relay("send", "--id", bob, "--", "from a woken run", extra_env={"RELAY_HOPS": "3"}).returncode == 0
    asked = run_relay("ask", bob, "--wait", "0", "--", "q", extra_env={"RELAY_HOPS": "4"})
    assert asked.returncode == 4
    assert [m.get("hops") for m in stored(store_home, bob)] == [None, 3, 4]


def test_the_mcp_server_stamps_its_own_relay_hops(run_relay, store_home):
    me, bob = new_id(), new_id()
    replies, _ = run_bus(
        run_relay,
        call(1, "send", {"to": bob, "body": "hello"}),
        extra_env={"CLAUDE_CODE_SESSION_ID": me, "RELAY_HOPS": "2"},
    )
    assert tool_json(by_id(replies)[1])["ok"] is True
    [message] = stored(store_home, bob)
    assert message["hops"] == 2 and message["from"] == me


@pytest.mark.parametrize("bad", ["-1", "two", "1e3", "9999999999"])
def test_a_bad_relay_hops_is_refused_in_one_line_and_queues_nothing(run_relay, store_home, bad):
    bob = new_id()
    done = run_relay("send", "--id", bob, "--", "x", extra_env={"RELAY_HOPS": bad})
    assert done.returncode == 1 and done.stderr.decode().count("\n") == 1 and b"RELAY_HOPS" in done.stderr
    replies, _ = run_bus(
        run_relay,
        call(1, "send", {"to": bob, "body": "x"}),
        extra_env={"CLAUDE_CODE_SESSION_ID": new_id(), "RELAY_HOPS": bad},
    )
    is_error, text = tool_result(by_id(replies)[1])
    assert is_error and "RELAY_HOPS" in text
    assert stored(store_home, bob) == []

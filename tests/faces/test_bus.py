"""`relay bus` spoken to as raw newline-delimited JSON-RPC 2.0 over a subprocess (docs/mcp.md).

Black-box tests go through `relay_cmd`/`run_relay`, so they also run against the frozen binary.
The last tests drive `relay.faces.bus.Server` in-process to check that mail is removed only once its
answer was written.
"""

import contextlib
import fcntl
import io
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import mailbox_lines, new_id

from relay.faces.bus import Server
from relay.store.files import Store

# Black-box through the faces: each test runs on the file store and on Redis (conftest's `world`).
pytestmark = pytest.mark.usefixtures("world")

VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST = "2025-11-25"


# -- helpers --------------------------------------------------------------------------------------


def frames(stdout: bytes) -> list[Any]:
    """Every stdout line as a parsed JSON-RPC frame; fails when any line is something else."""
    out = []
    for raw in stdout.split(b"\n"):
        if raw == b"":
            continue
        frame = json.loads(raw)  # a non-JSON line on stdout fails the test here
        for item in frame if isinstance(frame, list) else [frame]:
            assert isinstance(item, dict), raw
            assert item.get("jsonrpc") == "2.0", raw
            assert "id" in item, raw
            assert ("result" in item) != ("error" in item), raw
        out.append(frame)
    return out


def req(request_id: Any, method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def call(request_id: Any, tool: str, arguments: Any = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": tool}
    if arguments is not None:
        params["arguments"] = arguments
    return req(request_id, "tools/call", params)


def script(*messages: Any) -> bytes:
    """Messages as input lines; bytes and str items are sent verbatim."""
    lines = []
    for message in messages:
        if isinstance(message, bytes):
            lines.append(message)
        elif isinstance(message, str):
            lines.append(message.encode())
        else:
            lines.append(json.dumps(message).encode() + b"\n")
    return b"".join(lines)


def run_bus(run_relay, *messages: Any, extra_env=None, cwd=None) -> tuple[list[Any], bytes]:
    """Feed `messages` to one bus, then EOF; the replies and stderr. The bus must exit 0."""
    result = run_relay("bus", input=script(*messages), extra_env=extra_env, cwd=cwd, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return frames(result.stdout), result.stderr


def by_id(replies: list[Any]) -> dict[Any, dict[str, Any]]:
    out: dict[Any, dict[str, Any]] = {}
    for reply in replies:
        assert not isinstance(reply, list)
        assert reply["id"] not in out, f"two answers for id {reply['id']!r}"
        out[reply["id"]] = reply
    return out


HOOK_NOTE = "session-relay note: this session is not registered because its SessionStart hook did not run"


def tool_result(reply: dict[str, Any]) -> tuple[bool, str]:
    """(isError, text) of a tool result: one text item, plus at most the one-time note about a missing hook."""
    result = reply["result"]
    content = result["content"]
    if len(content) == 2:
        assert content[1]["type"] == "text" and content[1]["text"].startswith(HOOK_NOTE), content
        content = content[:1]
    assert [c["type"] for c in content] == ["text"]
    return result["isError"], content[0]["text"]


def tool_json(reply: dict[str, Any]) -> dict[str, Any]:
    is_error, text = tool_result(reply)
    assert is_error is False, text
    return json.loads(text)


class Bus:
    """One long-running `relay bus` subprocess spoken to line by line."""

    def __init__(self, relay_cmd: list[str], env: dict[str, str], cwd: Path, stderr_path: Path) -> None:
        self._stderr = open(stderr_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [*relay_cmd, "bus"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=str(cwd),
        )
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, message: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(script(message))
        self.proc.stdin.flush()

    def recv(self, timeout: float = 20) -> Any:
        line = self.lines.get(timeout=timeout)
        assert line is not None, "the bus closed its stdout"
        return frames(line)[0]

    def ask(self, message: dict[str, Any], timeout: float = 20) -> dict[str, Any]:
        self.send(message)
        reply = self.recv(timeout)
        assert reply["id"] == message["id"]
        return reply

    def close(self) -> int:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._stderr.close()
        self._reader.join(timeout=5)
        return code


# -- protocol --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_initialize_echoes_a_supported_version(run_relay, version):
    replies, _ = run_bus(run_relay, req(1, "initialize", {"protocolVersion": version, "capabilities": {}}))
    assert len(replies) == 1
    result = replies[0]["result"]
    assert replies[0]["id"] == 1
    assert result["protocolVersion"] == version
    assert result["capabilities"] == {"tools": {}}
    assert result["serverInfo"]["name"] == "session-relay-bus"
    assert isinstance(result["serverInfo"]["version"], str) and result["serverInfo"]["version"]
    assert isinstance(result["instructions"], str) and "untrusted" in result["instructions"]


@pytest.mark.parametrize("asked", ["1999-01-01", "2026-01-01", "", None, 20250618, ["2025-06-18"]])
def test_initialize_answers_latest_for_an_unknown_version(run_relay, asked):
    params = {"capabilities": {}} if asked is None else {"protocolVersion": asked, "capabilities": {}}
    replies, _ = run_bus(run_relay, req("init", "initialize", params))
    assert replies[0]["id"] == "init"
    assert replies[0]["result"]["protocolVersion"] == LATEST


def test_full_handshake_then_tools_list(run_relay):
    replies, _ = run_bus(
        run_relay,
        req(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t"}}),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        req(1, "tools/list"),
    )
    assert [r["id"] for r in replies] == [0, 1]
    tools = replies[1]["result"]["tools"]
    assert [t["name"] for t in tools] == ["whoami", "register", "roster", "send", "inbox", "discover", "status", "wait"]
    for tool in tools:
        assert tool["description"].strip()
        assert tool["inputSchema"]["type"] == "object"
        assert tool["inputSchema"]["additionalProperties"] is False


def test_notifications_get_no_reply(run_relay):
    replies, _ = run_bus(
        run_relay,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}},
        {"jsonrpc": "2.0", "method": "no/such/method"},
        {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "nope"}},
        {"jsonrpc": "2.0", "method": "ping", "params": "not an object"},
        {"jsonrpc": "2.0", "id": 5, "result": {}},  # a response to a request the server never sent
        req(9, "ping"),
    )
    assert replies == [{"jsonrpc": "2.0", "id": 9, "result": {}}]


def test_a_tool_called_as_a_notification_gets_no_reply(run_relay, store_home):
    me = new_id()
    replies, _ = run_bus(
        run_relay,
        {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "register", "arguments": {"name": "x"}}},
        req(1, "ping"),
        extra_env={"CLAUDE_CODE_SESSION_ID": me},
    )
    assert [r["id"] for r in replies] == [1]  # (whether it ran is unspecified: MCP has no such call)


def test_ping_answers_an_empty_object(run_relay):
    replies, _ = run_bus(run_relay, req(7, "ping"), req("s", "ping", {}), req(None, "ping"))
    assert replies == [
        {"jsonrpc": "2.0", "id": 7, "result": {}},
        {"jsonrpc": "2.0", "id": "s", "result": {}},
        {"jsonrpc": "2.0", "id": None, "result": {}},
    ]


@pytest.mark.parametrize("method", ["resources/list", "prompts/list", "tools/unknown", "", "PING"])
def test_unknown_method_with_id_is_method_not_found(run_relay, method):
    replies, _ = run_bus(run_relay, req(3, method), req(4, "ping"))
    assert replies[0]["id"] == 3
    assert replies[0]["error"]["code"] == -32601
    assert replies[1] == {"jsonrpc": "2.0", "id": 4, "result": {}}


@pytest.mark.parametrize("name", ["nope", "Whoami", "", None, 5, ["send"]])
def test_unknown_tool_is_invalid_params(run_relay, name):
    replies, _ = run_bus(run_relay, req(1, "tools/call", {"name": name, "arguments": {}}), req(2, "ping"))
    assert replies[0]["id"] == 1
    assert replies[0]["error"]["code"] == -32602
    assert "tools/list" in replies[0]["error"]["message"]
    assert replies[1]["result"] == {}


def test_params_that_are_not_an_object_are_invalid_params(run_relay):
    replies, _ = run_bus(run_relay, req(1, "tools/call", [1, 2]), req(2, "ping", "x"), req(3, "ping"))
    assert [(r["id"], r["error"]["code"]) for r in replies[:2]] == [(1, -32602), (2, -32602)]
    assert replies[2]["result"] == {}


def test_blank_lines_are_skipped(run_relay):
    replies, stderr = run_bus(run_relay, b"\n", b"   \n", b"\t\r\n", req(1, "ping"), b"\n", req(2, "ping"))
    assert [r["id"] for r in replies] == [1, 2]
    assert b"not JSON" not in stderr


def test_a_line_that_is_not_json_is_logged_and_skipped(run_relay):
    replies, stderr = run_bus(
        run_relay,
        b"this is not json\n",
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping"\n',  # truncated object
        b"\xff\xfe\x00garbage\n",
        req(2, "ping"),
        b"}{\n",
        call(3, "roster"),
    )
    assert [r["id"] for r in replies] == [2, 3]
    assert stderr.count(b"not JSON") >= 4


def test_json_that_is_not_an_object_is_an_invalid_request(run_relay):
    replies, _ = run_bus(run_relay, b"42\n", b'"ping"\n', b"null\n", b"[]\n", req(1, "ping"))
    assert [r["id"] for r in replies] == [None, None, None, None, 1]
    assert all(r["error"]["code"] == -32600 for r in replies[:4])


def test_method_that_is_not_a_string_is_an_invalid_request(run_relay):
    replies, _ = run_bus(run_relay, {"jsonrpc": "2.0", "id": 1, "method": 5}, {"jsonrpc": "2.0", "id": 2})
    assert [(r["id"], r["error"]["code"]) for r in replies] == [(1, -32600), (2, -32600)]


def test_batch_gets_one_array_with_an_answer_per_request(run_relay):
    replies, _ = run_bus(
        run_relay,
        [req(1, "ping"), {"jsonrpc": "2.0", "method": "notifications/initialized"}, req(2, "nope"), 7],
        [{"jsonrpc": "2.0", "method": "notifications/initialized"}],  # only notifications: no reply
        req(3, "ping"),
    )
    assert len(replies) == 2
    batch = replies[0]
    assert isinstance(batch, list)
    assert [r["id"] for r in batch] == [1, 2, None]
    assert batch[0]["result"] == {}
    assert batch[1]["error"]["code"] == -32601
    assert batch[2]["error"]["code"] == -32600
    assert replies[1]["id"] == 3


@pytest.mark.parametrize("request_id", [0, -1, 2**53, 1.5, "", "id with spaces ✓", None])
def test_request_ids_are_echoed(run_relay, request_id):
    replies, _ = run_bus(run_relay, req(request_id, "ping"), call(request_id, "roster"))
    assert [r["id"] for r in replies] == [request_id, request_id]


def test_eof_ends_the_server_with_exit_zero(run_relay):
    result = run_relay("bus", input=b"")
    assert result.returncode == 0
    assert result.stdout == b""
    result = run_relay("bus", input=script(req(1, "ping")).rstrip(b"\n"))  # last line without newline
    assert result.returncode == 0
    assert [f["id"] for f in frames(result.stdout)] == [1]


def test_eof_in_a_long_running_server(relay_cmd, env, tmp_path):
    bus = Bus(relay_cmd, env, tmp_path, tmp_path / "stderr")
    try:
        assert bus.ask(req(1, "ping"))["result"] == {}
    finally:
        assert bus.close() == 0


# -- tools over the wire ---------------------------------------------------------------------------


def test_send_and_inbox_between_two_sessions(run_relay, store_home):
    me, peer = new_id(), new_id()
    run_bus(
        run_relay, call(1, "register", {"name": "bob", "dir": "/tmp/bob"}), extra_env={"CLAUDE_CODE_SESSION_ID": peer}
    )
    replies, _ = run_bus(
        run_relay,
        call(1, "register", {"name": "alice"}),
        call(3, "send", {"to": "bob", "body": "hello bob"}),
        extra_env={"CLAUDE_CODE_SESSION_ID": me},
    )
    got = by_id(replies)
    assert tool_json(got[1])["id"] == me
    sent = tool_json(got[3])
    assert sent["ok"] is True
    assert sent["delivered_to"] == "bob"
    assert sent["recipient_dir"] == "/tmp/bob"
    assert "wake" in sent["hint"]
    replies, _ = run_bus(run_relay, call(1, "inbox"), call(2, "inbox"), extra_env={"CLAUDE_CODE_SESSION_ID": peer})
    got = by_id(replies)
    first, second = tool_json(got[1]), tool_json(got[2])
    assert first["count"] == 1
    (message,) = first["messages"]
    assert (message["from"], message["fromName"], message["to"], message["toName"], message["body"]) == (
        me,
        "alice",
        peer,
        "bob",
        "hello bob",
    )
    assert second | {"note": ""} == {"count": 0, "messages": [], "remaining": 0, "note": ""}


def test_a_batch_over_the_limit_is_refused_whole_and_the_bus_serves_on(run_relay):
    from relay.faces.bus import MAX_BATCH

    tools = [req(n, "tools/list") for n in range(MAX_BATCH + 1)]
    replies, _ = run_bus(run_relay, tools, tools[:MAX_BATCH], req("after", "ping"))
    refused, fits, after = replies
    assert refused["id"] is None and refused["error"]["code"] == -32600
    assert f"at most {MAX_BATCH}" in refused["error"]["message"] and "none was run" in refused["error"]["message"]
    assert [r["id"] for r in fits] == list(range(MAX_BATCH)) and all("tools" in r["result"] for r in fits)
    assert after["id"] == "after"


def test_two_inbox_calls_in_one_batch_deliver_a_message_once(run_relay):
    me = new_id()
    run_bus(run_relay, call(1, "send", {"to": me, "body": "once"}), extra_env={"CLAUDE_CODE_SESSION_ID": new_id()})
    replies, _ = run_bus(run_relay, [call(1, "inbox"), call(2, "inbox")], extra_env={"CLAUDE_CODE_SESSION_ID": me})
    (batch,) = replies
    results = [tool_json(r) for r in batch]
    assert sum(r["count"] for r in results) == 1, results
    replies, _ = run_bus(run_relay, call(3, "inbox"), extra_env={"CLAUDE_CODE_SESSION_ID": me})
    assert tool_json(replies[0])["count"] == 0


def test_tool_failures_are_is_error_results_and_store_nothing(run_relay, store_home):
    me = new_id()
    replies, _ = run_bus(
        run_relay,
        call(1, "send", {"to": "nobody", "body": "x"}),
        call(2, "send", {"to": me}),
        call(3, "send", {"to": me, "body": 5}),
        call(4, "send", {"to": me, "body": "x", "cc": "y"}),
        call(5, "send", "not an object"),
        call(6, "send", {"to": me, "body": "   "}),
        call(7, "ping"),
        extra_env={"CLAUDE_CODE_SESSION_ID": new_id()},
    )
    got = by_id(replies)
    for request_id in range(1, 7):
        is_error, text = tool_result(got[request_id])
        assert is_error is True, text
    assert "roster" in tool_result(got[1])[1]
    assert "`body`" in tool_result(got[2])[1]
    assert "`body`" in tool_result(got[3])[1]
    assert "`cc`" in tool_result(got[4])[1]
    assert "object" in tool_result(got[5])[1]
    assert got[7]["error"]["code"] == -32602
    mailbox = store_home / "mailbox"
    assert not mailbox.exists() or list(mailbox.iterdir()) == []


# -- failures never reach stdout -------------------------------------------------------------------


ALL_CALLS = [
    call(1, "whoami"),
    call(2, "register", {"name": "x"}),
    call(3, "roster"),
    call(4, "send", {"to": "11111111-2222-4333-8444-555555555555", "body": "b"}),
    call(5, "inbox"),
    call(6, "discover", {}),
    req(7, "ping"),
]


@pytest.mark.files_only("puts AGENT_RELAY_HOME under a regular file; a failing Redis is test_redis_faces's")
def test_unwritable_store_gives_is_error_results_and_a_clean_stdout(run_relay, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("I am a regular file\n")
    replies, _ = run_bus(
        run_relay,
        *ALL_CALLS,
        extra_env={"AGENT_RELAY_HOME": str(blocker / "store"), "CLAUDE_CODE_SESSION_ID": new_id()},
    )
    got = by_id(replies)
    assert set(got) == {1, 2, 3, 4, 5, 6, 7}
    assert got[7]["result"] == {}
    for request_id in range(1, 7):  # a tool failure is a result, never a JSON-RPC error
        assert "result" in got[request_id], got[request_id]
    for request_id in (2, 4, 5):  # these must write to the store
        assert "result" in got[request_id], got[request_id]
        is_error, text = tool_result(got[request_id])
        assert is_error is True
        assert "session-relay" in text


@pytest.mark.files_only("puts AGENT_RELAY_HOME under a regular file")
def test_unwritable_store_without_a_session_id(run_relay, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    replies, _ = run_bus(run_relay, *ALL_CALLS, extra_env={"AGENT_RELAY_HOME": str(blocker / "store")})
    got = by_id(replies)
    assert set(got) == {1, 2, 3, 4, 5, 6, 7}
    for request_id in range(1, 7):
        assert "result" in got[request_id], got[request_id]


@pytest.mark.files_only("makes AGENT_RELAY_HOME read-only")
def test_read_only_store(run_relay, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: permissions do not stop writes (the under-a-file case covers it)")
    home = tmp_path / "ro-store"
    home.mkdir(mode=0o500)
    try:
        replies, _ = run_bus(
            run_relay, *ALL_CALLS, extra_env={"AGENT_RELAY_HOME": str(home), "CLAUDE_CODE_SESSION_ID": new_id()}
        )
    finally:
        home.chmod(0o700)
    got = by_id(replies)
    for request_id in (2, 4, 5):
        assert tool_result(got[request_id])[0] is True


@pytest.mark.files_only("holds the file store's .lock; Redis has no store-wide lock")
def test_lock_busy_is_an_error_result_and_the_server_survives(relay_cmd, env, tmp_path, store_home):
    me, peer = new_id(), new_id()
    store_home.mkdir(mode=0o700)
    lock_fd = os.open(store_home / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    bus = Bus(relay_cmd, {**env, "CLAUDE_CODE_SESSION_ID": me}, tmp_path, tmp_path / "stderr")
    try:
        assert bus.ask(req(0, "ping"))["result"] == {}
        fcntl.lockf(lock_fd, fcntl.LOCK_EX)
        started = time.monotonic()
        try:
            reply = bus.ask(call(1, "send", {"to": peer, "body": "blocked"}), timeout=30)
        finally:
            waited = time.monotonic() - started
            fcntl.lockf(lock_fd, fcntl.LOCK_UN)
        assert 2.9 <= waited < 15, waited  # it waited for the 3 s deadline, then gave up
        is_error, text = tool_result(reply)
        assert is_error is True
        assert "lock busy" in text
        assert not (store_home / "mailbox" / f"{peer}.jsonl").exists()
        assert bus.ask(req(2, "ping"))["result"] == {}
        assert tool_json(bus.ask(call(3, "send", {"to": peer, "body": "free"})))["ok"] is True
    finally:
        os.close(lock_fd)
        assert bus.close() == 0
    assert len((store_home / "mailbox" / f"{peer}.jsonl").read_text().splitlines()) == 1


def test_stray_writes_to_fd_1_do_not_reach_stdout(run_relay, relay_cmd, tmp_path):
    """A print() or a C-level write to fd 1 while the bus runs lands on stderr, never in the stream."""
    if relay_cmd[:2] != [sys.executable, "-m"]:
        pytest.skip("needs a sitecustomize hook, which only the source checkout (python -m relay) loads")
    hooks = tmp_path / "site"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        # `python -m relay` ends with posix._exit (no atexit handlers), so the stray writes are
        # made from a wrapper around it: the last moment of the run, fd 1 still redirected.
        "import posix\n"
        "_real_exit = posix._exit\n"
        "def _stray_then_exit(code):\n"
        "    print('stray print at exit', flush=True)\n"
        "    posix.write(1, b'stray fd-1 write at exit\\n')\n"
        "    _real_exit(code)\n"
        "posix._exit = _stray_then_exit\n"
    )
    result = run_relay(
        "bus",
        input=script(req(1, "ping"), call(2, "roster")),
        extra_env={"PYTHONPATH": f"{hooks}{os.pathsep}{os.environ['PYTHONPATH']}"},
    )
    assert result.returncode == 0
    assert [f["id"] for f in frames(result.stdout)] == [1, 2]
    assert b"stray print at exit" in result.stderr  # the hook really ran
    assert b"stray fd-1 write at exit" in result.stderr


# -- which session am I? ---------------------------------------------------------------------------


def whoami(run_relay, cwd=None, **env_values: str) -> dict[str, Any]:
    replies, _ = run_bus(run_relay, call(1, "whoami"), extra_env=env_values, cwd=cwd)
    return tool_json(replies[0])


def start_hook(run_relay, session_id: str, directory: Path) -> None:
    event = {"session_id": session_id, "cwd": str(directory), "source": "startup", "hook_event_name": "SessionStart"}
    result = run_relay("hook", input=json.dumps(event))
    assert result.returncode == 0, result.stderr


def test_claude_code_session_id_identifies_the_session(run_relay, tmp_path):
    me = new_id()
    got = whoami(run_relay, CLAUDE_CODE_SESSION_ID=me)
    assert (got["registered"], got["id"], got["dir"]) == (False, me, str(tmp_path))
    assert "register" in got["note"]
    replies, _ = run_bus(
        run_relay, call(1, "register", {"name": "me"}), call(2, "whoami"), extra_env={"CLAUDE_CODE_SESSION_ID": me}
    )
    got = tool_json(replies[1])
    assert got["registered"] is True
    assert (got["id"], got["name"], got["dir"], got["tool"]) == (me, "me", str(tmp_path), "claude")


def test_session_id_wins_over_the_marker(run_relay, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    marked, claimed = new_id(), new_id()
    start_hook(run_relay, marked, project)
    assert whoami(run_relay, RELAY_PROJECT_DIR=str(project), CLAUDE_CODE_SESSION_ID=claimed)["id"] == claimed


@pytest.mark.parametrize("variable", ["RELAY_PROJECT_DIR", "CLAUDE_PROJECT_DIR"])
def test_marker_fallback_by_project_dir_variable(run_relay, tmp_path, variable):
    project = tmp_path / "proj"
    project.mkdir()
    me = new_id()
    start_hook(run_relay, me, project)
    got = whoami(run_relay, **{variable: str(project)})
    assert got["registered"] is True
    assert (got["id"], got["dir"], got["tool"]) == (me, str(project), "claude")
    # another dir has no marker
    other = tmp_path / "other"
    other.mkdir()
    got = whoami(run_relay, **{variable: str(other)})
    assert got["registered"] is False
    assert got["id"] is None
    assert got["dir"] == str(other)


def test_relay_project_dir_wins_over_claude_project_dir(run_relay, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    id_a, id_b = new_id(), new_id()
    start_hook(run_relay, id_a, a)
    start_hook(run_relay, id_b, b)
    assert whoami(run_relay, RELAY_PROJECT_DIR=str(a), CLAUDE_PROJECT_DIR=str(b))["id"] == id_a


def test_marker_fallback_by_cwd(run_relay, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    me = new_id()
    start_hook(run_relay, me, project)
    assert whoami(run_relay, cwd=project)["id"] == me


@pytest.mark.parametrize("unset", ["", "${CLAUDE_PROJECT_DIR}", "/x/${HOME}"])
def test_unsubstituted_or_empty_values_count_as_unset(run_relay, tmp_path, unset):
    project, cwd_dir = tmp_path / "proj", tmp_path / "cwd"
    project.mkdir()
    cwd_dir.mkdir()
    in_project, in_cwd = new_id(), new_id()
    start_hook(run_relay, in_project, project)
    start_hook(run_relay, in_cwd, cwd_dir)
    # RELAY_PROJECT_DIR unusable -> CLAUDE_PROJECT_DIR
    assert whoami(run_relay, RELAY_PROJECT_DIR=unset, CLAUDE_PROJECT_DIR=str(project))["id"] == in_project
    # both unusable -> cwd
    assert whoami(run_relay, cwd=cwd_dir, RELAY_PROJECT_DIR=unset, CLAUDE_PROJECT_DIR=unset)["id"] == in_cwd
    # an unusable session id -> the marker
    assert whoami(run_relay, RELAY_PROJECT_DIR=str(project), CLAUDE_CODE_SESSION_ID=unset)["id"] == in_project


@pytest.mark.parametrize("bad", ["${CLAUDE_CODE_SESSION_ID}", "--config=evil", "not-a-uuid", " "])
def test_a_session_id_that_is_not_a_uuid_is_ignored(run_relay, tmp_path, bad):
    project = tmp_path / "proj"
    project.mkdir()
    me = new_id()
    start_hook(run_relay, me, project)
    assert whoami(run_relay, RELAY_PROJECT_DIR=str(project), CLAUDE_CODE_SESSION_ID=bad)["id"] == me
    got = whoami(run_relay, RELAY_PROJECT_DIR=str(tmp_path), CLAUDE_CODE_SESSION_ID=bad)
    assert got["registered"] is False and got["id"] is None


# -- mail is removed only once the answer is written (in-process) ----------------------------------


class BrokenPipeOut:
    """A client that went away: every write fails. Records what the store held at that moment."""

    def __init__(self, store: Store, recipient: str) -> None:
        self.store, self.recipient = store, recipient
        self.seen_during_write: list[list[dict[str, Any]]] = []

    def write(self, data: bytes) -> int:
        self.seen_during_write.append(self.store.peek(self.recipient))
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


class RecordingOut:
    def __init__(self, store: Store, recipient: str) -> None:
        self.store, self.recipient = store, recipient
        self.data = b""
        self.seen_during_write: list[list[dict[str, Any]]] = []

    def write(self, data: bytes) -> int:
        self.seen_during_write.append(self.store.peek(self.recipient))
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass


def _queue_mail(store: Store, recipient: str, *bodies: str) -> None:
    from relay.usecases.mail import send

    for body in bodies:
        send(store, recipient, body, None, None)


def _inbox_line(request_id: int = 1) -> bytes:
    return json.dumps(call(request_id, "inbox")).encode() + b"\n"


def test_inbox_mail_survives_an_answer_that_could_not_be_written(env, monkeypatch):
    me = new_id()
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", me)
    store = Store()
    _queue_mail(store, me, "first", "second")
    out = BrokenPipeOut(store, me)
    assert Server(store, out).handle_line(_inbox_line()) is False  # the client is gone
    assert [len(seen) for seen in out.seen_during_write] == [2]
    left = store.peek(me)
    assert [m["body"] for m in left] == ["first", "second"]
    # the next taker gets it again, flagged
    good = RecordingOut(store, me)
    assert Server(store, good).handle_line(_inbox_line(2)) is True
    (reply,) = frames(good.data)
    delivered = tool_json(reply)
    assert [m["body"] for m in delivered["messages"]] == ["first", "second"]
    assert all(m.get("redelivered") is True for m in delivered["messages"])
    assert store.peek(me) == []


def test_inbox_mail_is_removed_after_the_answer_is_written(env, monkeypatch):
    me = new_id()
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", me)
    store = Store()
    _queue_mail(store, me, "hello")
    out = RecordingOut(store, me)
    assert Server(store, out).handle_line(_inbox_line()) is True
    assert [[m["body"] for m in seen] for seen in out.seen_during_write] == [["hello"]]  # still there while writing
    assert store.peek(me) == []
    (reply,) = frames(out.data)
    assert [m["body"] for m in tool_json(reply)["messages"]] == ["hello"]
    assert "redelivered" not in tool_json(reply)["messages"][0]


def test_inbox_in_a_batch_whose_answer_fails_keeps_the_mail(env, monkeypatch):
    me = new_id()
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", me)
    store = Store()
    _queue_mail(store, me, "kept")
    line = json.dumps([req(0, "ping"), call(1, "inbox")]).encode() + b"\n"
    assert Server(store, BrokenPipeOut(store, me)).handle_line(line) is False
    assert [m["body"] for m in store.peek(me)] == ["kept"]


def test_server_handle_line_survives_a_tool_that_raises(env, monkeypatch):
    from relay.faces import mcp_tools as tools

    def explode(*args: Any) -> Any:
        raise ValueError("boom")

    monkeypatch.setitem(tools._HANDLERS, "roster", explode)
    store = Store()
    out = RecordingOut(store, new_id())
    server = Server(store, out)
    assert server.handle_line(json.dumps(call(1, "roster")).encode()) is True
    assert server.handle_line(json.dumps(req(2, "ping")).encode()) is True
    replies = frames(out.data)
    assert replies[0]["id"] == 1
    assert "error" in replies[0] or replies[0]["result"]["isError"] is True
    assert replies[1] == {"jsonrpc": "2.0", "id": 2, "result": {}}


# -- valid JSON the parser must not drop -----------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        # a lone surrogate escape is valid JSON text (RFC 8259 §8.2 allows it)
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send","arguments":{"to":"x","body":"\\ud800"}}}\n',
        # a number beyond double range is valid JSON
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"discover","arguments":{"activeWithinMin":1e400}}}\n',
    ],
    ids=["lone-surrogate", "number-overflow"],
)
def test_a_valid_json_request_always_gets_an_answer(run_relay, line):
    """Every request with an id gets exactly one answer: a client must never wait forever."""
    replies, _ = run_bus(run_relay, line, req(2, "ping"), extra_env={"CLAUDE_CODE_SESSION_ID": new_id()})
    assert [r["id"] for r in replies] == [1, 2]


# -- Codex: the session named in each tool call's _meta --------------------------------------------


def test_codex_meta_session_id_identifies_the_caller_per_call(run_relay, store_home):
    first, second, peer = new_id(), new_id(), new_id()
    replies, _ = run_bus(
        run_relay,
        req(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}}),
        call(1, "whoami"),  # no _meta, no env: unknown
        req(2, "tools/call", {"name": "register", "arguments": {"name": "cx"}, "_meta": {"sessionId": first}}),
        req(3, "tools/call", {"name": "whoami", "arguments": {}, "_meta": {"sessionId": first}}),
        req(4, "tools/call", {"name": "whoami", "arguments": {}, "_meta": {"threadId": second}}),
        req(
            5,
            "tools/call",
            {"name": "whoami", "arguments": {}, "_meta": {"x-codex-turn-metadata": {"session_id": second}}},
        ),
        req(6, "tools/call", {"name": "whoami", "arguments": {}, "_meta": {"sessionId": "--config=evil"}}),
        req(7, "tools/call", {"name": "send", "arguments": {"to": peer, "body": "hi"}, "_meta": {"sessionId": first}}),
        req(8, "tools/call", {"name": "whoami", "arguments": {}, "_meta": "junk"}),
    )
    got = by_id(replies)
    assert tool_json(got[1])["id"] is None
    registered = tool_json(got[2])
    assert (registered["id"], registered["name"], registered["tool"]) == (first, "cx", "codex")
    assert tool_json(got[3])["registered"] is True and tool_json(got[3])["id"] == first
    assert tool_json(got[4])["id"] == second  # read on every call, never cached
    assert tool_json(got[5])["id"] == second
    assert tool_json(got[6])["id"] is None  # a non-UUID is never taken as an id
    assert tool_json(got[8])["id"] is None
    (message,) = [json.loads(x) for x in mailbox_lines(store_home, peer)]
    assert (message["from"], message["fromName"]) == (first, "cx")


def test_claude_code_session_id_wins_over_meta(run_relay):
    mine, other = new_id(), new_id()
    replies, _ = run_bus(
        run_relay,
        req(1, "tools/call", {"name": "whoami", "arguments": {}, "_meta": {"sessionId": other}}),
        extra_env={"CLAUDE_CODE_SESSION_ID": mine},
    )
    assert tool_json(replies[0])["id"] == mine


def test_codex_meta_inbox_takes_that_sessions_mail(run_relay):
    me = new_id()
    run_bus(run_relay, call(1, "send", {"to": me, "body": "for codex"}))
    replies, _ = run_bus(
        run_relay,
        req(1, "tools/call", {"name": "inbox", "arguments": {}, "_meta": {"sessionId": me}}),
        req(2, "tools/call", {"name": "inbox", "arguments": {}, "_meta": {"sessionId": me}}),
    )
    got = by_id(replies)
    assert [m["body"] for m in tool_json(got[1])["messages"]] == ["for codex"]
    assert tool_json(got[2])["count"] == 0


def test_client_gone_the_server_exits_and_untaken_mail_stays(relay_cmd, env, tmp_path, run_relay):
    """stdout closed by the client: the answer cannot be written, so the mail stays; exit 0, no hang."""
    me = new_id()
    run_bus(run_relay, call(1, "send", {"to": me, "body": "still here"}))
    with open(tmp_path / "stderr", "wb") as stderr:
        proc = subprocess.Popen(
            [*relay_cmd, "bus"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**env, "CLAUDE_CODE_SESSION_ID": me},
            cwd=str(tmp_path),
        )
        proc.stdout.close()  # the client went away before the answer
        try:
            proc.stdin.write(script(call(1, "inbox")))
            proc.stdin.flush()
        except BrokenPipeError:
            pass
        try:
            code = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
    assert code == 0
    assert b"cannot write" in (tmp_path / "stderr").read_bytes()
    replies, _ = run_bus(run_relay, call(1, "inbox"), extra_env={"CLAUDE_CODE_SESSION_ID": me})
    (message,) = tool_json(replies[0])["messages"]
    assert (message["body"], message.get("redelivered")) == ("still here", True)


@pytest.mark.parametrize(
    "line",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}}\n",
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}}\n",
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":' + b"9" * 5000 + b"}}\n",
        b"[" * 100_000 + b"\n",
    ],
    ids=["deep-arrays", "deep-objects", "5000-digit-number", "unclosed-deep-array"],
)
def test_pathological_json_never_kills_the_server(run_relay, line):
    """Whatever one line holds, the server survives it and answers the next request."""
    replies, stderr = run_bus(run_relay, line, req(2, "ping"))
    assert replies[-1] == {"jsonrpc": "2.0", "id": 2, "result": {}}
    assert all(r["id"] in (1, None) for r in replies[:-1])
    assert b"Traceback" not in stderr


@pytest.mark.files_only("plants a torn mailbox line and registry file; Redis's quarantine is test_redis_store's")
def test_store_warnings_go_to_stderr_not_stdout(run_relay, store_home):
    """A corrupt registry and an unreadable mailbox line are reported on stderr; stdout stays frames."""
    me = new_id()
    (store_home / "mailbox").mkdir(parents=True)
    good = {"id": new_id(), "ts": "2026-01-01T00:00:00.000Z", "from": None, "fromName": None}
    good |= {"to": me, "toName": None, "body": "readable"}
    (store_home / "mailbox" / f"{me}.jsonl").write_bytes(b"{torn line\n" + json.dumps(good).encode() + b"\n")
    (store_home / "registry.json").write_text('{"agents": {"x": ')
    replies, stderr = run_bus(
        run_relay, call(1, "roster"), call(2, "inbox"), call(3, "whoami"), extra_env={"CLAUDE_CODE_SESSION_ID": me}
    )
    got = by_id(replies)
    assert tool_json(got[1]) == {"agents": []}
    assert [m["body"] for m in tool_json(got[2])["messages"]] == ["readable"]
    assert tool_json(got[3])["registered"] is False
    assert b"registry.json" in stderr
    assert b"unreadable line" in stderr


# -- any single frame: the server survives it and goes on answering (docs/mcp.md, docs/security.md) ---


DEEP_ID = b'{"jsonrpc":"2.0","id":' + b"[" * 1000 + b"]" * 1000 + b',"method":"ping"}\n'


def test_a_deeply_nested_id_is_an_invalid_request_and_the_server_goes_on(run_relay):
    """Failed before: the reply echoed the id and encoding it raised RecursionError, killing the bus."""
    replies, stderr = run_bus(run_relay, DEEP_ID, req(2, "ping"))
    assert replies[0] == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "`id` must be a string, a number or null"},
    }
    assert replies[1] == {"jsonrpc": "2.0", "id": 2, "result": {}}
    assert b"Traceback" not in stderr


@pytest.mark.parametrize(
    "request_id",
    [
        b"true",
        b"false",
        b"[]",
        b"[1]",
        b'{"a":1}',
        b"1e400",
        b"-1e400",
        b"9" * 5000,
        b'{"a":' * 900 + b"1" + b"}" * 900,
    ],
    ids=["true", "false", "empty-array", "array", "object", "1e400", "-1e400", "5000-digits", "deep-object"],
)
def test_an_id_that_is_not_a_string_number_or_null_is_answered_with_id_null(run_relay, request_id):
    line = b'{"jsonrpc":"2.0","id":' + request_id + b',"method":"ping"}\n'
    replies, _ = run_bus(run_relay, line, req(2, "ping"))
    assert [r["id"] for r in replies] == [None, 2]
    assert replies[0]["error"]["code"] == -32600


@pytest.mark.parametrize(
    "value",
    [
        b"[" * 500 + b"]" * 500,
        b'{"a":' * 500 + b"1" + b"}" * 500,
        b"[" * 5000 + b"]" * 5000,
        b"1e400",
        b"9" * 100_000,
        b"-" + b"9" * 30,
        b'"' + b"x" * (8 * 1024 * 1024) + b'"',
        b'"\\ud800\\u001b]52;c;aGk=\\u0007\\u009b2J\\u202e"',
    ],
    ids=["deep-array", "deep-object", "deeper-than-parsers", "1e400", "100k-digits", "30-digits", "8MiB", "escapes"],
)
@pytest.mark.parametrize("where", ["arguments", "meta", "params"])
def test_hostile_values_anywhere_in_params_get_one_answer(run_relay, value, where):
    head = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send",'
    if where == "arguments":
        line = head + b'"arguments":{"to":"bob","body":' + value + b"}}}\n"
    elif where == "meta":
        line = head + b'"arguments":{"to":"bob","body":"hi"},"_meta":' + value + b"}}\n"
    else:
        line = head + b'"arguments":{"to":"bob","body":"hi"},"extra":' + value + b"}}\n"
    result = run_relay("bus", input=line + script(req(2, "ping")), extra_env={"CLAUDE_CODE_SESSION_ID": new_id()})
    assert result.returncode == 0
    replies = frames(result.stdout)
    assert len(replies) == 2 and replies[-1] == {"jsonrpc": "2.0", "id": 2, "result": {}}
    assert replies[0]["id"] in (1, None)  # null only for a line nested deeper than JSON parsers go
    for bad in (b"\x1b", b"\x07", "\x9b".encode(), "\u202e".encode()):
        assert bad not in result.stdout
    assert b"Traceback" not in result.stderr


def test_params_nested_deeper_than_the_limit_are_invalid_params(env, monkeypatch):
    from relay.faces.bus import MAX_DEPTH

    store = Store()
    out = RecordingOut(store, new_id())
    server = Server(store, out)
    nested: Any = "leaf"
    for _ in range(MAX_DEPTH + 1):
        nested = [nested]
    shallow: Any = "leaf"
    for _ in range(MAX_DEPTH - 3):
        shallow = [shallow]
    server.handle_line(json.dumps(req(1, "ping", {"x": nested})).encode())
    server.handle_line(json.dumps(req(2, "ping", {"x": shallow})).encode())
    first, second = frames(out.data)
    assert first["id"] == 1 and first["error"] == {
        "code": -32602,
        "message": f"`params` nest deeper than {MAX_DEPTH} levels",
    }
    assert second == {"jsonrpc": "2.0", "id": 2, "result": {}}


def _write_in_background(stream: Any, chunks: Any) -> threading.Thread:
    def write() -> None:
        with contextlib.suppress(BrokenPipeError):
            for chunk in chunks:
                stream.write(chunk)
            stream.flush()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def test_a_line_over_16_mib_gets_one_error_is_never_held_whole_and_the_server_goes_on(relay_cmd, env, tmp_path):
    """Failed before: the bus read the whole line (here 160 MiB) into memory and then tried to parse it."""
    chunk = b"x" * (1024 * 1024)
    huge = [b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"', *([chunk] * 160), b'"}}\n']
    bus = Bus(relay_cmd, env, tmp_path, tmp_path / "stderr")
    try:
        assert bus.proc.stdin is not None
        writer = _write_in_background(bus.proc.stdin, [*huge, script(req(2, "ping"))])
        first = json.loads(bus.lines.get(timeout=120))
        assert first["id"] is None and first["error"]["code"] == -32600
        assert "16 MiB" in first["error"]["message"]
        assert json.loads(bus.lines.get(timeout=60)) == {"jsonrpc": "2.0", "id": 2, "result": {}}
        writer.join(timeout=60)
        if Path(f"/proc/{bus.proc.pid}/status").exists():
            assert _peak_rss_kib(bus.proc.pid) < 100 * 1024  # far below the line's 160 MiB
    finally:
        bus.close()


def test_a_line_of_exactly_16_mib_is_read(relay_cmd, env, tmp_path):
    from relay.faces.bus import MAX_LINE_BYTES

    head = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"'
    tail = b'"}}'
    line = head + b"y" * (MAX_LINE_BYTES - len(head) - len(tail)) + tail + b"\n"
    result = subprocess.run([*relay_cmd, "bus"], input=line, capture_output=True, env=env, timeout=120, check=False)
    assert frames(result.stdout) == [{"jsonrpc": "2.0", "id": 1, "result": {}}]


def test_read_lines_discards_a_long_line_in_pieces():
    from relay.faces.bus import read_lines

    data = b"short\n" + b"z" * 100 + b"\n" + b"0123456789\n" + b"w" * 30 + b"\nlast"
    stream = io.BufferedReader(io.BytesIO(data), buffer_size=8)
    assert list(read_lines(stream, limit=10)) == [b"short\n", None, b"0123456789\n", None, b"last"]


@pytest.mark.parametrize("field", ["method", "tool"])
def test_terminal_escapes_in_an_echoed_name_never_reach_stdout_raw(run_relay, field):
    """Failed before: the error quoted the name, and C1 CSI and bidi overrides went out as raw UTF-8."""
    hostile = "x\x1b]52;c;aGk=\x07\x9b2J\u202e\x7f" + "y" * 500
    message = req(1, hostile) if field == "method" else call(1, hostile)
    result = run_relay("bus", input=script(message))
    (reply,) = frames(result.stdout)
    assert reply["error"]["code"] == (-32601 if field == "method" else -32602)
    text = reply["error"]["message"]
    assert "\\x1b]52;c;aGk=\\x07\\x9b2J\\u202e\\x7f" in text  # shown, escaped, and cut short
    assert len(text) < 200
    for raw in ("\x1b", "\x07", "\x9b", "\u202e", "\x7f"):
        assert raw.encode() not in result.stdout

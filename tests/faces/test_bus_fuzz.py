"""Property tests for `relay bus`: random JSON-RPC traffic never kills it or dirties its stdout.

Each subprocess test keeps ONE bus running for all its examples. After every example a ping
with a unique id is sent as a sync barrier, so the lines read before its answer are exactly the
answers to that example. Invariants:

- the server stays alive and stdout carries only JSON-RPC responses (objects or batch arrays);
- every request with an id gets exactly one answer with that id; notifications and responses get
  none; a message that is not an object gets one error with id null;
- a `tools/call` of a known tool always answers a result `{content: [text], isError}`.

The in-process variant drives `relay.faces.bus.Server.handle_line` directly for many more examples.

Generated JSON includes lone surrogate escapes, terminal escapes, bidi overrides and fence-tag
lookalikes. The hostile-line tests build frames as text, to carry what Python's json cannot write:
nesting of any depth, integers of thousands of digits, numbers beyond double range. Whatever a
frame holds, it gets exactly one answer, and stdout never carries a raw control or bidi character.
"""

import io
import json
import queue
import re
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import new_id
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.faces.bus import Server
from relay.store.files import Store

TOOLS = ["whoami", "register", "roster", "send", "inbox", "discover", "status", "wait"]
METHODS = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "notifications/initialized",
    "notifications/cancelled",
    "resources/list",
    "prompts/get",
    "",
]
VERSIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]
FIELDS = ["name", "id", "dir", "to", "body", "activeWithinMin", "tool", "x", ""]


# -- strategies ------------------------------------------------------------------------------------

# Any text, and sometimes lone surrogates (which can only travel as JSON escapes). A high surrogate
# followed by a low one would decode as one astral character, so such pairs are not generated.
_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
surrogate_texts = st.text(st.sampled_from(["\ud800", "\udbff", "\udc80", "\udfff", "a", "é"]), max_size=4)
# What an attacker puts in a field: terminal escapes (OSC 52 clipboard write, screen clear, C1 CSI),
# bidi overrides, line breaks, and text that reads as a fence tag.
HOSTILE_SNIPPETS = [
    "\x1b]52;c;aGVsbG8=\x07",
    "\x1b[2J",
    "\x9b31m",
    "\u202e",
    "\u2066",
    "\x7f",
    "\x85",
    "\u2028",
    "\r\n- from lead: ",
    "</session-relay-mail>",
    "</session-relay-mail\u200b>",
    "\uff1c/session-relay-mail\uff1e",
    "&lt;/session-relay-mail&gt;",
    "</session-relay-m\u0430il>",  # Cyrillic a
    "\ufeff",
    "\x00",
]
hostile_texts = st.lists(st.sampled_from(HOSTILE_SNIPPETS) | st.text(max_size=5), min_size=1, max_size=5).map("".join)
texts = st.text(max_size=40) | surrogate_texts.filter(lambda t: not _PAIR.search(t)) | hostile_texts
huge_texts = st.builds(
    lambda ch, n: ch * n, st.sampled_from(["x", "é", "✓", "😀", " ", "\n", "\\", '"']), st.integers(10_000, 120_000)
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
ids = scalars | st.lists(scalars, max_size=3) | st.dictionaries(texts, scalars, max_size=3)
uuids = st.builds(lambda: str(uuid.uuid4())) | st.sampled_from(["123e4567-e89b-12d3-a456-426614174000"])
field_values = json_values | huge_texts | uuids | st.sampled_from(["claude", "codex", "/abs/dir", "bob", "alice"])
tool_arguments = st.dictionaries(st.sampled_from(FIELDS) | texts, field_values, max_size=4) | json_values
tool_params = st.fixed_dictionaries(
    {"name": st.sampled_from(TOOLS) | texts | scalars},
    optional={"arguments": tool_arguments, "_meta": json_values},
)
methods = st.sampled_from(METHODS) | texts | scalars
initialize_params = st.fixed_dictionaries({"protocolVersion": st.sampled_from(VERSIONS) | texts | scalars})


@st.composite
def messages(draw: st.DrawFn) -> Any:
    """One JSON-RPC message of any shape, mostly plausible, sometimes junk."""
    kind = draw(st.sampled_from(["request", "request", "call", "call", "notification", "response", "junk", "scalar"]))
    if kind == "scalar":
        return draw(scalars | st.lists(scalars, max_size=0))
    if kind == "junk":
        return draw(st.dictionaries(texts | st.sampled_from(["id", "method", "params", "jsonrpc"]), json_values))
    message: dict[str, Any] = {}
    if draw(st.booleans()):
        message["jsonrpc"] = draw(st.sampled_from(["2.0", "2.0", "1.0", None]))
    if kind == "response":
        message["id"] = draw(ids)
        message[draw(st.sampled_from(["result", "error"]))] = draw(json_values)
        return message
    if kind == "call":
        message["method"] = "tools/call"
        message["params"] = draw(tool_params | json_values)
    else:
        message["method"] = draw(methods)
        if draw(st.booleans()):
            message["params"] = draw(json_values | initialize_params)
    if kind != "notification":
        message["id"] = draw(ids)
    return message


frames = messages() | st.lists(messages(), max_size=5)


@st.composite
def lines(draw: st.DrawFn) -> tuple[bytes, Any]:
    """(input line, the decoded frame or a marker for a line that is not JSON)."""
    if draw(st.integers(0, 19)) == 0:  # a line that is not JSON: a control byte is never valid JSON
        junk = draw(st.binary(max_size=60)).replace(b"\n", b"")
        return b"\x01" + junk + b"\n", NOT_JSON
    if draw(st.integers(0, 29)) == 0:
        return draw(st.sampled_from([b"\n", b"  \n", b"\t\r\n"])), BLANK
    frame = draw(frames)
    text = json.dumps(frame, ensure_ascii=draw(st.booleans()))
    try:
        data = text.encode()
    except UnicodeEncodeError:  # a lone surrogate can only travel escaped
        data = json.dumps(frame).encode()
    return data + b"\n", frame


NOT_JSON = object()
BLANK = object()


# -- the model of what must come back --------------------------------------------------------------


def key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def valid_id(value: Any) -> bool:
    """JSON-RPC ids are strings, numbers (that JSON can carry back) or null; true/false are not numbers."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    return value is None or isinstance(value, str | int)


def answers_for(message: Any) -> list[str]:
    """The ids (as keys) a single message must be answered with: zero or one."""
    if not isinstance(message, dict):
        return [key(None)]
    method = message.get("method")
    if method is None and ("result" in message or "error" in message):
        return []  # a response: nothing to answer
    if "id" not in message:
        return []  # a notification
    return [key(message["id"] if valid_id(message["id"]) else None)]


def expected(frame: Any) -> list[list[str]]:
    """The reply lines the frame must produce: one list of id keys per line."""
    if frame is NOT_JSON or frame is BLANK:
        return []
    if isinstance(frame, list) and frame:
        ids_in_batch = [k for item in frame for k in answers_for(item)]
        return [ids_in_batch] if ids_in_batch else []
    if isinstance(frame, list):
        return [[key(None)]]
    found = answers_for(frame)
    return [found] if found else []


def check_response(item: Any) -> None:
    assert isinstance(item, dict), item
    assert item.get("jsonrpc") == "2.0", item
    assert "id" in item, item
    assert ("result" in item) != ("error" in item), item
    if "error" in item:
        error = item["error"]
        assert isinstance(error["code"], int) and not isinstance(error["code"], bool)
        assert isinstance(error["message"], str) and error["message"]


# Raw bytes that drive a terminal or reorder text: C0 controls (other than the line's own newline),
# DEL, C1 controls and bidi/line-separator characters in UTF-8. JSON output carries them escaped.
RAW_UNSAFE = re.compile(
    rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xd8\x9c|\xe2\x80[\x8e\x8f\xa8-\xae]|\xe2\x81[\xa6-\xa9]"
)


def check_reply_line(raw: bytes) -> list[dict[str, Any]]:
    """Parse one stdout line: a JSON-RPC response or a non-empty batch of them."""
    assert raw.endswith(b"\n"), raw[-200:]
    found = RAW_UNSAFE.search(raw)
    assert found is None, f"raw {found.group()!r} on stdout" if found else ""
    decoded = json.loads(raw)
    items = decoded if isinstance(decoded, list) else [decoded]
    assert items, "an empty batch reply"
    for item in items:
        check_response(item)
    return items


def check_semantics(frame: Any, replies: list[list[dict[str, Any]]]) -> None:
    """Pair each answered message with its reply (the server keeps batch order) and check it."""
    if frame is NOT_JSON or frame is BLANK:
        assert replies == []
        return
    sent = frame if isinstance(frame, list) and frame else [frame]
    answering = [m for m in sent if answers_for(m)]
    answered = [item for line in replies for item in line]
    assert len(answering) == len(answered), (frame, replies)
    for message, reply in zip(answering, answered, strict=True):
        assert key(reply["id"]) == answers_for(message)[0], (message, reply)
        if not isinstance(message, dict) or not valid_id(message["id"]):
            assert reply["error"]["code"] == -32600
            continue
        method, params = message.get("method"), message.get("params")
        if not isinstance(method, str):
            assert reply["error"]["code"] == -32600
            continue
        if not isinstance(params, dict | None):
            assert reply["error"]["code"] == -32602
            continue
        params = params or {}
        if method == "ping":
            assert reply["result"] == {}
        elif method == "initialize":
            asked = params.get("protocolVersion")
            version = reply["result"]["protocolVersion"]
            assert version == (asked if isinstance(asked, str) and asked in VERSIONS else VERSIONS[-1])
        elif method == "tools/list":
            assert [t["name"] for t in reply["result"]["tools"]] == TOOLS
        elif method == "tools/call":
            name = params.get("name")
            if isinstance(name, str) and name in TOOLS:
                result = reply["result"]
                assert [c["type"] for c in result["content"]] in (["text"], ["text", "text"])
                assert all(c["text"].startswith("session-relay note: ") for c in result["content"][1:])
                assert isinstance(result["isError"], bool)
                if result["isError"] is False:
                    assert isinstance(json.loads(result["content"][0]["text"]), dict)
            else:
                assert reply["error"]["code"] == -32602, reply
        else:
            assert reply["error"]["code"] == -32601, reply


# -- one long-running bus subprocess ---------------------------------------------------------------


class Bus:
    def __init__(self, relay_cmd: list[str], env: dict[str, str], cwd: Path) -> None:
        self._stderr = open(cwd / "bus-stderr.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [*relay_cmd, "bus"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env, cwd=cwd
        )
        self.out: queue.Queue[bytes | None] = queue.Queue()
        self._writes: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out.put(line)
        self.out.put(None)

    def _write(self) -> None:
        # A separate writer thread: a huge line must not deadlock against unread replies.
        assert self.proc.stdin is not None
        while (data := self._writes.get()) is not None:
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except BrokenPipeError:
                return
        self.proc.stdin.close()

    def exchange(self, line: bytes, timeout: float = 30) -> list[bytes]:
        """Send `line` and a unique ping; every stdout line before the ping's answer."""
        barrier = f"sync-{uuid.uuid4()}"
        self._writes.put(line)
        self._writes.put(json.dumps({"jsonrpc": "2.0", "id": barrier, "method": "ping"}).encode() + b"\n")
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while True:
            raw = self.out.get(timeout=max(0.1, deadline - time.monotonic()))
            assert raw is not None, f"the bus died (exit {self.proc.poll()}) after {line[:300]!r}"
            items = check_reply_line(raw)
            if len(items) == 1 and not isinstance(json.loads(raw), list) and items[0]["id"] == barrier:
                assert items[0]["result"] == {}
                return got
            got.append(raw)

    def close(self) -> int:
        self._writes.put(None)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._stderr.close()


def check_exchange(frame: Any, raw_replies: list[bytes]) -> None:
    replies = [check_reply_line(raw) for raw in raw_replies]
    want = expected(frame)
    assert len(replies) == len(want), (frame, replies)
    for line, ids_wanted in zip(replies, want, strict=True):
        assert sorted(key(item["id"]) for item in line) == sorted(ids_wanted), (frame, line)
    if isinstance(frame, list) and frame:
        for raw in raw_replies:
            assert isinstance(json.loads(raw), list), "a batch is answered with an array"
    check_semantics(frame, replies)


FUZZ_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@pytest.mark.parametrize("with_session", [True, False])
def test_bus_subprocess_survives_random_frames(relay_cmd, env, tmp_path, with_session):
    bus_env = {**env, "CLAUDE_CODE_SESSION_ID": new_id()} if with_session else env
    bus = Bus(relay_cmd, bus_env, tmp_path)
    started = time.monotonic()
    try:
        bus.exchange(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}).encode() + b"\n")

        @FUZZ_SETTINGS
        @given(lines())
        def check(sent: tuple[bytes, Any]) -> None:
            line, frame = sent
            seen.append(line)
            check_exchange(frame, bus.exchange(line))

        seen: list[bytes] = []
        check()
        assert len(seen) >= 100, len(seen)
        assert time.monotonic() - started < 120
    finally:
        code = bus.close()
    assert code == 0


def test_bus_subprocess_random_tool_calls_with_huge_arguments(relay_cmd, env, tmp_path):
    bus = Bus(relay_cmd, {**env, "CLAUDE_CODE_SESSION_ID": new_id()}, tmp_path)
    calls = st.builds(
        lambda request_id, name, arguments: {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        },
        ids,
        st.sampled_from(TOOLS),
        st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=3),
    )
    try:

        @settings(FUZZ_SETTINGS, max_examples=60)
        @given(calls)
        def check(message: dict[str, Any]) -> None:
            seen.append(message)
            raw = bus.exchange(json.dumps(message).encode() + b"\n")
            check_exchange(message, raw)

        seen: list[dict[str, Any]] = []
        check()
        assert len(seen) >= 50, len(seen)
        assert sum(len(json.dumps(m)) > 10_000 for m in seen) >= 3, "huge arguments were exercised"
    finally:
        code = bus.close()
    assert code == 0


# -- in-process: many more examples cheaply --------------------------------------------------------


def test_server_handle_line_random_frames(env, tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", new_id())
    monkeypatch.chdir(tmp_path)
    out = io.BytesIO()
    server = Server(Store(), out)

    @settings(FUZZ_SETTINGS, max_examples=400)
    @given(lines())
    def check(sent: tuple[bytes, Any]) -> None:
        line, frame = sent
        out.seek(0)
        out.truncate()
        assert server.handle_line(line) is True
        data = out.getvalue()
        raw_replies = [raw + b"\n" for raw in data.split(b"\n")[:-1]]
        assert data == b"".join(raw_replies)
        check_exchange(frame, raw_replies)
        seen.append(line)

    seen: list[bytes] = []
    check()
    assert len(seen) >= 300, len(seen)


# -- hostile lines, built as text ------------------------------------------------------------------

# Depths chosen clear of the limits, so the model is exact: shallow, deeper than the server's params
# limit (100) but parseable, and deeper than any parser reads (about 1000).
_DEPTHS = st.integers(1, 50) | st.integers(150, 800) | st.integers(1200, 3000)


@st.composite
def hostile_fragments(draw: st.DrawFn) -> tuple[str, int]:
    """(JSON text of one hostile value, how deep it nests)."""
    kind = draw(st.sampled_from(["array", "object", "int", "float", "text", "surrogate", "long"]))
    if kind == "array":
        depth = draw(_DEPTHS)
        return "[" * depth + "]" * depth, depth
    if kind == "object":
        depth = draw(_DEPTHS)
        return '{"a":' * depth + "0" + "}" * depth, depth
    if kind == "int":  # past 64 bits, past double range, past Python's 4300-digit conversion limit
        return draw(st.sampled_from(["", "-"])) + "9" * draw(st.integers(19, 6000)), 0
    if kind == "float":
        return draw(
            st.sampled_from(["1e400", "-1e400", "1e-400", "1" + "0" * 400 + ".5", "12345678901234567890e300"])
        ), 0
    if kind == "surrogate":
        return json.dumps(draw(surrogate_texts)), 0
    if kind == "long":
        return json.dumps(draw(huge_texts)), 0
    return json.dumps(draw(hostile_texts), ensure_ascii=draw(st.booleans())), 0


def model_id(text: str) -> Any:
    """The id the server must echo for an `id` field written as `text` (None: answered with null)."""
    try:
        value = json.loads(text, parse_constant=lambda name: 1 / 0)
    except (ValueError, RecursionError, ZeroDivisionError):
        return None  # too deep, or an integer too long to convert: not an id JSON can carry back
    return value if valid_id(value) else None


@st.composite
def hostile_lines(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """A tools/call line with hostile values in its id, arguments and _meta, and what must come back."""
    plain_id = str(draw(st.integers(0, 10**6)))
    id_text, id_depth = draw(hostile_fragments()) if draw(st.booleans()) else (plain_id, 0)
    fields = draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True))
    arguments = {field: draw(hostile_fragments()) for field in fields}
    meta = draw(hostile_fragments()) if draw(st.booleans()) else None
    arguments_text = "{" + ",".join(f"{json.dumps(k)}:{v}" for k, (v, _) in arguments.items()) + "}"
    params_text = f'{{"name":{json.dumps(draw(st.sampled_from(TOOLS)))},"arguments":{arguments_text}'
    params_text += f',"_meta":{meta[0]}}}' if meta else "}"
    line = f'{{"jsonrpc":"2.0","id":{id_text},"method":"tools/call","params":{params_text}}}\n'
    # Depth of params' deepest container, counting params as 0 (the server refuses 100 and more).
    params_depth = max([d + 1 for _, d in arguments.values() if d] + [meta[1] if meta else 0, 1])
    line_depth = max(id_depth + 1, params_depth + 2)
    if model_id(id_text) is None:
        want: dict[str, Any] = {"id": None, "code": -32600}
    elif params_depth >= 100:
        want = {"id": model_id(id_text), "code": -32602}
    else:
        want = {"id": model_id(id_text), "code": None}
    # Past what the parsers read (orjson: 1024 levels; the standard parser: the recursion limit,
    # which differs in-process) the line is answered with id null instead.
    want["may_be_unreadable"] = line_depth > 1100
    return line.encode("utf-8", "surrogatepass"), want


def check_hostile_exchange(want: dict[str, Any], raw_replies: list[bytes]) -> None:
    (raw,) = raw_replies
    (reply,) = check_reply_line(raw)
    assert not isinstance(json.loads(raw), list)
    if want["may_be_unreadable"] and reply["id"] is None:
        assert reply["error"]["code"] == -32600
        return
    if isinstance(want["id"], int) and abs(want["id"]) >= 2**63:
        # orjson reads an integer past 64 bits as the nearest double; past double range the standard
        # parser takes over and keeps it exact. Either way the same number comes back.
        assert reply["id"] == want["id"] or reply["id"] == float(want["id"]), (reply, want)
    else:
        assert reply["id"] == want["id"] and type(reply["id"]) is type(want["id"]), (reply, want)
    if want["code"] is not None:
        assert reply["error"]["code"] == want["code"], reply
    else:
        result = reply["result"]
        assert [c["type"] for c in result["content"]] in (["text"], ["text", "text"])  # + the one-time hook note
        assert isinstance(result["isError"], bool)


def test_server_handle_line_hostile_frames(env, tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", new_id())
    monkeypatch.chdir(tmp_path)
    out = io.BytesIO()
    server = Server(Store(), out)

    @settings(FUZZ_SETTINGS, max_examples=300)
    @given(hostile_lines())
    def check(sent: tuple[bytes, dict[str, Any]]) -> None:
        line, want = sent
        out.seek(0)
        out.truncate()
        assert server.handle_line(line) is True
        data = out.getvalue()
        check_hostile_exchange(want, [raw + b"\n" for raw in data.split(b"\n")[:-1]])
        seen.append(want)

    seen: list[dict[str, Any]] = []
    check()
    assert len(seen) >= 200, len(seen)
    assert {w["code"] for w in seen} == {None, -32600, -32602}, "every kind of answer was exercised"
    assert any(w["may_be_unreadable"] for w in seen)


def test_bus_subprocess_survives_hostile_frames(relay_cmd, env, tmp_path):
    bus = Bus(relay_cmd, {**env, "CLAUDE_CODE_SESSION_ID": new_id()}, tmp_path)
    try:

        @settings(FUZZ_SETTINGS, max_examples=60)
        @given(hostile_lines())
        def check(sent: tuple[bytes, dict[str, Any]]) -> None:
            line, want = sent
            seen.append(want)
            check_hostile_exchange(want, bus.exchange(line))

        seen: list[dict[str, Any]] = []
        check()
        assert len(seen) >= 50, len(seen)
    finally:
        code = bus.close()
    assert code == 0
    assert b"Traceback" not in (tmp_path / "bus-stderr.log").read_bytes()

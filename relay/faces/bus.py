"""`relay bus`: the MCP server, newline-delimited JSON-RPC 2.0 over stdio.

stdout carries nothing but JSON-RPC messages, whatever goes wrong: file descriptor 1 is pointed
at stderr for the whole run and frames go to a private duplicate of the original stdout, so even
a stray print or a C library's warning cannot corrupt the stream. Every request with an id gets
exactly one answer; a failing tool is an `isError` result, never a dead server.

No single frame can take the server down: a line over `MAX_LINE_BYTES` is answered with one error
and thrown away piece by piece (never held whole), an id that is not a string, number or null is
an Invalid Request answered with id null (so a deeply nested id is never echoed), params nested
deeper than `MAX_DEPTH` are refused before any code walks them, and an unexpected exception is an
internal error whose traceback goes to `<home>/error.log`.
"""

from __future__ import annotations

import os
import sys

from relay.faces import mcp_tools
from relay.faces.boundary import say
from relay.store.contract import open_store
from relay.usecases.identity import current_session
from relay.util.errors import RelayError, describe_os_error
from relay.util.jsonlite import TooDeep, decode, encode
from relay.util.textsafe import one_line

TYPE_CHECKING = False  # typing's import is a good part of a start; only mypy needs these names
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, BinaryIO

    from relay.store.contract import StoreAPI

    Frame = dict[str, Any]

SUPPORTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]

INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32600, -32601, -32602, -32603

# A longer input line is answered with one error and skipped without being held in memory.
MAX_LINE_BYTES = 16 * 1024 * 1024
# No tool, handshake or _meta nests anywhere near this; deeper params are refused unread.
MAX_DEPTH = 100
# The recursion limit while serving (Python's default is 1000, which a 1000-deep id would reach).
FRAME_RECURSION_LIMIT = 1200
# Requests one batch may hold: each answer stays within its 32 KiB budget, so one batch's reply
# stays within a few MiB; a bigger batch is refused whole, unread (a 60 000-request line once
# produced a 312 MB reply).
MAX_BATCH = 64
# How much of a client's method or tool name an error message quotes.
_QUOTE_CHARS = 80


def log(message: str) -> None:
    """One line on stderr, which MCP clients collect as the server's log."""
    say("[session-relay/bus] ", message)


def _unexpected(where: str, err: Exception) -> str:
    """The line of an unexpected error, its traceback left in the error log (loaded only then)."""
    from relay.store import errorlog

    return errorlog.unexpected(where, err)


def _error(request_id: Any, code: int, message: str) -> Frame:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _result(request_id: Any, result: Any) -> Frame:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _quote(text: str) -> str:
    """A client's string, short and on one line, for an error message."""
    cut = text[:_QUOTE_CHARS] + ("..." if len(text) > _QUOTE_CHARS else "")
    return f"'{one_line(cut)}'"


def _valid_id(value: Any) -> bool:
    """JSON-RPC ids are strings, numbers or null; a number must be one JSON can carry back (not 1e400)."""
    if value is None or isinstance(value, str):
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return value - value == 0  # finite
    return isinstance(value, int)


def _deeper_than(value: Any, limit: int) -> bool:
    """True when `value` nests more than `limit` arrays/objects deep; iterative, so any depth is safe."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def read_lines(stream: BinaryIO, limit: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """The input lines; None in place of a line longer than `limit` bytes, which is read and
    discarded a piece at a time up to its newline, so it never sits in memory whole."""
    while line := stream.readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        while (rest := stream.readline(1024 * 1024)) and not rest.endswith(b"\n"):
            pass
        yield None


class Server:
    """Answers one client's requests against one store."""

    def __init__(self, store: StoreAPI, out: BinaryIO, stop: Callable[[], bool] = mcp_tools.never) -> None:
        self.store = store
        self.out = out
        self.stop = stop  # True when the client sent more: a `wait` then returns instead of blocking it
        self.hook_checked = False  # the first tools/call tells the model once if the hook never ran

    def _initialize(self, params: dict[str, Any]) -> dict[str, Any]:
        asked = params.get("protocolVersion")
        version = asked if asked in SUPPORTED_VERSIONS else LATEST_VERSION
        me = current_session(self.store)
        log(f"initialize: protocol {version}; session {me.session_id or 'unknown'} ({me.source}); dir {me.project_dir}")
        return {
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": mcp_tools.SERVER_INFO,
            "instructions": mcp_tools.INSTRUCTIONS,
        }

    def _call_tool(self, name: str, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        try:
            result, finish = mcp_tools.call(
                self.store, name, params.get("arguments", {}), params.get("_meta"), self.stop
            )
        except (RelayError, OSError) as err:
            text = str(err) if isinstance(err, RelayError) else describe_os_error(err)
            log(f"tool {name}: {text}")
            return {"content": [{"type": "text", "text": text}], "isError": True}, None
        text = encode(result).decode()
        return {"content": [{"type": "text", "text": text}], "isError": False}, finish

    def _hook_note(self, params: dict[str, Any]) -> str | None:
        """At the first tools/call only: a note when this session's hook never registered it (looked at
        before the call, so a first `register` still hears it)."""
        if self.hook_checked:
            return None
        self.hook_checked = True
        try:
            return mcp_tools.hook_note(self.store, params.get("_meta"))
        except (RelayError, OSError) as err:
            log(f"could not tell whether this session is registered: {err}")
            return None

    def answer(self, message: Any) -> tuple[Frame | None, Any]:
        """The reply to one message (None for notifications) and a finisher to run once it is sent."""
        if not isinstance(message, dict):
            return _error(None, INVALID_REQUEST, "a JSON-RPC message must be an object"), None
        request_id = message.get("id")
        method = message.get("method")
        is_request = "id" in message
        if method is None and ("result" in message or "error" in message):
            return None, None  # a response to something we never ask; nothing to do
        if is_request and not _valid_id(request_id):
            return _error(None, INVALID_REQUEST, "`id` must be a string, a number or null"), None
        if not isinstance(method, str):
            return (_error(request_id, INVALID_REQUEST, "`method` must be a string") if is_request else None), None
        if not is_request:
            return None, None  # notifications/initialized and every other notification
        params = message.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return _error(request_id, INVALID_PARAMS, "`params` must be an object"), None
        if _deeper_than(params, MAX_DEPTH):
            return _error(request_id, INVALID_PARAMS, f"`params` nest deeper than {MAX_DEPTH} levels"), None
        if method == "initialize":
            return _result(request_id, self._initialize(params)), None
        if method == "ping":
            return _result(request_id, {}), None
        if method == "tools/list":
            return _result(request_id, {"tools": mcp_tools.TOOLS}), None
        if method == "tools/call":
            name = params.get("name")
            if not isinstance(name, str):
                return _error(request_id, INVALID_PARAMS, "`name` must be a tool name: tools/list names them"), None
            if not mcp_tools.known(name):
                unknown = f"unknown tool {_quote(name)}: tools/list names the tools"
                return _error(request_id, INVALID_PARAMS, unknown), None
            note = self._hook_note(params)
            result, finish = self._call_tool(name, params)
            if note:
                result["content"].append({"type": "text", "text": note})
            return _result(request_id, result), finish
        return _error(request_id, METHOD_NOT_FOUND, f"method not found: {_quote(method)}"), None

    def _safe_answer(self, message: Any) -> tuple[Frame | None, Any]:
        try:
            return self.answer(message)
        except Exception as err:  # one bad request must not take the server down
            if isinstance(message, dict) and "id" not in message:
                log(_unexpected(f"bus {_face(message)} (notification)", err))
                return None, None
            line = _unexpected(f"bus {_face(message)}", err)
            log(f"internal error: {line}")
            request_id = message.get("id") if isinstance(message, dict) else None
            return _error(request_id, INTERNAL_ERROR, f"internal error: {line}"), None

    def _send(self, reply: Any) -> bool:
        try:
            data = encode(reply)
        except (TypeError, ValueError, RecursionError) as err:  # never a half-written or non-JSON line
            log(f"could not encode an answer ({type(err).__name__}: {err})")
            data = encode(_error(None, INTERNAL_ERROR, "the answer could not be encoded as JSON"))
        try:
            self.out.write(data + b"\n")
            self.out.flush()
            return True
        except OSError as err:
            log(f"cannot write to the client: {err}")
            return False

    def skip_oversized(self) -> bool:
        """Answer a line longer than MAX_LINE_BYTES (already discarded); False when the client is gone."""
        log(f"skipped a line over {MAX_LINE_BYTES} bytes")
        limit = f"{MAX_LINE_BYTES // (1024 * 1024)} MiB"
        return self._send(_error(None, INVALID_REQUEST, f"message too long: over {limit} on one line; it was skipped"))

    def handle_line(self, line: bytes) -> bool:
        """Process one input line; False when the client is gone."""
        if not line.strip():
            return True
        try:
            message = decode(line)
        except TooDeep:
            log("skipped a line nested too deep to read")
            return self._send(_error(None, INVALID_REQUEST, "message nested too deep to read; it was skipped"))
        except ValueError as err:
            log(f"skipped a line that is not JSON ({err})")
            return True
        if isinstance(message, list) and len(message) > MAX_BATCH:
            log(f"refused a batch of {len(message)} requests")
            refusal = f"batch of {len(message)} requests refused: send at most {MAX_BATCH} in one batch; none was run"
            return self._send(_error(None, INVALID_REQUEST, refusal))
        if isinstance(message, list) and message:
            answers = [self._safe_answer(item) for item in message]
            replies = [reply for reply, _ in answers if reply is not None]
            written = self._send(replies) if replies else True
            finishers = [finish for _, finish in answers if finish is not None]
        else:
            reply, finish = self._safe_answer(message if not isinstance(message, list) else None)
            written = self._send(reply) if reply is not None else True
            finishers = [finish] if finish is not None else []
        for finish in finishers:
            try:
                finish(written)
            except Exception as err:
                log(f"could not confirm delivered mail ({err}); it will be delivered again")
        return written


def _face(message: Any) -> str:
    """What the client asked for, for the error log: the method, and the tool for tools/call."""
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return "(no method)"
    params = message.get("params")
    name = params.get("name") if isinstance(params, dict) else None
    return message["method"][:_QUOTE_CHARS] + (f" {name[:_QUOTE_CHARS]}" if isinstance(name, str) else "")


def input_waiting(fd: int) -> Callable[[], bool]:
    """A check that more input (or its end) waits on `fd`. Lines the reader already buffered are
    not seen: a `wait` then runs to its timeout, which is bounded anyway. Only `wait` asks, so
    `select` is imported at its first question, not at every server's start."""

    def waiting() -> bool:
        import select

        try:
            return bool(select.select([fd], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    return waiting


def main(argv: list[str]) -> int:
    """Serve until stdin closes; exit 0."""
    # Frames are parsed by CPython's C scanner, which nests as deep as the recursion limit allows:
    # room for about 1000 levels (what a client may send in an id) and the bus's own frames.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), FRAME_RECURSION_LIMIT))
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything that writes to fd 1 from now on lands on stderr
    sys.stdout = sys.stderr
    # The local store is opened lazily: a session's first requests (initialize, tools/list, and
    # whoami when no CLI names the session) read at most its dir's marker, without loading
    # relay.store.files (over a tenth of the server's start). A Redis store, or the error of a bad
    # AGENT_RELAY_URL, comes at once.
    server = Server(open_store(warn=log, lazily=True), out, input_waiting(sys.stdin.fileno()))
    try:
        for line in read_lines(sys.stdin.buffer):
            try:
                alive = server.handle_line(line) if line is not None else server.skip_oversized()
            except Exception as err:  # a bug in the loop itself: log it, keep serving
                log(f"internal error: {_unexpected('bus', err)}")
                alive = True
            if not alive:
                break
    except KeyboardInterrupt:
        pass
    return 0

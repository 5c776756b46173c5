"""`relay bus`: the MCP server, newline-delimited JSON-RPC 2.0 over stdio.

stdout carries nothing but JSON-RPC messages, whatever goes wrong: file descriptor 1 is pointed
at stderr for the whole run and frames go to a private duplicate of the original stdout, so even
a stray print or a C library's warning cannot corrupt the stream. Every request with an id gets
exactly one answer; a failing tool is an `isError` result, never a dead server.
"""

import os
import sys
import traceback
from typing import Any, BinaryIO

from relay import tools
from relay.errors import RelayError, describe_os_error
from relay.identity import current_session
from relay.jsontext import decode, encode
from relay.store import Store

SUPPORTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]

INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32600, -32601, -32602, -32603

Frame = dict[str, Any]


def log(message: str) -> None:
    """One line on stderr, which MCP clients collect as the server's log."""
    sys.stderr.write(f"[session-relay/bus] {message}\n")
    sys.stderr.flush()


def _error(request_id: Any, code: int, message: str) -> Frame:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _result(request_id: Any, result: Any) -> Frame:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


class Server:
    """Answers one client's requests against one store."""

    def __init__(self, store: Store, out: BinaryIO) -> None:
        self.store = store
        self.out = out

    def _initialize(self, params: dict[str, Any]) -> dict[str, Any]:
        asked = params.get("protocolVersion")
        version = asked if asked in SUPPORTED_VERSIONS else LATEST_VERSION
        me = current_session(self.store)
        log(f"initialize: protocol {version}; session {me.session_id or 'unknown'} ({me.source}); dir {me.project_dir}")
        return {
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": tools.SERVER_INFO,
            "instructions": tools.INSTRUCTIONS,
        }

    def _call_tool(self, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        name = params.get("name")
        try:
            result, finish = tools.call(self.store, name, params.get("arguments", {}), params.get("_meta"))
        except (RelayError, OSError) as err:
            text = str(err) if isinstance(err, RelayError) else describe_os_error(err)
            log(f"tool {name}: {text}")
            return {"content": [{"type": "text", "text": text}], "isError": True}, None
        text = encode(result).decode()
        return {"content": [{"type": "text", "text": text}], "isError": False}, finish

    def answer(self, message: Any) -> tuple[Frame | None, Any]:
        """The reply to one message (None for notifications) and a finisher to run once it is sent."""
        if not isinstance(message, dict):
            return _error(None, INVALID_REQUEST, "a JSON-RPC message must be an object"), None
        request_id = message.get("id")
        method = message.get("method")
        is_request = "id" in message
        if method is None and ("result" in message or "error" in message):
            return None, None  # a response to something we never ask; nothing to do
        if not isinstance(method, str):
            return (_error(request_id, INVALID_REQUEST, "`method` must be a string") if is_request else None), None
        if not is_request:
            return None, None  # notifications/initialized and every other notification
        params = message.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return _error(request_id, INVALID_PARAMS, "`params` must be an object"), None
        if method == "initialize":
            return _result(request_id, self._initialize(params)), None
        if method == "ping":
            return _result(request_id, {}), None
        if method == "tools/list":
            return _result(request_id, {"tools": tools.TOOLS}), None
        if method == "tools/call":
            name = params.get("name")
            if not isinstance(name, str) or not tools.known(name):
                return _error(request_id, INVALID_PARAMS, f"unknown tool {name!r}: tools/list names the tools"), None
            result, finish = self._call_tool(params)
            return _result(request_id, result), finish
        return _error(request_id, METHOD_NOT_FOUND, f"method not found: {method}"), None

    def _safe_answer(self, message: Any) -> tuple[Frame | None, Any]:
        try:
            return self.answer(message)
        except Exception as err:  # one bad request must not take the server down
            log(f"internal error: {err!r}\n{traceback.format_exc()}")
            request_id = message.get("id") if isinstance(message, dict) else None
            if isinstance(message, dict) and "id" not in message:
                return None, None
            return _error(request_id, INTERNAL_ERROR, f"internal error: {type(err).__name__}: {err}"), None

    def _send(self, reply: Any) -> bool:
        try:
            self.out.write(encode(reply) + b"\n")
            self.out.flush()
            return True
        except OSError as err:
            log(f"cannot write to the client: {err}")
            return False

    def handle_line(self, line: bytes) -> bool:
        """Process one input line; False when the client is gone."""
        if not line.strip():
            return True
        try:
            message = decode(line)
        except ValueError as err:
            log(f"skipped a line that is not JSON ({err})")
            return True
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


def main(argv: list[str]) -> int:
    """Serve until stdin closes; exit 0."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything that writes to fd 1 from now on lands on stderr
    sys.stdout = sys.stderr
    server = Server(Store(warn=log), out)
    stdin = sys.stdin.buffer
    try:
        while line := stdin.readline():
            if not server.handle_line(line):
                break
    except KeyboardInterrupt:
        pass
    return 0

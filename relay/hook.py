"""`relay hook [codex]`: run by the agent CLI at every session start.

It registers the session and hands the model its waiting mail, fenced as untrusted data. It must
never block or break a session: whatever happens it exits 0 and reports problems on stderr as
`[session-relay/hook] <message>`. Mail is confirmed taken only after it was written to stdout, so
a hook killed or timed out halfway leaves the mail for the next start. It delivers through
relay.mail's one protocol, shows at most 32 KiB (saying how many messages wait), and once a day
runs `relay gc`'s collection (one stat when that is not due).
"""

import contextlib
import json
import os
import select
import sys
import time
from io import BufferedIOBase

from relay.errors import RelayError
from relay.fence import render
from relay.ids import require_uuid
from relay.mail import deliver, fit_output
from relay.paths import usable_env
from relay.sessions import launcher_command, start_session
from relay.store import Message, Store

# How long the hook waits for its event on stdin before giving up (the session goes on).
STDIN_DEADLINE_SECONDS = 5.0

# The hook collects stale registrations (`relay gc`) at most this often, counted from its first run.
GC_INTERVAL_SECONDS = 24 * 3600


def _log(message: str) -> None:
    """One line on stderr; it may quote planted paths or names, so it is made terminal-safe."""
    from relay.textsafe import one_line

    sys.stderr.write(f"[session-relay/hook] {one_line(message)}\n")
    sys.stderr.flush()


# What _read_json returns when stdin held nothing at all (JSON `null` is a value, and a bad event).
_NOTHING = object()


def _read_json(fd: int, deadline: float) -> object:
    """The JSON value on stdin (_NOTHING when nothing came), read until EOF, a complete object, or
    the deadline; ValueError when what came does not parse.

    The agent CLI is expected to close stdin, but the hook must not hang a session if one does
    not: it stops as soon as what it has read parses.
    """
    data = b""
    give_up = time.monotonic() + deadline
    while (left := give_up - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
        if data.rstrip().endswith(b"}"):
            with contextlib.suppress(ValueError):
                return json.loads(data)
    return json.loads(data) if data.strip() else _NOTHING


def read_event(stdin: BufferedIOBase) -> dict | None:
    """The hook event from stdin, or None (with a note on stderr) when there is none usable."""
    if stdin.isatty():
        _log("expects the agent CLI's SessionStart event as JSON on stdin; nothing to do")
        return None
    try:
        event = _read_json(stdin.fileno(), STDIN_DEADLINE_SECONDS)
    except ValueError as err:
        _log(f"stdin is not a JSON hook event ({err}); nothing done")
        return None
    if event is _NOTHING:
        return None
    if not isinstance(event, dict):
        _log("the hook event is not a JSON object; nothing done")
        return None
    return event


def handle(event: dict, tool: str, stdout: BufferedIOBase, store: Store) -> None:
    """Register the session of `event` and print its mail as SessionStart context."""
    session_id = event.get("session_id")
    if not session_id:
        return
    session_id = require_uuid(session_id)  # checked once here; everything inward trusts it
    cwd = event.get("cwd")
    directory = cwd if isinstance(cwd, str) and cwd else usable_env("CLAUDE_PROJECT_DIR") or os.getcwd()
    start_session(store, session_id, directory, tool)
    deliver(store, session_id, lambda batch, remaining: _show(stdout, session_id, batch, remaining))
    _collect_if_due(store)


def _show(stdout: BufferedIOBase, session_id: str, batch: list[Message], remaining: int) -> int:
    """Write as much of the batch as fits one hook result as SessionStart context; how many."""
    if not batch:
        return 0
    launcher = launcher_command()
    reply_hint = f"Reply with the session-relay `send` tool, or run: {launcher} send <sender> -- <reply>"
    more_hint = f"call the session-relay `inbox` tool, or run: {launcher} inbox {session_id}"

    def text_of(messages: list[Message]) -> tuple[str, int]:
        return render(messages, reply_hint, more_hint, more=remaining + len(batch) - len(messages))

    text, shown = fit_output(batch, text_of, lambda text: len(str(text).encode("utf-8", "replace")))
    payload = {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": text}}
    stdout.write(json.dumps(payload, ensure_ascii=False).encode("utf-8", "replace") + b"\n")
    stdout.flush()
    return shown


def _collect_if_due(store: Store) -> None:
    """Run `relay gc` at most once a day; one stat when it is not due. Never fails the hook."""
    try:
        if store.gc_due(GC_INTERVAL_SECONDS):
            from relay.gc import collect

            collect(store)
    except RelayError as err:
        _log(f"cleanup of stale sessions skipped: {err}")


def main(argv: list[str]) -> int:
    """Entry point; always 0 so the agent CLI's session goes on."""
    tool = "codex" if argv[:1] == ["codex"] else "claude"
    try:
        event = read_event(sys.stdin.buffer)
        if event is not None:
            handle(event, tool, sys.stdout.buffer, Store(warn=_log))
    except RelayError as err:
        _log(str(err))
    except Exception as err:  # the hook must never break a session, whatever the cause
        from relay import errorlog

        _log(errorlog.unexpected(f"hook {tool}", err))
    return 0

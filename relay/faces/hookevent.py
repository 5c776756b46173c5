"""Reading the agent CLI's hook event from stdin: shared by `relay hook` and `relay hook watch`.

The agent CLI is expected to close stdin, but a hook must not hang its session if it does not:
reading stops at EOF, as soon as what came parses, or at the deadline.
"""

import posix  # not os: the hook with nothing to deliver never imports it (docs/startup.md)
import select
import time

from relay.faces.boundary import say
from relay.util import jsonlite

TYPE_CHECKING = False  # typing stays off the hook's import path; only mypy reads this
if TYPE_CHECKING:
    from typing import BinaryIO

# How long a hook waits for its event on stdin before giving up (the session goes on).
STDIN_DEADLINE_SECONDS = 5.0

# What _read_json returns when stdin held nothing at all (JSON `null` is a value, and a bad event).
_NOTHING = object()


def _read_json(fd: int, deadline: float) -> object:
    """The JSON value on stdin (_NOTHING when nothing came); ValueError when what came does not parse."""
    data = b""
    give_up = time.monotonic() + deadline
    while (left := give_up - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = posix.read(fd, 65536)
        if not chunk:
            break
        data += chunk
        if data.rstrip().endswith(b"}"):
            try:
                return jsonlite.loads(data)
            except ValueError:
                pass  # not complete yet: read on
    return jsonlite.loads(data) if data.strip() else _NOTHING


def read_event(stdin: "BinaryIO", prefix: str) -> dict | None:
    """The hook event from stdin, or None (with a note on stderr after `prefix`) when there is none usable."""
    if stdin.isatty():
        say(prefix, "expects the agent CLI's hook event as JSON on stdin; nothing to do")
        return None
    try:
        event = _read_json(stdin.fileno(), STDIN_DEADLINE_SECONDS)
    except ValueError as err:
        say(prefix, f"stdin is not a JSON hook event ({err}); nothing done")
        return None
    if event is _NOTHING:
        return None
    if not isinstance(event, dict):
        say(prefix, "the hook event is not a JSON object; nothing done")
        return None
    return event

"""`relay hook [codex]`: run by the agent CLI at session start, at every prompt, after tool calls,
at the end of a turn and at session end (docs/delivery.md).

At session start it registers the session; at every event it hands the model the mail its
attention policy lets through, fenced as untrusted data. It must never block or break a session:
whatever happens it exits 0 and reports problems on stderr as `[session-relay/hook] <message>`.
Mail is confirmed taken only after it was written to stdout, so a hook killed or timed out
halfway leaves the mail for the next event. It delivers through
relay.usecases.mail's one protocol, shows at most 32 KiB (saying how many messages wait), and once a day
runs `relay gc`'s collection (one stat when that is not due).
"""

import os
import select
import sys
import time

from relay.domain.ids import require_uuid
from relay.domain.policy import NOTHING, URGENT, is_urgent, mode_of, selection, started_by_relay
from relay.store.contract import open_store
from relay.store.files import Message, Select, Show
from relay.util import jsonlite
from relay.util.errors import RelayError

TYPE_CHECKING = False  # typing stays off the hook's import path; only mypy reads these
if TYPE_CHECKING:
    from typing import BinaryIO

    from relay.agents.adapter_protocol import Adapter
    from relay.store.contract import StoreAPI

# How long the hook waits for its event on stdin before giving up (the session goes on).
STDIN_DEADLINE_SECONDS = 5.0

# The hook collects stale registrations (`relay gc`) at most this often, counted from its first run.
GC_INTERVAL_SECONDS = 24 * 3600


def _log(message: str) -> None:
    """One line on stderr; it may quote planted paths or names, so it is made terminal-safe."""
    from relay.util.textsafe import one_line

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
            try:
                return jsonlite.loads(data)
            except ValueError:
                pass  # not complete yet: read on
    return jsonlite.loads(data) if data.strip() else _NOTHING


def read_event(stdin: "BinaryIO") -> dict | None:
    """The hook event from stdin, or None (with a note on stderr) when there is none usable."""
    if stdin.isatty():
        _log("expects the agent CLI's hook event as JSON on stdin; nothing to do")
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


def handle(event: dict, tool: str, stdout: "BinaryIO", store: "StoreAPI") -> None:
    """Serve one hook event (docs/delivery.md): the event's name decides what is done and how it is printed.

    An event without `hook_event_name` is a SessionStart (0.1's hook saw only those); one this
    hook does not serve, or a name that is not a string, is ignored.
    """
    from relay.agents import adapter

    agent = adapter(tool)  # the CLI's event names and answer shape
    raw = event.get("hook_event_name", "SessionStart")
    name = agent.EVENTS.get(raw) if isinstance(raw, str) else None
    if name is None:
        return
    session_id = event.get("session_id")
    if not session_id:
        return
    session_id = require_uuid(session_id)  # checked once here; everything inward trusts it

    def show(batch: list[Message], remaining: int) -> int:
        return _show(stdout, agent, name, session_id, batch, remaining)

    if name == "SessionStart":
        store.record_start(session_id, _session_dir(event), tool)
        if store.has_mail(session_id):  # two stats; the take (locks, reads) only when there is mail
            from relay.usecases.mail import deliver

            deliver(store, session_id, show)
        _collect_if_due(store)
    elif name == "SessionEnd":
        _stop_watcher(store, session_id)
        store.record_end(session_id)
    else:
        if name == "UserPromptSubmit":
            _stop_watcher(store, session_id)  # a turn begins: its own hooks deliver from here
            if not started_by_relay(event.get("prompt")):
                store.reset_auto_wakes(session_id)  # its user is back: relay may wake it again
        if name != "Stop" or event.get("stop_hook_active") is not True:  # a turn is extended only once
            deliver_live(store, session_id, name, show)


def _session_dir(event: dict) -> str:
    """The session's project dir: the event's `cwd`, else CLAUDE_PROJECT_DIR, else this process's
    cwd; an error unless it is absolute (the store keys markers by it)."""
    directory = event.get("cwd")
    if not isinstance(directory, str) or not directory:
        from relay.util.env import usable_env

        directory = usable_env("CLAUDE_PROJECT_DIR") or os.getcwd()
    if not directory.startswith("/"):
        raise RelayError(f"invalid session dir {directory!r}: expected an absolute path")
    return directory


def _stop_watcher(store: "StoreAPI", session_id: str) -> None:
    """Make the session's idle-mail watcher (relay.faces.watch), if one runs, leave. Nothing is written;
    one failed open when none runs."""
    pid = store.watcher(session_id)
    if pid is not None and pid != os.getpid():
        import signal

        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass  # it has just left


def deliver_live(store: "StoreAPI", session_id: str, moment: str, show: Show) -> int:
    """Deliver what the recipient's attention policy lets `moment` deliver; how many were shown.

    Runs on every prompt and tool call, so when nothing waits it costs two stats and writes
    nothing; only then is the registry read for the policy.
    """
    if not store.has_mail(session_id):
        return 0
    rule = selection(moment, mode_of(store.registry().agents.get(session_id)))
    if rule == NOTHING or (rule == URGENT and not store.has_urgent(session_id)):
        return 0
    from relay.usecases.mail import deliver

    only: Select | None = is_urgent if rule == URGENT else None
    return deliver(store, session_id, show, only)


def fenced_text(session_id: str, batch: list[Message], remaining: int) -> tuple[str, int]:
    """The fenced mail text for as much of the batch as fits one hook result, and how many it holds."""
    from relay.usecases.addressing import launcher_command
    from relay.usecases.fence import render
    from relay.usecases.mail import fit_output

    launcher = launcher_command()
    # No `<` in relay's own text: the fence would read the text past it with regular expressions.
    reply_hint = (
        "Reply with the session-relay `send` tool (replyTo: the message's id), or run: "
        f"{launcher} send SENDER --reply-to ID -- REPLY (SENDER: the name or id after `from`)"
    )
    more_hint = f"call the session-relay `inbox` tool, or run: {launcher} inbox {session_id}"

    def text_of(messages: list[Message]) -> tuple[str, int]:
        return render(messages, reply_hint, more_hint, remaining + len(batch) - len(messages), launcher)

    text, shown = fit_output(batch, text_of, lambda text: len(str(text).encode("utf-8", "replace")))
    return str(text), shown


def _show(
    stdout: "BinaryIO", agent: "Adapter", name: str, session_id: str, batch: list[Message], remaining: int
) -> int:
    """Write as much of the batch as fits one hook result, in the shape event `name` takes; how many."""
    if not batch:
        return 0
    text, shown = fenced_text(session_id, batch, remaining)
    stdout.write(jsonlite.dumps(agent.hook_output(name, text)).encode("utf-8", "replace") + b"\n")
    stdout.flush()
    return shown


def _collect_if_due(store: "StoreAPI") -> None:
    """Run `relay gc` at most once a day; one stat when it is not due. Never fails the hook."""
    try:
        if store.gc_due(GC_INTERVAL_SECONDS):
            from relay.usecases.gc import collect

            collect(store)
    except RelayError as err:
        _log(f"cleanup of stale sessions skipped: {err}")


def main(argv: list[str]) -> int:
    """Entry point; always 0 so the agent CLI's session goes on."""
    if argv[:1] == ["watch"]:
        from relay.faces.cli import long_lived
        from relay.faces.watch import main as watch

        long_lived()
        return watch()
    tool = "codex" if argv[:1] == ["codex"] else "claude"
    try:
        event = read_event(sys.stdin.buffer)
        if event is not None:
            handle(event, tool, sys.stdout.buffer, open_store(warn=_log))
    except RelayError as err:
        _log(str(err))
    except Exception as err:  # the hook must never break a session, whatever the cause
        from relay.store import errorlog

        _log(errorlog.unexpected(f"hook {tool}", err))
    return 0

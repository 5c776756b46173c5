"""`relay hook [<tool>]`: run by the agent CLI at session start, at every prompt, after tool calls,
at the end of a turn and at session end (docs/delivery.md).

At session start it registers the session; at every event it hands the model the mail its
attention policy lets through, fenced as untrusted data. It must never block or break a session:
whatever happens it exits 0 and reports problems on stderr as `[session-relay/hook] <message>`.
Mail is confirmed taken only after it was written to stdout, so a hook killed or timed out
halfway leaves the mail for the next event. It delivers through
relay.usecases.mail's one protocol, shows at most 32 KiB (saying how many messages wait), and once a day
runs `relay gc`'s collection (one stat when that is not due).
"""

import posix  # not os: an event with nothing to deliver never imports it (docs/startup.md)
import sys

from relay.domain.ids import AGENT_CLIS, SessionId, numbered_in_dir, require_uuid
from relay.domain.policy import started_by_relay
from relay.faces.boundary import described, say
from relay.faces.hookevent import read_event
from relay.store.contract import open_store
from relay.util import jsonlite
from relay.util.env import env_value, usable_env
from relay.util.errors import RelayError

TYPE_CHECKING = False  # typing stays off the hook's import path; only mypy reads these
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

    from relay.store.contract import StoreAPI
    from relay.store.files import Message

# The hook collects stale registrations (`relay gc`) at most this often, counted from its first run.
GC_INTERVAL_SECONDS = 24 * 3600


PREFIX = "[session-relay/hook] "


def _log(message: str) -> None:
    say(PREFIX, message)


def handle(event: dict, tool: str, stdout: "BinaryIO", store: "StoreAPI") -> None:
    """Serve one hook event (docs/delivery.md): the event's name decides what is done and how it is printed.

    An event without `hook_event_name` is a SessionStart (0.1's hook saw only those); one this
    hook does not serve, or a name that is not a string, is ignored.
    """
    from relay.agents import hook_moment

    name = hook_moment(tool, event)
    if name is None:
        return
    session_id = event.get("session_id")
    if not session_id:
        return
    session_id = require_uuid(session_id)  # checked once here; everything inward trusts it

    cwd = event.get("cwd")
    where = cwd if isinstance(cwd, str) and cwd.startswith("/") else posix.getcwd()

    def show(batch: "list[Message]", remaining: int) -> int:
        if not batch:
            return 0
        from relay.agents import answer_shape
        from relay.usecases.deliver import shell_command

        launcher = shell_command(store, tool, where)
        return _show(stdout, answer_shape(tool), name, session_id, batch, remaining, launcher)

    if name == "SessionStart":
        directory = _session_dir(event)
        entry = store.record_start(session_id, directory, tool)
        if numbered_in_dir(entry.get("name"), entry.get("dir")):  # the project's name was held: maybe it is free
            _follow_project(store, entry)
        if store.has_mail(session_id):  # two stats; the take (locks, reads) only when there is mail
            from relay.usecases.mail import deliver

            deliver(store, session_id, show)
        _collect_if_due(store, session_id)
    elif name == "Focus":  # a bus tool is about to run in this session (relay.agents.opencode)
        store.set_marker(_session_dir(event), session_id)
    elif name == "SessionEnd":
        _stop_watcher(store, session_id)
        store.record_end(session_id)
    else:
        if name == "UserPromptSubmit":
            _stop_watcher(store, session_id)  # a turn begins: its own hooks deliver from here
            if not started_by_relay(event.get("prompt")):
                store.reset_auto_wakes(session_id)  # its user is back: relay may wake it again
        extends = name != "Stop" or event.get("stop_hook_active") is not True  # a turn is extended only once
        if extends and store.has_mail(session_id):  # two stats; the delivery code is loaded only for mail
            from relay.usecases.deliver import deliver_live

            deliver_live(store, session_id, name, show)


def _session_dir(event: dict) -> str:
    """The session's project dir: the event's `cwd`, else CLAUDE_PROJECT_DIR, else this process's
    cwd; an error unless it is absolute (the store keys markers by it)."""
    directory = event.get("cwd")
    if not isinstance(directory, str) or not directory:
        directory = usable_env("CLAUDE_PROJECT_DIR") or posix.getcwd()
    if not directory.startswith("/"):
        raise RelayError(f"invalid session dir {directory!r}: expected an absolute path")
    return directory


def _follow_project(store: "StoreAPI", entry: dict) -> None:
    """Take the project's name over from an earlier session that no longer runs
    (relay.usecases.names); a failure is reported and the start goes on."""
    from relay.usecases.names import follow_project

    try:
        follow_project(store, entry)
    except RelayError as err:
        _log(f"the project's name stayed where it was: {err}")


def _stop_watcher(store: "StoreAPI", session_id: SessionId) -> None:
    """Make the session's idle-mail watcher (relay.faces.watch), if one runs, leave. Nothing is written;
    one failed open when none runs."""
    pid = store.watcher(session_id)
    if pid is not None and pid != posix.getpid():
        import signal

        try:
            posix.kill(pid, signal.SIGTERM)
        except OSError:
            pass  # it has just left


def _show(
    stdout: "BinaryIO",
    shape: "tuple[str | None, Callable[[str, str], dict[str, object]]]",
    name: str,
    session_id: str,
    batch: "list[Message]",
    remaining: int,
    launcher: str,
) -> int:
    """Write as much of the batch as fits one hook result, in the shape event `name` takes; how many.
    `shape`: the reader's CLI's ANSWER_NOTE and hook_output (relay.agents.answer_shape); `launcher`:
    how the model's shell runs relay ("" when it cannot reach the store there)."""
    if not batch:
        return 0
    from relay.usecases.deliver import fenced_text

    note, hook_output = shape
    text, shown = fenced_text(session_id, batch, remaining, note, launcher)
    stdout.write(jsonlite.dumps(hook_output(name, text)).encode("utf-8", "replace") + b"\n")
    stdout.flush()
    return shown


def _collect_if_due(store: "StoreAPI", session_id: str) -> None:
    """Run `relay gc` at most once a day; one stat when it is not due. Never fails the hook."""
    try:
        if store.gc_due(GC_INTERVAL_SECONDS):
            from relay.usecases.gc import collect

            collect(store, running=session_id)
    except RelayError as err:
        _log(f"cleanup of stale sessions skipped: {err}")


def _running_under(tool: str, event: dict) -> str:
    """The CLI that runs this hook: `tool` as the command line named it, except that Qwen Code,
    converting the Claude plugin, runs Claude's `relay hook`; its own environment tells it apart."""
    if tool == "claude" and env_value("QWEN_CODE_SESSION_ID"):
        from relay.agents.qwen import is_qwen_event

        return "qwen" if is_qwen_event(event) else tool
    return tool


def main(argv: list[str]) -> int:
    """Entry point; always 0 so the agent CLI's session goes on."""
    if argv[:1] == ["watch"]:
        from relay.faces.boundary import long_lived
        from relay.faces.watch import main as watch

        long_lived()
        return watch(argv[1:])
    tool = argv[0] if argv[:1] and argv[0] in AGENT_CLIS else "claude"
    try:
        event = read_event(sys.stdin.buffer, PREFIX)
        if event is not None:
            tool = _running_under(tool, event)
            handle(event, tool, sys.stdout.buffer, open_store(warn=_log, lazily=True))
    except Exception as err:  # the hook must never break a session, whatever the cause
        _log(described(f"hook {tool}", err)[0])
    return 0

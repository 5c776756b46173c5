"""`relay hook watch`: mail for an open but idle Claude Code session, with nobody typing (docs/delivery.md).

Claude Code runs this hook in the background (`"asyncRewake": true`, armed at SessionStart and at
every Stop) and, when it exits 2, hands its stderr to the model as a new turn. So the watcher
waits for the session's mail and exits 2 with the fenced mail on stderr, taken at least once
like everywhere else. Rules it keeps:

- At most one per session: a lock in the store (`Store.claim_watch`); a second one leaves at once.
- Only while the session is idle: the next prompt's hook stops it (relay.faces.hook), and the turn's
  Stop arms a new one, so mail that comes during a turn is left to that turn's own hooks. Where
  Claude's sessions/<pid>.json says `busy` (2.1.3xx), it takes nothing either; nor for a few
  seconds after relay rang the session's own messaging socket (docs/wake.md), whose turn takes it.
- Never in a headless run: `claude -p "prompt"` waits for an async SessionStart hook before its
  first request, so there the watcher exits at once. With `--input-format stream-json` it stays,
  but leaves as soon as Claude's input ends, because Claude waits for it before it exits.
- Not forever: after RELAY_MAX_AUTO_WAKES turns it started (default 5) with no prompt from the
  session's user in between, mail waits for that user (two agents answering each other would
  otherwise wake each other without end); the user's next prompt resets the count.
- OpenCode (`relay hook watch opencode`): relay's OpenCode plugin starts the watcher when a session
  goes idle and, on exit 2, starts a turn with the stderr itself; the watcher's host is the plugin's
  OpenCode process (its parent), and the plugin's `chat.message` hook stops it when a turn begins.
- Near-zero cost while waiting: two stats every POLL_SECONDS; it ends with its Claude process,
  at SessionEnd, or before its hook timeout.
"""

import os
import stat
import sys
import time

from relay.domain.ids import SessionId, require_uuid
from relay.domain.policy import max_auto_wakes
from relay.faces.boundary import described, say
from relay.faces.hookevent import read_event
from relay.host.procinfo import ProcInfo, command_line, same_process
from relay.store.contract import open_store
from relay.usecases.deliver import deliver_live, fenced_text
from relay.util.errors import RelayError
from relay.util.faults import checkpoint

TYPE_CHECKING = False  # typing stays off the import path; only mypy reads this
if TYPE_CHECKING:
    from relay.store.contract import StoreAPI
    from relay.store.files import Show

# How often the watcher looks for mail (two stats) and whether its session still runs.
POLL_SECONDS = 0.5
# Mail that arrives just as the user submits a prompt belongs to that prompt's hook: wait this long
# before taking it, so it is not shown one turn late as a separate wake-up.
GRACE_SECONDS = 0.5
# The watcher leaves this long before the hook timeout in hooks/hooks.json (which kills it).
LIFETIME_SECONDS = 24 * 3600 - 30
# After mail was held back (the recipient's policy), look at it again this often even if unchanged.
RECHECK_SECONDS = 30.0


PREFIX = "[session-relay/watch] "


def _log(message: str) -> None:
    say(PREFIX, message)


def _claude_of(pid: int | None = None) -> ProcInfo | None:
    """The Claude Code process this hook runs under: the nearest ancestor that is one."""
    from relay.agents.claude import is_claude_process
    from relay.host.procinfo import ancestors

    for info in ancestors(pid):
        if is_claude_process(info.pid):
            return info
    return None


def rewakes(argv: list[str]) -> bool:
    """Can a Claude started with `argv` take a rewake turn? Interactive sessions and
    `-p --input-format stream-json` can; `-p "prompt"` runs one prompt and must not wait for us."""
    headless = any(word in ("-p", "--print") for word in argv)
    if not headless:
        return True
    for i, word in enumerate(argv):
        if word == "--input-format" and argv[i + 1 : i + 2] == ["stream-json"]:
            return True
        if word == "--input-format=stream-json":
            return True
    return False


def _input_ended(pid: int) -> bool:
    """Has the stdin pipe of `pid` lost its writer (stream-json input closed)? Claude then waits
    for running async hooks before it exits, so the watcher must notice and leave."""
    import select

    try:
        fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):  # a terminal or file: not stream input
            return False
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        return any(mask & select.POLLHUP for _, mask in poller.poll(0))
    finally:
        os.close(fd)


def _deliver_and_leave(store: "StoreAPI", session_id: SessionId, show: "Show") -> None:
    """Deliver what the policy lets through and, if anything was shown, exit 2 right here.

    The prompt hook's SIGTERM is held off meanwhile: mail confirmed taken must leave with exit 2
    (Claude ignores the stderr of any other exit), so a SIGTERM that comes after the ack is never
    acted on. When nothing was shown it is let through, and the watcher goes on (or leaves)."""
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    if deliver_live(store, session_id, "Idle", show):
        checkpoint("watch:confirmed")
        sys.stderr.flush()
        try:
            store.count_auto_wake(session_id)
        except RelayError:
            pass  # the mail is out: hand it over; an uncounted wake-up errs on the side of the mail
        os._exit(2)  # the kernel frees the watcher's slot
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _socket_turn_coming(store: "StoreAPI", session_id: SessionId) -> bool:
    """Did relay just ring the session's own messaging socket? The turn that starts takes the mail
    through its prompt hook; only when none took it within a few seconds does the watcher."""
    from relay.usecases.wake import socket_rung_lately

    return socket_rung_lately(store, session_id)


def _never_busy(pid: int) -> bool:
    return False


def watch(
    store: "StoreAPI", session_id: SessionId, claude: ProcInfo, stream: bool, lifetime: float, tool: str = "claude"
) -> int:
    """Wait for mail the policy lets through while idle: the process exits 2 once it was written to
    stderr; 0 is returned when the session ends, its input closes or the lifetime is up. `claude`
    is the host process (for OpenCode: the plugin's OpenCode process, whose plugin stops the
    watcher when a turn begins, so no turn is ever running while it looks)."""
    from relay.agents import adapter
    from relay.agents.claude import turn_running

    note = adapter(tool).ANSWER_NOTE
    busy = turn_running if tool == "claude" else _never_busy

    slot = store.claim_watch(session_id)
    if slot is None:
        return 0  # another watcher has this session
    try:
        give_up = time.monotonic() + lifetime
        held_back: tuple[object, float] | None = None  # (mail stamp, when) of mail the policy kept

        def show(batch: list[dict[str, object]], remaining: int) -> int:
            if not batch:
                return 0
            text, shown = fenced_text(session_id, batch, remaining, note)
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
            return shown

        while time.monotonic() < give_up:
            if not same_process(claude.pid, claude.start) or (stream and _input_ended(claude.pid)):
                return 0
            stamp = store.mail_stamp(session_id)
            if stamp is not None and store.auto_wakes(session_id) >= max_auto_wakes():
                stamp = None  # relay woke this session often enough unattended: the mail waits for its user
            if stamp is not None and (
                held_back is None or held_back[0] != stamp or time.monotonic() - held_back[1] > RECHECK_SECONDS
            ):
                time.sleep(GRACE_SECONDS)
                if not busy(claude.pid) and not _socket_turn_coming(store, session_id):
                    _deliver_and_leave(store, session_id, show)
                    held_back = store.mail_stamp(session_id), time.monotonic()
            time.sleep(POLL_SECONDS)
        return 0
    finally:
        slot.release()


def signal_exit() -> None:
    """SIGTERM (the next prompt's hook) makes the watcher leave quietly, with exit 0."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def main(argv: "list[str] | None" = None) -> int:
    """`relay hook watch [opencode]`: 2 when mail was handed to the model, 0 otherwise (never an error)."""
    try:
        event = read_event(sys.stdin.buffer, PREFIX)
        if event is None or not event.get("session_id"):
            return 0
        session_id = require_uuid(event["session_id"])
        if argv == ["opencode"]:
            from relay.host.procinfo import process_info

            host = process_info(os.getppid())  # the OpenCode process whose plugin started this watcher
            if host is None:
                return 0
            signal_exit()
            return watch(open_store(warn=_log), session_id, host, False, LIFETIME_SECONDS, "opencode")
        claude = _claude_of()
        if claude is None:
            return 0  # not under Claude Code: nobody could take a rewake turn
        argv = command_line(claude.pid)
        if not rewakes(argv):
            return 0
        signal_exit()
        stream = any(word in ("-p", "--print") for word in argv)
        return watch(open_store(warn=_log), session_id, claude, stream, LIFETIME_SECONDS)
    except Exception as err:  # a watcher must never disturb its session
        _log(described("hook watch", err)[0])
    return 0

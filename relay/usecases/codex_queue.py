"""Ring an open, idle Codex session: Codex's own `codex queue` starts a turn there (docs/delivery.md).

Codex 0.169 hosts every session in an app-server: the shared per-CODEX_HOME daemon the TUI starts,
an embedded one (`codex --no-daemon`), or a `codex exec` run. The host watches the session's queue
and, once the session is idle, turns each queued item into a user turn, in the user's own window,
with the hooks running: relay's UserPromptSubmit hook then hands the model the fenced mail. Codex
lets one process write a session, so this never forks a second writer (a resume would).

After a message is queued, `ring_if_idle` runs
`codex queue --thread <id> --message <relay's fixed nudge>` (never `--resume`), when all hold:

- the recipient's tool is `codex` and its deliver mode is not `start` (relay.domain.policy);
- this message is the first unread one: nothing else was in flight or pending before it. One
  nudge per batch: the turn it starts delivers the whole batch, and one queued item is one turn,
  so later mail never piles up turns. (If that nudge failed, later mail waits for a turn too.)
- a live Codex process holds the session's rollout open (relay.agents.codex) and none of the holders
  is a `codex exec` run: exec drains the queue after its own turn, then exits under the queued
  turn (the mail is taken, the model never answers). So only the daemon or a `--no-daemon` TUI;
- relay has not already started RELAY_MAX_AUTO_WAKES turns (default 5) in this session since its
  user last prompted it (relay.domain.policy): agents answering each other must not loop forever;
- the rollout's tail shows no turn in progress. Codex 0.169 appends an `event_msg` line of type
  `task_started` when a turn begins and `task_complete` (or `turn_aborted`) when it ends, so the
  last 256 KiB tell it cheaply: busy when the last `task_started` has no end after it. A busy
  session gets the mail from its Stop hook in that same turn; a nudge would only add an empty
  turn. (Mail that lands after the Stop hook looked but before the end line is written, a window
  of milliseconds, waits for the next turn.)

It runs the `codex` executable of the hosting process itself (so the versions match; Linux
/proc only, elsewhere no nudge), with CODEX_HOME = the session's (the parent of the rollout's
`sessions/YYYY/MM/DD` dir: queue, daemon socket and writer lock all live there), cwd = the
session dir, stdin closed, output captured and QUEUE_TIMEOUT seconds at most. The daemon starts
the turn in well under a second; a `--no-daemon` TUI polls its queue, up to ~10 s.

The nudge is relay's fixed text (relay.usecases.doorbell.nudge), never a sender's words: those reach the
model only as fenced mail. A nudge that fails or is slow never fails the send (the mail is queued
already): the caller gets a one-line note. After `/quit` the daemon keeps a session loaded for
~30-60 s and would run the nudged turn headless (single writer still); relay does not try to
tell that apart from an open window.
"""

import os

from relay.domain.ids import SessionId, require_uuid
from relay.domain.policy import max_auto_wakes, mode_of
from relay.store.files import Entry, Message
from relay.util.errors import RelayError
from relay.util.textsafe import one_line
from relay.util.values import Record

TYPE_CHECKING = False  # typing stays off the import path; only mypy reads this
if TYPE_CHECKING:
    from relay.store.contract import StoreAPI

QUEUE_TIMEOUT = 5.0

# Outcomes (what happened, for the caller and the tests).
RANG = "rang"
FAILED = "failed"
NOT_RUNNING = "not running"
EXEC_HOST = "hosted by codex exec"
BUSY = "turn in progress"
HOST_UNKNOWN = "cannot tell the host's codex or CODEX_HOME"


def seen_running(outcome: str) -> bool | None:
    """What `ring_if_idle` learnt of the recipient's process: running (True), not (False), or not
    looked (None), so the sender's answer need not scan the processes a second time."""
    if outcome == NOT_RUNNING:
        return False
    return True if outcome in (RANG, EXEC_HOST, BUSY, HOST_UNKNOWN) else None


class Launch(Record):
    """The exact `codex queue` run: the host's program, argv (argv[0] "codex"), environment, dir."""

    __slots__ = ("argv", "cwd", "env", "program")
    program: str
    argv: list[str]
    env: dict[str, str]
    cwd: str

    def __init__(self, program: str, argv: list[str], env: dict[str, str], cwd: str) -> None:
        self._fields(program=program, argv=argv, env=env, cwd=cwd)


def _first_unread(store: "StoreAPI", recipient: SessionId, message: Message) -> bool:
    """Is `message` the oldest mail waiting for `recipient` (nothing in flight or pending before it)?"""
    waiting, _ = store.peek_batch(recipient, 1)  # the first whole line is enough
    return bool(waiting) and waiting[0].get("id") == message.get("id") and waiting[0].get("state") == "pending"


def plan(store: "StoreAPI", recipient: Entry, message: Message) -> tuple[str, Launch | None]:
    """Whether to ring: (why not, None), or ("ring", the Launch)."""
    session_id = require_uuid(recipient.get("id"), "recipient id")  # the entry `send` resolved
    if recipient.get("tool") != "codex":
        return "not codex", None
    if mode_of(recipient) == "start":
        return "deliver mode start", None
    if store.auto_wakes(session_id) >= max_auto_wakes():
        return "relay started enough turns unattended", None
    if not _first_unread(store, session_id, message):
        return "not the first unread message", None
    from relay.agents import codex  # every send imports this module: only Codex mail pays
    from relay.host import procinfo

    hosts = codex.hosts(session_id)
    if not hosts:
        return NOT_RUNNING, None
    if any(codex.is_exec_run(argv) for _, argv, _ in hosts):
        return EXEC_HOST, None
    pid, _, rollout = hosts[0]
    if codex.turn_in_progress(rollout):
        return BUSY, None
    program, home = procinfo.executable(pid), codex.home_of(rollout)
    if program is None or home is None:
        return HOST_UNKNOWN, None
    from relay.usecases.doorbell import child_environment, initial_environment, nudge

    env = child_environment(dict(os.environ), initial_environment())
    env["CODEX_HOME"] = home
    directory = recipient.get("dir")
    cwd = directory if isinstance(directory, str) and os.path.isdir(directory) else home
    return "ring", Launch(program=program, argv=codex.queue_argv(session_id, nudge(session_id)), env=env, cwd=cwd)


def ring_if_idle(store: "StoreAPI", recipient: Entry, message: Message) -> tuple[str, str | None]:
    """After `message` was queued for `recipient`: nudge its open, idle Codex session if the rules
    above allow. Returns (outcome, note): RANG, FAILED or why it did not ring; `note` is one line for
    the sender when a nudge failed (never raised: the mail is queued already)."""
    try:
        outcome, launch = plan(store, recipient, message)
    except Exception as err:  # a check that breaks must not fail a send that succeeded
        return FAILED, f"could not check whether the Codex session is idle: {one_line(str(err))[:200]}"
    if launch is None:
        return outcome, None
    import subprocess

    try:
        done = subprocess.run(
            launch.argv,
            executable=launch.program,
            env=launch.env,
            cwd=launch.cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=QUEUE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return FAILED, f"`codex queue` took over {QUEUE_TIMEOUT:g} s; the mail waits for the session's next turn"
    except OSError as err:
        return FAILED, f"could not run `codex queue` ({one_line(str(err))[:200]}); the mail waits for the next turn"
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = one_line(lines[-1])[:200] if lines else f"exit status {done.returncode}"
        return FAILED, f"`codex queue` failed ({why}); the mail waits for the session's next turn"
    try:
        store.count_auto_wake(require_uuid(recipient.get("id"), "recipient id"))
    except RelayError:
        pass  # rung already: an uncounted turn errs on the side of the mail
    return RANG, None

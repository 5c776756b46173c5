"""May `relay wake` ring now? The guardrails of docs/wake.md, each a refusal with exit 75.

Waking a session that runs starts a second writer on its transcript, and two agents that wake
each other can loop and spend real money. So a wake is refused while a wake relay started for the
session still runs (the resume lock), while the session is live (`--force` overrides this check
only), when its mail is RELAY_MAX_HOPS wakes deep, and past RELAY_WAKE_BUDGET wakes in a rolling
hour. A refusal says why and what to do, starts and counts nothing, and loses no mail: the words
given to the wake were queued before the checks. `--dry` asks the same questions and records nothing.
"""

import os
import time

from relay.agents import is_live
from relay.domain.loopguard import DEFAULT_MAX_HOPS, hops_of, inherited_hops
from relay.host import procinfo
from relay.usecases import journal
from relay.util.clock import iso_from_epoch
from relay.util.env import whole_number_env
from relay.util.errors import WakeRefused
from relay.util.textsafe import one_line

TYPE_CHECKING = False  # typing stays off the import path; only mypy reads this
if TYPE_CHECKING:
    from relay.domain.ids import SessionId
    from relay.store.contract import StoreAPI, WakeLockAPI

WINDOW = 3600.0  # the budget's rolling hour, in seconds
DEFAULT_BUDGET = 12


class Limits:
    """The caller's settings, read before anything is queued so a bad value changes nothing. The
    store owner's config.json caps the hop limit and the budget (relay.store.owner_limits): the
    environment may lower them there, never raise them."""

    __slots__ = ("budget", "caller_hops", "max_hops")

    def __init__(self) -> None:
        from relay.store.owner_limits import owner_limits

        ceilings = owner_limits()
        self.caller_hops = inherited_hops()
        self.max_hops = _capped("RELAY_MAX_HOPS", ceilings.get("maxHops"), DEFAULT_MAX_HOPS)
        self.budget = _capped("RELAY_WAKE_BUDGET", ceilings.get("wakeBudget"), DEFAULT_BUDGET)


def _capped(name: str, ceiling: int | None, default: int) -> int:
    """Setting `name` (default `default`), never above the owner's `ceiling` when there is one."""
    if ceiling is None:
        return whole_number_env(name, default)
    return min(ceiling, whole_number_env(name, ceiling))


class Ticket:
    """A wake allowed to ring. It holds the session's resume lock (none for --dry) until closed;
    `hops` is the RELAY_HOPS its program runs with."""

    def __init__(self, lock: "WakeLockAPI | None", hops: int) -> None:
        self.lock, self.hops = lock, hops

    def note_self(self) -> None:
        """Run in the woken program between fork and exec: note its pid in the lock, so the lock's
        note names it from its first instruction on, whatever happens to relay."""
        if self.lock is not None:
            self.lock.record(f"{os.getpid()}\n".encode())

    def started(self, pid: int) -> None:
        """Relay's half of the note: the program's start time, against a reused pid, and the hops it
        runs with, which mail it sends carries whatever its environment says (hops_behind)."""
        info = procinfo.process_info(pid)
        if self.lock is not None and info is not None:
            self.lock.record(f"{pid} {info.start} {self.hops}\n".encode())

    def close(self) -> None:
        """The program ended: clear the note and let go of the lock."""
        if self.lock is not None:
            try:
                self.lock.record(b"")
            finally:
                self.lock.release()
                self.lock = None

    def __enter__(self) -> "Ticket":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def hops_behind(store: "StoreAPI", sender: "SessionId | None") -> int:
    """How many wakes deep mail sent now is: the most of RELAY_HOPS here, RELAY_HOPS as each
    ancestor process was started with, and, when `sender` runs in a wake relay started, the hops
    relay noted for that wake (Ticket.started). A woken agent can clear RELAY_HOPS from the
    environment of what it runs, but not from the record of its own start or from relay's note."""
    depths = [inherited_hops()]
    for info in procinfo.ancestors():
        raw = procinfo.environ_value(info.pid, "RELAY_HOPS")
        if raw is not None and raw.isdigit() and len(raw) <= 9:
            depths.append(int(raw))
    if sender is not None:
        held, note = store.wake_note(sender)
        words = note.decode("ascii", "replace").split()
        if held and len(words) >= 3 and words[2].isdigit() and running_program(note) is not None:
            depths.append(int(words[2]))
    return max(depths)


def running_program(note: bytes) -> int | None:
    """The pid a resume lock's note names, when that process still runs (the same process: a pid
    reused since then does not count); None otherwise."""
    words = note.decode("ascii", "replace").split()
    if not words or not words[0].isdigit():
        return None
    pid = int(words[0])
    return pid if procinfo.holder_runs(pid, words[1] if len(words) > 1 else None) else None


def admit(
    store: "StoreAPI",
    session_id: "SessionId",
    tool: str,
    label: str,
    limits: Limits,
    *,
    force: bool = False,
    dry: bool = False,
    queued: str | None = None,
) -> Ticket:
    """A Ticket for a wake of `session_id` that may ring now; WakeRefused (exit 75) saying why
    and what to do otherwise. `queued` is the id of the message this wake queued, for the
    refusal to name. With `dry` nothing is taken or counted."""
    lock = None if dry else store.claim_wake(session_id)
    try:
        depth = max([limits.caller_hops, *(hops_of(message) for message in store.peek(session_id))])
        why = _why_not(store, session_id, tool, lock, limits, depth, force, dry)
        if why is not None:
            if not dry:
                journal.wake_refused(store, session_id, label, one_line(why), queued)
            raise WakeRefused(one_line(f"not waking {label}: {why}; {_mail_note(queued, dry)}"))
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    if not dry:
        journal.woken(store, session_id, label, f"{tool}, {depth + 1} wake{'s' if depth else ''} deep", queued)
    return Ticket(lock, depth + 1)


def _mail_note(queued: str | None, dry: bool) -> str:
    """What a refusal did with the mail: nothing but queue the wake's own words."""
    if queued:
        return f"your message {queued} is queued, with the rest of its mail"
    return "--dry: nothing was queued" if dry else "its mail stays queued"


def _why_not(
    store: "StoreAPI",
    session_id: "SessionId",
    tool: str,
    lock: "WakeLockAPI | None",
    limits: Limits,
    depth: int,
    force: bool,
    dry: bool,
) -> str | None:
    """Why the wake must not ring now, and what to do; None when it may (then it is counted)."""
    pid = _wake_running(store, session_id, lock, dry)
    if pid is not None:
        shown = f", pid {pid}" if pid else ""
        return (
            f"a wake of it that relay started is still running ({tool}{shown}); it may read its mail there: "
            "try again once that run has ended"
        )
    if not force and is_live(session_id, tool):
        return (
            f"it is running now in {tool} (a wake would be a second writer on its transcript); its mail reaches "
            "it in the running session (use --force only if it is not really running)"
        )
    if depth >= limits.max_hops:
        whose = "its mail is" if depth > limits.caller_hops else "you are (RELAY_HOPS)"
        return (
            f"{whose} {depth} wakes deep (RELAY_MAX_HOPS={limits.max_hops}): agents may be waking each other "
            "in a loop; the mail waits for a turn a person starts (open the session and prompt it)"
        )
    return _over_budget(store, session_id, limits.budget, dry)


def _wake_running(store: "StoreAPI", session_id: "SessionId", lock: "WakeLockAPI | None", dry: bool) -> int | None:
    """The pid of the program a running wake of the session started (0 when relay holds the lock
    but has not started it yet); None when none runs. A wake whose relay was killed still counts
    while its program runs."""
    if lock is not None:
        return running_program(lock.note())
    held, note = store.wake_note(session_id)
    if not held and not dry:
        return 0  # the claim failed just now, yet nobody holds it: the holder has just let go
    return running_program(note) or (0 if held else None)


def _over_budget(store: "StoreAPI", session_id: "SessionId", budget: int, dry: bool) -> str | None:
    """Count this wake in the rolling hour; when the hour's budget is spent, why not and until when."""
    if budget == 0:
        return "RELAY_WAKE_BUDGET=0 allows no wakes (raise it, or prompt the session yourself)"
    now = time.time()
    since = now - WINDOW
    times = store.wake_times(session_id, since, now) if dry else store.spend_wake(session_id, since, now, budget)
    if len(times) < budget:
        return None
    allowed = times[len(times) - budget] + WINDOW
    minutes = max(1, round((allowed - now) / 60))
    woken = f"{len(times)} time{'s' if len(times) > 1 else ''}"
    return (
        f"it was woken {woken} in the last hour (RELAY_WAKE_BUDGET={budget}); the next wake is allowed at "
        f"{iso_from_epoch(allowed)} (in about {minutes} min)"
    )

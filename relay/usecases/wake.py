"""`wake`: ring a session's doorbell, on this host or on the host it runs on (docs/wake.md,
docs/redis-store.md).

Every face that wakes a session calls this module: `relay wake` (`wake`), and the doorbell server
for a wake another host posted (`ring_request`). Whichever rings, the same steps run in the same
order: plan the command, read the caller's limits (a bad setting is an error before anything is
queued), check the bell can ring, queue the caller's words as mail, then pass the guardrails
(relay.usecases.wakeguard). A session whose entry names another host is rung by that host's
doorbell server, reached through the store (`store.doorbells()`).

Before any of that, `ring_idle` decides how an open, idle session is told that mail waits: a
Claude Code 2.1.224+ session through its own messaging socket (one fixed nudge line; its
UserPromptSubmit hook then takes the mail), a Codex session through `codex queue`
(relay.usecases.codex_queue). `send` asks it after every message, and `relay wake` (here, or a
host's doorbell server for a wake another host posted) asks it before the guardrails, which would
refuse a running session: one planner for every path.
"""

from relay.domain.ids import SessionId, is_uuid, require_uuid
from relay.usecases import doorbell, wakeguard
from relay.util.errors import RelayError, WakeRefused
from relay.util.textsafe import one_line

TYPE_CHECKING = False  # typing stays off the import path; only mypy reads these
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable
    from typing import Any

    from relay.store.contract import StoreAPI
    from relay.store.files import Entry

    Report = Callable[[object], None]

# How long `relay wake` waits for the answer of another host's doorbell server.
ANSWER_WAIT = 15.0

# A socket ring must be followed by a take within this long; until then the session's idle
# watcher leaves the mail to the turn the ring starts (relay.faces.watch), after it takes it itself.
SOCKET_TAKE_SECONDS = 3.0
RANG = "rang"


def _rang_line(label: str) -> str:
    return (
        f"{label} is open and idle: rang its own Claude messaging socket; it takes its mail in the turn "
        "that starts (no resume)"
    )


def ring_idle(store: "StoreAPI", recipient: "Entry", message: "dict[str, Any] | None" = None) -> tuple[str, str | None]:
    """After mail was queued for `recipient`: tell its open, idle session so it takes it now.
    (outcome, note for the sender or None); the outcome is "rang" when a bell rang. Never raises:
    the mail is queued already, and a bell that fails leaves it to the hooks and the watcher."""
    tool = recipient.get("tool", "claude")
    if tool == "codex" and message is not None:
        from relay.usecases.codex_queue import ring_if_idle

        return ring_if_idle(store, recipient, message)
    if tool != "claude":
        return "no bell for " + str(tool), None
    try:
        return _ring_claude(store, recipient), None
    except Exception as err:  # a check that breaks must not fail a send that succeeded
        return "failed", f"could not ring the Claude session's socket: {one_line(str(err))[:200]}"


def _ring_claude(store: "StoreAPI", entry: "Entry") -> str:
    """Ring the messaging socket of an idle Claude Code session open on this host (docs/wake.md):
    the adapter's outcome, or why relay did not try."""
    from relay.domain.policy import max_auto_wakes, mode_of

    session_id = require_uuid(entry.get("id"), "recipient id")
    if store.wake_host(entry) is not None:
        return "on another host"  # its watcher there takes the mail
    if mode_of(entry) == "start":
        return "deliver mode start"
    if store.auto_wakes(session_id) >= max_auto_wakes():
        return "relay started enough turns unattended"
    if socket_rung_lately(store, session_id):
        return "rung already"  # that turn takes this mail too
    if not store.has_mail(session_id):
        return "no mail"
    from relay.agents import claude

    outcome = claude.socket_ring(session_id, doorbell.nudge(session_id))
    if outcome == claude.RANG:
        store.note_ring(session_id)
        try:
            store.count_auto_wake(session_id)
        except RelayError:
            pass  # rung already: an uncounted turn errs on the side of the mail
    return outcome


def socket_rung_lately(store: "StoreAPI", session_id: SessionId) -> bool:
    """Did relay ring the session's messaging socket so lately that the turn it starts should
    take the mail (the watcher then waits)?"""
    import time

    last = store.last_ring(session_id)
    return last is not None and 0 <= time.time() - last < SOCKET_TAKE_SECONDS


class Target:
    """The session to wake: its id, project dir and agent CLI as the registry or the caller gave
    them (checked by doorbell.plan), the name shown for it, and its registry entry when it has one."""

    __slots__ = ("directory", "entry", "label", "session_id", "tool")

    def __init__(
        self, session_id: SessionId, directory: object, tool: object, label: str, entry: "Entry | None"
    ) -> None:
        self.session_id, self.directory, self.tool, self.label, self.entry = session_id, directory, tool, label, entry

    @classmethod
    def registered(cls, entry: "Entry") -> "Target":
        """A registry entry; one without a `tool` is 0.1's default, claude."""
        session_id = require_uuid(entry["id"])  # read back from the registry: checked as it enters
        return cls(
            session_id, entry.get("dir"), entry.get("tool", "claude"), str(entry.get("name") or session_id), entry
        )


def _queue(store: "StoreAPI", target: Target, words: list[str], limits: wakeguard.Limits) -> str | None:
    """Queue the caller's words (if any) for `target` as mail from `cli`; the message's id."""
    if not words:
        return None
    from relay.usecases.mail import send

    return str(send(store, target.session_id, " ".join(words), None, "cli", hops=limits.caller_hops)[1]["id"])


def _admitted(
    store: "StoreAPI",
    target: Target,
    words: list[str],
    *,
    force: bool,
    dry: bool,
    least_hops: int = 0,
    queued: str | None = None,
) -> "tuple[dict[str, Any], dict[str, Any] | None, wakeguard.Ticket | None]":
    """The plan, the checked launch (None with `dry`) and the guardrails' ticket, after the
    caller's words were queued as mail from `cli`; WakeRefused or RelayError when it may not ring.
    The ticket is None when an open, idle Claude session was rung through its own socket instead."""
    planned = doorbell.plan(target.tool, target.session_id, target.directory)
    limits = wakeguard.Limits()  # a bad setting is an error before anything is queued
    limits.caller_hops = max(limits.caller_hops, least_hops)
    launch = None if dry else doorbell.prepare(planned)
    if not dry:
        queued = _queue(store, target, words, limits) or queued
        entry = target.entry or {"id": target.session_id, "tool": planned["tool"]}
        if planned["tool"] == "claude" and ring_idle(store, entry)[0] == RANG:
            return planned, launch, None  # open and idle here: its own socket rang, no resume
    ticket = wakeguard.admit(
        store, target.session_id, planned["tool"], target.label, limits, force=force, dry=dry, queued=queued
    )
    return planned, launch, ticket


def wake(store: "StoreAPI", target: Target, words: list[str], report: "Report", *, force: bool, dry: bool) -> int:
    """Ring `target`'s doorbell where it runs; the exit status. `report` shows the plan (--dry) or
    the other host's answer; a local ring runs the agent CLI here and waits for it.

    The caller's words never become the woken session's prompt: they are queued as mail once the
    bell can ring, before the guardrails, and reach the model fenced."""
    host = store.wake_host(target.entry) if target.entry is not None else None
    if host is not None:
        return _wake_elsewhere(store, host, target, words, report, force=force, dry=dry)
    planned, launch, ticket = _admitted(store, target, words, force=force, dry=dry)
    if launch is None:
        report(planned)
        return 0
    if ticket is None:
        report(_rang_line(target.label))
        return 0
    with ticket:
        return doorbell.ring(launch, ticket, target.label)


def _wake_elsewhere(
    store: "StoreAPI", host: str, target: Target, words: list[str], report: "Report", *, force: bool, dry: bool
) -> int:
    """Post the wake to `host`'s doorbell and report its answer; refuse with the command to run on
    `host` (exit 1) when no doorbell server runs there. The words are queued as mail first, as a
    local wake does, so no refusal loses them."""
    planned = doorbell.plan(target.tool, target.session_id, target.directory)
    limits = wakeguard.Limits()  # a bad setting is an error before anything is queued
    bells = store.doorbells()
    served = bells is not None and bells.serving(host)
    if dry and served:
        report({**planned, "host": host})
        return 0
    queued = None if dry else _queue(store, target, words, limits)
    shown_host = one_line(host)
    if bells is None or not served:
        options = [*(["--force"] if force else []), *(["--dry"] if dry else [])]
        import shlex

        command = shlex.join(["relay", "wake", target.label, *options])
        mail = f"your message {queued} is queued; " if queued else ""
        if not dry:
            from relay.usecases import journal

            why = f"it runs on host {shown_host}, where no `relay doorbell --serve` runs"
            journal.wake_refused(store, target.session_id, target.label, why, queued)
        raise RelayError(
            f"not waking {target.label} here: it runs on host {shown_host}, where no `relay doorbell --serve` runs; "
            f"{mail}on {shown_host} run: {command}"
        )
    request = {
        "id": target.session_id,
        "label": target.label,
        "hops": limits.caller_hops,
        "queued": queued,
    }
    request_id = bells.post(host, request)
    answer = bells.answer(request_id, ANSWER_WAIT)
    posted = f"posted the wake of {target.label} to {shown_host}'s doorbell (request {request_id})"
    if force:  # the serving host decides liveness from its own /proc; no waker may override it
        posted += " without --force, which never travels to another host"
    if answer is None:
        report(f"{posted}; no answer within {ANSWER_WAIT:g} s: it rings when that server gets to it")
        return 0
    state, line = answer.get("state"), str(answer.get("line") or "")
    if state == "refused":
        raise WakeRefused(f"{line} (answered by {shown_host}'s doorbell)")
    if state == RANG:
        report(f"{posted}: {line}")
        return 0
    if state == "started":
        report(f"{posted}: {answer.get('tool')} started there (pid {answer.get('pid')})")
        return 0
    raise RelayError(f"{shown_host}'s doorbell could not wake {target.label}: {line}")


class Started:
    """A program a doorbell server woke for a request, still to be reaped."""

    __slots__ = ("label", "proc", "rid", "ticket", "tool")

    def __init__(
        self, proc: "subprocess.Popen[bytes]", ticket: wakeguard.Ticket, label: str, tool: str, rid: str
    ) -> None:
        self.proc, self.ticket, self.label, self.tool, self.rid = proc, ticket, label, tool, rid


def ring_request(store: "StoreAPI", request: dict[str, object] | None) -> "tuple[dict[str, object], Started | None]":
    """Ring the wake another host posted to this host's doorbell, under the same guardrails as a
    local wake, without waiting for the program; the answer for the waker, and what was started."""
    if request is None or not is_uuid(request.get("id")):
        return {"state": "error", "line": "the request does not parse"}, None
    session_id = str(request["id"]).lower()
    entry = store.registry().agents.get(session_id)
    if entry is None:
        return {"state": "error", "line": f"no session {session_id} is registered"}, None
    elsewhere = store.wake_host(entry)
    target = Target.registered(entry)  # its dir and program: this host's record, once it is found below
    if elsewhere is not None:
        line = f"{target.label} is not on this host: its entry names {one_line(elsewhere)}"
        return {"state": "error", "line": line}, None
    hosted = store.hosted(require_uuid(session_id))
    if hosted is None:
        line = (
            f"{target.label} was not registered on this host (by its hook, or `relay register --dir --tool` here): "
            "a wake from another host rings only sessions this host recorded"
        )
        return {"state": "error", "line": line}, None
    # The request chooses which local session rings, nothing else: the dir and program are this
    # host's record, and `force` (which overrides the live check) counts only for a local caller.
    target.directory, target.tool = hosted
    hops, queued = request.get("hops"), request.get("queued")
    least = hops if isinstance(hops, int) and not isinstance(hops, bool) else 0
    try:
        planned, launch, ticket = _admitted(
            store,
            target,
            [],
            force=False,
            dry=False,
            least_hops=least,
            queued=str(queued) if is_uuid(queued) else None,
        )
    except WakeRefused as err:
        return {"state": "refused", "line": str(err)}, None
    except RelayError as err:
        return {"state": "error", "line": str(err)}, None
    assert launch is not None  # not dry
    if ticket is None:
        return {"state": RANG, "line": _rang_line(target.label)}, None
    try:
        proc = doorbell.start(launch, ticket)
    except BaseException:
        ticket.close()
        raise
    answer = {"state": "started", "tool": planned["tool"], "pid": proc.pid, "line": f"woke {target.label}"}
    return answer, Started(proc, ticket, target.label, str(planned["tool"]), str(request.get("rid")))

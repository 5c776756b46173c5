"""Conversations (docs/delivery.md): where a recipient is, what became of a message, waiting for a reply.

The CLI (`send`, `status`, `ask`) and the MCP server (`send`, `status`, `wait`) are faces over
these functions: one definition of a recipient's state, one status view and one bounded wait,
which takes the reply through relay.usecases.mail's delivery protocol like every other delivery.
"""

import time
from _collections_abc import Callable  # collections.abc would import all of collections

from relay.domain.ids import AGENT_CLIS, SessionId
from relay.store.files import Entry, Message
from relay.usecases.addressing import seen_by
from relay.usecases.mail import open_delivery, quoted_id
from relay.util.errors import RelayError

TYPE_CHECKING = False  # typing stays off the import path; only mypy reads this
if TYPE_CHECKING:
    from typing import Any

    from relay.store.contract import StoreAPI

# How often a wait looks for the reply: a receipt read, so cheap; a reply shows up within this.
POLL_SECONDS = 0.2

# The fields of `relay status` / MCP `status`, in this order.
STATUS_FIELDS = ("id", "to", "toName", "state", "queuedAt", "deliveredAt", "repliedAt", "replyId", "thread")


class Sent:
    """A message `send_and_ring` queued: its recipient's entry, the message, and what the ring of
    an idle recipient learnt (relay.usecases.wake.ring_idle's outcome, and a note for the sender)."""

    __slots__ = ("message", "note", "recipient", "rung")

    def __init__(self, recipient: Entry, message: Message, rung: str, note: str | None) -> None:
        self.recipient, self.message, self.rung, self.note = recipient, message, rung, note

    def recipient_state(self) -> dict[str, str]:
        """recipient_state of the recipient, using what the ring saw of its process."""
        from relay.usecases.codex_queue import seen_running

        return recipient_state(self.recipient, seen_running(self.rung))


def send_and_ring(
    store: "StoreAPI", target: str, body: str, sender_id: str | None, sender_name: str | None, **options: "Any"
) -> Sent:
    """Queue `body` for `target`, carrying the wakes behind the sender (relay.usecases.wakeguard.
    hops_behind), then ring the recipient when it is an open, idle session relay can reach
    (relay.usecases.wake.ring_idle): what every face's `send` does. `options` are
    relay.usecases.mail.send's (urgent, reply_to, expects_reply)."""
    from relay.domain.ids import is_uuid, require_uuid
    from relay.usecases.mail import send
    from relay.usecases.wake import ring_idle
    from relay.usecases.wakeguard import hops_behind

    hops = hops_behind(store, require_uuid(sender_id) if is_uuid(sender_id) else None)
    recipient, message = send(store, target, body, sender_id, sender_name, hops=hops, **options)
    rung, note = ring_idle(store, recipient, message)
    return Sent(recipient, message, rung, note)


def recipient_state(entry: Entry, running: bool | None = None) -> dict[str, str]:
    """{state, detail}: whether the mail is seen soon (`live`) or needs a wake (`idle`, `ended`).

    `live`: its CLI process runs now (relay.agents, unless the caller already knows: `running`);
    `ended`: its SessionEnd was seen and it has not started since; `idle`: registered, not running;
    `unknown`: never registered here.
    """
    if running is None:
        from relay.agents import is_live

        tool = entry.get("tool")
        running = is_live(entry["id"], tool if tool in AGENT_CLIS else None)
    if running:
        return {
            "state": "live",
            "detail": "running now: it gets the mail before its next prompt or when its current turn ends "
            "(urgent mail between tool calls); do not wake it",
        }
    if entry.get("endedAt"):
        return {
            "state": "ended",
            "detail": f"its session ended at {entry['endedAt']}: the mail waits for its next start, or wake it",
        }
    if entry.get("lastSeen") or entry.get("name"):
        return {"state": "idle", "detail": "not running: the mail waits for its next start, or wake it"}
    return {
        "state": "unknown",
        "detail": "not registered here and not running: the mail waits until a session with this id starts",
    }


def state_line(recipient: Entry, state: str) -> str | None:
    """What a person sending to `recipient` should know when it is not running (`state` from
    recipient_state), in one line naming the command that wakes it; None when it is live."""
    from relay.usecases.addressing import wake_hint
    from relay.usecases.launcher import launcher_command, shell_quote
    from relay.util.textsafe import one_line

    name = recipient.get("name")
    label = one_line(str(name)) if isinstance(name, str) and name else str(recipient["id"])
    waking = f"{launcher_command()} wake {shell_quote(label)}"
    if state == "ended":
        return f"{label} has ended: it reads this when it starts or is woken ({waking})"
    if state == "idle":
        return f"{label} is not running: it reads this when it starts or is woken ({waking})"
    if state == "unknown":
        hint = wake_hint(recipient).removeprefix("If it is idle, wake it: ")
        return f"{label} is not registered here and not running: it reads this when it starts or is woken ({hint})"
    return None


def status(store: "StoreAPI", message_id: object, viewer: str | None = None) -> dict[str, object]:
    """What became of a message: {id, to, toName, state, queuedAt, deliveredAt, repliedAt, replyId,
    thread}. An error for an id that is unknown, or not `viewer`'s to see (relay.usecases.mail.visible_to)."""
    known = seen_by(store, message_id, viewer, with_state=True)
    if known is None:
        from relay.usecases.gc import RECEIPT_DAYS

        raise RelayError(
            f"unknown message id {quoted_id(message_id)}: use an id `send` returned (or one from your own mail); "
            f"messages are forgotten {RECEIPT_DAYS} days after their last change"
        )
    return {field: known.get(field) for field in STATUS_FIELDS}


def wait_for_reply(
    store: "StoreAPI",
    message_id: str,
    mailbox: SessionId,
    timeout: float,
    show: Callable[[Message | None, list[Message], Message], None],
    stop: Callable[[], bool] = lambda: False,
) -> Callable[[bool], int] | None:
    """Wait at most `timeout` seconds for the first reply to `message_id`; None when none came.

    The reply is taken from `mailbox` (the asker's) through the delivery protocol: `show(reply,
    earlier, receipt)` renders it, and the returned `confirm(written)` acks it once the face wrote
    it. `earlier` holds mail a dead taker left in flight there, which every take hands over first
    (shown and confirmed with it). A reply already delivered to that session some other way (its
    hook), or addressed elsewhere, ends the wait too, shown as `reply=None` with its receipt.
    `stop()` ends the wait early (the MCP client sent something else).
    """
    deadline = time.monotonic() + timeout
    while True:
        receipt = store.receipt(message_id) or {}
        reply_id = receipt.get("replyId")
        if isinstance(reply_id, str):
            return _take_reply(store, reply_id, mailbox, show)
        if time.monotonic() >= deadline or stop():
            return None
        time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0)))


def _take_reply(
    store: "StoreAPI", reply_id: str, mailbox: SessionId, show: Callable[[Message | None, list[Message], Message], None]
) -> Callable[[bool], int]:
    """Take the reply `reply_id` from `mailbox` and show it, or show its receipt when it is not there."""
    found = False

    def shown(batch: list[Message], remaining: int) -> int:
        nonlocal found
        ids = [m.get("id") for m in batch]
        if reply_id not in ids:
            return 0
        at = ids.index(reply_id)
        found = True
        show(batch[at], batch[:at], store.receipt(reply_id) or {"id": reply_id})
        return at + 1

    confirm = open_delivery(store, mailbox, shown, select=lambda m: m.get("id") == reply_id)
    if not found:
        confirm(False)  # releases the mailbox; nothing was shown
        show(None, [], store.message_state(reply_id) or {"id": reply_id})
    return confirm

"""The whole conversation at a glance, for a view that shows it live (`relay ui`, docs/webview.md).

Sessions come from the registry, each with the state `relay send` reports of a recipient
(relay.usecases.conversation.recipient_state: live, idle, ended). Messages come from the journal's
`sent` events, the one record that keeps their bodies (relay.usecases.journal.events), read on from a
cursor so that each refresh reads only what is new; each message's delivery state is what
`relay status` says of it (the store's receipt: queued, taken, delivered, replied, archived).
"""

from relay.domain.ids import is_uuid, require_uuid
from relay.usecases import journal
from relay.usecases.conversation import recipient_state

TYPE_CHECKING = False  # typing stays off the import path; only mypy reads this
if TYPE_CHECKING:
    from relay.store.contract import StoreAPI
    from relay.store.files import Message

# A view keeps the newest this many messages; older ones stay in `relay log`.
MAX_MESSAGES = 1000
# States a message does not leave: it is not asked again once it reached one.
FINAL_STATES = ("replied", "archived")
# Seconds: the states of messages whose recipient's mail did not visibly change are read again this
# often anyway (a take on Redis, or gc archiving, leaves no other trace a cheap check sees).
RECHECK_SECONDS = 5.0
MESSAGE_FIELDS = ("id", "ts", "from", "fromName", "to", "toName", "thread", "replyTo", "body", "detail")


def sessions(store: "StoreAPI") -> "list[dict[str, object]]":
    """Every registered session: {id, name, tool, dir, deliver, lastSeen, endedAt, host, state}."""
    from relay.domain.policy import shown_with_mode

    rows = []
    for entry in store.registry().entries():
        shown = shown_with_mode(entry)
        row = {key: shown.get(key) for key in ("id", "name", "tool", "dir", "deliver", "lastSeen", "endedAt", "host")}
        row["state"] = recipient_state(entry)["state"]
        rows.append(row)
    return rows


class Conversation:
    """The messages seen so far, by id, oldest first, with their delivery state; `refresh` reads on."""

    def __init__(self) -> None:
        self.cursor: str | None = None
        self.messages: dict[str, dict[str, object]] = {}
        self.stamps: dict[str, tuple[int, ...] | None] = {}  # recipient id -> its mail stamp when its states were read
        self.checked_at = 0.0

    def refresh(self, store: "StoreAPI") -> None:
        """Read the journal's new `sent` events, then the state of every message that may still change:
        all of them when the journal moved or RECHECK_SECONDS passed, else those of the recipients
        whose mail changed (StoreAPI.mail_stamp), so a quiet bus costs one stamp per recipient."""
        import time

        found, cursor = journal.events(store, self.cursor)
        if cursor is not None:
            self.cursor = cursor
        for event in found:
            if event.get("event") == "sent" and isinstance(event.get("id"), str):
                message = {key: event.get(key) for key in MESSAGE_FIELDS}
                message["state"] = "queued"
                self.messages[str(event["id"])] = message
        for stale in list(self.messages)[:-MAX_MESSAGES]:
            del self.messages[stale]
        everything = bool(found) or time.monotonic() - self.checked_at >= RECHECK_SECONDS
        if everything:
            self.checked_at = time.monotonic()
        open_ones = [m for m in self.messages.values() if m["state"] not in FINAL_STATES]
        stamps = {str(m["to"]): store.mail_stamp(require_uuid(m["to"])) for m in open_ones if is_uuid(m["to"])}
        for message in open_ones:
            recipient = str(message["to"])
            if everything or stamps.get(recipient) != self.stamps.get(recipient):
                message["state"] = _state(store, str(message["id"]))
        self.stamps = stamps

    def threads(self) -> "list[dict[str, object]]":
        """The messages grouped by thread, each thread's messages oldest first, the thread with the
        newest message first: [{thread, messages}]."""
        grouped: dict[str, list[dict[str, object]]] = {}
        for message in self.messages.values():
            grouped.setdefault(str(message.get("thread") or message["id"]), []).append(message)
        ordered = sorted(grouped.items(), key=lambda item: str(item[1][-1].get("ts") or ""), reverse=True)
        return [{"thread": thread, "messages": messages} for thread, messages in ordered]


def _state(store: "StoreAPI", message_id: str) -> str:
    """`relay status`'s state of the message; `forgotten` once its receipt is gone (relay gc)."""
    known: Message | None = store.message_state(message_id)
    return str(known.get("state")) if known else "forgotten"

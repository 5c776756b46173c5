"""The whole conversation at a glance, for a view that shows it live (`relay ui`, docs/webview.md).

Sessions come from the registry, each with the state `relay send` reports of a recipient
(relay.usecases.conversation.recipient_state: live, idle, ended). Messages come from the journal's
`sent` events, the one record that keeps their bodies (relay.usecases.journal.events), read on from a
cursor so that each refresh reads only what is new; each message's delivery state is what
`relay status` says of it (the store's receipt: queued, taken, delivered, replied, archived).
"""

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

    def refresh(self, store: "StoreAPI") -> None:
        """Read the journal's new `sent` events, then the state of every message that may still change."""
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
        for message_id, message in self.messages.items():
            if message["state"] not in FINAL_STATES:
                message["state"] = _state(store, message_id)

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

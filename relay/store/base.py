"""What every store implementation shares (relay.store.files.Store, relay.store.redisdb.RedisStore):
the checks a registration must pass and the helpers both backends serialise with, so each rule is
written once and a backend implements only its primitives (`_register`, `_record_start`, ...).

Imported by the file store, so it stays on the hook's path: no typing, nothing heavy."""

from relay.domain.ids import AGENT_CLIS, SessionId, check_name, is_uuid, name_from_dir
from relay.domain.policy import check_mode
from relay.util import jsonlite
from relay.util.errors import RelayError

# A field `register` was not given (None is a value: it clears a name or a dir).
UNSET = object()

# The receipt of a message copies these fields of it (docs/delivery.md: what became of a message).
RECEIPT_FIELDS = ("from", "fromName", "to", "toName", "thread", "replyTo", "expectsReply")


def to_json(value: object, indent: int | None = None) -> bytes:
    """Serialise for the store; text that is not valid Unicode is refused before anything is written.

    relay.util.jsonlite (CPython's C encoder), neither orjson nor the json package: the store's
    documents are small, and importing either costs more of every hook start than parsing saves.
    """
    text = jsonlite.dumps(value, indent)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise RelayError("text is not valid UTF-8 (it holds a lone surrogate); send plain text") from None


def is_message(raw: bytes, message_id: str) -> bool:
    """Is `raw` (one stored message as JSON) the message `message_id`? The id's bytes are looked
    for first, so only a likely line is parsed; a line that does not parse is no message."""
    if message_id.encode() not in raw:
        return False
    try:
        message = jsonlite.loads(raw)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("id") == message_id


def new_receipt(message: dict[str, object]) -> dict[str, object] | None:
    """A fresh receipt for a message (None when its id is not a UUID: planted or pre-0.1 mail)."""
    message_id = message.get("id")
    if not is_uuid(message_id):
        return None
    receipt: dict[str, object] = {"id": str(message_id).lower()}
    receipt.update((k, message[k]) for k in RECEIPT_FIELDS if k in message)
    receipt.setdefault("thread", receipt["id"])
    receipt.update(queuedAt=message.get("ts"), deliveredAt=None, repliedAt=None, replyId=None)
    return receipt


def first_name(agents: dict[str, dict[str, object]], names: dict[str, str], directory: str) -> str:
    """The name a session without one gets at its start: its dir's base name, unique among the
    names registered (each backend chooses it atomically, so two sessions starting at once differ)."""
    taken = {name.lower() for name in names}
    taken.update(str(e["name"]).lower() for e in agents.values() if isinstance(e.get("name"), str))
    return name_from_dir(directory, taken)


def check_tool(tool: object) -> None:
    """Refuse a `tool` that is not one of the agent CLIs relay serves."""
    if tool not in AGENT_CLIS:
        raise RelayError(f"invalid tool {tool!r}: use {' or '.join(AGENT_CLIS)}")


class StoreBase:
    """The public checks of the store's contract (relay.store.contract.StoreAPI), made once here;
    the subclasses write what passed."""

    def register(
        self,
        session_id: SessionId,
        *,
        directory: object = UNSET,
        name: object = UNSET,
        tool: object = UNSET,
        deliver: object = UNSET,
    ) -> dict[str, object]:
        """Upsert one entry: fields not given keep their value, lastSeen is refreshed.

        A name given is bound to this id, moving it off any other session and dropping any other
        name this session had. The name, tool, dir and delivery mode are checked first; the id is a
        SessionId, checked where it entered (relay.domain.ids).
        """
        if name is not UNSET and name is not None:
            check_name(name)
        if tool is not UNSET:
            check_tool(tool)
        if directory is not UNSET and directory is not None and not str(directory).startswith("/"):
            raise RelayError(f"invalid dir {directory!r}: give an absolute path")
        if deliver is not UNSET:
            check_mode(deliver)
        return self._register(session_id, directory, name, tool, deliver)

    def _register(
        self, session_id: str, directory: object, name: object, tool: object, deliver: object
    ) -> dict[str, object]:
        raise NotImplementedError

    def record_start(self, session_id: SessionId, directory: str, tool: str) -> dict[str, object]:
        """A session start's writes, the dir's marker and the entry {id, dir, tool}, at once. A
        session without a name gets its dir's (first_name); a name it has is kept.

        The id (a SessionId) and the absolute dir were checked once at the edge (relay.faces.hook);
        the tool here."""
        check_tool(tool)
        return self._record_start(session_id, directory, tool)

    def _record_start(self, session_id: str, directory: str, tool: str) -> dict[str, object]:
        raise NotImplementedError

    def peek_batch(self, recipient: SessionId, budget: int | None) -> tuple[list[dict[str, object]], int]:
        raise NotImplementedError

    def peek(self, recipient: SessionId) -> list[dict[str, object]]:
        """Every waiting message without taking any: claimed first, then pending, each marked."""
        return self.peek_batch(recipient, None)[0]

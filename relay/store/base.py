"""What every store implementation shares (relay.store.files.Store, relay.store.redisdb.RedisStore):
the checks a registration must pass and the helpers both backends serialise with, so each rule is
written once and a backend implements only its primitives (`_register`, `_record_start`, ...).

Imported by the file store, so it stays on the hook's path: no typing, nothing heavy."""

from relay.domain.ids import AGENT_CLIS, SessionId, check_name, is_uuid, name_from_dir, name_key
from relay.domain.policy import check_mode
from relay.util import jsonlite
from relay.util.clock import epoch_from_iso
from relay.util.errors import RelayError

# A field `register` was not given (None is a value: it clears a name or a dir).
UNSET = object()

# How stale a session's lastSeen may grow before a start that changes nothing else rewrites its
# entry (Registration.only_refreshes): a resume, /clear or compaction within this of the last
# rewrite writes nothing. lastSeen is thus the session's latest start to within this; its readers
# count in days (`relay gc --older-than`, its clock check) or show it as how long ago (`relay list`,
# the web view), and none of them tells a running session from a stopped one by it.
SEEN_REFRESH_SECONDS = 600.0

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
    taken = {name_key(name) for name in names}
    taken.update(name_key(str(e["name"])) for e in agents.values() if isinstance(e.get("name"), str))
    return name_from_dir(directory, taken)


class Registration:
    """What one registration gives, checked (StoreBase.register); UNSET fields keep their value. A
    `started` one is a session's own start: it also clears `endedAt` and may name the session.
    A plain class: the hook's start imports nothing more for it."""

    __slots__ = ("deliver", "directory", "name", "started", "tool")

    def __init__(
        self,
        directory: object = UNSET,
        name: object = UNSET,
        tool: object = UNSET,
        deliver: object = UNSET,
        started: bool = False,
    ) -> None:
        self.directory, self.name, self.tool, self.deliver, self.started = directory, name, tool, deliver, started

    def apply(self, entry: dict[str, object]) -> bool:
        """Set the fields given on `entry`; a start also clears `endedAt` (a session resumed after it
        ended runs again). True when the start must give it its first name (first_name): it has none
        yet, and a dir to take one from."""
        for field, key in (("directory", "dir"), ("tool", "tool"), ("deliver", "deliver")):
            value = getattr(self, field)
            if value is not UNSET:
                entry[key] = value
        if not self.started:
            return False
        entry.pop("endedAt", None)
        return not entry.get("name") and isinstance(entry.get("dir"), str)

    def changes(self, entry: dict[str, object]) -> bool:
        """Would applying it change `entry` (the stored one) in anything but lastSeen: a field, its
        `endedAt`, a first name?"""
        probe = dict(entry)
        return self.apply(probe) or probe != entry

    def only_refreshes(self, entry: dict[str, object], now: float) -> bool:
        """Is this start one that may leave `entry` as stored: it changes nothing of it (`changes`)
        and its lastSeen is at most SEEN_REFRESH_SECONDS old (and not ahead of `now`: a clock set
        back gets a true lastSeen at once)? A store need not write such a start at all."""
        seen = epoch_from_iso(entry.get("lastSeen"))
        return (
            self.started and seen is not None and now - SEEN_REFRESH_SECONDS <= seen <= now and not self.changes(entry)
        )


def bind_name(
    agents: dict[str, dict[str, object]], names: dict[str, str], session_id: str, name: str | None
) -> list[str]:
    """Bind `name` to `session_id` in these maps (both backends compute a registry change here).

    The session's other names go; a name equal to `name` ignoring case (name_key) that another
    session holds goes too, and that session keeps its entry without a name: names are unique
    ignoring case, and a name given moves in the case it was given. Returns the ids of the other
    sessions whose entries changed."""
    changed: list[str] = []
    key = None if name is None else name_key(name)
    for old, bound in list(names.items()):
        if bound == session_id:
            if old != name:
                del names[old]
        elif key is not None and name_key(old) == key:
            del names[old]
            other = agents.get(bound)
            if other is not None:
                other["name"] = None
                changed.append(bound)
    if name is not None:
        names[name] = session_id
    return changed


def holds_name(names: dict[str, str], holder: str, name: str) -> str | None:
    """The spelling of `name` (ignoring case) that `holder` holds, or None when it holds none."""
    key = name_key(name)
    return next((n for n, bound in names.items() if bound == holder and name_key(n) == key), None)


def sent_to_name(message: dict[str, object], name: str) -> bool:
    """Was `message` addressed to the name `name` (not to its recipient's id)? Only such mail
    follows a name to the session that takes it over; mail sent to an id stays with that id."""
    to_name = message.get("toName")
    return message.get("byName") is True and isinstance(to_name, str) and name_key(to_name) == name_key(name)


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
        return self._register(session_id, Registration(directory, name, tool, deliver))

    def _register(self, session_id: str, change: Registration) -> dict[str, object]:
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

    def move_name(self, name: str, holder: SessionId, taker: SessionId) -> list[str] | None:
        """Give `name` from `holder` to `taker` (registered) at once, with the mail sent to that name.

        None, with nothing changed, when `holder` no longer holds `name` (ignoring case) or `taker`
        is not registered. Otherwise the taker holds it (its other names go), the holder keeps its
        entry and id without a name, and the holder's mail sent to the name (sent_to_name) and not
        yet taken moves to the taker's mailbox, in order, ids and receipts kept (`to` follows it).
        Mail sent to the holder's id, and mail a taker has claimed, stay. Returns the moved ids."""
        raise NotImplementedError

    def peek_batch(self, recipient: SessionId, budget: int | None) -> tuple[list[dict[str, object]], int]:
        raise NotImplementedError

    def peek(self, recipient: SessionId) -> list[dict[str, object]]:
        """Every waiting message without taking any: claimed first, then pending, each marked."""
        return self.peek_batch(recipient, None)[0]

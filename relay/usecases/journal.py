"""The journal: what happened on the bus, bodies included, for the person running the sessions
(docs/journal.md). `relay log` reads it, and so will any other view (`events` is its one reader).

Each event is recorded at the one place its thing happens: `sent` and `replied` where mail is
queued (relay.usecases.mail.send), `delivered` where a taker confirms what it showed
(relay.usecases.mail.open_delivery), `woken` and `wake-refused` where the guardrails decide
(relay.usecases.wakeguard.admit, and relay.usecases.wake for a host without a doorbell server),
`renamed` where a name moves to another session (`renamed` below, called by that move).

Journaling never makes the thing it records fail: a setting that does not parse or a write that
fails goes to the error log, and the send or delivery goes on. RELAY_JOURNAL_DAYS=0 turns it off:
nothing is written, so a delivered message's body is then kept nowhere.
"""

from relay.util.clock import now_iso

TYPE_CHECKING = False  # typing stays off the import path; only mypy reads this
if TYPE_CHECKING:
    from relay.store.contract import StoreAPI
    from relay.store.files import Message

DEFAULT_DAYS = 14
EVENTS = ("sent", "delivered", "replied", "woken", "wake-refused", "renamed")
# Every event has these keys (null when they do not apply), in this order.
FIELDS = ("ts", "event", "id", "from", "fromName", "to", "toName", "thread", "replyTo", "body", "detail")


def journal_days() -> int:
    """RELAY_JOURNAL_DAYS: how many days the journal keeps, 0 for no journal; default 14."""
    from relay.util.env import whole_number_env

    return whole_number_env("RELAY_JOURNAL_DAYS", DEFAULT_DAYS)


def _event(kind: str, ts: str | None = None, **fields: object) -> "Message":
    """An event of `kind` at `ts` (now when None)."""
    event: Message = dict.fromkeys(FIELDS)
    event.update(fields, ts=ts or now_iso(), event=kind)
    return event


def _record(store: "StoreAPI", events: "list[Message]") -> None:
    """Append the events unless the journal is off; any failure goes to the error log, never up."""
    try:
        if not events or journal_days() == 0:
            return
        store.journal_append(*events)
    except Exception as err:
        from relay.store.errorlog import record

        record("journal", err)


def _of_message(kind: str, message: "Message", ts: str | None = None, **fields: object) -> "Message":
    return _event(
        kind,
        ts,
        id=message.get("id"),
        **{key: message.get(key) for key in ("from", "fromName", "to", "toName", "replyTo", "body")},
        thread=message.get("thread") or message.get("id"),
        **fields,
    )


def sent(store: "StoreAPI", message: "Message") -> None:
    """A message was queued; when it answers another, that question gets its `replied` event."""
    flags = [
        word for key, word in (("urgent", "urgent"), ("expectsReply", "expects a reply")) if message.get(key) is True
    ]
    events = [_of_message("sent", message, detail=", ".join(flags) or None)]
    if message.get("replyTo"):
        reply = {**_of_message("replied", message), "id": message["replyTo"], "body": None}
        events.append({**reply, "replyTo": None, "detail": f"reply {message.get('id')}"})
    _record(store, events)


def delivered(store: "StoreAPI", messages: "list[Message]") -> None:
    """A taker confirmed it showed these messages to their recipient: one confirmation, one time
    for all of them (formatting the time is the costly part of an event)."""
    ts = now_iso()
    _record(
        store,
        [
            _of_message("delivered", m, ts=ts, detail="redelivered" if m.get("redelivered") is True else None)
            for m in messages
        ],
    )


def woken(store: "StoreAPI", session_id: str, label: str, detail: str, queued: str | None) -> None:
    """A wake of the session passed the guardrails and rings now; `queued` is the mail it queued."""
    _record(store, [_event("woken", id=queued, to=session_id, toName=label, detail=detail)])


def wake_refused(store: "StoreAPI", session_id: str, label: str, reason: str, queued: str | None) -> None:
    """A wake of the session was refused; `reason` says why."""
    _record(store, [_event("wake-refused", id=queued, to=session_id, toName=label, detail=reason)])


def renamed(store: "StoreAPI", name: str, old_id: str, new_id: str, moved: int) -> None:
    """The name moved from one session to another, with `moved` messages still queued under it."""
    detail = f"name {name} moved to a new session; {moved} queued message{'' if moved == 1 else 's'} moved with it"
    _record(store, [_event("renamed", **{"from": old_id}, fromName=name, to=new_id, toName=name, detail=detail)])


# -- reading -----------------------------------------------------------------------------------------


class Filter:
    """Which events a reader wants: `since` (epoch seconds), a thread id (or its prefix), and a
    session (its ids and, lowered, its names: mail to a name long gone still matches it)."""

    __slots__ = ("ids", "names", "since", "thread")

    def __init__(
        self,
        since: float | None = None,
        thread: str | None = None,
        ids: "set[str] | None" = None,
        names: "set[str] | None" = None,
    ) -> None:
        self.since, self.thread = since, thread.lower() if thread else None
        self.ids, self.names = ids, names

    def wants(self, event: "Message") -> bool:
        if self.since is not None and epoch(event.get("ts")) < self.since:
            return False
        if self.thread is not None:
            mine = (str(event.get("thread") or "").lower(), str(event.get("id") or "").lower())
            if not any(value and value.startswith(self.thread) for value in mine):
                return False
        if self.ids is not None or self.names is not None:
            ids, names = self.ids or set(), self.names or set()
            if not (
                event.get("from") in ids
                or event.get("to") in ids
                or str(event.get("fromName") or "").lower() in names
                or str(event.get("toName") or "").lower() in names
            ):
                return False
        return True


def session_filter(store: "StoreAPI", target: str) -> tuple[set[str], set[str]]:
    """The ids and lowered names `--session NAME|ID` stands for: the registered session it names
    (id, and its name), else the word itself as an id or a name."""
    registry = store.registry()
    entry = registry.resolve(target) or registry.resolve(target.lower())
    if entry is None:
        lowered = {name.lower(): bound for name, bound in registry.names.items()}
        bound = lowered.get(target.lower())
        entry = registry.agents.get(bound) if bound else None
    if entry is None:
        return {target.lower()}, {target.lower()}
    names = {str(entry["name"]).lower()} if entry.get("name") else set()
    return {str(entry["id"])}, names


def events(
    store: "StoreAPI", cursor: str | None = None, wanted: Filter | None = None
) -> "tuple[list[Message], str | None]":
    """The journal's events after `cursor` (all that are kept without one) that `wanted` lets
    through, oldest first, each with every key of FIELDS; and the cursor to read on from."""
    wanted = wanted or Filter()
    found, cursor = store.journal_read(cursor, None if cursor else wanted.since)
    return [{key: event.get(key) for key in FIELDS} for event in found if wanted.wants(event)], cursor


def epoch(stamp: object) -> float:
    """Epoch seconds of an ISO time as the store writes it; 0 when it does not parse."""
    import calendar
    import time

    if not isinstance(stamp, str):
        return 0.0
    try:
        whole = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0.0
    millis = stamp[20:23]
    return whole + (int(millis) / 1000 if millis.isdigit() else 0.0)


def prune(store: "StoreAPI", now: float | None = None) -> int:
    """Drop what is older than RELAY_JOURNAL_DAYS (everything when it is 0): `relay gc` calls this."""
    return store.journal_prune(journal_days(), now)

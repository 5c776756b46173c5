"""The one interface of the store, with two implementations: files (relay.store.files.Store, the embedded
default) and Redis (relay.store.redisdb.RedisStore, docs/redis-store.md). Faces and core name `StoreAPI` in
their hints and call `open_store()` once at start; they never learn which store they hold.

The protocols under the TYPE_CHECKING guard exist only for mypy: at run time this module imports
relay.store.glance and what it needs (the hook's path pays for neither typing, os nor redis-py).
`LocalStore` is the file store as the hook opens it: loaded only when a question needs more than a stat.

Choosing the store (`open_store`), once per process, at start:

- AGENT_RELAY_URL unset or empty: `relay.store.files.Store()` over `<home>` (docs/store.md), byte-compatible
  with 0.1. redis-py is never imported.
- `redis://...` or `rediss://...`: `relay.store.redisdb.RedisStore(url)`; the URL is parsed and the
  connection opened lazily by the first call that needs Redis, with 3 s socket timeouts; failure
  is one RelayError line naming the URL with its password as `***`. Local-only state that no other
  host may read (error.log, the hook's once-a-day gc stamp) stays under `<home>` even then.
- Any other scheme: a RelayError naming the variable (never the value's credentials).

The faces catch RelayError as today: a command prints its one line and exits 1, the hook writes it
to error.log and exits 0, the bus answers the tool call with it.

The contract of each method is the file store's (its docstrings in relay/store/files.py and
relay/store/base.py are the long form); the summaries below are what any implementation must keep.
"""

from relay.store import glance
from relay.store.layout import relay_home
from relay.util.env import env_value

TYPE_CHECKING = False  # typing stays off the hook's import path; only mypy reads what follows
if TYPE_CHECKING:
    from _collections_abc import Callable, Mapping
    from typing import Any, Protocol

    from relay.domain.ids import SessionId
    from relay.store.files import Entry, Message, Select
    from relay.store.lock import FileLock

    class DeliveryAPI(Protocol):
        """A bounded batch of mail claimed by one taker (store.Delivery).

        `messages` are the claimed messages, those a dead taker left first with `redelivered: True`;
        `remaining` counts the messages queued behind the batch. `ack(n)` confirms the first n (all
        by default) were shown: they leave the mailbox for good and their receipts get
        `deliveredAt`; the rest go back in front of newer mail. `close()` without an ack leaves the
        batch claimed for the next taker (redelivered with the same ids). Usable as a context manager.
        """

        messages: list[Message]
        remaining: int

        def ack(self, count: int | None = None) -> None: ...
        def close(self) -> None: ...
        def __enter__(self) -> "DeliveryAPI": ...
        def __exit__(self, *exc_info: object) -> None: ...

    class RegistryAPI(Protocol):
        """A read-only snapshot of the registry (store.Registry)."""

        agents: Mapping[str, Entry]
        names: Mapping[str, str]

        def resolve(self, target: str) -> Entry | None:
            """An exact id first, then a name; None when neither."""
            ...

        def ids_starting(self, prefix: str) -> list[str]:
            """The registered ids that start with `prefix` (any case), sorted."""
            ...

        def entries(self) -> list[Entry]:
            """Every entry, sorted by name, else id."""
            ...

    class WakeLockAPI(Protocol):
        """A session's resume lock held by one `relay wake` (store.WakeLock)."""

        def record(self, note: bytes) -> None: ...
        def note(self) -> bytes: ...
        def release(self) -> None: ...

    class DoorbellsAPI(Protocol):
        """The hosts' doorbell streams (relay.store.redis_doorbells.RedisDoorbells): a wake of a session on
        another host is posted to that host's stream, and its `relay doorbell --serve` rings it there."""

        here: str

        def serving(self, host: str) -> bool:
            """Does a doorbell server on `host` answer now (its heartbeat has not expired)?"""
            ...

        def served_hosts(self) -> list[str]:
            """Every host whose doorbell server answers now, sorted."""
            ...

        def post(self, host: str, request: dict[str, object]) -> str:
            """Queue a wake request on `host`'s stream; its request id (the answers' address)."""
            ...

        def answer(self, request_id: str, seconds: float) -> dict[str, object] | None:
            """The server's first answer to a request, waiting at most `seconds`; None when none came."""
            ...

        # the server's side, on its own host
        def claim_server(self) -> None:
            """Become this host's one server (RelayError while another live one is)."""
            ...

        def heartbeat(self) -> bool:
            """Renew the server's liveness key; False when another server took it over."""
            ...

        def release_server(self) -> None: ...

        def read(self, backlog: bool, block_ms: int) -> list[tuple[str, dict[str, object] | None]]:
            """The next request (stream id, request or None when it does not parse): with `backlog`,
            one a dead server of this host read and never acked; else a new one, waiting up to block_ms."""
            ...

        def ack(self, stream_id: str) -> None: ...

        def reply(self, request_id: str, answer: dict[str, object]) -> None:
            """Hand the waker an answer (refused, started, error; later ended)."""
            ...

    class StoreAPI(Protocol):
        """What the faces (hook, bus, CLI, MCP tools) and core (mail, sessions, gc, wakeguard,
        watch, doctor) call. `warn` reports a problem the store fixed by itself (one line).

        Every session id the store is given is a SessionId (relay.domain.ids): checked and lowered
        once where it entered relay, so no method here checks it again. The ids the store hands back
        (registry entries and names, a marker's id) are plain str: the store reads them as stored and
        does not vouch for them, so a caller that passes one back in makes it a SessionId first."""

        home: str
        warn: Callable[[str], None]

        # -- registry, names, markers (docs/store.md) --
        def registry(self) -> RegistryAPI:
            """A consistent snapshot of every entry and name (empty when there is no store yet)."""
            ...

        def register(
            self,
            session_id: SessionId,
            *,
            directory: object = ...,
            name: object = ...,
            tool: object = ...,
            deliver: object = ...,
        ) -> Entry:
            """Atomic upsert: fields not given keep their value, lastSeen refreshed; a name given moves
            off any other session and this session's other names go. Checks id, name, tool, dir."""
            ...

        def record_start(self, session_id: SessionId, directory: str, tool: str) -> Entry:
            """SessionStart, atomically: the dir's marker and the entry {id, dir, tool}; clears endedAt."""
            ...

        def record_end(self, session_id: SessionId) -> None:
            """SessionEnd: stamp endedAt on a registered entry; unknown ids write nothing."""
            ...

        def move_name(self, name: str, holder: SessionId, taker: SessionId) -> list[str] | None:
            """Atomically: `name` from `holder` to `taker`, with the holder's untaken mail sent to that
            name (not to its id), ids and receipts kept; the moved ids, or None when the holder no
            longer holds the name (nothing changed). The long form: relay.store.base.StoreBase."""
            ...

        def set_marker(self, directory: str, session_id: SessionId) -> None:
            """`session_id` is the session last registered for `directory`."""
            ...

        def marker(self, directory: str) -> str | None:
            """The id the marker of `directory` names, if any."""
            ...

        # -- mail (docs/store.md, docs/delivery.md, docs/security.md) --
        def enqueue(self, recipient: SessionId, message: Message) -> None:
            """Durably queue one message and write its receipt (and its parent's first reply) before
            returning. Refused with nothing queued past RELAY_MAILBOX_MAX bytes of pending mail."""
            ...

        def take(self, recipient: SessionId, budget: int = ..., select: Select | None = None) -> DeliveryAPI:
            """Claim a bounded batch (one taker per mailbox at a time): a dead taker's claim first,
            flagged redelivered, then the oldest pending mail; `select` leaves the rest queued, in order."""
            ...

        def peek(self, recipient: SessionId) -> list[Message]:
            """Every waiting message, claimed first then pending, each with `state`; takes nothing."""
            ...

        def peek_batch(self, recipient: SessionId, budget: int | None) -> tuple[list[Message], int]:
            """`peek` within about `budget` bytes, and how many more wait."""
            ...

        def has_mail(self, recipient: SessionId) -> bool:
            """Anything pending or claimed? The hook's cheapest question: no writes."""
            ...

        def has_urgent(self, recipient: SessionId) -> bool:
            """Any urgent message pending or claimed? No writes."""
            ...

        def mail_stamp(self, recipient: SessionId) -> tuple[int, ...] | None:
            """A value that changes whenever mail arrives or leaves; None when there is none."""
            ...

        # -- delivery state (docs/delivery.md) --
        def receipt(self, message_id: str) -> Message | None:
            """The receipt of a queued message, or None."""
            ...

        def message_state(self, message_id: str) -> Message | None:
            """The receipt plus `state`: queued, taken, delivered, replied or archived; None when unknown."""
            ...

        def receipt_ids(self, prefix: str) -> list[str]:
            """The ids of the receipts kept that start with `prefix` (any case), sorted."""
            ...

        def prune_receipts(self, older_than: float, now: float | None = None) -> int:
            """Drop receipts unchanged for `older_than` seconds; how many went."""
            ...

        # -- watchers and wakes (docs/delivery.md, docs/wake.md) --
        def claim_watch(self, session_id: SessionId) -> FileLock | None:
            """The session's one idle-mail watcher slot, or None while a live watcher holds it."""
            ...

        def watcher(self, session_id: SessionId) -> int | None:
            """The pid of the session's live watcher, if any."""
            ...

        def note_ring(self, session_id: SessionId) -> None:
            """relay just rang the session's own messaging socket (host-local)."""
            ...

        def last_ring(self, session_id: SessionId) -> float | None:
            """When relay last rang the session's messaging socket, if ever (host-local)."""
            ...

        def auto_wakes(self, session_id: SessionId) -> int: ...
        def count_auto_wake(self, session_id: SessionId) -> int: ...
        def reset_auto_wakes(self, session_id: SessionId) -> None: ...

        def claim_wake(self, session_id: SessionId) -> WakeLockAPI | None:
            """The session's resume lock, or None while another wake holds it."""
            ...

        def wake_note(self, session_id: SessionId) -> tuple[bool, bytes]: ...
        def wake_times(self, session_id: SessionId, since: float, until: float) -> list[float]: ...

        def spend_wake(self, session_id: SessionId, since: float, now: float, budget: int) -> list[float]:
            """Atomically: the wakes in (since, now], and one more at `now` when under `budget`."""
            ...

        # -- wakes across hosts (docs/redis-store.md) --
        def wake_host(self, entry: Entry) -> str | None:
            """The other host whose doorbell must ring for this session; None when it rings here."""
            ...

        def hosted(self, session_id: SessionId) -> tuple[str, str] | None:
            """The (dir, tool) that a registration made on this host gave the session (its hook's
            start, or `relay register --dir --tool` here); None when none did. A doorbell server rings
            with these, never with what a shared store's entry says (docs/redis-store.md)."""
            ...

        def doorbells(self) -> DoorbellsAPI | None:
            """The hosts' doorbell streams; None when the store has no other hosts (the file store)."""
            ...

        # -- the journal (docs/journal.md) --
        def journal_append(self, *events: Message) -> None:
            """Append events, each a bounded line kept whole. Files: `<home>/journal/<day>.jsonl`, one
            O_APPEND write per day file; Redis: one capped stream every host shares, one round trip."""
            ...

        def journal_read(self, cursor: str | None, since: float | None = None) -> tuple[list[Message], str | None]:
            """The events after `cursor` (an opaque position this method returned), or from about
            `since` (epoch seconds) without one, oldest first; and the cursor after the last."""
            ...

        def journal_prune(self, keep_days: int, now: float | None = None) -> int:
            """Drop the events older than `keep_days` days (all of them for 0); how many days/events went."""
            ...

        # -- collection and diagnosis (docs/store.md, docs/security.md) --
        def gc_due(self, interval: float) -> bool: ...
        def touch_gc_stamp(self) -> None: ...
        def mailbox_files(self) -> list[tuple[str, int]]: ...
        def drop_empty_mailbox(self, name: str) -> bool: ...

        def on_this_host(self, entry: Entry) -> bool:
            """Does the session of `entry` run on this machine? gc judges only those (by local
            transcripts and processes); the file store's entries are all local."""
            ...

        def archive_location(self) -> str:
            """Where `retire` keeps undelivered mail, in words a person can follow (no credentials)."""
            ...

        def retire(self, session_id: SessionId) -> int:
            """Forget a session (entry, names, markers); archive its undelivered mail, never delete it."""
            ...

        def facts(self) -> list[tuple[str, str, str]]:
            """Findings for `relay doctor`, read-only."""
            ...


REDIS_SCHEMES = ("redis://", "rediss://")


def store_url() -> str | None:
    """AGENT_RELAY_URL when set and not empty, else None (the local file store)."""
    return env_value("AGENT_RELAY_URL")


class LocalStore:
    """The local file store as the hook and the MCP server see it (`open_store(lazily=True)`): relay.store.glance's
    read-only questions answered without loading the store, and the whole store
    (relay.store.files.Store) opened at the first call of anything else. An event with nothing to
    deliver and nothing to change never loads it."""

    def __init__(self, warn: "Callable[[str], None] | None" = None) -> None:
        self.home = relay_home()
        self._warn = warn
        self._store: StoreAPI | None = None

    def _full(self) -> "StoreAPI":
        if self._store is None:
            from relay.store.files import Store

            self._store = Store(self.home) if self._warn is None else Store(self.home, warn=self._warn)
        return self._store

    def __getattr__(self, name: str) -> "Any":
        """Everything but the questions below: the whole store's."""
        return getattr(self._full(), name)

    def watcher(self, session_id: "SessionId") -> int | None:
        return glance.watcher(self.home, session_id)

    def has_mail(self, recipient: "SessionId") -> bool:
        return glance.mail_stamp(self.home, recipient) is not None

    def mail_stamp(self, recipient: "SessionId") -> tuple[int, ...] | None:
        return glance.mail_stamp(self.home, recipient)

    def record_start(self, session_id: "SessionId", directory: str, tool: str) -> "Entry":
        """A start that need write nothing (relay.store.markers.unchanged_start: a resume, /clear or
        compaction of a registered session) is answered from the entry as stored; any other is the
        whole store's."""
        from relay.store.base import Registration, check_tool
        from relay.store.markers import unchanged_start

        check_tool(tool)
        entry = unchanged_start(self.home, session_id, Registration(directory, tool=tool, started=True))
        return entry if entry is not None else self._full().record_start(session_id, directory, tool)

    def gc_due(self, interval: float) -> bool:
        """One lstat of the stamp; the whole store only when a collection is due or there is no stamp."""
        return glance.gc_stamp_due(self.home, interval) is not False and self._full().gc_due(interval)

    def reset_auto_wakes(self, session_id: "SessionId") -> None:
        if glance.auto_wakes_counted(self.home, session_id):  # the store removes the count (and the ring note)
            self._full().reset_auto_wakes(session_id)

    def marker(self, directory: str) -> str | None:
        """The session the dir's marker names, read by relay.store.markers (the rule the store uses):
        an MCP server's first requests ask only this."""
        if self._store is not None:
            return self._store.marker(directory)
        from relay.store.markers import marker_at

        return marker_at(self.home, directory)


def open_store(warn: "Callable[[str], None] | None" = None, lazily: bool = False) -> "StoreAPI":
    """The store this process uses, chosen once from AGENT_RELAY_URL (see the module docstring).
    Every face (CLI, hook, hook watch, bus) opens its store here; the demo keeps its own file store.

    `lazily` (the hook and the MCP server): the local store answers its read-only questions
    (watcher, has_mail, marker, ...) without loading relay.store.files, which it loads at the first
    other call (LocalStore above)."""
    url = store_url()
    if url is None and lazily:
        return LocalStore(warn)
    if url is None:
        from relay.store.files import Store

        return Store() if warn is None else Store(warn=warn)
    if not url.startswith(REDIS_SCHEMES):
        from relay.util.errors import RelayError

        raise RelayError("AGENT_RELAY_URL must start with redis:// or rediss:// (or be unset for the local store)")
    from relay.store.redisdb import RedisStore

    return RedisStore(url) if warn is None else RedisStore(url, warn=warn)

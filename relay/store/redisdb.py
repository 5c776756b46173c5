"""The store on Redis (docs/redis-store.md): the same guarantees as relay.store.files, shared by every machine that
reaches the same Redis. The only module that imports redis-py, and only when AGENT_RELAY_URL is set.

Keys (all under `relay:`, named in relay.store.redis_keys; one Redis database per relay world, no
cluster: scripts touch several keys):

    relay:agents               HASH id -> Entry JSON (Entry as in docs/store.md, plus `host`)
    relay:names                HASH name -> id
    relay:markers              HASH absolute dir -> session id (no file-name encoding, so no clashes)
    relay:mbox:<id>            STREAM of pending and claimed mail, field `m` = the message's JSON line;
                               consumer group `takers`
    relay:mbytes:<id>          bytes of mail in that stream (the RELAY_MAILBOX_MAX quota)
    relay:urgent:<id>          SET of stream ids of urgent mail still in the stream
    relay:rcpt:<msg id>        HASH receipt: `doc` (its JSON at queue time), `sid` (stream id),
                               `deliveredAt`, `repliedAt`, `replyId`, `changed` (epoch seconds)
    relay:takelock:<id>        held (SET NX PX) by one taker while it claims; never while it shows
    relay:quarantine:<id>      LIST of stream entries set aside unread: larger than RELAY_MAILBOX_MAX or not
                               parsing (kept for a human, never deleted; relay.store.redis_reads)

Mail, at least once, like the file store:

- enqueue is one Lua script: quota check, XADD, byte count, urgent set, receipt, parent's first
  reply. `send` returns only after Redis answered it.
- take reads through the consumer group under a short claim lock. Each taking process is the
  consumer `<host>:<pid>:<process start>`; mail in the group's pending list (PEL) belongs to the
  taker that claimed it. Claims of takers known dead come first, with `redelivered: true`: on this
  host a taker is dead when its pid is gone or reused (relay.host.procinfo); on another host when its
  claim has been idle for CLAIM_IDLE_MS (20 s, within the 30 s of docs/redis-store.md). They are taken over with XCLAIM
  (not XAUTOCLAIM: that cannot tell a dead taker's claim from a parked one, below).
- New mail is read (XREADGROUP) into the consumer `~parked`, and only what a taker takes is then
  XCLAIMed to it; mail read but not taken (past the budget, refused by `select`), and the rest of
  a partial ack, is "parked" there, and the next take reads it first, in stream order, without the
  redelivered flag. So it stays in front of newer mail, in order, and a taker that dies between
  reading and claiming leaves nothing flagged that it never showed.
  A dead taker's claims beyond one take's budget go to `~redeliver` instead: first again, flagged.
- ack is one Lua script: XACK + XDEL, the byte count and urgent set follow what XDEL really
  removed (so a second ack changes nothing), and receipts get `deliveredAt`.
"""

import os
import time
from _collections_abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from redis.exceptions import WatchError

from relay.domain.ids import SessionId, is_uuid
from relay.domain.policy import is_urgent
from relay.store import base, fileio, redis_keys
from relay.store.base import UNSET, StoreBase, first_name, is_message, new_receipt, to_json
from relay.store.files import (
    TAKE_BUDGET,
    Entry,
    Message,
    Registry,
    Store,
    WakeLock,
    mailbox_max,
)
from relay.store.layout import mailbox_name
from relay.store.lock import FileLock
from relay.store.redis_client import UNLOCK, RedisConnection, redact
from relay.store.redis_reads import Row, read_entries, read_field, read_hashes, read_journal, read_string
from relay.store.redis_reads import mail_stamp as read_mail_stamp
from relay.util import jsonlite
from relay.util.clock import now_iso
from relay.util.errors import LockBusy, RelayError
from relay.util.faults import checkpoint

if TYPE_CHECKING:
    from relay.store.files import Select
    from relay.store.redis_doorbells import RedisDoorbells

GROUP = "takers"
PARKED = "~parked"
# A dead taker's claims that did not fit one take: delivered first, and still flagged, by the next.
REDELIVER = "~redeliver"
# A claim idle this long whose taker runs on another host (its pid cannot be checked) is taken over.
CLAIM_IDLE_MS = 20_000
TAKE_LOCK_MS = 5_000
TAKE_LOCK_WAIT = 3.0
_READ_COUNT = 32
_PEEK_PAGE = 256
# The journal stream keeps about this many events (XADD MAXLEN ~); `relay gc` also trims it by age.
JOURNAL_MAX = 200_000
_JOURNAL_PAGE = 1000

_ENQUEUE = """
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local size = string.len(ARGV[1])
if used + size > tonumber(ARGV[2]) then return {0, used} end
pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[6], '0', 'MKSTREAM')
local sid = redis.call('XADD', KEYS[1], '*', 'm', ARGV[1])
redis.call('INCRBY', KEYS[2], size)
if ARGV[7] == '1' then redis.call('SADD', KEYS[3], sid) end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[4], 'doc', ARGV[3], 'sid', sid, 'changed', ARGV[5])
end
if ARGV[4] ~= '' and redis.call('EXISTS', KEYS[5]) == 1 then
  if redis.call('HSETNX', KEYS[5], 'replyId', ARGV[4]) == 1 then
    redis.call('HSET', KEYS[5], 'repliedAt', ARGV[8], 'changed', ARGV[5])
  end
end
return {1, sid}
"""

# KEYS: stream, bytes, urgent set, then one receipt key per message. ARGV: group, stamp, changed,
# then (stream id, size) pairs.
_ACK = """
local n = (#ARGV - 3) / 2
for i = 1, n do
  local sid = ARGV[2 + 2 * i]
  local size = tonumber(ARGV[3 + 2 * i])
  redis.call('XACK', KEYS[1], ARGV[1], sid)
  if redis.call('XDEL', KEYS[1], sid) == 1 then
    redis.call('DECRBY', KEYS[2], size)
    redis.call('SREM', KEYS[3], sid)
  end
  local receipt = KEYS[3 + i]
  if redis.call('EXISTS', receipt) == 1 and redis.call('HSETNX', receipt, 'deliveredAt', ARGV[2]) == 1 then
    redis.call('HSET', receipt, 'changed', ARGV[3])
  end
end
if tonumber(redis.call('GET', KEYS[2]) or '0') <= 0 then redis.call('DEL', KEYS[2]) end
return n
"""

# Drop this process's consumer once it claims nothing, so consumers do not pile up.
_DROP_CONSUMER = """
local info = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #info == 0 then redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) return 1 end
return 0
"""

# KEYS: the wakes sorted set. ARGV: since, now, budget, member. Returns every wake after `since`, later
# ones too: a host whose clock runs behind must still see wakes another host stamped "in the future".
_SPEND_WAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local times = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES')
if #times / 2 < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('EXPIRE', KEYS[1], 86400)
end
return times
"""

# KEYS: stream, bytes, urgent, archive, agents, names, markers, auto wakes, wakes, take lock. ARGV: id.
# Returns the messages archived, or -1 while a taker is claiming (then nothing changed).
_RETIRE = """
if redis.call('EXISTS', KEYS[10]) == 1 then return -1 end
local entries = redis.call('XRANGE', KEYS[1], '-', '+')
for _, entry in ipairs(entries) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'm' then redis.call('RPUSH', KEYS[4], fields[i + 1]) end
  end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[8], KEYS[9])
redis.call('HDEL', KEYS[5], ARGV[1])
for _, key in ipairs({KEYS[6], KEYS[7]}) do
  local pairs_ = redis.call('HGETALL', key)
  for i = 1, #pairs_, 2 do
    if string.lower(pairs_[i + 1]) == ARGV[1] then redis.call('HDEL', key, pairs_[i]) end
  end
end
return #entries
"""

# KEYS: the holder's stream, bytes, urgent set, take lock; the taker's stream, bytes, urgent set; then
# one receipt key per message. ARGV: group, changed, then (stream id, new line, urgent, receipt doc)
# quadruples. Returns the stream ids moved (those still there and unclaimed), or -1 while a taker
# claims from the holder's mailbox (then nothing changed).
_MOVE_MAIL = """
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
local moved = {}
local n = (#ARGV - 2) / 4
for i = 1, n do
  local sid = ARGV[4 * i - 1]
  local old = redis.call('XRANGE', KEYS[1], sid, sid)
  local owner = nil
  local ok, rows = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], sid, sid, 1)
  if ok and #rows > 0 then owner = rows[1][2] end
  if #old > 0 and (owner == nil or owner == '~parked') then
    local size = 0
    local fields = old[1][2]
    for j = 1, #fields, 2 do
      if fields[j] == 'm' then size = string.len(fields[j + 1]) end
    end
    pcall(redis.call, 'XGROUP', 'CREATE', KEYS[5], ARGV[1], '0', 'MKSTREAM')
    local new_sid = redis.call('XADD', KEYS[5], '*', 'm', ARGV[4 * i])
    redis.call('INCRBY', KEYS[6], string.len(ARGV[4 * i]))
    if ARGV[4 * i + 1] == '1' then redis.call('SADD', KEYS[7], new_sid) end
    if owner ~= nil then redis.call('XACK', KEYS[1], ARGV[1], sid) end
    redis.call('XDEL', KEYS[1], sid)
    redis.call('DECRBY', KEYS[2], size)
    redis.call('SREM', KEYS[3], sid)
    local receipt = KEYS[7 + i]
    if ARGV[4 * i + 2] ~= '' and redis.call('EXISTS', receipt) == 1 then
      redis.call('HSET', receipt, 'doc', ARGV[4 * i + 2], 'sid', new_sid, 'changed', ARGV[2])
    end
    table.insert(moved, sid)
  end
end
if tonumber(redis.call('GET', KEYS[2]) or '0') <= 0 then redis.call('DEL', KEYS[2]) end
return moved
"""

_DROP_EMPTY = """
if redis.call('EXISTS', KEYS[4]) == 1 or redis.call('XLEN', KEYS[1]) > 0 then return 0 end
return redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) > 0 and 1 or 0
"""


def _warn_to_stderr(message: str) -> None:
    import sys

    sys.stderr.write(f"session-relay: {message}\n")


def _process_start(pid: int) -> str:
    from relay.host.procinfo import process_info

    info = process_info(pid)
    return info.start.replace(" ", "_") if info is not None else "0"


def _taker_is_dead(consumer: str, here: str, idle_ms: int) -> bool:
    """Is the taker named `consumer` dead? On this host its pid and start say so exactly (a live
    taker showing slowly keeps its claim); on another host, a claim idle for CLAIM_IDLE_MS."""
    host, _, rest = consumer.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != here or not pid_text.isdigit():
        return idle_ms >= CLAIM_IDLE_MS
    from relay.host.procinfo import holder_runs

    return not holder_runs(int(pid_text), start.replace("_", " "))


class RedisDelivery:
    """Mail claimed by one taker (store.Delivery's contract). `sids` are the stream ids."""

    def __init__(
        self,
        store: "RedisStore",
        recipient: str,
        sids: list[str],
        sizes: list[int],
        messages: list[Message],
        remaining: int,
        active: bool = True,
    ) -> None:
        self._store = store
        self._recipient = recipient
        self._sids = sids
        self._sizes = sizes
        self._active = active
        self.messages = messages
        self.remaining = remaining

    def ack(self, count: int | None = None) -> None:
        """Remove the first `count` (default all) for good; the rest are parked in front of newer mail."""
        if not self._active:
            return
        shown = len(self.messages) if count is None else count
        checkpoint("take:before-ack")
        self._store._ack(self._recipient, self._sids[:shown], self._sizes[:shown], self.messages[:shown])
        checkpoint("take:acked")
        self._store._park(self._recipient, self._sids[shown:])

    def close(self) -> None:
        """Release the mailbox; what was not acked stays claimed and is redelivered to the next taker."""
        if self._active:
            self._active = False
            _TAKING.discard(self._recipient)
            self._store._drop_consumer(self._recipient)

    def __enter__(self) -> "RedisDelivery":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# Mailboxes this process is taking now: a second take here claims nothing (store.Delivery's rule).
_TAKING: set[str] = set()


class RedisStore(RedisConnection, StoreBase):
    """The store in one Redis database. Public methods check ids like relay.store.files.Store's."""

    def __init__(self, url: str, warn: Callable[[str], None] = _warn_to_stderr, home: str | None = None) -> None:
        super().__init__(url)
        self.warn = warn
        if home is None:
            from relay.store.layout import relay_home

            home = relay_home()
        self.home = home  # local-only files (error.log) stay on this machine
        self._consumer = f"{self.host}:{os.getpid()}:{_process_start(os.getpid())}"
        self._local_store: Store | None = None

    # -- registry, names, markers ---------------------------------------------------------------

    def registry(self) -> Registry:
        """A consistent snapshot of every entry and name (one script; values too large are left out)."""
        with self._guard():
            agents_raw, names_raw = read_hashes(self, redis_keys.AGENTS, redis_keys.NAMES)
        agents: dict[str, Entry] = {}
        for key, raw in agents_raw.items():
            try:
                entry = jsonlite.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict):
                agents[key.decode()] = entry
        names = {k.decode(): v.decode() for k, v in names_raw.items()}
        return Registry({"agents": agents, "names": names})

    def _registry_maps(self, pipe: Any) -> tuple[dict[str, Entry], dict[str, str]]:
        """Every entry and name, read inside a WATCH (before MULTI). Read in one script on the main
        connection (values too large left in Redis, relay.store.redis_reads): `pipe`'s WATCH still
        fails the transaction when either hash changes after it."""
        registry = self.registry()
        return dict(registry.agents), dict(registry.names)

    def _in_registry_transaction(self, attempt: Callable[[Any], Any]) -> Any:
        """Run `attempt(pipe)` with the registry WATCHed: it reads, then calls pipe.multi() and queues
        its writes, which are executed here in one MULTI/EXEC; retried when another writer got in
        between (optimistic, so a dead writer never blocks anyone). Returns what `attempt` returned;
        an `attempt` that returns before pipe.multi() writes nothing."""
        with self._guard():
            client = self._redis()
            for _ in range(100):
                with client.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(redis_keys.AGENTS, redis_keys.NAMES)
                        result = attempt(pipe)
                        if pipe.explicit_transaction:
                            pipe.execute()
                        return result
                    except WatchError:
                        continue
        raise RelayError("session-relay: the registry in Redis kept changing; try again")

    def _register(self, session_id: str, change: "base.Registration", marker: str | None = None) -> Entry:
        """Compute the new entry and names and write them at once (_in_registry_transaction)."""

        def attempt(pipe: Any) -> Entry:
            chosen = change.name
            raw = read_field(self, redis_keys.AGENTS, session_id)
            entry = _load_entry(raw) or {"id": session_id, "dir": None, "name": None, "tool": "claude"}
            fresh = raw is None
            if change.apply(entry):
                # its dir's name, unique among all (WATCHed: two starts at once differ)
                chosen = first_name(*self._registry_maps(pipe), str(entry["dir"]))
            if change.started or fresh or "host" not in entry:
                entry["host"] = self.host  # the session's own hook runs on its host
            updates: dict[str, bytes] = {}
            drop_names: list[str] = []
            if chosen is not UNSET:
                updates, drop_names = self._name_change(pipe, session_id, chosen)
                entry["name"] = chosen
            entry["lastSeen"] = now_iso()
            updates[session_id] = to_json(entry)
            pipe.multi()
            self._queue_names(pipe, updates, drop_names, None if chosen is UNSET else chosen, session_id)
            if marker is not None:
                pipe.hset(redis_keys.MARKERS, marker, session_id)
            checkpoint("register:before-write")
            return dict(entry)

        entry = self._in_registry_transaction(attempt)
        self._note_hosted(session_id, change.directory, change.tool)
        return entry

    def _name_change(self, pipe: Any, session_id: str, name: object) -> tuple[dict[str, bytes], list[str]]:
        """Inside a WATCH: the entries of other sessions that binding `name` changes (bind_name) and
        the names that go."""
        agents, names = self._registry_maps(pipe)
        before = set(names)
        changed = base.bind_name(agents, names, session_id, None if name is None else str(name))
        return {i: to_json(agents[i]) for i in changed}, sorted(before - set(names))

    @staticmethod
    def _queue_names(pipe: Any, updates: dict[str, bytes], drop: list[str], name: object, session_id: str) -> None:
        """After pipe.multi(): write the changed entries, drop the names that went, bind `name`."""
        pipe.hset(redis_keys.AGENTS, mapping=updates)
        if drop:
            pipe.hdel(redis_keys.NAMES, *drop)
        if name is not None:
            pipe.hset(redis_keys.NAMES, str(name), session_id)

    def move_name(self, name: str, holder: SessionId, taker: SessionId) -> list[str] | None:
        """StoreBase.move_name: the registry change in one MULTI/EXEC (WATCHed), then the mail."""

        def attempt(pipe: Any) -> str | None:
            names = {k.decode(): v.decode() for k, v in read_hashes(self, redis_keys.NAMES)[0].items()}
            held = base.holds_name(names, holder, name)
            entry = _load_entry(read_field(self, redis_keys.AGENTS, taker))
            if held is None or entry is None:
                return None
            updates, drop_names = self._name_change(pipe, taker, held)
            entry["name"] = held
            updates[taker] = to_json(entry)
            pipe.multi()
            self._queue_names(pipe, updates, drop_names, held, taker)
            return held

        held = self._in_registry_transaction(attempt)
        if held is None:
            return None
        with self._guard():
            return self._move_mail(self._redis(), held, holder, taker)

    def _move_mail(self, client: Any, name: str, holder: str, taker: str) -> list[str]:
        """The holder's mail sent to `name` that no taker has claimed, moved to the taker's stream in
        one script (which skips whatever a taker claimed meanwhile). While a taker is claiming from
        the holder's mailbox the move waits a little; past that the mail stays (at the old id)."""
        stream = redis_keys.mbox(holder)
        try:
            claimed = {
                r["message_id"].decode()
                for r in client.xpending_range(stream, GROUP, "-", "+", 10_000)
                if r["consumer"].decode() != PARKED
            }
        except redis.ResponseError:
            claimed = set()  # no group: nothing was ever taken
        moving: list[tuple[str, Message]] = []
        for row in self._peek_rows(holder, mailbox_max()):  # bounded: a planted entry is skipped
            message = _parse(row.body)
            if message is not None and row.sid not in claimed and base.sent_to_name(message, name):
                moving.append((row.sid, {**message, "to": taker, "toName": name}))
        if not moving:
            return []
        keys = [
            stream,
            redis_keys.mbytes(holder),
            redis_keys.urgent(holder),
            redis_keys.take_lock(holder),
            redis_keys.mbox(taker),
            redis_keys.mbytes(taker),
            redis_keys.urgent(taker),
            *(redis_keys.receipt(str(m.get("id")).lower() if is_uuid(m.get("id")) else "none") for _, m in moving),
        ]
        args: list[object] = [GROUP, repr(time.time())]
        for sid, message in moving:
            receipt = new_receipt(message)
            args += [sid, to_json(message), "1" if is_urgent(message) else "0", to_json(receipt) if receipt else b""]
        for _ in range(30):
            moved = self._run(_MOVE_MAIL, keys, args)
            if moved != -1:
                return [str(m.get("id")) for (sid, m) in moving if sid.encode() in set(moved)]
            time.sleep(0.1)
        self.warn(f"mail sent to {name} stayed with session {holder}: its mailbox was being taken from")
        return []

    def set_marker(self, directory: str, session_id: SessionId) -> None:
        with self._guard():
            self._redis().hset(redis_keys.MARKERS, directory, session_id)

    def marker(self, directory: str) -> str | None:
        with self._guard():
            raw = read_field(self, redis_keys.MARKERS, directory)
        return raw.decode() if raw else None

    def _record_start(self, session_id: str, directory: str, tool: str) -> Entry:
        """record_start's writes in one transaction: the marker and the entry {id, dir, tool, host}."""
        return self._register(session_id, base.Registration(directory, tool=tool, started=True), marker=directory)

    def record_end(self, session_id: SessionId) -> None:
        """SessionEnd: stamp endedAt on a registered entry (atomically); unknown ids write nothing."""
        with self._guard():
            client = self._redis()
            for _ in range(100):
                with client.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(redis_keys.AGENTS)
                        entry = _load_entry(read_field(self, redis_keys.AGENTS, session_id))
                        if entry is None:
                            return
                        entry["endedAt"] = now_iso()
                        pipe.multi()
                        pipe.hset(redis_keys.AGENTS, session_id, to_json(entry))
                        pipe.execute()
                        return
                    except WatchError:
                        continue

    # -- mail -----------------------------------------------------------------------------------

    def enqueue(self, recipient: SessionId, message: Message) -> None:
        """Queue one message (one script: quota, XADD, receipt, parent's reply); refused past the quota."""
        line = to_json(message)
        limit = mailbox_max()
        receipt = new_receipt(message)
        parent = message.get("replyTo")
        message_id = str(receipt["id"]) if receipt is not None else ""
        keys = [
            redis_keys.mbox(recipient),
            redis_keys.mbytes(recipient),
            redis_keys.urgent(recipient),
            redis_keys.receipt(message_id or "none"),
            redis_keys.receipt(str(parent).lower() if isinstance(parent, str) and is_uuid(parent) else "none"),
        ]
        args = [
            line,
            limit,
            to_json(receipt) if receipt is not None else b"",
            message_id if isinstance(parent, str) and is_uuid(parent) else "",
            repr(time.time()),
            GROUP,
            "1" if is_urgent(message) else "0",
            str(message.get("ts") or now_iso()),
        ]
        checkpoint("send:before-append")
        with self._guard():
            done, detail = self._run(_ENQUEUE, keys, args)
        checkpoint("send:appended")
        if not done:
            from relay.util.textsafe import one_line

            label = one_line(str(message.get("toName") or recipient))
            raise RelayError(
                f"the mailbox of {label} is full ({int(detail)} bytes waiting; RELAY_MAILBOX_MAX is {limit}): "
                "nothing was queued; send again after that session has read its mail"
            )

    def take(self, recipient: SessionId, budget: int = TAKE_BUDGET, select: "Select | None" = None) -> RedisDelivery:
        """Claim a bounded batch: dead takers' claims first (redelivered), then parked, then new mail."""
        if recipient in _TAKING:
            return RedisDelivery(self, recipient, [], [], [], 0, active=False)
        with self._guard():
            client = self._redis()
            if not client.exists(redis_keys.mbox(recipient)):  # never had mail: create nothing
                return RedisDelivery(self, recipient, [], [], [], 0, active=False)
            self._ensure_group(recipient)
            token = self._lock(recipient)
            _TAKING.add(recipient)
            try:
                sids, sizes, messages = self._claim(client, recipient, budget, select)
                remaining = max(int(client.xlen(redis_keys.mbox(recipient))) - len(sids), 0)
            except BaseException:
                _TAKING.discard(recipient)
                raise
            finally:
                self._run(UNLOCK, [redis_keys.take_lock(recipient)], [token])
        checkpoint("take:claimed")
        return RedisDelivery(self, recipient, sids, sizes, messages, remaining)

    def _ensure_group(self, recipient: str) -> None:
        try:
            self._redis().xgroup_create(redis_keys.mbox(recipient), GROUP, id="0", mkstream=True)
        except redis.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    def _lock(self, recipient: str) -> str:
        """The mailbox's claim lock (a few ms while claiming); LockBusy after TAKE_LOCK_WAIT."""
        token = f"{self._consumer}:{time.monotonic_ns()}"
        deadline = time.monotonic() + TAKE_LOCK_WAIT
        client = self._redis()
        key = redis_keys.take_lock(recipient)
        alive: set[bytes] = set()  # holders already seen alive: one /proc look each
        while not client.set(key, token, nx=True, px=TAKE_LOCK_MS):
            holder = read_string(self, key)
            if holder is not None and holder not in alive:
                # A taker of this host killed while claiming: its lock goes now, not in TAKE_LOCK_MS
                # (deleted only if it still holds it). Another host's holder is left to the expiry.
                if _taker_is_dead(holder.decode(errors="replace").rpartition(":")[0], self.host, 0):
                    self._run(UNLOCK, [key], [holder])
                    continue
                alive.add(holder)
            if time.monotonic() > deadline:
                raise LockBusy()
            time.sleep(0.01)
        return token

    def _claim(
        self, client: Any, recipient: str, budget: int, select: "Select | None"
    ) -> tuple[list[str], list[int], list[Message]]:
        """The three sources of a take, in the order their mail must come (docs/redis-store.md)."""
        claim = _Claim(budget, select)
        self._claim_from_dead_takers(client, recipient, claim)
        self._claim_parked(client, recipient, claim)
        self._claim_new(recipient, claim)
        if claim.to_redeliver:
            self._park(recipient, claim.to_redeliver, REDELIVER)
        return claim.sids, claim.sizes, claim.messages

    def _claim_from_dead_takers(self, client: Any, recipient: str, claim: "_Claim") -> None:
        """Step 1: claims of dead takers (and this process's own closed-unacked ones) come first and
        flagged; they are shown again, so the taker that held them may have shown them already."""
        stream = redis_keys.mbox(recipient)
        dead = sorted(self._dead_claims(client, stream), key=_sid_key)
        if dead:
            self._move(stream, dead, self._consumer)
            self._take_rows(recipient, self._read(recipient, claim, ["ids", *dead]), claim, redelivered=True)

    def _dead_claims(self, client: Any, stream: str) -> list[str]:
        """The stream ids claimed by takers judged dead (_taker_is_dead), one /proc look per taker."""
        dead: list[str] = []
        known: dict[str, bool] = {}
        for row in client.xpending_range(stream, GROUP, "-", "+", 10_000):
            owner = row["consumer"].decode()
            if owner == PARKED:
                continue
            if owner in (self._consumer, REDELIVER):
                is_dead = True
            elif owner in known:
                is_dead = known[owner]
            else:
                is_dead = _taker_is_dead(owner, self.host, row["time_since_delivered"])
                if owner.partition(":")[0] == self.host:
                    known[owner] = is_dead
            if is_dead:
                dead.append(row["message_id"].decode())
        return dead

    def _claim_parked(self, client: Any, recipient: str, claim: "_Claim") -> None:
        """Step 2: mail read but not shown by an earlier take, still in front, in order. It is read
        where it is and only what is taken moves to this taker, so a taker that dies meanwhile leaves
        it parked: never flagged as redelivered, since none of it was shown."""
        stream = redis_keys.mbox(recipient)
        parked = [r["message_id"].decode() for r in client.xpending_range(stream, GROUP, "-", "+", 10_000, PARKED)]
        if parked:
            taken = self._take_rows(recipient, self._read(recipient, claim, ["ids", *parked]), claim)
            self._move(stream, taken, self._consumer)

    def _claim_new(self, recipient: str, claim: "_Claim") -> None:
        """Step 3: new mail, a few at a time, until the budget is spent (a selective take reads it
        all): read into the parked consumer, then what is taken moves to this taker (same reason)."""
        while claim.used < claim.budget or claim.select is not None:
            rows = self._read(recipient, claim, ["new", _READ_COUNT, PARKED])
            if not rows:
                break
            taken = self._take_rows(recipient, rows, claim)
            checkpoint("take:copied")  # a crash here leaves all of them parked: delivered later, unflagged
            self._move(redis_keys.mbox(recipient), taken, self._consumer)
            if claim.select is None and claim.used >= claim.budget:
                break

    def _read(self, recipient: str, claim: "_Claim", mode: list[object]) -> list[Row]:
        """Entries as rows, measured in Redis: only bodies within the take's room cross the wire, and
        one larger than RELAY_MAILBOX_MAX never does (it is moved aside, relay.store.redis_reads)."""
        return read_entries(self, recipient, GROUP, claim.entry_max, claim.room(), not claim.sids, mode)

    def _take_rows(self, recipient: str, rows: list[Row], claim: "_Claim", redelivered: bool = False) -> list[str]:
        """Take what fits and `select` accepts (a redelivery ignores `select`: it was shown); the stream
        ids taken. Rows left alone stay where they are: parked ones stay parked, unflagged, in front;
        redelivered ones past the budget go to REDELIVER."""
        taken: list[str] = []
        for row in rows:
            message = _parse(row.body)
            if row.kind in ("big", "gone") or (row.kind == "ok" and message is None):
                self._set_aside(recipient, row)
                continue
            if message is not None and not redelivered and claim.select is not None and not claim.select(message):
                continue
            if message is None or (claim.sids and claim.used + row.size > claim.budget):
                if redelivered:
                    claim.to_redeliver.append(row.sid)
                continue
            if redelivered:
                message["redelivered"] = True
            claim.add(row.sid, row.size, message)
            taken.append(row.sid)
        return taken

    def _set_aside(self, recipient: str, row: Row) -> None:
        """An entry that cannot be delivered: one too large was already moved to the quarantine list
        in Redis, unread; one that does not parse is kept there too; one without a body is dropped."""
        where = redis_keys.quarantine(recipient)
        if row.kind == "big":
            self.warn(
                f"a {row.size}-byte entry in the mailbox of {recipient}, larger than RELAY_MAILBOX_MAX, was "
                f"moved unread to {where}; the other messages were delivered (relay doctor names it)"
            )
            return
        if row.body is not None:  # not relay's: kept for a human, never deleted (like quarantine/)
            with self._guard():
                self._redis().rpush(where, row.body)
            self.warn(
                f"an unreadable message in the mailbox of {recipient} was kept in {where}; "
                "the other messages were delivered"
            )
        self._ack(recipient, [row.sid], [len(row.body) if row.body is not None else 0], [])

    def _move(self, stream: str, sids: list[str], consumer: str) -> None:
        """Hand these claims to `consumer` (min idle 0: the caller decided)."""
        if sids:
            self._redis().xclaim(stream, GROUP, consumer, 0, sids, justid=True)

    def _park(self, recipient: str, sids: list[str], consumer: str = PARKED) -> None:
        """Hand claimed but unshown mail to the parked consumer: it stays in front, unflagged (or
        to REDELIVER: first again, still flagged)."""
        if sids:
            with self._guard():
                self._redis().xclaim(redis_keys.mbox(recipient), GROUP, consumer, 0, sids, justid=True)

    def _ack(self, recipient: str, sids: list[str], sizes: list[int], messages: list[Message]) -> None:
        if not sids:
            return
        receipts = [redis_keys.receipt(str(m.get("id")).lower() if is_uuid(m.get("id")) else "none") for m in messages]
        receipts += [redis_keys.receipt("none")] * (len(sids) - len(receipts))
        keys = [redis_keys.mbox(recipient), redis_keys.mbytes(recipient), redis_keys.urgent(recipient), *receipts]
        pairs: list[object] = []
        for sid, size in zip(sids, sizes, strict=True):
            pairs += [sid, size]
        with self._guard():
            self._run(_ACK, keys, [GROUP, now_iso(), repr(time.time()), *pairs])

    def _drop_consumer(self, recipient: str) -> None:
        try:
            with self._guard():
                self._run(_DROP_CONSUMER, [redis_keys.mbox(recipient)], [GROUP, self._consumer])
        except RelayError:
            pass  # only tidiness: a leftover consumer with nothing claimed costs nothing

    def peek_batch(self, recipient: SessionId, budget: int | None) -> tuple[list[Message], int]:
        """Waiting mail without taking it (claimed first, then pending), within about `budget` bytes."""
        stream = redis_keys.mbox(recipient)
        with self._guard():
            client = self._redis()
            claimed: set[str] = set()
            try:
                for row in client.xpending_range(stream, GROUP, "-", "+", 10_000):
                    if row["consumer"].decode() != PARKED:
                        claimed.add(row["message_id"].decode())
            except redis.ResponseError:
                pass  # no group yet: nothing was ever taken
            rows = self._peek_rows(recipient, mailbox_max() if budget is None else budget)
        inflight: list[Message] = []
        pending: list[Message] = []
        unread = 0
        for row in rows:
            message = _parse(row.body)
            unread += row.kind == "later"
            if message is None:
                continue
            message["state"] = "inflight" if row.sid in claimed else "pending"
            (inflight if row.sid in claimed else pending).append(message)
        every = inflight + pending
        if budget is None:
            return every, unread
        shown: list[Message] = []
        left = budget
        for message in every:
            size = len(to_json({k: v for k, v in message.items() if k != "state"}))
            if shown and size > left:
                break
            shown.append(message)
            left -= size
        return shown, len(every) - len(shown) + unread

    def _peek_rows(self, recipient: str, room: int) -> list[Row]:
        """Every entry of the stream as rows, in pages, with bodies only within `room` bytes in all
        (an entry larger than RELAY_MAILBOX_MAX is skipped, left where it is: a peek changes nothing)."""
        rows: list[Row] = []
        start, entry_max, first = "-", mailbox_max(), True
        while True:
            page = read_entries(self, recipient, GROUP, entry_max, room, first, ["range", start, _PEEK_PAGE], False)
            rows += page
            first = first and all(row.body is None for row in page)
            room -= sum(row.size for row in page if row.body is not None)
            if len(page) < _PEEK_PAGE:
                return rows
            start = f"({page[-1].sid}"

    def has_mail(self, recipient: SessionId) -> bool:
        with self._guard():
            return bool(self._redis().xlen(redis_keys.mbox(recipient)))

    def has_urgent(self, recipient: SessionId) -> bool:
        with self._guard():
            return bool(self._redis().scard(redis_keys.urgent(recipient)))

    def mail_stamp(self, recipient: SessionId) -> tuple[int, ...] | None:
        """(entries, bytes, last stream id's milliseconds): changes whenever mail arrives or leaves."""
        with self._guard():
            count, size, last = read_mail_stamp(self, recipient)
        if not count:
            return None
        ms, _, seq = last.partition("-")
        return (count, size, int(ms), int(seq or 0))

    # -- receipts -------------------------------------------------------------------------------

    def receipt(self, message_id: str) -> Message | None:
        if not is_uuid(message_id):
            return None
        with self._guard():
            fields = read_hashes(self, redis_keys.receipt(message_id.lower()))[0]
        return _receipt_of(fields, message_id.lower())

    def message_state(self, message_id: str) -> Message | None:
        """The receipt plus `state`: queued, taken, delivered, replied or archived."""
        if not is_uuid(message_id):
            return None
        with self._guard():
            client = self._redis()
            fields = read_hashes(self, redis_keys.receipt(message_id.lower()))[0]
            receipt = _receipt_of(fields, message_id.lower())
            if receipt is None:
                return None
            if receipt.get("repliedAt"):
                return {**receipt, "state": "replied"}
            if receipt.get("deliveredAt"):
                return {**receipt, "state": "delivered"}
            sid = (fields.get(b"sid") or b"").decode()
            stream = redis_keys.mbox(str(receipt.get("to")))
            state = "delivered"
            if sid and self._in_stream(str(receipt.get("to")), sid):
                state = "queued"
                try:
                    rows = client.xpending_range(stream, GROUP, sid, sid, 1)
                except redis.ResponseError:
                    rows = []
                if rows and rows[0]["consumer"].decode() != PARKED:
                    state = "taken"
            elif self._archived(client, str(receipt.get("to")), message_id.lower()):
                state = "archived"
        return {**receipt, "state": state}

    def _in_stream(self, recipient: str, sid: str) -> bool:
        """Is the entry `sid` still in the recipient's stream? (Its id and size only, never its body.)"""
        rows = read_entries(self, recipient, GROUP, mailbox_max(), 0, False, ["ids", sid], aside=False)
        return bool(rows) and rows[0].kind != "gone"

    @staticmethod
    def _archived(client: Any, recipient: str, message_id: str) -> bool:
        """Did gc archive the message, undelivered, when it retired its recipient? Read in pages,
        so a long archive is never loaded whole."""
        key, page = redis_keys.archive(recipient), 512
        for start in range(0, client.llen(key), page):
            if any(is_message(raw, message_id) for raw in client.lrange(key, start, start + page - 1)):
                return True
        return False

    # -- host-local state: watchers and resume locks guard this machine's processes -------------

    def _local(self) -> Store:
        """The file store under `<home>` for what only this host's processes share (watcher and
        wake locks: kernel locks that die with their holder)."""
        if self._local_store is None:
            self._local_store = Store(self.home, warn=self.warn)
        return self._local_store

    def claim_watch(self, session_id: SessionId) -> FileLock | None:
        return self._local().claim_watch(session_id)

    def watcher(self, session_id: SessionId) -> int | None:
        return self._local().watcher(session_id)

    def claim_wake(self, session_id: SessionId) -> WakeLock | None:
        return self._local().claim_wake(session_id)

    def note_ring(self, session_id: SessionId) -> None:
        self._local().note_ring(session_id)

    def last_ring(self, session_id: SessionId) -> float | None:
        return self._local().last_ring(session_id)

    def wake_note(self, session_id: SessionId) -> tuple[bool, bytes]:
        return self._local().wake_note(session_id)

    # -- wakes across hosts (docs/redis-store.md): a session's wake rings on its own host -------

    def _note_hosted(self, session_id: str, directory: object, tool: object) -> None:
        """Keep, on this host only, the dir and tool a registration made here gave: what this host's
        doorbell server rings with (`hosted`). Redis is shared with every peer that has the URL, so
        an entry there must not choose the dir or the program a wake runs here."""
        if directory is UNSET and tool is UNSET:
            return
        path = self._hosted_path(session_id)
        known = self._read_hosted(path) or {}
        noted = {
            "dir": directory if directory is not UNSET else known.get("dir"),
            "tool": tool if tool is not UNSET else known.get("tool"),
        }
        if noted != known:
            fileio.ensure_private_dir(self.home, allow_symlink=True, is_home=True)
            fileio.ensure_private_dir(os.path.dirname(path))
            fileio.atomic_write(path, to_json(noted) + b"\n")

    def hosted(self, session_id: SessionId) -> tuple[str, str] | None:
        """The (dir, tool) a registration on this host recorded for the session; None when none did."""
        noted = self._read_hosted(self._hosted_path(session_id))
        if noted is None:
            return None
        directory, tool = noted.get("dir"), noted.get("tool")
        return (directory, tool) if isinstance(directory, str) and isinstance(tool, str) else None

    def _hosted_path(self, session_id: str) -> str:
        return os.path.join(self.home, "hosted", mailbox_name(session_id).removesuffix(".jsonl") + ".json")

    @staticmethod
    def _read_hosted(path: str) -> dict[str, object] | None:
        try:
            raw = fileio.read_file(path)
            value = jsonlite.loads(raw) if raw else None
        except (RelayError, ValueError):
            return None  # unreadable or planted: as if this host recorded nothing
        return value if isinstance(value, dict) else None

    def wake_host(self, entry: Entry) -> str | None:
        """The host a session runs on when that is not this one (its `host`; RELAY_HOST overrides
        this host's name); None when its wake rings here (also for an entry without `host`)."""
        host = entry.get("host")
        return host if isinstance(host, str) and host and host != self.host else None

    def doorbells(self) -> "RedisDoorbells":
        """The hosts' doorbell streams: posting a wake to another host, serving this host's."""
        from relay.store.redis_doorbells import RedisDoorbells

        return RedisDoorbells(self)

    # -- wake budgets and auto-wake counts: shared, so every host counts the same wakes ---------

    def auto_wakes(self, session_id: SessionId) -> int:
        with self._guard():
            raw = read_string(self, redis_keys.auto_wakes(session_id))
        return int(raw) if raw and raw.isdigit() else 0

    def count_auto_wake(self, session_id: SessionId) -> int:
        with self._guard():
            return int(self._redis().incr(redis_keys.auto_wakes(session_id)))

    def reset_auto_wakes(self, session_id: SessionId) -> None:
        with self._guard():
            self._redis().delete(redis_keys.auto_wakes(session_id))

    def wake_times(self, session_id: SessionId, since: float, until: float) -> list[float]:
        """When the session's wakes in (since, until] rang, oldest first."""
        with self._guard():
            raw = self._redis().zrangebyscore(redis_keys.wakes(session_id), f"({since!r}", repr(until))
        return sorted(float(member.decode().partition(":")[0]) for member in raw)

    def spend_wake(self, session_id: SessionId, since: float, now: float, budget: int) -> list[float]:
        """Atomically: the wakes after `since`, plus one at `now` when fewer than `budget`."""
        member = f"{now!r}:{os.getpid()}:{time.monotonic_ns()}"
        with self._guard():
            raw = self._run(_SPEND_WAKE, [redis_keys.wakes(session_id)], [repr(since), repr(now), budget, member])
        return sorted(float(raw[i + 1]) for i in range(0, len(raw), 2))

    # -- collection (`relay gc`) and diagnosis ------------------------------------------------------

    def gc_due(self, interval: float) -> bool:
        """Per host (gc judges sessions by this host's transcripts): due `interval` s after the
        last collection, counting from the first call, which only sets the stamp."""
        key = redis_keys.gc_stamp(self.host)
        with self._guard():
            client = self._redis()
            raw = read_string(self, key)
            if raw is None:
                client.set(key, repr(time.time()), nx=True)
                return False
        return float(raw) + interval <= time.time()

    def touch_gc_stamp(self) -> None:
        with self._guard():
            self._redis().set(redis_keys.gc_stamp(self.host), repr(time.time()))

    def mailbox_files(self) -> list[tuple[str, int]]:
        """("<id>.jsonl", bytes of mail) of every mailbox stream, the file store's shape."""
        found: list[tuple[str, int]] = []
        with self._guard():
            client = self._redis()
            for key in client.scan_iter(match=redis_keys.mbox("*"), count=500):
                session_id = key.decode().removeprefix(redis_keys.mbox(""))
                found.append((f"{session_id}.jsonl", _count(read_string(self, redis_keys.mbytes(session_id)))))
        return found

    def drop_empty_mailbox(self, name: str) -> bool:
        session_id = os.path.basename(name).removesuffix(".jsonl")
        keys = [
            redis_keys.mbox(session_id),
            redis_keys.mbytes(session_id),
            redis_keys.urgent(session_id),
            redis_keys.take_lock(session_id),
        ]
        with self._guard():
            return bool(self._run(_DROP_EMPTY, keys, []))

    def on_this_host(self, entry: Entry) -> bool:
        """Does `entry` run on this machine (its `host` is this host's name)? An entry without one is
        not claimed: only a machine that knows a session's transcripts and processes may judge it."""
        return entry.get("host") == self.host

    def archive_location(self) -> str:
        """Where `retire` keeps undelivered mail: lists in Redis (the URL without its password)."""
        return f"{redact(self.url)} relay:archive:<id>"

    def retire(self, session_id: SessionId) -> int:
        """Forget a session (entry, names, markers, counters) in one script; its undelivered mail is
        appended to the list relay:archive:<id>, never deleted. LockBusy while a taker claims."""
        keys = [
            redis_keys.mbox(session_id),
            redis_keys.mbytes(session_id),
            redis_keys.urgent(session_id),
            redis_keys.archive(session_id),
            redis_keys.AGENTS,
            redis_keys.NAMES,
            redis_keys.MARKERS,
            redis_keys.auto_wakes(session_id),
            redis_keys.wakes(session_id),
            redis_keys.take_lock(session_id),
        ]
        with self._guard():
            archived = int(self._run(_RETIRE, keys, [session_id]))
        if archived < 0:
            raise LockBusy()
        return archived

    # -- the journal: one capped stream every host appends to and reads (docs/journal.md) -----------

    def journal_append(self, *events: Message) -> None:
        """XADD the events (their bounded lines) to the journal stream in one round trip, trimming it
        to about JOURNAL_MAX."""
        from relay.store.journal_files import encode

        with self._guard():
            pipe = self._redis().pipeline(transaction=False)
            for event in events:
                pipe.xadd(redis_keys.JOURNAL, {"e": encode(event).rstrip(b"\n")}, maxlen=JOURNAL_MAX, approximate=True)
            pipe.execute()

    def journal_read(self, cursor: str | None, since: float | None = None) -> tuple[list[Message], str | None]:
        """The events after the stream id `cursor` (or from `since`), oldest first, and the last id read."""
        start = "-" if since is None else f"{max(0, int(since * 1000))}-0"
        if cursor:
            start = f"({cursor}"
        from relay.store.journal_files import MAX_EVENT_BYTES

        events: list[Message] = []
        with self._guard():
            while True:
                page = read_journal(self, start, _JOURNAL_PAGE, MAX_EVENT_BYTES)
                for row in page:
                    cursor = row.sid
                    event = _parse(row.body)
                    if event is not None:
                        events.append(event)
                if len(page) < _JOURNAL_PAGE:
                    return events, cursor
                start = f"({cursor}"

    def journal_prune(self, keep_days: int, now: float | None = None) -> int:
        """Trim the stream's events older than `keep_days` days (all of it for 0); how many went."""
        with self._guard():
            client = self._redis()
            if keep_days == 0:
                count = int(client.xlen(redis_keys.JOURNAL))
                client.delete(redis_keys.JOURNAL)
                return count
            cutoff = (time.time() if now is None else now) - keep_days * 86400
            return int(client.xtrim(redis_keys.JOURNAL, minid=f"{int(cutoff * 1000)}-0", approximate=False))

    def receipt_ids(self, prefix: str) -> list[str]:
        """The ids of the receipts kept that start with `prefix`, sorted (one SCAN; glob characters in
        the prefix match only themselves)."""
        prefix = prefix.lower()
        pattern = redis_keys.receipt("") + "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix) + "*"
        with self._guard():
            keys = [key.decode() for key in self._redis().scan_iter(match=pattern, count=500)]
        ids = (key.removeprefix(redis_keys.receipt("")) for key in keys)
        return sorted(i for i in ids if i.startswith(prefix) and is_uuid(i))

    def prune_receipts(self, older_than: float, now: float | None = None) -> int:
        """Remove receipts unchanged for `older_than` seconds; how many went."""
        cutoff = (time.time() if now is None else now) - older_than
        removed = 0
        with self._guard():
            client = self._redis()
            for key in client.scan_iter(match=redis_keys.receipt("*"), count=500):
                changed = read_field(self, key.decode(), "changed")
                if changed is None or float(changed) < cutoff:
                    removed += int(client.delete(key))
        return removed

    def facts(self) -> list[tuple[str, str, str]]:
        """For `relay doctor`: where the store is, whether Redis answers, the registry's size and
        mail claimed by takers (read-only; the URL never shows its password)."""
        where = redact(self.url)
        found: list[tuple[str, str, str]] = [("store", where, "")]
        try:
            registry = self.registry()
            found.append(("registry", where, f"{len(registry.agents)} {len(registry.names)}"))
            limit = mailbox_max()
            for name, size in self.mailbox_files():
                if size > limit:
                    found.append(("over-quota", f"{where} {name}", str(size)))
            found.extend(self._set_aside_facts(registry))
        except RelayError as err:
            found.append(("unreachable", where, str(err)))
        return found

    def _set_aside_facts(self, registry: Registry) -> list[tuple[str, str, str]]:
        """("set-aside", quarantine key, the session) for every session whose mail a take set aside
        unread (too large, or not relay's); only the keys are read, never the entries."""
        found = []
        with self._guard():
            for key in sorted(self._redis().scan_iter(match=redis_keys.quarantine("*"), count=500)):
                session_id = key.decode().removeprefix(redis_keys.quarantine(""))
                name = (registry.agents.get(session_id) or {}).get("name")
                found.append(("set-aside", key.decode(), f"{name} ({session_id})" if name else session_id))
        return found


class _Claim:
    """One take's claim in progress: what it took so far, and the room left in its budget."""

    def __init__(self, budget: int, select: "Select | None") -> None:
        self.budget = budget
        self.select = select
        self.entry_max = mailbox_max()
        self.sids: list[str] = []
        self.sizes: list[int] = []
        self.messages: list[Message] = []
        self.used = 0
        self.to_redeliver: list[str] = []

    def room(self) -> int:
        """Bytes of bodies the next read may send: the budget's rest, or for a selective take (which
        looks at mail it does not take) one mailbox's worth per read."""
        return self.entry_max if self.select is not None else self.budget - self.used

    def add(self, sid: str, size: int, message: Message) -> None:
        self.sids.append(sid)
        self.sizes.append(size)
        self.messages.append(message)
        self.used += size


def _sid_key(sid: bytes | str) -> tuple[int, int]:
    text = sid.decode() if isinstance(sid, bytes) else sid
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _parse(raw: object) -> Message | None:
    if not isinstance(raw, bytes):
        return None
    try:
        value = jsonlite.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _count(raw: bytes | None) -> int:
    """A counter Redis holds (0 when absent, or not a whole number: planted)."""
    return int(raw) if raw is not None and raw.lstrip(b"-").isdigit() else 0


def _load_entry(raw: object) -> Entry | None:
    return _parse(raw)


def _receipt_of(fields: dict, message_id: str) -> Message | None:
    doc = _parse(fields.get(b"doc"))
    if doc is None or doc.get("id") != message_id:
        return None
    for key in ("deliveredAt", "repliedAt", "replyId"):
        value = fields.get(key.encode())
        if value is not None:
            doc[key] = value.decode()
    return doc

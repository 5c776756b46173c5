"""Bounded reads of what peers wrote into Redis (docs/redis-store.md, "Entries too large to read").

Anyone holding the URL can write any key under `relay:`: a mailbox stream entry of 60 MB, a registry
value of 60 MB. redis-py loads a reply whole, so a plain XRANGE or HGETALL would make every hook of
the session that reads it slow and huge. Here the size is measured inside Redis, in Lua, and only
values within the bound cross the wire:

- a mailbox entry larger than RELAY_MAILBOX_MAX (no message relay queued can be: `enqueue` refuses
  it) is never sent to the client. A take moves it aside, server-side, to `relay:quarantine:<id>`,
  kept for a person (`relay doctor` names it), and delivers the mail around it; a peek skips it.
- an entry within the bound but past what the caller still has room for comes back as its id and
  size only ("later"), so a take's reply is bounded by its budget, not by the mailbox.
- registry and receipt hash values larger than VALUE_MAX are left out, as if they did not parse.
"""

from typing import TYPE_CHECKING, NamedTuple

from relay.store import redis_keys

if TYPE_CHECKING:
    from relay.store.redis_client import RedisConnection

# A registry entry (a few hundred bytes of JSON), a name, an id, a receipt field: far below this.
VALUE_MAX = 64 * 1024

# KEYS: stream, quarantine list, bytes, urgent set. ARGV: group, entry max, room, first ('1' when the
# caller holds nothing yet: one entry within the max is sent whatever the room), aside ('1': move
# oversize entries to the quarantine list), the body's field, mode, then for mode 'new' the count to
# read and the consumer to read into, for 'ids' the stream ids, for 'range' the first id and the count.
# Returns one row per entry: {id, size, kind[, body]}, kind 'ok' (with the body field's value),
# 'later' (past the room), 'big' (larger than the max: moved aside or skipped), 'gone' (no body).
READ_ENTRIES = """
local max, room = tonumber(ARGV[2]), tonumber(ARGV[3])
local free = ARGV[4] == '1'
local entries = {}
if ARGV[7] == 'new' then
  local got = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[9], 'COUNT', ARGV[8], 'STREAMS', KEYS[1], '>')
  if got then entries = got[1][2] end
elseif ARGV[7] == 'ids' then
  for i = 8, #ARGV do
    local row = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    entries[#entries + 1] = row[1] or {ARGV[i], false}
  end
else
  entries = redis.call('XRANGE', KEYS[1], ARGV[8], '+', 'COUNT', ARGV[9])
end
local out, used, aside = {}, 0, false
for _, entry in ipairs(entries) do
  local sid, fields, body, size = entry[1], entry[2], nil, 0
  if fields then
    for j = 1, #fields, 2 do
      if fields[j] == ARGV[6] then body = fields[j + 1] end
      size = size + string.len(fields[j + 1]) + (fields[j] == ARGV[6] and 0 or string.len(fields[j]))
    end
  end
  if size > max then
    if ARGV[5] == '1' then
      redis.call('RPUSH', KEYS[2], body or table.concat(fields, ' '))
      redis.call('XACK', KEYS[1], ARGV[1], sid)
      if redis.call('XDEL', KEYS[1], sid) == 1 and body then
        local held = tonumber(redis.call('GET', KEYS[3]) or '0')
        redis.call('DECRBY', KEYS[3], math.min(held, string.len(body)))
        redis.call('SREM', KEYS[4], sid)
      end
      aside = true
    end
    out[#out + 1] = {sid, size, 'big'}
  elseif not body then
    out[#out + 1] = {sid, size, 'gone'}
  elseif (free and used == 0) or used + size <= room then
    used = used + size
    out[#out + 1] = {sid, size, 'ok', body}
  else
    out[#out + 1] = {sid, size, 'later'}
  end
end
if aside and tonumber(redis.call('GET', KEYS[3]) or '0') <= 0 then redis.call('DEL', KEYS[3]) end
return out
"""

# KEYS: hashes. ARGV: the largest field or value kept. Returns, per hash, its fields and values as one
# flat list without the pairs that are too large. HSTRLEN measures a value where it lies; HGETALL would
# copy every value, however large, into the script first.
READ_HASHES = """
local max, out = tonumber(ARGV[1]), {}
for k, key in ipairs(KEYS) do
  local kept = {}
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if string.len(field) <= max and redis.call('HSTRLEN', key, field) <= max then
      kept[#kept + 1] = field
      kept[#kept + 1] = redis.call('HGET', key, field)
    end
  end
  out[k] = kept
end
return out
"""

# KEYS: one hash. ARGV: field, the largest value returned. The value, or nil when absent or too large.
READ_FIELD = """
if redis.call('HSTRLEN', KEYS[1], ARGV[1]) > tonumber(ARGV[2]) then return false end
return redis.call('HGET', KEYS[1], ARGV[1])
"""


# KEYS: one string. ARGV: the longest value returned. The value, or nil when absent or longer.
READ_STRING = """
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) then return false end
return redis.call('GET', KEYS[1])
"""

# KEYS: stream, bytes. Returns {entries, bytes, the last entry's id}; only the id of that entry leaves
# Redis (XREVRANGE from the client would send its body, however large).
MAIL_STAMP = """
local count = redis.call('XLEN', KEYS[1])
if count == 0 then return {0, 0, ''} end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local size = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
return {count, math.floor(size), last[1] and last[1][1] or '0-0'}
"""


class Row(NamedTuple):
    """One mailbox entry as READ_ENTRIES saw it; `body` only for kind 'ok'."""

    sid: str
    size: int
    kind: str
    body: bytes | None


def read_entries(
    connection: "RedisConnection",
    recipient: str,
    group: str,
    entry_max: int,
    room: int,
    first: bool,
    mode: list[object],
    aside: bool = True,
) -> list[Row]:
    """Run READ_ENTRIES on the recipient's stream (call inside the connection's guard)."""
    keys = [
        redis_keys.mbox(recipient),
        redis_keys.quarantine(recipient),
        redis_keys.mbytes(recipient),
        redis_keys.urgent(recipient),
    ]
    args = [group, entry_max, max(room, 0), "1" if first else "0", "1" if aside else "0", "m", *mode]
    return _rows(connection._run(READ_ENTRIES, keys, args))


def read_journal(connection: "RedisConnection", start: str, count: int, event_max: int) -> list[Row]:
    """Up to `count` journal events from stream id `start` on, without those larger than `event_max`
    (planted: relay writes none, relay.store.journal_files.encode) (inside the guard)."""
    keys = [redis_keys.JOURNAL] * 4
    args = ["", event_max, event_max * count, "1", "0", "e", "range", start, count]
    return _rows(connection._run(READ_ENTRIES, keys, args))


def _rows(rows: list) -> list[Row]:
    return [Row(row[0].decode(), int(row[1]), row[2].decode(), row[3] if len(row) > 3 else None) for row in rows]


def read_hashes(connection: "RedisConnection", *keys: str) -> list[dict[bytes, bytes]]:
    """HGETALL of each hash without the fields or values larger than VALUE_MAX (inside the guard)."""
    found = connection._run(READ_HASHES, list(keys), [VALUE_MAX])
    return [dict(zip(flat[::2], flat[1::2], strict=True)) for flat in found]


def read_field(connection: "RedisConnection", key: str, field: str) -> bytes | None:
    """HGET, but None for a value larger than VALUE_MAX (inside the guard)."""
    value = connection._run(READ_FIELD, [key], [field, VALUE_MAX])
    return value if isinstance(value, bytes) else None


def read_string(connection: "RedisConnection", key: str, limit: int = 256) -> bytes | None:
    """GET of a short value (a counter, a stamp, a lock's holder): None when absent or longer than
    `limit` (inside the guard)."""
    value = connection._run(READ_STRING, [key], [limit])
    return value if isinstance(value, bytes) else None


def mail_stamp(connection: "RedisConnection", recipient: str) -> tuple[int, int, str]:
    """(entries, bytes, last stream id) of a mailbox, without any entry's body (inside the guard)."""
    count, size, last = connection._run(MAIL_STAMP, [redis_keys.mbox(recipient), redis_keys.mbytes(recipient)], [])
    return int(count), int(size), last.decode()

"""The hosts' doorbell streams in Redis, the store's half of the wake across hosts (docs/redis-store.md):
a wake of a session on another host is posted to that host's stream, and the `relay doorbell --serve`
there (relay.faces.doorbell_server) reads, acks and answers it through this class.

Keys (named in relay.store.redis_keys):

    doorbell(<host>)          STREAM of wake requests for sessions on <host>, field `r` = the
                              request's JSON; group `ringers`, one consumer `server`
    doorbell_alive(<host>)    "<pid> <start>" of the host's one server, SET PX ALIVE_MS and
                              renewed by its heartbeat: a waker posts only while it exists
    doorbell_answers(<req>)   LIST of the server's answers to one request (refused, started or
                              error; then ended), kept ANSWER_TTL seconds
"""

import json
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

import redis

from relay.store import redis_keys
from relay.util.errors import RelayError
from relay.util.textsafe import one_line

if TYPE_CHECKING:
    from relay.store.redis_client import RedisConnection

GROUP = "ringers"
CONSUMER = "server"  # one server per host (claim_server), so its unacked requests are its own
ALIVE_MS = 15_000
ANSWER_TTL = 600
STREAM_MAX = 1_000

# The stream and its group, from its first entry on (an existing group stays as it is).
_GROUP = """
pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
return 1
"""

# Set the liveness key when it is free or ours; 0 when another server holds it.
_BEAT = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Take the key over from a holder this host knows is dead (the value still names it).
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


def _holder_is_dead(value: str) -> bool:
    """Is the server a liveness key on this host names gone (or its pid reused)?"""
    from relay.host.procinfo import holder_runs

    pid_text, _, start = value.partition(" ")
    return not pid_text.isdigit() or not holder_runs(int(pid_text), start)


class RedisDoorbells:
    """The doorbell streams of every host sharing one Redis (the DoorbellsAPI of RedisStore), over its connection."""

    def __init__(self, store: "RedisConnection") -> None:
        from relay.host.procinfo import process_info

        self._store = store
        self.here = store.host
        info = process_info(os.getpid())
        self._me = f"{os.getpid()} {info.start if info is not None else '0'}"

    def _redis(self) -> Any:
        return self._store._redis()

    # -- the waker's side -----------------------------------------------------------------------

    def serving(self, host: str) -> bool:
        with self._store._guard():
            return bool(self._redis().exists(redis_keys.doorbell_alive(host)))

    def served_hosts(self) -> list[str]:
        prefix = redis_keys.doorbell_alive("")
        with self._store._guard():
            found = self._redis().scan_iter(match=redis_keys.doorbell_alive("*"), count=500)
            return sorted(key.decode().removeprefix(prefix) for key in found)

    def post(self, host: str, request: dict[str, object]) -> str:
        request_id = str(uuid.uuid4())
        body = json.dumps({**request, "rid": request_id, "from": self.here, "ts": time.time()})
        with self._store._guard():
            self._redis().xadd(redis_keys.doorbell(host), {"r": body}, maxlen=STREAM_MAX, approximate=True)
        return request_id

    def answer(self, request_id: str, seconds: float) -> dict[str, object] | None:
        deadline = time.monotonic() + seconds
        with self._store._guard():
            client = self._redis()
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                got = client.blpop([redis_keys.doorbell_answers(request_id)], timeout=min(1.0, max(left, 0.01)))
                if got:
                    value = _load(got[1])
                    if value is not None:
                        return value

    # -- the server's side ----------------------------------------------------------------------

    def claim_server(self) -> None:
        key = redis_keys.doorbell_alive(self.here)
        with self._store._guard():
            client = self._redis()
            self._store._run(_GROUP, [redis_keys.doorbell(self.here)], [GROUP])
            if client.set(key, self._me, px=ALIVE_MS, nx=True):
                return
            held = client.get(key)
            holder = held.decode("ascii", "replace") if held else ""
            if held is None or _holder_is_dead(holder):
                if held is None and client.set(key, self._me, px=ALIVE_MS, nx=True):
                    return
                if held is not None and self._store._run(_TAKE_OVER, [key], [self._me, ALIVE_MS, held]):
                    return
        pid = holder.partition(" ")[0]
        raise RelayError(
            f"a doorbell server already serves {one_line(self.here)} (pid {one_line(pid)}): one per host; "
            "stop it first, or set RELAY_HOST to serve under another name"
        )

    def heartbeat(self) -> bool:
        with self._store._guard():
            return bool(self._store._run(_BEAT, [redis_keys.doorbell_alive(self.here)], [self._me, ALIVE_MS]))

    def release_server(self) -> None:
        from relay.store.redis_client import UNLOCK

        with self._store._guard():
            self._store._run(UNLOCK, [redis_keys.doorbell_alive(self.here)], [self._me])

    def read(self, backlog: bool, block_ms: int) -> list[tuple[str, dict[str, object] | None]]:
        stream = redis_keys.doorbell(self.here)
        with self._store._guard():
            try:
                if backlog:
                    got = self._redis().xreadgroup(GROUP, CONSUMER, {stream: "0"}, count=1)
                else:
                    got = self._redis().xreadgroup(GROUP, CONSUMER, {stream: ">"}, count=1, block=block_ms)
            except redis.ResponseError as err:
                if not str(err).startswith(("NOGROUP", "UNBLOCKED")):
                    raise
                # The stream went (a Redis restarted without its data, or deleted while this read
                # waited on it), and its group with it: start them again.
                self._store._run(_GROUP, [stream], [GROUP])
                return []
        rows = got[0][1] if got else []
        return [(sid.decode(), _load((fields or {}).get(b"r"))) for sid, fields in rows]

    def ack(self, stream_id: str) -> None:
        with self._store._guard():
            pipe = self._redis().pipeline(transaction=True)
            pipe.xack(redis_keys.doorbell(self.here), GROUP, stream_id)
            pipe.xdel(redis_keys.doorbell(self.here), stream_id)
            pipe.execute()

    def reply(self, request_id: str, answer: dict[str, object]) -> None:
        with self._store._guard():
            pipe = self._redis().pipeline(transaction=True)
            pipe.rpush(redis_keys.doorbell_answers(request_id), json.dumps(answer))
            pipe.expire(redis_keys.doorbell_answers(request_id), ANSWER_TTL)
            pipe.execute()


def _load(raw: object) -> dict[str, object] | None:
    if not isinstance(raw, bytes):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None

"""Wake across hosts (docs/redis-store.md): a session's doorbell rings only on its own host.

A wake starts the agent CLI in the session's project dir, and reads its liveness from /proc: both
exist only on the machine the session runs on. So `relay wake` of a session whose entry names
another host either refuses with the command to run there (exit 1), or, when that host runs
`relay doorbell --serve`, posts a request to that host's stream; the server there rings the local
doorbell under every guardrail of docs/wake.md (relay.usecases.wakeguard) and answers the waker.

Keys (Redis; the rest of the store's keys are in relay.store.redisdb):

    relay:doorbell:<host>          STREAM of wake requests for sessions on <host>, field `r` = the
                                   request's JSON; group `ringers`, one consumer `server`
    relay:doorbell-alive:<host>    "<pid> <start>" of the host's one server, SET PX ALIVE_MS and
                                   renewed every BEAT seconds: a waker posts only while it exists
    relay:doorbell-answer:<req id> LIST of the server's answers to one request (refused, started or
                                   error; then ended), kept ANSWER_TTL seconds

The server is bounded: it waits with XREADGROUP BLOCK (no busy loop), rings at most `--per-minute`
wakes a minute and RUNNING_MAX at once (past that, requests wait in the stream), acks each request
once handled, and stops cleanly on SIGTERM or SIGINT, leaving the programs it woke to finish (their
resume locks still name them). A request a killed server read but never acked is read again, first,
when a server starts on that host again: the guardrails make handling it twice harmless.
"""

import json
import os
import signal
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from relay.domain.ids import is_uuid
from relay.util.errors import RelayError
from relay.util.textsafe import one_line

if TYPE_CHECKING:
    from relay.store.contract import DoorbellsAPI, StoreAPI
    from relay.store.redisdb import RedisStore
    from relay.usecases.wake import Started

GROUP = "ringers"
CONSUMER = "server"  # one server per host (claim_server), so its unacked requests are its own
ALIVE_MS = 15_000
BEAT = 3.0
BLOCK_MS = 1_000  # well inside the client's 2.5 s socket timeout
ANSWER_WAIT = 15.0
ANSWER_TTL = 600
STREAM_MAX = 1_000
RUNNING_MAX = 4
DEFAULT_PER_MINUTE = 6

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

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Take the key over from a holder this host knows is dead (the value still names it).
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


def _stream(host: str) -> str:
    return f"relay:doorbell:{host}"


def _alive(host: str) -> str:
    return f"relay:doorbell-alive:{host}"


def _answers(request_id: str) -> str:
    return f"relay:doorbell-answer:{request_id}"


def _holder_is_dead(value: str) -> bool:
    """Is the server a liveness key on this host names gone (or its pid reused)?"""
    from relay.host.procinfo import is_zombie, same_process

    pid_text, _, start = value.partition(" ")
    if not pid_text.isdigit():
        return True
    pid = int(pid_text)
    return not same_process(pid, start) or is_zombie(pid)


class RedisDoorbells:
    """The doorbell streams of every host sharing one Redis (the DoorbellsAPI of RedisStore)."""

    def __init__(self, store: "RedisStore") -> None:
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
            return bool(self._redis().exists(_alive(host)))

    def served_hosts(self) -> list[str]:
        with self._store._guard():
            keys = self._redis().scan_iter(match=_alive("*"), count=500)
            return sorted(key.decode().removeprefix(_alive("")) for key in keys)

    def post(self, host: str, request: dict[str, object]) -> str:
        request_id = str(uuid.uuid4())
        body = json.dumps({**request, "rid": request_id, "from": self.here, "ts": time.time()})
        with self._store._guard():
            self._redis().xadd(_stream(host), {"r": body}, maxlen=STREAM_MAX, approximate=True)
        return request_id

    def answer(self, request_id: str, seconds: float) -> dict[str, object] | None:
        deadline = time.monotonic() + seconds
        with self._store._guard():
            client = self._redis()
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                got = client.blpop([_answers(request_id)], timeout=min(1.0, max(left, 0.01)))
                if got:
                    value = _load(got[1])
                    if value is not None:
                        return value

    # -- the server's side ----------------------------------------------------------------------

    def claim_server(self) -> None:
        key = _alive(self.here)
        with self._store._guard():
            client = self._redis()
            client.eval(_GROUP, 1, _stream(self.here), GROUP)
            if client.set(key, self._me, px=ALIVE_MS, nx=True):
                return
            held = client.get(key)
            holder = held.decode("ascii", "replace") if held else ""
            if held is None or _holder_is_dead(holder):
                if held is None and client.set(key, self._me, px=ALIVE_MS, nx=True):
                    return
                if held is not None and client.eval(_TAKE_OVER, 1, key, self._me, ALIVE_MS, held):
                    return
        pid = holder.partition(" ")[0]
        raise RelayError(
            f"a doorbell server already serves {one_line(self.here)} (pid {one_line(pid)}): one per host; "
            "stop it first, or set RELAY_HOST to serve under another name"
        )

    def heartbeat(self) -> bool:
        with self._store._guard():
            return bool(self._redis().eval(_BEAT, 1, _alive(self.here), self._me, ALIVE_MS))

    def release_server(self) -> None:
        with self._store._guard():
            self._redis().eval(_RELEASE, 1, _alive(self.here), self._me)

    def read(self, backlog: bool, block_ms: int) -> list[tuple[str, dict[str, object] | None]]:
        stream = _stream(self.here)
        with self._store._guard():
            if backlog:
                got = self._redis().xreadgroup(GROUP, CONSUMER, {stream: "0"}, count=1)
            else:
                got = self._redis().xreadgroup(GROUP, CONSUMER, {stream: ">"}, count=1, block=block_ms)
        rows = got[0][1] if got else []
        return [(sid.decode(), _load((fields or {}).get(b"r"))) for sid, fields in rows]

    def ack(self, stream_id: str) -> None:
        with self._store._guard():
            pipe = self._redis().pipeline(transaction=True)
            pipe.xack(_stream(self.here), GROUP, stream_id)
            pipe.xdel(_stream(self.here), stream_id)
            pipe.execute()

    def reply(self, request_id: str, answer: dict[str, object]) -> None:
        with self._store._guard():
            pipe = self._redis().pipeline(transaction=True)
            pipe.rpush(_answers(request_id), json.dumps(answer))
            pipe.expire(_answers(request_id), ANSWER_TTL)
            pipe.execute()


def _load(raw: object) -> dict[str, object] | None:
    if not isinstance(raw, bytes):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# -- `relay doorbell [--serve]` -------------------------------------------------------------------


def show_served(store: "StoreAPI") -> int:
    """`relay doorbell`: the hosts whose doorbell is served now, one a line."""
    bells = store.doorbells()
    if bells is None:
        print("no doorbell servers with the local store: every session is on this machine")
        return 0
    hosts = bells.served_hosts()
    if not hosts:
        print(f"no host serves its doorbell (run `relay doorbell --serve` on a host; this one is {bells.here})")
    for host in hosts:
        print(one_line(host) + ("  (this host)" if host == bells.here else ""))
    return 0


class _Running:
    """A program this server woke (relay.usecases.wake.Started), and since when, to report when it ends."""

    def __init__(self, started: "Started") -> None:
        self.proc, self.ticket, self.label, self.tool, self.rid = (
            started.proc,
            started.ticket,
            started.label,
            started.tool,
            started.rid,
        )
        self.began = time.monotonic()


def serve(store: "StoreAPI", per_minute: int = DEFAULT_PER_MINUTE) -> int:
    """Serve this host's doorbell until SIGTERM or SIGINT: ring each request under the guardrails."""
    bells = store.doorbells()
    if bells is None:
        raise RelayError(
            "doorbell --serve needs the Redis store (AGENT_RELAY_URL=redis://...): with the local store every "
            "session is on this machine, so there are no other hosts to serve; `relay wake` rings them here"
        )
    stop: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    running: list[_Running] = []
    try:
        bells.claim_server()
        try:
            _log(f"serving the doorbell of {bells.here} (at most {per_minute} wakes a minute); stop with SIGTERM")
            _loop(store, bells, per_minute, stop, running)
        finally:
            bells.release_server()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _reap(bells, running)
    left = f"; {len(running)} woken program(s) still run on their own" if running else ""
    _log(f"stopped serving the doorbell of {bells.here}{left}")
    return 0


def _log(text: str) -> None:
    print(f"relay: {one_line(text)}", flush=True)


def _loop(store: "StoreAPI", bells: "DoorbellsAPI", per_minute: int, stop: list[int], running: list[_Running]) -> None:
    rung: deque[float] = deque()
    backlog = True  # first what a killed server of this host read and never acked
    next_beat = 0.0
    while not stop:
        now = time.monotonic()
        if now >= next_beat:
            if not bells.heartbeat():
                raise RelayError(f"another doorbell server took over {one_line(bells.here)}; this one stops")
            next_beat = now + BEAT
        _reap(bells, running)
        while rung and rung[0] <= now - 60:
            rung.popleft()
        if len(running) >= RUNNING_MAX or len(rung) >= per_minute:
            time.sleep(0.5)  # requests wait in the stream meanwhile
            continue
        got = bells.read(backlog, BLOCK_MS)
        if backlog and not got:
            backlog = False
        for stream_id, request in got:
            if _handle(store, bells, stream_id, request, running):
                rung.append(time.monotonic())


def _handle(
    store: "StoreAPI", bells: "DoorbellsAPI", stream_id: str, request: dict[str, object] | None, running: list[_Running]
) -> bool:
    """Ring one request (or refuse it), ack it, and answer the waker; True when a program started."""
    rid = request.get("rid") if request is not None else None
    from relay.util import faults

    faults.checkpoint("doorbell-handle")  # crash tests: read, not yet handled nor acked
    try:
        from relay.usecases.wake import ring_request

        answer, woke = ring_request(store, request)
        started = _Running(woke) if woke is not None else None
    except Exception as err:  # one bad request never stops the server
        from relay.faces.boundary import described

        answer, started = {"state": "error", "line": described("doorbell --serve", err)[0]}, None
    bells.ack(stream_id)
    if started is not None:
        running.append(started)
    source = one_line(str(request.get("from") if request else "?"))
    _log(f"request {one_line(str(rid))} from {source}: {answer.get('state')}: {answer.get('line') or ''}")
    if isinstance(rid, str) and is_uuid(rid):
        bells.reply(rid, answer)
    return started is not None


def _reap(bells: "DoorbellsAPI", running: list[_Running]) -> None:
    """Report the woken programs that ended, and let go of their resume locks."""
    for item in list(running):
        code = item.proc.poll()
        if code is None:
            continue
        running.remove(item)
        item.ticket.close()
        how = f"exited {code}" if code >= 0 else f"was killed by signal {-code}"
        line = f"woke {item.label}: {item.tool} {how} after {time.monotonic() - item.began:.1f} s"
        _log(line)
        try:
            bells.reply(item.rid, {"state": "ended", "code": code, "line": line})
        except RelayError:
            pass  # only a courtesy to a waker that may have stopped listening

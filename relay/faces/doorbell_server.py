"""Wake across hosts (docs/redis-store.md): a session's doorbell rings only on its own host.

A wake starts the agent CLI in the session's project dir, and reads its liveness from /proc: both
exist only on the machine the session runs on. So `relay wake` of a session whose entry names
another host either refuses with the command to run there (exit 1), or, when that host runs
`relay doorbell --serve`, posts a request to that host's stream; the server there rings the local
doorbell under every guardrail of docs/wake.md (relay.usecases.wakeguard) and answers the waker.

The doorbell streams themselves (keys, scripts, the server's claim) are the store's
(relay.store.redis_doorbells); this module is the waker's command and the server's loop.

The server is bounded: it waits with XREADGROUP BLOCK (no busy loop), rings at most `--per-minute`
wakes a minute and RUNNING_MAX at once (past that, requests wait in the stream), acks each request
once handled, and stops cleanly on SIGTERM or SIGINT, leaving the programs it woke to finish (their
resume locks still name them). A request a killed server read but never acked is read again, first,
when a server starts on that host again: the guardrails make handling it twice harmless.
"""

import signal
import time
from collections import deque
from typing import TYPE_CHECKING

from relay.domain.ids import is_uuid
from relay.util.errors import RelayError, StoreUnreachable
from relay.util.textsafe import one_line

if TYPE_CHECKING:
    from collections.abc import Callable

    from relay.store.contract import DoorbellsAPI, StoreAPI
    from relay.usecases.wake import Started

BEAT = 3.0
BLOCK_MS = 1_000  # well inside the client's 2.5 s socket timeout
RUNNING_MAX = 4
DEFAULT_PER_MINUTE = 6
MAX_BACKOFF = 30.0  # seconds between tries while Redis does not answer
RELEASE_PATIENCE = 5.0  # how long a stopping server tries to hand back its claim


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
        if not _retrying(bells.claim_server, stop):
            return 0
        try:
            _log(f"serving the doorbell of {bells.here} (at most {per_minute} wakes a minute); stop with SIGTERM")
            _loop(store, bells, per_minute, stop, running)
        finally:
            _retrying(bells.release_server, stop, patience=RELEASE_PATIENCE)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _reap(bells, running)
    left = f"; {len(running)} woken program(s) still run on their own" if running else ""
    _log(f"stopped serving the doorbell of {bells.here}{left}")
    return 0


def _log(text: str) -> None:
    print(f"relay: {one_line(text)}", flush=True)


def _retrying(step: "Callable[[], object]", stop: list[int], patience: float = float("inf")) -> bool:
    """Run `step` until Redis answers it (True), waiting longer after each stall (1 s doubling up to
    MAX_BACKOFF), one log line per outage; False when a signal asked to stop first or `patience`
    seconds ran out. A stall or a restart of Redis never ends the server."""
    delay, began, told = 1.0, time.monotonic(), False
    while True:
        try:
            step()
        except StoreUnreachable as err:
            if not told:
                _log(f"{err}; retrying (stop with SIGTERM)")
                told = True
            deadline = time.monotonic() + delay
            while not stop and time.monotonic() < min(deadline, began + patience):
                time.sleep(0.1)
            if stop or time.monotonic() >= began + patience:
                return False
            delay = min(delay * 2, MAX_BACKOFF)
            continue
        if told:
            _log("Redis answers again; serving")
        return True


def _loop(store: "StoreAPI", bells: "DoorbellsAPI", per_minute: int, stop: list[int], running: list[_Running]) -> None:
    server = _Server(store, bells, per_minute, running)
    while not stop:
        _retrying(server.turn, stop)


class _Server:
    """What the serving loop carries from one round to the next: when its liveness key is due again,
    whether it still reads the backlog, and when the wakes of the last minute rang."""

    def __init__(self, store: "StoreAPI", bells: "DoorbellsAPI", per_minute: int, running: list[_Running]) -> None:
        self.store, self.bells, self.per_minute, self.running = store, bells, per_minute, running
        self.next_beat = 0.0  # monotonic time the liveness key is refreshed again
        self.backlog = True  # first what a killed server of this host read and never acked
        self.rung: deque[float] = deque()  # monotonic times of the wakes rung within the last minute

    def turn(self) -> None:
        """One round: beat, reap, and read and ring at most one request."""
        try:
            now = time.monotonic()
            self._beat_when_due(now)
            _reap(self.bells, self.running)
            if self._at_limit(now):
                time.sleep(0.5)  # requests wait in the stream meanwhile
                return
            self._read_and_ring()
        except StoreUnreachable:
            self._after_stall()
            raise

    def _beat_when_due(self, now: float) -> None:
        if now < self.next_beat:
            return
        if not self.bells.heartbeat():
            raise RelayError(f"another doorbell server took over {one_line(self.bells.here)}; this one stops")
        self.next_beat = now + BEAT

    def _at_limit(self, now: float) -> bool:
        """RUNNING_MAX programs run, or `per_minute` wakes rang in the last minute."""
        while self.rung and self.rung[0] <= now - 60:
            self.rung.popleft()
        return len(self.running) >= RUNNING_MAX or len(self.rung) >= self.per_minute

    def _read_and_ring(self) -> None:
        got = self.bells.read(self.backlog, BLOCK_MS)
        if self.backlog and not got:
            self.backlog = False  # the backlog is drained: new requests from now on
        for stream_id, request in got:
            if _handle(self.store, self.bells, stream_id, request, self.running):
                self.rung.append(time.monotonic())

    def _after_stall(self) -> None:
        """Redis did not answer: beat first when it does (the liveness key may have expired), and read
        again what this server had read and not acked."""
        self.backlog, self.next_beat = True, 0.0


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

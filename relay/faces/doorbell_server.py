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

import shlex
import signal
import subprocess
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from relay.domain.ids import is_uuid
from relay.util.errors import RelayError, WakeRefused
from relay.util.textsafe import one_line

if TYPE_CHECKING:
    from relay.store.contract import DoorbellsAPI, StoreAPI
    from relay.store.files import Entry

BEAT = 3.0
BLOCK_MS = 1_000  # well inside the client's 2.5 s socket timeout
ANSWER_WAIT = 15.0
RUNNING_MAX = 4
DEFAULT_PER_MINUTE = 6


# -- `relay wake` of a session on another host -------------------------------------------------


def wake_elsewhere(
    store: "StoreAPI", host: str, entry: "Entry", label: str, words: list[str], *, force: bool, dry: bool
) -> int:
    """Post the wake to `host`'s doorbell and print its answer; refuse with the command to run on
    `host` (exit 1) when no doorbell server runs there. The words are queued as mail first, as a
    local wake does, so no refusal loses them."""
    from relay.usecases import doorbell, wakeguard
    from relay.usecases.mail import send

    session_id = str(entry["id"])
    planned = doorbell.plan(entry.get("tool", "claude"), session_id, entry.get("dir"))
    limits = wakeguard.Limits()  # a bad setting is an error before anything is queued
    bells = store.doorbells()
    served = bells is not None and bells.serving(host)
    if dry and served:
        from relay.util.jsontext import encode

        sys.stdout.buffer.write(encode({**planned, "host": host}, False) + b"\n")
        return 0
    queued = None
    if words and not dry:
        sent = send(store, session_id, " ".join(words), None, "cli", hops=limits.caller_hops)
        queued = str(sent[1]["id"])
    shown_host = one_line(host)
    if bells is None or not served:
        options = [*(["--force"] if force else []), *(["--dry"] if dry else [])]
        command = shlex.join(["relay", "wake", label, *options])
        mail = f"your message {queued} is queued; " if queued else ""
        raise RelayError(
            f"not waking {label} here: it runs on host {shown_host}, where no `relay doorbell --serve` runs; "
            f"{mail}on {shown_host} run: {command}"
        )
    request = {"id": session_id, "label": label, "force": force, "hops": limits.caller_hops, "queued": queued}
    request_id = bells.post(host, request)
    answer = bells.answer(request_id, ANSWER_WAIT)
    posted = f"posted the wake of {label} to {shown_host}'s doorbell (request {request_id})"
    if answer is None:
        print(one_line(f"{posted}; no answer within {ANSWER_WAIT:g} s: it rings when that server gets to it"))
        return 0
    state, line = answer.get("state"), str(answer.get("line") or "")
    if state == "refused":
        raise WakeRefused(f"{line} (answered by {shown_host}'s doorbell)")
    if state == "started":
        print(one_line(f"{posted}: {answer.get('tool')} started there (pid {answer.get('pid')})"))
        return 0
    raise RelayError(f"{shown_host}'s doorbell could not wake {label}: {line}")


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
    """A program this server woke, and what to report when it ends."""

    def __init__(self, proc: "subprocess.Popen[bytes]", ticket: Any, label: str, tool: str, rid: str) -> None:
        self.proc, self.ticket, self.label, self.tool, self.rid = proc, ticket, label, tool, rid
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
        answer, started = _ring(store, request)
    except Exception as err:  # one bad request never stops the server
        from relay.store import errorlog

        answer, started = {"state": "error", "line": errorlog.unexpected("doorbell --serve", err)}, None
    bells.ack(stream_id)
    if started is not None:
        running.append(started)
    source = one_line(str(request.get("from") if request else "?"))
    _log(f"request {one_line(str(rid))} from {source}: {answer.get('state')}: {answer.get('line') or ''}")
    if isinstance(rid, str) and is_uuid(rid):
        bells.reply(rid, answer)
    return started is not None


def _ring(store: "StoreAPI", request: dict[str, object] | None) -> tuple[dict[str, object], _Running | None]:
    from relay.usecases import doorbell, wakeguard

    if request is None or not is_uuid(request.get("id")):
        return {"state": "error", "line": "the request does not parse"}, None
    session_id = str(request["id"]).lower()
    entry = store.registry().agents.get(session_id)
    if entry is None:
        return {"state": "error", "line": f"no session {session_id} is registered"}, None
    label = str(entry.get("name") or session_id)
    elsewhere = store.wake_host(entry)
    if elsewhere is not None:
        line = f"{label} is not on this host: its entry names {one_line(elsewhere)}"
        return {"state": "error", "line": line}, None
    hops, force, queued = request.get("hops"), request.get("force") is True, request.get("queued")
    try:
        planned = doorbell.plan(entry.get("tool", "claude"), session_id, entry.get("dir"))
        launch = doorbell.prepare(planned)
        limits = wakeguard.Limits()
        if isinstance(hops, int) and not isinstance(hops, bool) and hops > limits.caller_hops:
            limits.caller_hops = hops
        shown_queued = str(queued) if is_uuid(queued) else None
        ticket = wakeguard.admit(store, session_id, planned["tool"], label, limits, force=force, queued=shown_queued)
    except WakeRefused as err:
        return {"state": "refused", "line": str(err)}, None
    except RelayError as err:
        return {"state": "error", "line": str(err)}, None
    try:
        proc = _start(launch, ticket)
    except BaseException:
        ticket.close()
        raise
    answer = {"state": "started", "tool": planned["tool"], "pid": proc.pid, "line": f"woke {label}"}
    return answer, _Running(proc, ticket, label, str(planned["tool"]), str(request.get("rid")))


def _start(launch: dict[str, Any], ticket: Any) -> "subprocess.Popen[bytes]":
    """Start the agent CLI as relay.usecases.doorbell.ring does, without waiting: in its own session (a Ctrl-C
    to the server does not reach it), noting itself in the resume lock before it runs."""
    env = {**launch["env"], "RELAY_HOPS": str(ticket.hops)}
    proc = subprocess.Popen(
        launch["argv"],
        executable=launch["program"],
        env=env,
        cwd=launch["cwd"],
        stdin=subprocess.DEVNULL,
        preexec_fn=ticket.note_self,
        start_new_session=True,
    )
    ticket.started(proc.pid)
    return proc


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

"""The store on Redis (docs/redis-store.md), against a real redis-server (tests/redis_server.py)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis_server as redis_server_mod
from conftest import new_id, require_redis


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    """Every test here needs redis-py and redis-server (conftest.require_redis)."""
    require_redis()


def _ping(server: redis_server_mod.RedisServer, password: str | None = None) -> bytes:
    """A raw RESP AUTH + PING, so this check does not depend on the client library."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        if password is not None:
            conn.sendall(f"AUTH {password}\r\n".encode())
            conn.recv(100)
        conn.sendall(b"PING\r\n")
        return conn.recv(100)


def test_the_test_server_listens_on_loopback_and_wants_its_password(redis_server, redis_url):
    assert redis_url.startswith("redis://:") and redis_url.endswith(f"@127.0.0.1:{redis_server.port}/0")
    assert _ping(redis_server, redis_server.password) == b"+PONG\r\n"
    assert _ping(redis_server).startswith(b"-NOAUTH")
    assert _ping(redis_server, "wrong").startswith((b"-WRONGPASS", b"-NOAUTH"))


def test_each_test_starts_with_an_empty_redis(redis_server, redis_url):
    with redis_server.client() as client:
        assert client.dbsize() == 0
        client.set("left-by-this-test", b"1")


def test_each_test_starts_with_an_empty_redis_again(redis_server, redis_url):
    with redis_server.client() as client:
        assert client.dbsize() == 0


def test_the_tls_server_speaks_only_tls_with_its_throwaway_ca(redis_tls_server, rediss_url):
    assert rediss_url.startswith("rediss://")
    with redis_tls_server.client() as client:
        assert client.ping() is True
    # Plain text to the TLS port gets no PONG.
    with pytest.raises((OSError, AssertionError)):
        assert _ping(redis_tls_server, redis_tls_server.password) == b"+PONG\r\n"
    assert redis_tls_server.ca is not None
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(redis_tls_server.ca), str(redis_tls_server.directory / "server.crt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr


# -- the store on Redis: mail ---------------------------------------------------------------------


REPO = Path(__file__).resolve().parents[2]


def _store(url: str, tmp_path: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    from relay.store.redisdb import RedisStore

    return RedisStore(url, home=str(tmp_path / "local"), **kwargs)  # type: ignore[arg-type]


def _message(to: str, body: str, **extra: object) -> dict:
    from relay.domain.ids import new_uuid4
    from relay.util.clock import now_iso

    return {
        "id": new_uuid4(),
        "ts": now_iso(),
        "from": None,
        "fromName": None,
        "to": to,
        "toName": None,
        "body": body,
        **extra,
    }


def _child_env(**extra: str) -> dict[str, str]:
    paths = [str(REPO), *(os.environ.get("PYTHONPATH") or "").split(os.pathsep)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), **extra}


TAKER = """
import sys, time
from relay.store.redisdb import RedisStore
store = RedisStore(sys.argv[1], home=sys.argv[3])
delivery = store.take(sys.argv[2])
print(" ".join(m["id"] for m in delivery.messages), flush=True)
time.sleep(600)  # killed here: after XREADGROUP, before XACK
"""


def _killed_taker(url: str, recipient: str, tmp_path: Path, reap: bool = True, **env: str) -> list[str]:
    """Run a taker that claims the mailbox and is SIGKILLed before it acks; the ids it claimed.
    With `reap` False the dead taker stays a zombie (its parent has not waited for it yet)."""
    child = subprocess.Popen(
        [sys.executable, "-c", TAKER, url, recipient, str(tmp_path / "local")],
        stdout=subprocess.PIPE,
        env=_child_env(**env),
        text=True,
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
    finally:
        child.send_signal(signal.SIGKILL)
        if reap:
            child.wait(10)
        else:
            _ZOMBIES.append(child)
        if child.stdout:
            child.stdout.close()
    return line.split()


_ZOMBIES: list[subprocess.Popen] = []


def test_a_killed_taker_not_yet_reaped_is_dead_too(redis_url, tmp_path):
    store = _store(redis_url, tmp_path)
    me = new_id()
    message = _message(me, "claimed by a zombie")
    store.enqueue(me, message)
    assert _killed_taker(redis_url, me, tmp_path, reap=False) == [message["id"]]
    zombie = _ZOMBIES.pop()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # SIGKILL lands asynchronously
            with open(f"/proc/{zombie.pid}/stat") as stat:
                if stat.read().rpartition(")")[2].split()[0] == "Z":
                    break
            time.sleep(0.01)
        with store.take(me) as delivery:
            assert [(m["id"], m.get("redelivered")) for m in delivery.messages] == [(message["id"], True)]
            delivery.ack()
    finally:
        zombie.wait(10)


def test_a_taker_killed_mid_take_is_redelivered_with_the_same_ids(redis_url, tmp_path):
    store = _store(redis_url, tmp_path)
    me = new_id()
    sent = [_message(me, f"m{n}") for n in range(3)]
    for message in sent:
        store.enqueue(me, message)
    claimed = _killed_taker(redis_url, me, tmp_path)
    assert claimed == [m["id"] for m in sent]
    assert store.message_state(sent[0]["id"])["state"] == "taken"
    started = time.monotonic()
    with store.take(me) as delivery:
        assert [(m["id"], m.get("redelivered")) for m in delivery.messages] == [(i, True) for i in claimed]
        delivery.ack()
    assert time.monotonic() - started < 5
    assert not store.has_mail(me)


def test_a_live_taker_keeps_its_claim(redis_url, tmp_path):
    store = _store(redis_url, tmp_path)
    me = new_id()
    store.enqueue(me, _message(me, "mine"))
    child = subprocess.Popen(
        [sys.executable, "-c", TAKER, redis_url, me, str(tmp_path / "local")],
        stdout=subprocess.PIPE,
        env=_child_env(),
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip()
        with store.take(me) as delivery:
            assert delivery.messages == []
    finally:
        child.kill()
        child.wait(10)
        if child.stdout:
            child.stdout.close()


def test_a_dead_taker_on_another_host_is_known_by_its_idle_claim(redis_url, tmp_path, monkeypatch):
    import relay.store.redisdb as redis_store

    store = _store(redis_url, tmp_path)
    me = new_id()
    message = _message(me, "far away")
    store.enqueue(me, message)
    assert _killed_taker(redis_url, me, tmp_path, RELAY_HOST="elsewhere") == [message["id"]]
    with store.take(me) as delivery:
        assert delivery.messages == []  # its pid cannot be checked from here: wait for the idle time
    monkeypatch.setattr(redis_store, "CLAIM_IDLE_MS", 300)
    time.sleep(0.4)
    with store.take(me) as delivery:
        assert [(m["id"], m.get("redelivered")) for m in delivery.messages] == [(message["id"], True)]
        delivery.ack()
    assert redis_store.CLAIM_IDLE_MS <= 30_000


SENDER = """
import sys
from relay.util.clock import now_iso
from relay.domain.ids import new_uuid4
from relay.store.redisdb import RedisStore
store = RedisStore(sys.argv[1], home=sys.argv[4])
for n in range(int(sys.argv[3])):
    store.enqueue(sys.argv[2], {"id": new_uuid4(), "ts": now_iso(), "from": None, "fromName": None,
                                "to": sys.argv[2], "toName": None, "body": f"{sys.argv[5]}-{n}"})
"""


def test_concurrent_senders_from_four_processes_lose_nothing(redis_url, tmp_path):
    store = _store(redis_url, tmp_path)
    me = new_id()
    senders = [
        subprocess.Popen(
            [sys.executable, "-c", SENDER, redis_url, me, "50", str(tmp_path / "local"), f"p{p}"], env=_child_env()
        )
        for p in range(4)
    ]
    assert [s.wait(120) for s in senders] == [0, 0, 0, 0]
    bodies: list[str] = []
    while True:
        with store.take(me) as delivery:
            if not delivery.messages:
                break
            bodies += [m["body"] for m in delivery.messages]
            delivery.ack()
    assert sorted(bodies) == sorted(f"p{p}-{n}" for p in range(4) for n in range(50))
    for p in range(4):  # each sender's own order holds
        mine = [b for b in bodies if b.startswith(f"p{p}-")]
        assert mine == [f"p{p}-{n}" for n in range(50)]


# -- the store on Redis: the registry ----------------------------------------------------------------


def test_register_resolve_rename_and_the_host(redis_url, tmp_path, monkeypatch):
    import socket

    monkeypatch.delenv("RELAY_HOST", raising=False)
    store = _store(redis_url, tmp_path)
    a, b = new_id(), new_id()
    entry = store.register(a, name="alice", directory="/work/a", tool="codex")
    assert entry["host"] == socket.gethostname() and entry["name"] == "alice" and entry["lastSeen"]
    store.register(b, name="alice")  # the name moves to b
    registry = store.registry()
    assert registry.resolve("alice")["id"] == b
    assert registry.agents[a]["name"] is None and registry.agents[a]["tool"] == "codex"
    store.register(b, name="bob")  # b's old name goes
    assert store.registry().names == {"bob": b}
    monkeypatch.setenv("RELAY_HOST", "box-2")
    other = _store(redis_url, tmp_path)
    started = other.record_start(a, "/work/a2", "claude")
    assert started["host"] == "box-2" and started["dir"] == "/work/a2"
    assert other.marker("/work/a2") == a
    other.record_end(a)
    assert other.registry().agents[a]["endedAt"]
    other.record_end(new_id())  # unknown: nothing written
    assert set(other.registry().agents) == {a, b}


REGISTRAR = """
import sys
from relay.store.redisdb import RedisStore
store = RedisStore(sys.argv[1], home=sys.argv[2])
for line in sys.argv[3:]:
    session, name = line.split("=")
    store.register(session, name=name, directory="/d/" + name)
"""


def test_concurrent_registrations_lose_nothing(redis_url, tmp_path):
    ids = [[new_id() for _ in range(15)] for _ in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REGISTRAR, redis_url, str(tmp_path / "local")]
            + [f"{i}=n{p}-{k}" for k, i in enumerate(group)],
            env=_child_env(),
        )
        for p, group in enumerate(ids)
    ]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    registry = _store(redis_url, tmp_path).registry()
    assert len(registry.agents) == 60 and len(registry.names) == 60
    for p, group in enumerate(ids):
        for k, i in enumerate(group):
            assert registry.resolve(f"n{p}-{k}")["id"] == i


# -- the store on Redis: failures -------------------------------------------------------------------


def test_an_unreachable_redis_fails_within_3s_with_the_password_hidden(tmp_path):
    from relay.util.errors import RelayError

    closed = f"redis://:s3cret-pw@127.0.0.1:{redis_server_mod.free_port()}/0"
    blackhole = "redis://relay:s3cret-pw@10.255.255.1:6379/0"  # nothing answers: a connect timeout
    for url in (closed, blackhole):
        store = _store(url, tmp_path)
        started = time.monotonic()
        with pytest.raises(RelayError) as caught:
            store.enqueue(new_id(), _message(new_id(), "hello"))
        assert time.monotonic() - started < 3
        text = str(caught.value)
        assert "s3cret" not in text and "\n" not in text
        assert ":***@" in text and ("127.0.0.1" in text or "10.255.255.1" in text), text


def test_an_unreachable_redis_fails_within_3s_in_a_fresh_process(tmp_path):
    url = f"redis://:s3cret-pw@127.0.0.1:{redis_server_mod.free_port()}/0"
    probe = "import sys\nfrom relay.store.redisdb import RedisStore\nRedisStore(sys.argv[1], home=sys.argv[2]).ping()"
    # What starting a process that imports the store costs right now (a busy machine does not count).
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import relay.store.redisdb"], env=_child_env(), timeout=30, check=True)
    start_cost = time.monotonic() - started
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", probe, url, str(tmp_path / "local")],
        capture_output=True,
        text=True,
        env=_child_env(),
        timeout=30,
        check=False,
    )
    assert time.monotonic() - started - start_cost < 3
    assert done.returncode != 0 and "s3cret" not in done.stdout + done.stderr


def test_a_wrong_password_is_one_line_without_the_password(redis_server, redis_url, tmp_path):
    from relay.util.errors import RelayError

    store = _store(redis_server.url_for(password="not-the-password"), tmp_path)
    with pytest.raises(RelayError) as caught:
        store.ping()
    text = str(caught.value)
    assert "not-the-password" not in text and redis_server.password not in text and "\n" not in text
    assert f"127.0.0.1:{redis_server.port}" in text
    with pytest.raises(RelayError):
        store.registry()


def test_a_wrong_db_fails_and_each_db_is_its_own_world(redis_server, redis_url, tmp_path):
    from relay.util.errors import RelayError

    with pytest.raises(RelayError, match=r"DB index|out of range") as caught:
        _store(redis_server.url_for(db=999), tmp_path).ping()
    assert redis_server.password not in str(caught.value)
    with pytest.raises(RelayError) as caught:
        _store(redis_url.rsplit("/", 1)[0] + "/notanumber", tmp_path).ping()
    assert redis_server.password not in str(caught.value)
    zero, one = _store(redis_server.url_for(db=0), tmp_path), _store(redis_server.url_for(db=1), tmp_path)
    me = new_id()
    zero.enqueue(me, _message(me, "in db 0"))
    assert zero.has_mail(me) and not one.has_mail(me)


def test_the_store_works_over_tls_with_a_throwaway_ca(redis_tls_server, rediss_url, tmp_path):
    from relay.util.errors import RelayError

    url = f"{rediss_url}?ssl_ca_certs={redis_tls_server.ca}"
    store = _store(url, tmp_path)
    me = new_id()
    store.enqueue(me, _message(me, "over tls"))
    with store.take(me) as delivery:
        assert [m["body"] for m in delivery.messages] == ["over tls"]
        delivery.ack()
    with pytest.raises(RelayError, match=r"certificate|SSL|verify") as caught:
        _store(rediss_url, tmp_path).ping()  # the throwaway CA is not trusted by default
    assert redis_tls_server.password not in str(caught.value)


def test_redact_hides_only_the_password():
    from relay.store.redisdb import redact

    assert redact("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redact("rediss://user:pw@h:1/2") == "rediss://user:***@h:1/2"
    assert redact("redis://h:1/0") == "redis://h:1/0"
    assert redact("redis://token@h:1") == "redis://***@h:1"


# -- the store on Redis: wakes, collection, diagnosis ----------------------------------------------

SPENDER = """
import sys, time
from relay.store.redisdb import RedisStore
store = RedisStore(sys.argv[1], home=sys.argv[2])
now = time.time()
print(len(store.spend_wake(sys.argv[3], now - 3600, now, 5)), flush=True)
"""


def test_the_wake_budget_is_shared_and_never_overspent(redis_url, tmp_path):
    me = new_id()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SPENDER, redis_url, str(tmp_path / "local"), me],
            stdout=subprocess.PIPE,
            env=_child_env(),
        )
        for _ in range(8)
    ]
    seen = sorted(int(p.communicate(timeout=120)[0]) for p in procs)
    assert seen == [0, 1, 2, 3, 4, 5, 5, 5]  # each saw the wakes before its own; 3 were refused
    store = _store(redis_url, tmp_path)
    now = time.time()
    assert len(store.wake_times(me, now - 3600, now + 1)) == 5
    assert store.wake_times(me, now + 1, now + 2) == []
    assert store.auto_wakes(me) == 0
    assert [store.count_auto_wake(me), store.count_auto_wake(me)] == [1, 2]
    store.reset_auto_wakes(me)
    assert store.auto_wakes(me) == 0


def test_retire_archives_undelivered_mail_and_forgets_the_session(redis_server, redis_url, tmp_path):
    store = _store(redis_url, tmp_path)
    gone, kept = new_id(), new_id()
    store.register(gone, name="old", directory="/w/old")
    store.record_start(gone, "/w/old", "claude")
    store.register(kept, name="new")
    store.enqueue(gone, _message(gone, "unread 1"))
    store.enqueue(gone, _message(gone, "unread 2"))
    with store.take(gone):
        pass  # claimed, never shown: still undelivered
    assert store.retire(gone) == 2
    registry = store.registry()
    assert set(registry.agents) == {kept} and registry.names == {"new": kept}
    assert store.marker("/w/old") is None and not store.has_mail(gone)
    with redis_server.client() as client:
        archived = [line.decode() for line in client.lrange(f"relay:archive:{gone}", 0, -1)]
    assert ['"unread 1"' in archived[0], '"unread 2"' in archived[1]] == [True, True]


def test_gc_helpers_drop_empty_mailboxes_and_old_receipts(redis_url, tmp_path):
    store = _store(redis_url, tmp_path)
    me = new_id()
    message = _message(me, "read soon")
    store.enqueue(me, message)
    from relay.store.base import to_json

    assert store.mailbox_files() == [(f"{me}.jsonl", len(to_json(message)))]
    assert not store.drop_empty_mailbox(f"{me}.jsonl")
    with store.take(me) as delivery:
        delivery.ack()
    assert store.mailbox_files() == [(f"{me}.jsonl", 0)]
    assert store.drop_empty_mailbox(f"{me}.jsonl")
    assert store.mailbox_files() == []
    assert store.prune_receipts(3600) == 0 and store.receipt(message["id"]) is not None
    assert store.prune_receipts(3600, now=time.time() + 7200) == 1 and store.receipt(message["id"]) is None
    assert store.gc_due(0) is False  # the first call only starts counting
    assert store.gc_due(0) is True and store.gc_due(3600) is False


def test_facts_name_the_store_without_its_password(redis_server, redis_url, tmp_path):
    store = _store(redis_url, tmp_path)
    store.register(new_id(), name="one")
    facts = store.facts()
    assert ("registry", f"redis://:***@127.0.0.1:{redis_server.port}/0", "1 1") in facts
    assert all(redis_server.password not in " ".join(fact) for fact in facts)
    down = _store(redis_server.url_for(password="nope"), tmp_path).facts()
    assert down[-1][0] == "unreachable" and "nope" not in " ".join(down[-1])


def test_a_second_ack_of_the_same_mail_changes_nothing(redis_url, tmp_path, monkeypatch):
    """A late ack (a slow taker whose claim another took over) must not free quota twice."""
    monkeypatch.setenv("RELAY_MAILBOX_MAX", "1100")  # two messages of 300 (+ about 170 of JSON) fit
    store = _store(redis_url, tmp_path)
    me = new_id()
    store.enqueue(me, _message(me, "x" * 300))
    with store.take(me) as delivery:
        store.enqueue(me, _message(me, "y" * 300))  # queued behind the claim: 600 bytes in all
        delivery.ack()
        delivery._store._ack(me, delivery._sids, delivery._sizes, delivery.messages)
    store.enqueue(me, _message(me, "z" * 300))
    with pytest.raises(Exception, match="full"):
        store.enqueue(me, _message(me, "w" * 150))


NAMER = """
import sys
from relay.store.redisdb import RedisStore
store = RedisStore(sys.argv[1], home=sys.argv[2])
for _ in range(150):
    store.register(sys.argv[3], name="shared")
"""


def test_a_name_fought_over_by_four_processes_ends_bound_once(redis_url, tmp_path):
    ids = [new_id() for _ in range(4)]
    procs = [
        subprocess.Popen([sys.executable, "-c", NAMER, redis_url, str(tmp_path / "local"), i], env=_child_env())
        for i in ids
    ]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    registry = _store(redis_url, tmp_path).registry()
    holders = [i for i, entry in registry.agents.items() if entry.get("name") == "shared"]
    assert holders == [registry.names["shared"]] and set(registry.agents) == set(ids)


# -- two machines sharing one Redis: a second host name through `unshare -u` (root) ---------------

ON_HOST_B = """
import sys, time
from relay.store.redisdb import RedisStore
store = RedisStore(sys.argv[1], home=sys.argv[2])
store.record_start(sys.argv[3], "/work/on-b", "claude")
store.register(sys.argv[3], name="bee")
print("registered", flush=True)
sys.stdin.readline()  # the other host has sent
delivery = store.take(sys.argv[3])
print(" ".join(m["id"] for m in delivery.messages), flush=True)
time.sleep(600)  # SIGKILLed here, before its ack
"""


def _unshare_ok() -> bool:
    import shutil

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-u", "true"], capture_output=True, check=False).returncode == 0


def test_two_hosts_share_one_redis_and_a_killed_taker_there_is_redelivered_here(redis_url, tmp_path, monkeypatch):
    if not _unshare_ok():
        if os.environ.get("RELAY_REQUIRE_REDIS") == "1":
            pytest.fail("unshare -u as root is required for the several-hosts test")
        pytest.skip("needs root and unshare -u for a second host name")
    import relay.store.redisdb as redis_store

    monkeypatch.delenv("RELAY_HOST", raising=False)
    here = _store(redis_url, tmp_path)
    mine, theirs = new_id(), new_id()
    here.record_start(mine, "/work/here", "codex")
    script = 'hostname box-b && exec "$0" -c "$1" "$2" "$3" "$4"'
    child = subprocess.Popen(
        ["unshare", "-u", "sh", "-c", script, sys.executable, ON_HOST_B, redis_url, str(tmp_path / "b"), theirs],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=_child_env(),
        text=True,
    )
    try:
        assert child.stdin is not None and child.stdout is not None
        assert child.stdout.readline().strip() == "registered"
        registry = here.registry()
        assert registry.resolve("bee")["host"] == "box-b"
        assert registry.agents[mine]["host"] == socket.gethostname() != "box-b"
        message = _message(theirs, "from the other machine", **{"from": mine})
        here.enqueue(theirs, message)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().split() == [message["id"]]
    finally:
        child.kill()
        child.wait(10)
        for stream in (child.stdin, child.stdout):
            if stream:
                stream.close()
    assert here.message_state(message["id"])["state"] == "taken"
    with here.take(theirs) as delivery:
        assert delivery.messages == []  # box-b's pid means nothing here: its claim must go idle first
    monkeypatch.setattr(redis_store, "CLAIM_IDLE_MS", 300)
    time.sleep(0.4)
    with here.take(theirs) as delivery:
        assert [(m["id"], m.get("redelivered")) for m in delivery.messages] == [(message["id"], True)]
        delivery.ack()
    assert here.message_state(message["id"])["state"] == "delivered"


# -- the least a managed Redis must grant (docs/redis-store.md: the ACL user) ----------------------

# Every command the store sends, directly or from its scripts (which Redis checks against the same ACL);
# its scripts run by SHA (evalsha), loaded once per server (script|load); blpop is the cross-host
# wake's (tests/faces/test_doorbell_server.py runs the doorbell as this user).
ACL_COMMANDS = (
    "ping select evalsha script|load xadd xack xdel xlen xrange xrevrange xpending xgroup|create xgroup|delconsumer "
    "xreadgroup xclaim get set del exists incr incrby decrby expire sadd srem scard hset hsetnx hget hgetall "
    "hkeys hstrlen strlen hdel rpush zadd zrangebyscore zremrangebyscore scan watch multi exec unwatch blpop"
)


def test_an_acl_user_with_only_the_listed_commands_and_keys_runs_the_store(redis_server, redis_url, tmp_path):
    with redis_server.client() as admin:
        admin.execute_command(
            "ACL", "SETUSER", "relay", "reset", "on", ">relay-pw", "~relay:*", "resetchannels",
            *(f"+{command}" for command in ACL_COMMANDS.split()),
        )  # fmt: skip
        admin.execute_command("SCRIPT", "FLUSH")  # so this user's store must load its scripts itself
    try:
        url = f"redis://relay:relay-pw@127.0.0.1:{redis_server.port}/0"
        store = _store(url, tmp_path)
        me, other = new_id(), new_id()
        store.record_start(me, "/w/me", "claude")
        store.register(me, name="acl-me")
        store.register(other, name="acl-other")
        question = _message(me, "hello", expectsReply=True, urgent=True)
        store.enqueue(me, question)
        assert store.has_mail(me) and store.has_urgent(me) and store.mail_stamp(me)
        assert _killed_taker(url, me, tmp_path) == [question["id"]]
        with store.take(me) as delivery:
            assert [m.get("redelivered") for m in delivery.messages] == [True]
            delivery.ack()
        store.enqueue(other, _message(other, "answer", replyTo=question["id"], thread=question["id"]))
        assert store.message_state(question["id"])["state"] == "replied"
        with store.take(other) as delivery:
            delivery.ack(0)
        assert store.peek_batch(other, 10_000)[0]
        now = time.time()
        assert store.spend_wake(me, now - 60, now, 3) == [] and store.count_auto_wake(me) == 1
        store.reset_auto_wakes(me)
        assert store.retire(other) == 1
        assert store.mailbox_files() == [(f"{me}.jsonl", 0)] and store.drop_empty_mailbox(f"{me}.jsonl")
        store.prune_receipts(0, now + 10)
        store.gc_due(1)
        store.touch_gc_stamp()
        assert store.facts()[-1][0] != "unreachable"
        # The user really is limited: a command off the list is refused.
        with pytest.raises(Exception, match=r"(?i)no permissions|NOPERM"), store._redis() as client:
            client.execute_command("KEYS", "*")
    finally:
        with redis_server.client() as admin:
            admin.execute_command("ACL", "DELUSER", "relay")


def test_redis_stopped_mid_run_fails_fast_and_loses_nothing_once_back(tmp_path):
    from relay.util.errors import RelayError

    server = redis_server_mod.RedisServer(tmp_path / "own-redis", persist=True)
    try:
        store = _store(server.url, tmp_path)
        me = new_id()
        first = _message(me, "before the outage")
        store.enqueue(me, first)
        server.stop()
        second = _message(me, "during the outage")
        for attempt in (lambda: store.enqueue(me, second), lambda: store.take(me), lambda: store.registry()):
            started = time.monotonic()
            with pytest.raises(RelayError) as caught:
                attempt()
            assert time.monotonic() - started < 3
            text = str(caught.value)
            assert server.password not in text and "\n" not in text and ":***@127.0.0.1" in text
        server.start()
        store.enqueue(me, second)  # the caller was told it failed; sending again after the outage works
        with store.take(me) as delivery:
            assert [m["id"] for m in delivery.messages] == [first["id"], second["id"]]
            delivery.ack()
        assert store.message_state(first["id"])["state"] == "delivered"
    finally:
        server.stop()


def test_a_dead_takers_claims_beyond_one_take_stay_first_and_flagged(redis_url, tmp_path):
    store = _store(redis_url, tmp_path)
    me = new_id()
    sent = [_message(me, f"{n}" * 1000) for n in range(6)]
    for message in sent:
        store.enqueue(me, message)
    assert _killed_taker(redis_url, me, tmp_path) == [m["id"] for m in sent]
    store.enqueue(me, _message(me, "newer"))
    seen: list[tuple[str, object]] = []
    while True:
        with store.take(me, budget=2500) as delivery:
            if not delivery.messages:
                break
            seen += [(str(m["body"])[:1], m.get("redelivered")) for m in delivery.messages]
            delivery.ack()
    assert seen == [*((str(n), True) for n in range(6)), ("n", None)]


def test_an_entry_that_does_not_parse_is_kept_aside_and_the_rest_delivered(redis_server, redis_url, tmp_path):
    warnings: list[str] = []
    store = _store(redis_url, tmp_path, warn=warnings.append)
    me = new_id()
    store.enqueue(me, _message(me, "good one"))
    with redis_server.client() as client:
        client.xadd(f"relay:mbox:{me}", {"m": b"{not json"})
    store.enqueue(me, _message(me, "good two"))
    with store.take(me) as delivery:
        assert [m["body"] for m in delivery.messages] == ["good one", "good two"]
        delivery.ack()
    assert not store.has_mail(me)
    with redis_server.client() as client:
        assert client.lrange(f"relay:quarantine:{me}", 0, -1) == [b"{not json"]
    assert len(warnings) == 1 and f"relay:quarantine:{me}" in warnings[0]


def test_taking_an_empty_mailbox_creates_nothing(redis_server, redis_url, tmp_path):
    store = _store(redis_url, tmp_path)
    with store.take(new_id()) as delivery:
        assert delivery.messages == [] and delivery.remaining == 0
    with redis_server.client() as client:
        assert client.dbsize() == 0

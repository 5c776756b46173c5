"""Entries a peer planted in Redis too large to read (docs/redis-store.md, "Entries too large to read").

Anyone with the URL can write a huge mailbox entry or registry value with a bare client. Black-box:
the relay process that meets one (through RELAY_CMD) delivers the mail around it, never loads it
(its peak resident size, from the kernel's rusage of the waited child, stays within half the
entry's size of the same command's with nothing planted), and `relay doctor` names the session and
how to clear it. In-process, Redis's own count of the bytes it sent shows what a call read.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import new_id, require_redis

MIB = 1024 * 1024
# The planted entry; RELAY_MAILBOX_MAX is 1 MiB. A process that loads it even once (redis-py's reply)
# peaks PLANTED above the same command with nothing planted; a relay process that never loads it
# stays within PLANTED / 2 of it (the program under test may be the sources or the frozen binary).
PLANTED = 24 * MIB

# Runs the command as a child, then prints the child's peak resident size (KiB) as the last line
# of stderr: the kernel's own count, so nothing sampled can miss the peak.
_PEAK = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(done.returncode)\n"
)


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    require_redis()


@pytest.fixture
def redis_env(env: dict[str, str], redis_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in (("AGENT_RELAY_URL", redis_url), ("RELAY_MAILBOX_MAX", str(MIB))):
        monkeypatch.setenv(name, value)
        env[name] = value
    return env


def _baseline(relay_cmd: list[str], env: dict[str, str], tmp_path: Path) -> int:
    """The peak of `relay list --json` with nothing planted: what any relay process on Redis costs."""
    code, _, err, peak = _run_peak(relay_cmd, env, tmp_path, "list", "--json")
    assert code == 0, err
    return peak


def _run_peak(
    relay_cmd: list[str], env: dict[str, str], tmp_path: Path, *args: str, stdin: str | None = None
) -> tuple[int, str, str, int]:
    """(exit code, stdout, stderr without the peak line, peak resident bytes) of one relay command."""
    argv = [sys.executable, "-c", _PEAK, *relay_cmd, *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    *err, peak = done.stderr.rstrip("\n").split("\n")
    return done.returncode, done.stdout, "\n".join(err), int(peak) * 1024


def _store(tmp_path: Path):  # type: ignore[no-untyped-def]
    from relay.store.redisdb import RedisStore

    return RedisStore(__import__("os").environ["AGENT_RELAY_URL"], home=str(tmp_path / "local"))


def _message(to: str, body: str) -> dict:
    from relay.domain.ids import new_uuid4
    from relay.util.clock import now_iso

    return {"id": new_uuid4(), "from": new_id(), "fromName": "peer", "to": to, "body": body, "ts": now_iso()}


def _plant_mail(redis_server, tmp_path: Path, me: str) -> tuple[list[dict], bytes]:  # type: ignore[no-untyped-def]
    """Normal mail, then a PLANTED-byte entry added with a bare client, then more normal mail."""
    from relay.store import redis_keys

    store = _store(tmp_path)
    store.register(me, name="target")
    before, after = _message(me, "before the big one"), _message(me, "after the big one")
    store.enqueue(me, before)
    with redis_server.client() as client:
        planted = client.xadd(redis_keys.mbox(me), {"m": b"{" + b"x" * (PLANTED - 1)})
    store.enqueue(me, after)
    return [before, after], planted


def test_a_planted_oversize_entry_is_set_aside_unread_and_the_mail_around_it_delivered(
    redis_server, redis_env, relay_cmd, tmp_path
):
    from relay.store import redis_keys

    me = new_id()
    limit = _baseline(relay_cmd, redis_env, tmp_path) + PLANTED // 2
    mail, planted = _plant_mail(redis_server, tmp_path, me)
    code, out, err, peak = _run_peak(relay_cmd, redis_env, tmp_path, "peek", me)
    assert code == 0, err
    assert [m["id"] for m in json.loads(out)["messages"]] == [m["id"] for m in mail]
    assert peak < limit, f"peek peaked at {peak // MIB} MiB"

    code, out, err, peak = _run_peak(relay_cmd, redis_env, tmp_path, "inbox", me)
    assert code == 0, err
    assert [m["id"] for m in json.loads(out)["messages"]] == [m["id"] for m in mail]
    assert peak < limit, f"inbox peaked at {peak // MIB} MiB"
    assert "larger than RELAY_MAILBOX_MAX" in err and redis_keys.quarantine(me) in err
    with redis_server.client() as client:
        # Moved aside in Redis, whole and unchanged: nothing left in the mailbox, the quota intact.
        assert client.xlen(redis_keys.mbox(me)) == 0 and client.get(redis_keys.mbytes(me)) is None
        assert client.llen(redis_keys.quarantine(me)) == 1
        assert client.eval("return string.len(redis.call('LINDEX', KEYS[1], 0))", 1, redis_keys.quarantine(me)) == (
            PLANTED
        )
        assert client.xrange(redis_keys.mbox(me), planted, planted) == []

    code, out, err, _ = _run_peak(relay_cmd, redis_env, tmp_path, "doctor")
    assert code == 1, out + err
    [line] = [line for line in out.splitlines() if redis_keys.quarantine(me) in line]
    assert line.startswith("FAIL") and f"target ({me})" in line
    assert line.endswith(f'fix: redis-cli -u "$AGENT_RELAY_URL" DEL {redis_keys.quarantine(me)}')
    assert redis_env["AGENT_RELAY_URL"].split("@")[0].split(":")[-1] not in out  # the password stays hidden


def test_the_session_start_hook_delivers_around_a_planted_oversize_entry(redis_server, redis_env, relay_cmd, tmp_path):
    me = new_id()
    limit = _baseline(relay_cmd, redis_env, tmp_path) + PLANTED // 2
    mail, _ = _plant_mail(redis_server, tmp_path, me)
    event = json.dumps({"session_id": me, "cwd": str(tmp_path), "source": "startup", "hook_event_name": "SessionStart"})
    code, out, err, peak = _run_peak(relay_cmd, redis_env, tmp_path, "hook", stdin=event)
    assert code == 0, err
    assert peak < limit, f"the hook peaked at {peak // MIB} MiB"
    shown = json.loads(out)["hookSpecificOutput"]["additionalContext"]
    assert all(m["body"] in shown for m in mail) and "xxxxxxxx" not in shown
    assert "larger than RELAY_MAILBOX_MAX" in err


def test_a_take_sends_only_bodies_within_its_budget(redis_server, redis_env, tmp_path):
    """Below the hard limit, an entry past what a take still has room for is not sent either: a
    bounded take reads what it takes, and the rest stays parked, in order, for the next one."""
    from relay.store import redis_reads
    from relay.store.redisdb import GROUP

    me = new_id()
    store = _store(tmp_path)
    mail = [_message(me, str(i) * 300_000) for i in range(3)]
    for message in mail:
        store.enqueue(me, message)
    store._ensure_group(me)
    with store._guard():
        rows = redis_reads.read_entries(store, me, GROUP, MIB, 400_000, True, ["new", 32, "~parked"])
    assert [row.kind for row in rows] == ["ok", "later", "later"]
    assert [row.body is not None for row in rows] == [True, False, False]
    for budget_taken in ([mail[0]], [mail[1]], [mail[2]]):
        with store.take(me, budget=400_000) as delivery:
            assert [m["id"] for m in delivery.messages] == [m["id"] for m in budget_taken]
            delivery.ack()


def test_planted_registry_values_too_large_are_left_out(redis_server, redis_env, relay_cmd, tmp_path):
    from relay.store import redis_keys

    me, planted = new_id(), new_id()
    _store(tmp_path).register(me, name="kept")
    limit = _baseline(relay_cmd, redis_env, tmp_path) + PLANTED // 2
    with redis_server.client() as client:
        client.hset(redis_keys.AGENTS, planted, b'{"id": "' + b"x" * PLANTED + b'"}')
        client.hset(redis_keys.NAMES, "huge", b"y" * PLANTED)
    code, out, err, peak = _run_peak(relay_cmd, redis_env, tmp_path, "list", "--json")
    assert code == 0, err
    assert [entry["id"] for entry in json.loads(out)] == [me]
    assert peak < limit, f"list peaked at {peak // MIB} MiB"
    # A session's own entry planted huge is written fresh at its next start, not read.
    with redis_server.client() as client:
        client.hset(redis_keys.AGENTS, me, b'{"id": "' + b"x" * PLANTED + b'"}')
    entry = _store(tmp_path).record_start(me, str(tmp_path), "claude")
    assert entry["id"] == me and entry["dir"] == str(tmp_path)


def test_a_planted_oversize_journal_event_is_skipped_by_relay_log(redis_server, redis_env, relay_cmd, tmp_path):
    from relay.store import redis_keys

    me = new_id()
    store = _store(tmp_path)
    store.register(me, name="kept")
    limit = _baseline(relay_cmd, redis_env, tmp_path) + PLANTED // 2
    store.journal_append({"ts": "2026-01-01T00:00:00Z", "event": "sent", "id": new_id(), "from": me, "body": "a"})
    with redis_server.client() as client:
        client.xadd(redis_keys.JOURNAL, {"e": b'{"event": "sent", "body": "' + b"x" * PLANTED + b'"}'})
    store.journal_append({"ts": "2026-01-01T00:00:01Z", "event": "sent", "id": new_id(), "from": me, "body": "b"})
    code, out, err, peak = _run_peak(relay_cmd, redis_env, tmp_path, "log", "--json")
    assert code == 0, err
    assert [json.loads(line)["body"] for line in out.splitlines()] == ["a", "b"]
    assert peak < limit, f"log peaked at {peak // MIB} MiB"


def _sent_by(redis_server, call) -> int:  # type: ignore[no-untyped-def]
    """Bytes the server sent to its clients while `call()` ran (its INFO count)."""
    with redis_server.client() as client:
        before = client.info("stats")["total_net_output_bytes"]
        call()
        return client.info("stats")["total_net_output_bytes"] - before


def test_the_hooks_other_reads_never_send_a_planted_entry(redis_server, redis_env, tmp_path):
    """The empty check, the watcher's stamp and the lock holder's look read no body and no long value."""
    from relay.store import redis_keys

    me = new_id()
    store = _store(tmp_path)
    store.enqueue(me, _message(me, "normal mail"))
    with redis_server.client() as client:
        client.xadd(redis_keys.mbox(me), {"m": b"{" + b"x" * PLANTED})  # the last entry: the stamp's
        client.set(redis_keys.take_lock(me), b"h" * PLANTED, px=300)
        client.set(redis_keys.auto_wakes(me), b"9" * PLANTED)
    store.registry()  # the scripts are loaded once, outside the counts
    assert _sent_by(redis_server, lambda: store.mail_stamp(me)) < MIB
    assert _sent_by(redis_server, lambda: store.has_mail(me) and store.auto_wakes(me) == 0) < MIB
    assert store.mail_stamp(me)[0] == 2
    assert _sent_by(redis_server, lambda: store.take(me).close()) < 2 * MIB  # waits out the planted lock

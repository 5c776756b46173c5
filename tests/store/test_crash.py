"""Crash safety: SIGKILL at each named step, then at random moments under load.

RELAY_TEST_KILL_AT=<step> makes the program SIGKILL itself at that checkpoint. The deterministic
tests prove what each step leaves behind; the random test kills concurrent senders and takers at
arbitrary moments and checks that a message whose send succeeded is always delivered, never torn,
and that a redelivery carries the same id.
"""

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import REPO, fence_parts, file_registry, new_id, plant_mail

from relay.store.files import Store
from relay.store.lock import FileLock

KILLED = -signal.SIGKILL
STEPS = (
    "register:before-write",
    "send:before-append",
    "send:appended",
    "take:locked",
    "take:claimed",
    "take:before-ack",
    "take:acked",
)
HOOK_LINE = re.compile(r"^- from (?P<sender>.+?) \((?P<ts>[^)]*)\)(?P<re> \(redelivered\))?: (?P<body>.*)$")


def kill_at(step: str) -> dict[str, str]:
    return {"RELAY_TEST_KILL_AT": step}


def inbox(run_relay, who: str, **kw) -> dict:
    result = run_relay("inbox", who, **kw)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def drain(run_relay, who: str) -> list[dict]:
    """Every message, taking batch after batch while the inbox says more remain."""
    messages: list[dict] = []
    while True:
        got = inbox(run_relay, who)
        messages += got["messages"]
        if not got["remaining"]:
            return messages
        assert got["count"], "inbox made no progress"


def hook_event(sid: str, cwd: Path) -> str:
    return json.dumps({"session_id": sid, "cwd": str(cwd), "source": "resume", "hook_event_name": "SessionStart"})


def hook_mail(stdout: bytes) -> list[tuple[str, bool]]:
    """(body, redelivered) for each message in a hook's output; [] when it printed nothing."""
    if not stdout.strip():
        return []
    text = json.loads(stdout)["hookSpecificOutput"]["additionalContext"]
    inside = "\n".join(fence_parts(text)[2])
    found = []
    for line in inside.split("\n"):
        match = HOOK_LINE.match(line)
        assert match, line
        found.append((match["body"], bool(match["re"])))
    return found


def store_files(home: Path) -> dict[str, bytes]:
    """Every store file's bytes but the lock's, whose hand-over count changes with every holder."""
    return {
        str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file() and p.name != ".lock"
    }


def assert_lock_free(run_relay, store_home: Path) -> None:
    """No lock is left held: the store lock and every take lock can be had at once, and a send works.

    A send that cannot get the lock within its 3 s deadline fails, so its success proves the deadline.
    """
    for path in [store_home / ".lock", *store_home.glob("inflight/*.lock")]:
        with FileLock(path, deadline=0.05):  # LockBusy if a dead process still held it
            pass
    result = run_relay("send", "--id", new_id(), "--", "lock check")
    assert result.returncode == 0, result.stderr


# -- the switch itself --------------------------------------------------------------------------


def _checkpoints(value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RELAY_TEST_KILL_AT"}
    env["PYTHONPATH"] = str(REPO)
    if value is not None:
        env["RELAY_TEST_KILL_AT"] = value
    code = (
        f"from relay.util.faults import checkpoint\nfor s in {STEPS!r}:\n    checkpoint(s)\n    print(s, flush=True)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=30, check=False)


@pytest.mark.parametrize("value", [None, "", "no-such-step"])
def test_switch_does_nothing_when_unset(value):
    result = _checkpoints(value)
    assert result.returncode == 0
    assert result.stdout.decode().split() == list(STEPS)


def test_switch_kills_at_the_named_step_only():
    result = _checkpoints("take:claimed")
    assert result.returncode == KILLED
    assert result.stdout.decode().split() == [
        "register:before-write",
        "send:before-append",
        "send:appended",
        "take:locked",
    ]


@pytest.mark.parametrize("value", ["", "no-such-step"])
def test_whole_flow_works_with_switch_unset_or_unknown(run_relay, tmp_path, value):
    sid = new_id()
    extra = kill_at(value)
    assert run_relay("register", "a", "--id", sid, extra_env=extra).returncode == 0
    assert run_relay("send", "a", "--", "one", extra_env=extra).returncode == 0
    assert run_relay("send", "a", "--", "two", extra_env=extra).returncode == 0
    hooked = run_relay("hook", input=hook_event(sid, tmp_path), extra_env=extra)
    assert hooked.returncode == 0
    assert hook_mail(hooked.stdout) == [("one", False), ("two", False)]
    assert run_relay("send", "a", "--", "three", extra_env=extra).returncode == 0
    assert [m["body"] for m in inbox(run_relay, "a", extra_env=extra)["messages"]] == ["three"]


# -- deterministic kill points --------------------------------------------------------------------


def test_killed_at_register_before_write_keeps_the_old_registry(run_relay, store_home):
    sid = new_id()
    assert run_relay("register", "old", "--id", sid).returncode == 0
    before = store_files(store_home)
    result = run_relay("register", "new", "--id", sid, "--tool", "codex", extra_env=kill_at("register:before-write"))
    assert result.returncode == KILLED
    assert store_files(store_home) == before  # registry intact, no temp file left
    assert file_registry(store_home)["names"] == {"old": sid}
    assert run_relay("register", "new", "--id", sid).returncode == 0


def test_killed_at_send_before_append_writes_nothing_and_reports_failure(run_relay, store_home):
    sid = new_id()
    assert run_relay("send", "--id", sid, "--", "earlier").returncode == 0
    before = store_files(store_home)
    result = run_relay("send", "--id", sid, "--", "never", extra_env=kill_at("send:before-append"))
    assert result.returncode != 0
    assert b"queued" not in result.stdout
    assert store_files(store_home) == before
    assert_lock_free(run_relay, store_home)
    assert [m["body"] for m in inbox(run_relay, sid)["messages"]] == ["earlier"]


def test_killed_at_send_appended_is_delivered_once(run_relay, store_home):
    sid = new_id()
    result = run_relay("send", "--id", sid, "--", "made it", extra_env=kill_at("send:appended"))
    assert result.returncode == KILLED
    assert_lock_free(run_relay, store_home)
    got = inbox(run_relay, sid)["messages"]
    assert [(m["body"], bool(m.get("redelivered"))) for m in got] == [("made it", False)]
    assert inbox(run_relay, sid)["count"] == 0


def _queue(run_relay, sid: str, *bodies: str) -> list[str]:
    for body in bodies:
        assert run_relay("send", "--id", sid, "--", body).returncode == 0
    return [m["id"] for m in Store().peek(sid)]  # all of them (the CLI's peek shows 32 KiB)


@pytest.mark.parametrize("face", ["inbox", "hook"])
def test_killed_at_take_locked_leaves_mail_untouched(run_relay, store_home, tmp_path, face):
    sid = new_id()
    ids = _queue(run_relay, sid, "m1", "m2")
    args = ("inbox", sid) if face == "inbox" else ("hook",)
    result = run_relay(
        *args, input=hook_event(sid, tmp_path) if face == "hook" else None, extra_env=kill_at("take:locked")
    )
    assert result.returncode == KILLED
    assert result.stdout == b""
    got = inbox(run_relay, sid)["messages"]
    assert [(m["id"], m["body"], bool(m.get("redelivered"))) for m in got] == [
        (ids[0], "m1", False),
        (ids[1], "m2", False),
    ]


@pytest.mark.parametrize("face", ["inbox", "hook"])
@pytest.mark.parametrize("step", ["take:claimed", "take:before-ack"])
def test_killed_taker_mail_is_redelivered_first_with_same_ids(run_relay, store_home, tmp_path, face, step):
    sid = new_id()
    ids = _queue(run_relay, sid, "m1", "m2")
    args = ("inbox", sid) if face == "inbox" else ("hook",)
    result = run_relay(*args, input=hook_event(sid, tmp_path) if face == "hook" else None, extra_env=kill_at(step))
    assert result.returncode == KILLED
    if step == "take:before-ack":  # it was shown, then the taker died before confirming
        shown = (
            [m["body"] for m in json.loads(result.stdout)["messages"]]
            if face == "inbox"
            else [b for b, _ in hook_mail(result.stdout)]
        )
        assert shown == ["m1", "m2"]
    else:
        assert result.stdout == b""
    peeked = json.loads(run_relay("peek", sid).stdout)["messages"]
    assert [(m["body"], m["state"]) for m in peeked] == [("m1", "inflight"), ("m2", "inflight")]

    newer = _queue(run_relay, sid, "m3")[-1]
    if face == "hook":
        again = run_relay("hook", input=hook_event(sid, tmp_path))
        assert again.returncode == 0
        assert hook_mail(again.stdout) == [("m1", True), ("m2", True), ("m3", False)]
    else:
        got = inbox(run_relay, sid)["messages"]
        assert [(m["id"], m["body"], bool(m.get("redelivered"))) for m in got] == [
            (ids[0], "m1", True),
            (ids[1], "m2", True),
            (newer, "m3", False),
        ]
    assert inbox(run_relay, sid)["count"] == 0
    assert_lock_free(run_relay, store_home)


@pytest.mark.parametrize("face", ["inbox", "hook"])
def test_killed_at_take_acked_delivered_exactly_once(run_relay, store_home, tmp_path, face):
    sid = new_id()
    _queue(run_relay, sid, "m1", "m2")
    args = ("inbox", sid) if face == "inbox" else ("hook",)
    result = run_relay(
        *args, input=hook_event(sid, tmp_path) if face == "hook" else None, extra_env=kill_at("take:acked")
    )
    assert result.returncode == KILLED
    if face == "inbox":
        assert [m["body"] for m in json.loads(result.stdout)["messages"]] == ["m1", "m2"]
    else:
        assert hook_mail(result.stdout) == [("m1", False), ("m2", False)]
    assert inbox(run_relay, sid)["count"] == 0


def test_hook_killed_after_partial_ack_keeps_the_unshown_rest_queued(run_relay, store_home, tmp_path):
    sid = new_id()
    bodies = [f"big{i}-" + "x" * 20_000 for i in range(4)]
    ids = _queue(run_relay, sid, *bodies)
    result = run_relay("hook", input=hook_event(sid, tmp_path), extra_env=kill_at("take:acked"))
    assert result.returncode == KILLED
    shown = [b for b, _ in hook_mail(result.stdout)]
    assert shown == bodies[:1]
    got = drain(run_relay, sid)
    assert [m["id"] for m in got] == ids[1:]


# -- a crash between two steps of a claim or an ack never doubles a message in one batch -------------


def _no_doubles_in_any_batch(run_relay, sid: str, ids: list[str]) -> None:
    """Drain the mailbox; no batch holds an id twice, and every message arrives (at least once)."""
    seen: list[str] = []
    while True:
        got = inbox(run_relay, sid)
        batch = [m["id"] for m in got["messages"]]
        assert len(batch) == len(set(batch)), "a message was delivered twice in one batch"
        seen += batch
        if not got["remaining"]:
            break
    assert set(seen) == set(ids)


def test_killed_between_requeueing_the_rest_and_clearing_flight(run_relay, store_home):
    """Red team: a crash between rewriting pending mail and removing the in-flight file delivered
    the same message twice in one batch. The claim takes ~32 KiB of lines; the pretty-printed
    result shows fewer, so the unshown rest is requeued (take:requeued) before the kill."""
    sid = new_id()
    ids = _queue(run_relay, sid, *[f"n{i}-" + "q" * 500 for i in range(60)])
    result = run_relay("inbox", sid, extra_env=kill_at("take:requeued"))
    assert result.returncode == KILLED
    shown = json.loads(result.stdout)["messages"]
    assert 0 < len(shown) < 60
    assert (store_home / "inflight" / f"{sid}.jsonl").exists()
    _no_doubles_in_any_batch(run_relay, sid, ids)


def test_killed_between_copying_a_claim_and_cutting_it_from_pending(run_relay, store_home):
    sid = new_id()
    ids = _queue(run_relay, sid, *[f"c{i}-" + "q" * 500 for i in range(100)])
    result = run_relay("inbox", sid, extra_env=kill_at("take:copied"))
    assert result.returncode == KILLED and result.stdout == b""
    first = inbox(run_relay, sid)
    batch = [m["id"] for m in first["messages"]]
    assert len(batch) == len(set(batch))
    assert all(m.get("redelivered") for m in first["messages"])
    # the copies left in the mailbox were dropped as the duplicates they are
    assert first["count"] + first["remaining"] == 100
    _no_doubles_in_any_batch(run_relay, sid, [i for i in ids if i not in batch])


# -- random kills under load ------------------------------------------------------------------------

CRASH_SECONDS = float(os.environ.get("RELAY_CRASH_SECONDS", "50"))
WORKERS = 6
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def make_body(n: int, rng: random.Random) -> str:
    filler = "".join(rng.choices(LETTERS, k=rng.randint(1, 3000)))
    return f"r{n}-{filler}-{hashlib.sha256(filler.encode()).hexdigest()[:12]}"


def intact(body: str) -> bool:
    match = re.fullmatch(r"r\d+-([A-Za-z0-9]+)-([0-9a-f]{12})", body)
    return bool(match) and hashlib.sha256(match[1].encode()).hexdigest()[:12] == match[2]


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.trials = 0
        self.killed = 0
        self.sent_ok: set[str] = set()
        self.attempted: set[str] = set()
        self.delivered: list[tuple[str, str | None]] = []  # (body, id or None for the hook)
        self.durations: dict[str, list[float]] = {"send": [0.3], "inbox": [0.3], "hook": [0.3], "register": [0.3]}

    def typical(self, kind: str) -> float:
        with self.lock:
            runs = sorted(self.durations[kind][-50:])
        return runs[len(runs) // 2]


def test_random_sigkill_of_concurrent_senders_and_takers(relay_cmd, env, store_home, tmp_path, run_relay):
    rng_seed = int(os.environ.get("RELAY_CRASH_SEED", str(random.randrange(1 << 30))))
    print(f"crash test seed {rng_seed}")
    recipients = [new_id(), new_id()]
    others = [new_id() for _ in range(3)]
    for k, sid in enumerate(recipients):
        assert run_relay("register", f"rcpt-{k}", "--id", sid).returncode == 0
        (tmp_path / f"proj{k}").mkdir()
    tally = Tally()
    deadline = time.monotonic() + CRASH_SECONDS
    counter = iter(range(10**9))
    out_dir = Path(tempfile.mkdtemp(dir=tmp_path))

    def one_trial(rng: random.Random) -> None:
        n = next(counter)
        roll = rng.random()
        k = rng.randrange(len(recipients))
        sid = recipients[k]
        stdin = None
        if roll < 0.55:
            kind, body = "send", make_body(n, rng)
            args = ["send", "--id", sid, "--", body]
            steps = ("send:before-append", "send:appended")
        elif roll < 0.75:
            kind, body, args = "inbox", None, ["inbox", sid]
            steps = ("take:locked", "take:claimed", "take:before-ack", "take:acked")
        elif roll < 0.9:
            kind, body, args = "hook", None, ["hook"]
            stdin = hook_event(sid, tmp_path / f"proj{k}").encode()
            steps = ("register:before-write", "take:locked", "take:claimed", "take:before-ack", "take:acked")
        else:
            kind, body = "register", None
            args = ["register", f"name-{rng.randrange(4)}", "--id", rng.choice(others + recipients)]
            steps = ("register:before-write",)
        run_env = dict(env)
        mode = rng.random()
        kill_after = None
        if mode < 0.2:
            run_env["RELAY_TEST_KILL_AT"] = rng.choice(steps)
        elif mode < 0.75:
            kill_after = rng.uniform(0.3, 1.2) * tally.typical(kind)
        if body is not None:
            with tally.lock:
                tally.attempted.add(body)
        out_path = out_dir / f"{n}.out"
        started = time.monotonic()
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(
                [*relay_cmd, *args],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.DEVNULL,
                env=run_env,
                cwd=tmp_path,
            )
            try:
                proc.stdin.write(stdin or b"")
                proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                code = proc.wait(timeout=kill_after if kill_after is not None else 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait(timeout=60)
        elapsed = time.monotonic() - started
        stdout = out_path.read_bytes()
        out_path.unlink()
        delivered: list[tuple[str, str | None]] = []
        if kind == "inbox" and stdout:
            try:
                messages = json.loads(stdout)["messages"]
            except ValueError:
                messages = []  # cut off mid-print: it was never acked, so it comes again
            delivered = [(m["body"], m["id"]) for m in messages]
        elif kind == "hook" and stdout:
            try:
                delivered = [(body, None) for body, _ in hook_mail(stdout)]
            except ValueError:
                delivered = []
        with tally.lock:
            tally.trials += 1
            tally.killed += code == KILLED
            if code == 0:
                tally.durations[kind].append(elapsed)
                if kind == "send":
                    tally.sent_ok.add(body)
            tally.delivered += delivered

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            one_trial(rng)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for future in [pool.submit(worker, rng_seed + w) for w in range(WORKERS)]:
            future.result()

    # The lock is never stuck, and the store still works.
    assert_lock_free(run_relay, store_home)
    assert run_relay("register", "after", "--id", new_id()).returncode == 0
    registry = file_registry(store_home)  # never torn
    assert set(recipients) <= set(registry["agents"])
    assert not list(store_home.glob("quarantine/registry*"))

    # Drain everything that is still pending or in flight.
    for sid in recipients:
        for _ in range(100):
            got = inbox(run_relay, sid)
            if got["count"] == 0:
                break
            tally.delivered += [(m["body"], m["id"]) for m in got["messages"]]
        else:
            pytest.fail("mailbox never drained")
        assert json.loads(run_relay("peek", sid).stdout)["count"] == 0

    delivered_bodies = {body for body, _ in tally.delivered}
    torn = [body[:80] for body, _ in tally.delivered if not intact(body)]
    assert torn == [], "delivered bodies were torn"
    assert delivered_bodies <= tally.attempted, "a message was delivered that nobody sent"
    lost = sorted(b[:40] for b in tally.sent_ok - delivered_bodies)
    assert lost == [], f"{len(lost)} messages whose send succeeded were never delivered"
    ids_by_body: dict[str, set[str]] = {}
    for body, message_id in tally.delivered:
        if message_id is not None:
            ids_by_body.setdefault(body, set()).add(message_id)
    changed = {b[:40]: ids for b, ids in ids_by_body.items() if len(ids) > 1}
    assert changed == {}, "a redelivery carried a different id"
    quarantined = sum(len(p.read_bytes().splitlines()) for p in store_home.glob("quarantine/*"))
    redeliveries = len(tally.delivered) - len(delivered_bodies)
    print(
        f"crash test: {tally.trials} trials, {tally.killed} killed, {len(tally.sent_ok)} sends succeeded, "
        f"{len(delivered_bodies)} distinct delivered, {redeliveries} redeliveries, "
        f"{quarantined} torn lines quarantined"
    )
    assert tally.trials >= 200
    assert tally.killed >= 50
    assert len(tally.sent_ok) >= 50


def test_hook_whose_reader_is_gone_keeps_the_mail(relay_cmd, env, run_relay, store_home, tmp_path):
    """The agent CLI went away before reading the hook's output (EPIPE): nothing is confirmed taken,
    the hook still exits 0, and the mail comes again at the next start, same ids."""
    sid = new_id()
    ids = _queue(run_relay, sid, "m1", "m2")
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read the hook's stdout
    try:
        result = subprocess.run(
            [*relay_cmd, "hook"],
            input=hook_event(sid, tmp_path).encode(),
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 0, result.stderr
    got = inbox(run_relay, sid)["messages"]
    assert [(m["id"], m["body"]) for m in got] == [(ids[0], "m1"), (ids[1], "m2")]


def test_inbox_whose_reader_is_gone_keeps_the_mail(relay_cmd, env, run_relay, store_home, tmp_path):
    """`relay inbox | (reader that exits)`: the mail it could not print is not taken."""
    sid = new_id()
    ids = _queue(run_relay, sid, "m1", "m2")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        subprocess.run(
            [*relay_cmd, "inbox", sid], stdout=write_end, stderr=subprocess.PIPE, env=env, timeout=60, check=False
        )
    finally:
        os.close(write_end)
    got = inbox(run_relay, sid)["messages"]
    assert [(m["id"], m["body"]) for m in got] == [(ids[0], "m1"), (ids[1], "m2")]


def _plant_backlog(store_home: Path, sid: str, count: int) -> list[str]:
    """`count` messages of ~600 bytes written straight into the mailbox: several batches, so a
    take passes them by the read cursor instead of rewriting the mailbox."""
    ids = [new_id() for _ in range(count)]
    line = {"ts": "2026-12-01T00:00:00.000Z", "from": None, "fromName": "cli", "to": sid}
    plant_mail(store_home, sid, [{"id": i, **line, "body": f"b{n}-" + "q" * 600} for n, i in enumerate(ids)])
    return ids


@pytest.mark.files_only("plants a mailbox of several batches, for the take to move the read cursor")
@pytest.mark.parametrize("step", ["take:copied", "take:requeued", "take:acked"])
def test_a_taker_killed_while_it_moves_the_read_cursor_loses_nothing(run_relay, store_home, step):
    """Killed between copying a batch into flight and moving the cursor past it (take:copied),
    after moving the cursor back over what it did not show (take:requeued), or after its ack: the
    rest of the backlog arrives, each message at least once, never twice in one batch, and only
    mail left in flight comes again (marked redelivered)."""
    sid = new_id()
    ids = _plant_backlog(store_home, sid, 300)
    result = run_relay("inbox", sid, extra_env=kill_at(step))
    assert result.returncode == KILLED
    shown = [m["id"] for m in json.loads(result.stdout)["messages"]] if result.stdout else []
    first = inbox(run_relay, sid)
    again = [m["id"] for m in first["messages"] if m.get("redelivered")]
    assert step != "take:acked" or (shown and not again and first["messages"][0]["id"] == ids[len(shown)])
    batch = [m["id"] for m in first["messages"]]
    assert len(batch) == len(set(batch))
    rest = [i for i in ids if i not in batch and (step != "take:acked" or i not in shown)]
    _no_doubles_in_any_batch(run_relay, sid, rest)
    assert not any((store_home / "mailbox").iterdir())

"""The store lock (docs/store.md): 3 s deadline and its exact error, crashed holders, the 0.1 lock
directory, and interop with fasteners' InterProcessLock.

Kernel record locks are per process, so every holder here is a child process.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import fasteners
import pytest
from conftest import REPO, file_registry, new_id

from relay.store.files import Store
from relay.store.lock import FileLock
from relay.util.errors import LockBusy

BUSY = "session-relay: lock busy (held > 3s)"

HOLD_OURS = """
import sys
from pathlib import Path
from relay.store.lock import FileLock
lock = FileLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""

HOLD_FASTENERS = """
import sys
import fasteners
lock = fasteners.InterProcessLock(sys.argv[1])
assert lock.acquire(blocking=True, timeout=10)
print("held", flush=True)
sys.stdin.read()
"""


class Holder:
    """A child process that holds a lock on `path` until released (stdin closed) or killed."""

    def __init__(self, code: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        line = self.proc.stdout.readline()
        assert line == b"held\n", line

    def release(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=10) == 0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.kill()


@pytest.fixture
def holders():
    started: list[Holder] = []

    def start(code: str, path: Path) -> Holder:
        holder = Holder(code, path)
        started.append(holder)
        return holder

    yield start
    for holder in started:
        holder.cleanup()


def test_deadline_is_three_seconds_with_the_exact_message(env, store_home, holders):
    holders(HOLD_OURS, store_home / ".lock")
    start = time.monotonic()
    with pytest.raises(LockBusy) as caught:
        FileLock(store_home / ".lock").acquire()
    waited = time.monotonic() - start
    assert str(caught.value) == BUSY
    assert 2.9 <= waited < 4.5, waited


def test_cli_reports_lock_busy_in_one_line_and_exit_1(run_relay, store_home, holders):
    assert run_relay("register", "seed", "--id", new_id()).returncode == 0
    registry_before = file_registry(store_home)
    holders(HOLD_OURS, store_home / ".lock")
    start = time.monotonic()
    result = run_relay("register", "blocked", "--id", new_id())
    waited = time.monotonic() - start
    assert result.returncode == 1
    assert result.stderr.decode() == BUSY + "\n"
    assert 2.9 <= waited < 10
    assert file_registry(store_home) == registry_before

    sid = new_id()
    sent = run_relay("send", "--id", sid, "--", "blocked")
    assert sent.returncode == 1
    assert sent.stderr.decode() == BUSY + "\n"
    assert not (store_home / "mailbox" / f"{sid}.jsonl").exists()


def test_hook_exits_0_when_the_lock_is_busy(run_relay, store_home, tmp_path, holders):
    holders(HOLD_OURS, store_home / ".lock")
    event = f'{{"session_id": "{new_id()}", "cwd": "{tmp_path}"}}'
    result = run_relay("hook", input=event)
    assert result.returncode == 0
    assert result.stdout == b""
    assert result.stderr.decode() == f"[session-relay/hook] {BUSY}\n"


def test_lock_is_free_as_soon_as_the_holder_is_released(env, store_home, holders):
    holder = holders(HOLD_OURS, store_home / ".lock")
    holder.release()
    start = time.monotonic()
    with FileLock(store_home / ".lock"):
        pass
    assert time.monotonic() - start < 0.5


def test_a_killed_holder_never_blocks(env, store_home, holders):
    holder = holders(HOLD_OURS, store_home / ".lock")
    with pytest.raises(LockBusy):
        FileLock(store_home / ".lock", deadline=0.2).acquire()
    holder.kill()  # SIGKILL: no cleanup code runs
    start = time.monotonic()
    with FileLock(store_home / ".lock", deadline=0.5):
        pass
    assert time.monotonic() - start < 0.5
    Store(store_home).register(new_id(), name="after-crash")


def test_leftover_v01_lock_directory_is_removed(env, store_home, run_relay):
    (store_home / ".lock").mkdir(parents=True)
    (store_home / ".lock" / "owner").write_text("12345\n")  # whatever Node left inside
    sid = new_id()
    Store(store_home).register(sid, name="migrated")
    assert (store_home / ".lock").is_file()
    assert Store(store_home).registry().resolve("migrated")["id"] == sid

    (store_home / ".lock").unlink()
    (store_home / ".lock").mkdir()
    result = run_relay("send", "migrated", "--", "hello")
    assert result.returncode == 0, result.stderr
    assert (store_home / ".lock").is_file()


def test_fasteners_holder_blocks_us(env, store_home, holders):
    holder = holders(HOLD_FASTENERS, store_home / ".lock")
    with pytest.raises(LockBusy):
        FileLock(store_home / ".lock", deadline=0.3).acquire()
    holder.release()
    with FileLock(store_home / ".lock", deadline=1.0):
        pass


def test_we_block_a_fasteners_user(env, store_home, holders):
    holder = holders(HOLD_OURS, store_home / ".lock")
    theirs = fasteners.InterProcessLock(str(store_home / ".lock"))
    assert theirs.acquire(blocking=False) is False
    holder.release()
    assert theirs.acquire(blocking=True, timeout=2) is True
    theirs.release()


def test_take_lock_serialises_takers(env, store_home, holders):
    """A mailbox's take lock is held by one taker; a second taker waits, then gets LockBusy."""
    store = Store(store_home)
    sid = new_id()
    store.enqueue(sid, {"id": new_id(), "body": "x"})
    holders(HOLD_OURS, store_home / "inflight" / f"{sid}.lock")
    with pytest.raises(LockBusy):
        store.take(sid)
    # the store lock itself is not held: other operations go on
    store.register(new_id(), name="free")
    assert [m["body"] for m in store.peek(sid)] == ["x"]

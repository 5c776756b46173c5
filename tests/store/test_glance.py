"""relay.store.glance: the read-only questions the hook asks the local store without loading it.

What the store refuses to open (a planted symlink or FIFO, another user's file) it refuses here too,
and a hook event with nothing to deliver changes nothing in the store."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, new_id

from relay.domain.ids import require_uuid
from relay.store import glance
from relay.store.files import Store

# Holds the lock on argv[1] (as a watcher holds its pid file) with argv[2] recorded, until killed.
LOCKER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
os.pwrite(fd, sys.argv[2].encode(), 0)
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def locked(tmp_path: Path):  # type: ignore[no-untyped-def]
    """lock(path, note): another process holds the lock on `path` with `note` in it."""
    children: list[subprocess.Popen] = []

    def lock(path: Path, note: str) -> None:
        child = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(path), note], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        children.append(child)
        assert child.stdout is not None and child.stdout.readline().strip() == "held"

    yield lock
    for child in children:
        child.kill()
        child.wait(10)


def _watchers(store_home: Path) -> Path:
    directory = store_home / "watchers"
    directory.mkdir(parents=True, mode=0o700, exist_ok=True)
    return directory


def test_a_held_pid_file_names_the_watcher_both_ways(env, store_home, locked):
    sid = require_uuid(new_id())
    pid_file = _watchers(store_home) / f"{sid}.pid"
    pid_file.write_bytes(b"")
    pid_file.chmod(0o600)
    assert glance.watcher(str(store_home), sid) is None  # an unheld file: nobody watches
    locked(pid_file, "4242\n")
    assert glance.watcher(str(store_home), sid) == 4242 == Store(store_home).watcher(sid)


def test_a_planted_symlink_to_a_held_lock_is_not_followed(env, store_home, tmp_path, locked):
    sid = require_uuid(new_id())
    elsewhere = tmp_path / "elsewhere.pid"
    elsewhere.write_bytes(b"")
    locked(elsewhere, "4242\n")
    (_watchers(store_home) / f"{sid}.pid").symlink_to(elsewhere)
    assert glance.watcher(str(store_home), sid) is None


def test_a_planted_fifo_reads_as_no_watcher_without_blocking(env, store_home):
    sid = require_uuid(new_id())
    os.mkfifo(_watchers(store_home) / f"{sid}.pid", 0o600)
    started = time.monotonic()
    assert glance.watcher(str(store_home), sid) is None
    assert time.monotonic() - started < 2


@pytest.mark.skipif(os.geteuid() != 0, reason="making another user's file takes root")
def test_another_users_pid_file_is_refused_and_left_as_it_is(env, store_home, locked):
    sid = require_uuid(new_id())
    pid_file = _watchers(store_home) / f"{sid}.pid"
    pid_file.write_bytes(b"")
    pid_file.chmod(0o644)
    os.chown(pid_file, 54321, 54321)
    locked(pid_file, "4242\n")
    assert glance.watcher(str(store_home), sid) is None
    assert pid_file.stat().st_mode & 0o777 == 0o644  # not even its mode was touched


def test_mail_waiting_is_two_stats_of_the_stores_own_files(env, store_home):
    store, sid = Store(store_home), require_uuid(new_id())
    assert glance.mail_stamp(str(store_home), sid) is None
    store.enqueue(sid, {"id": "m1", "ts": "2026-12-07T00:00:00.000Z", "from": None, "to": sid, "body": "hi"})
    assert glance.mail_stamp(str(store_home), sid) == store.mail_stamp(sid) is not None


@pytest.mark.parametrize("home", ["/x/store", "/x/store/", "relative", "/"])
def test_names_are_joined_as_os_path_joins_them(home):
    sid = new_id()
    assert glance.mailbox_path(home, sid) == os.path.join(home, "mailbox", f"{sid}.jsonl")
    assert glance.watch_path(home, sid) == os.path.join(home, "watchers", f"{sid}.pid")


@pytest.mark.parametrize("event", ["UserPromptSubmit", "PostToolUse", "Stop"])
def test_an_event_with_nothing_to_deliver_changes_nothing_in_the_store(env, store_home, tmp_path, event):
    sid = new_id()
    hook = [sys.executable, "-I", "-S", "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); import relay.__main__"]
    start = {"session_id": sid, "hook_event_name": "SessionStart", "cwd": str(tmp_path)}
    run = {"env": env, "capture_output": True, "timeout": 60, "check": True}
    subprocess.run([*hook, str(REPO), "hook"], input=json.dumps(start).encode(), **run)  # type: ignore[call-overload]

    def snapshot() -> dict[str, tuple[int, int, int]]:
        return {
            str(path): (path.lstat().st_mode, path.lstat().st_size, path.lstat().st_mtime_ns)
            for path in [store_home, *store_home.rglob("*")]
        }

    before = snapshot()
    payload = {**start, "hook_event_name": event, "prompt": "hello"}
    done = subprocess.run([*hook, str(REPO), "hook"], input=json.dumps(payload).encode(), **run)  # type: ignore[call-overload]
    assert done.stdout == b"" and done.stderr == b""
    assert snapshot() == before

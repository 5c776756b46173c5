"""`relay doctor` reports what needs a human: loose permissions, a corrupt registry, a held lock,
mail left in flight by a dead taker, and quarantined files; it exits 1 only then."""

import fcntl
import os

from conftest import new_id


def _start(run_relay, session_id):
    event = f'{{"session_id": "{session_id}", "cwd": "/tmp"}}'
    assert run_relay("hook", input=event).returncode == 0


def test_a_fresh_store_is_healthy(run_relay, store_home):
    result = run_relay("doctor")
    assert result.returncode == 0
    assert b"no store yet" in result.stdout
    _start(run_relay, new_id())
    result = run_relay("doctor")
    assert result.returncode == 0, result.stdout
    assert b"registry: 1 session(s)" in result.stdout
    assert b"PROBLEM" not in result.stdout


def test_mail_left_in_flight_by_a_killed_taker_is_reported(run_relay, store_home):
    session = new_id()
    _start(run_relay, session)
    assert run_relay("send", "--id", session, "--", "hello").returncode == 0
    killed = run_relay("inbox", session, extra_env={"RELAY_TEST_KILL_AT": "take:claimed"})
    assert killed.returncode == -9
    result = run_relay("doctor")
    assert result.returncode == 1
    assert f"1 message(s) for {session} in flight".encode() in result.stdout


def test_corrupt_registry_loose_mode_and_quarantine_are_reported(run_relay, store_home):
    _start(run_relay, new_id())
    (store_home / "registry.json").write_text("{not json")
    os.chmod(store_home, 0o755)
    result = run_relay("doctor")
    assert result.returncode == 1
    assert b"registry.json does not parse" in result.stdout
    assert b"readable by others (mode 755)" in result.stdout
    # the next change quarantines the registry; doctor then points at the kept copy
    assert run_relay("register", "x", "--id", new_id()).returncode == 0
    result = run_relay("doctor")
    assert b"kept in quarantine" in result.stdout and b"registry.json.corrupt-" in result.stdout


def test_a_held_lock_is_reported(run_relay, store_home):
    _start(run_relay, new_id())
    with open(store_home / ".lock", "r+b") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_relay("doctor")
    assert result.returncode == 1
    assert b"lock is held by another process" in result.stdout

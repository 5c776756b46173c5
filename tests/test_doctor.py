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


def test_every_planted_or_broken_file_is_reported_not_just_the_first(run_relay, store_home, tmp_path):
    """Red team: doctor stopped at the first bad file or missed it. Plant one of each kind at once."""
    sid = new_id()
    _start(run_relay, sid)
    assert run_relay("send", "--id", sid, "--", "hello").returncode == 0
    assert run_relay("inbox", sid, extra_env={"RELAY_TEST_KILL_AT": "take:claimed"}).returncode == -9
    outside = tmp_path / "outside"
    outside.write_text("x")
    planted = {
        "symlink": store_home / "markers" / "-planted-link",
        "fifo": store_home / "inflight" / f"{new_id()}.jsonl",
        "hardlink": store_home / "mailbox" / f"{new_id()}.jsonl",
        "loose": store_home / "mailbox" / f"{new_id()}.jsonl",
        "garbage-marker": store_home / "markers" / "-garbage",
        "garbage-mail": store_home / "mailbox" / f"{new_id()}.jsonl",
        "foreign": store_home / "mailbox" / f"{new_id()}.jsonl",
    }
    planted["symlink"].symlink_to(outside)
    os.mkfifo(planted["fifo"])
    os.link(outside, planted["hardlink"])
    planted["loose"].write_text("")
    os.chmod(planted["loose"], 0o644)
    planted["garbage-marker"].write_text("not an id\n")
    planted["garbage-mail"].write_text('{"id": "ok"}\nnot json\n')
    planted["foreign"].write_text("")
    if os.geteuid() == 0:
        os.chown(planted["foreign"], 12345, 12345)
    (store_home / "quarantine").mkdir()
    (store_home / "quarantine" / "kept").write_text("x")
    result = run_relay("doctor")
    assert result.returncode == 1
    out = result.stdout.decode()
    problems = [line for line in out.splitlines() if line.startswith("PROBLEM")]
    expect = {
        "symlink": "is a symlink",
        "fifo": "is a FIFO",
        "hardlink": "2 hard links",
        "loose": "readable by others (mode 644)",
        "garbage-marker": "marker does not parse",
        "garbage-mail": "1 line(s) does not parse",
    }
    if os.geteuid() == 0:
        expect["foreign"] = "belongs to uid 12345"
    for key, words in expect.items():
        assert any(str(planted[key]) in line and words in line for line in problems), (key, out)
    assert any(f"1 message(s) for {sid} in flight" in line for line in problems), out
    assert any("kept in quarantine" in line for line in problems), out
    # reporting changed nothing
    assert os.stat(planted["loose"]).st_mode & 0o777 == 0o644
    assert planted["symlink"].is_symlink() and planted["fifo"].exists()


def test_doctor_never_blocks_on_a_fifo(run_relay, store_home):
    _start(run_relay, new_id())
    (store_home / "registry.json").unlink()
    os.mkfifo(store_home / "registry.json")
    result = run_relay("doctor", timeout=20)
    assert result.returncode == 1
    assert b"registry.json is a FIFO" in result.stdout


def test_a_shared_home_is_reported_as_refused_and_left_alone(run_relay, store_home):
    store_home.mkdir()
    os.chmod(store_home, 0o1777)
    result = run_relay("doctor")
    assert result.returncode == 1
    assert b"writable by group or others (mode 1777)" in result.stdout
    assert os.stat(store_home).st_mode & 0o7777 == 0o1777

"""OpenCode's adapter (relay.agents.opencode) and `relay hook opencode`, without the real CLI
(tests/real/test_opencode_real.py runs the real one): the plugin's events, its answer's shape, the
bus learning its session before a tool call, sessions read from OpenCode's database, and doctor."""

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import file_registry

from relay.agents import opencode

SID = "ses_db16e0fa9ffey3oGpK6C4PyxpG"
OTHER = "ses_db1702795ffePuWUsy1JyGBG4l"


def event(name: str, session_id: str, cwd: Path, **extra) -> bytes:
    """One event as relay's OpenCode plugin sends it."""
    return json.dumps({"hook_event_name": name, "session_id": session_id, "cwd": str(cwd), **extra}).encode()


def registry(store_home: Path) -> dict:
    return file_registry(store_home)


def test_the_plugin_events_register_deliver_and_answer_with_text(run_relay, store_home, tmp_path):
    started = run_relay("hook", "opencode", input=event("session.created", SID, tmp_path))
    assert started.returncode == 0 and started.stdout == b"", started.stderr
    entry = registry(store_home)["agents"][SID]
    assert (entry["id"], entry["tool"], entry["dir"]) == (SID, "opencode", str(tmp_path))

    assert run_relay("send", SID, "--", "before the prompt").returncode == 0
    prompt = run_relay("hook", "opencode", input=event("chat.message", SID, tmp_path, prompt="hi"))
    answer = json.loads(prompt.stdout)
    assert list(answer) == ["text"] and "before the prompt" in answer["text"]
    assert run_relay("hook", "opencode", input=event("chat.message", SID, tmp_path)).stdout == b""  # taken once

    assert run_relay("send", SID, "--", "plain, between tools").returncode == 0
    assert run_relay("hook", "opencode", input=event("tool.execute.after", SID, tmp_path)).stdout == b""
    assert run_relay("send", "--urgent", SID, "--", "urgent one").returncode == 0
    between = json.loads(run_relay("hook", "opencode", input=event("tool.execute.after", SID, tmp_path)).stdout)
    assert "urgent one" in between["text"] and "plain, between tools" not in between["text"]

    end = json.loads(run_relay("hook", "opencode", input=event("session.idle", SID, tmp_path)).stdout)
    assert "plain, between tools" in end["text"]
    assert run_relay("send", SID, "--", "after an extended turn").returncode == 0
    again = run_relay("hook", "opencode", input=event("session.idle", SID, tmp_path, stop_hook_active=True))
    assert again.stdout == b""  # a turn is extended once

    run_relay("hook", "opencode", input=event("session.deleted", SID, tmp_path))
    assert registry(store_home)["agents"][SID].get("endedAt")


def test_a_bus_tool_call_points_the_directory_at_its_session(run_relay, store_home, tmp_path):
    for sid in (SID, OTHER):
        run_relay("hook", "opencode", input=event("session.created", sid, tmp_path))
    marker = store_home / "markers" / re.sub(r"[^A-Za-z0-9]", "-", str(tmp_path))  # what the bus reads
    assert marker.read_text().split("\n")[0] == OTHER  # the last one started
    run_relay("hook", "opencode", input=event("tool.execute.before", SID, tmp_path))
    assert marker.read_text() == f"{SID}\n{tmp_path}\n"


@pytest.mark.parametrize("bad", ["ses_short", "ses_" + "a" * 25 + "-", "--config=evil", SID.upper()])
def test_a_bad_id_from_the_plugin_is_refused(run_relay, store_home, tmp_path, bad):
    done = run_relay("hook", "opencode", input=event("session.created", bad, tmp_path))
    assert done.returncode == 0 and done.stdout == b""
    assert b"invalid session id" in done.stderr
    assert not (store_home / "agents").exists()


def make_db(path: Path, rows: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as con:
        con.execute(
            "CREATE TABLE session (id TEXT PRIMARY KEY, directory TEXT, title TEXT, time_created INTEGER,"
            " time_updated INTEGER, time_archived INTEGER, parent_id TEXT)"
        )
        con.executemany("INSERT INTO session VALUES (?, ?, 't', 0, ?, ?, ?)", rows)


def test_sessions_come_from_the_database_read_only(tmp_path, monkeypatch):
    db = tmp_path / "share" / "opencode" / "opencode.db"
    now = int(time.time() * 1000)
    make_db(
        db,
        [
            (SID, "/work/a", now, None, None),
            (OTHER, "/work/b", now - 3_600_000, None, None),
            ("ses_" + "c" * 26, "/work/a", now, None, SID),  # a sub-agent's session
            ("ses_" + "d" * 26, "/work/a", now, now, None),  # archived
        ],
    )
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    before = db.read_bytes()
    recent = list(opencode.recent_sessions(time.time() - 60))
    assert [(sid, cwd) for sid, cwd, _ in recent] == [(SID, "/work/a")]
    assert abs(recent[0][2] - now / 1000) < 1
    assert sorted(sid for sid, _ in opencode.transcript_times()) == sorted([SID, OTHER])
    assert db.read_bytes() == before

    with sqlite3.connect(db) as con:  # OpenCode writing: the file is read as it is
        con.execute("BEGIN EXCLUSIVE")
        assert [sid for sid, _, _ in opencode.recent_sessions(0)] == [SID, OTHER]
        con.rollback()


def test_no_database_no_sessions(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "none"))
    assert list(opencode.recent_sessions(0)) == [] and opencode.live_sessions() == set()


def test_wake_resumes_the_session_with_opencode_run():
    assert opencode.wake_argv(SID, "nudge") == ["opencode", "run", "--session", SID, "--format", "json", "--", "nudge"]


def test_doctor_checks_the_plugin_is_this_checkouts(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no opencode on PATH
    root = tmp_path / "clone"
    (root / "opencode-plugin").mkdir(parents=True)
    assert opencode.doctor_findings(None, root)[0][0] == "PASS"  # not installed: nothing to check

    config = tmp_path / "config" / "opencode" / "opencode.jsonc"
    config.parent.mkdir(parents=True)
    config.write_text('{\n  // plugins\n  "plugin": ["/elsewhere/opencode-plugin",],\n}\n')
    [(level, what, fix)] = opencode.doctor_findings(None, root)
    assert level == "WARN" and "/elsewhere/opencode-plugin" in what
    assert fix == f"opencode plugin -g {root / 'opencode-plugin'}"

    config.write_text(json.dumps({"plugin": [str(root / "opencode-plugin")]}))
    assert opencode.doctor_findings(None, root)[0][0] == "PASS"
    config.write_text(json.dumps({"plugin": []}))
    assert opencode.doctor_findings(None, root)[0][0] == "WARN"

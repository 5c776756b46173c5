"""The transcript readers (relay.host.transcripts), each on its own: where the CLIs' files live, which
are listed, and what is read from one. discover, gc, liveness, codex_session and codex_queue all
read through these, so their safety rules (UUID ids only, no symlinks, no blocking on a FIFO,
bounded reads) are checked here once, on real-shaped files from tests/agent_files.py."""

import json
import os
import threading
from pathlib import Path

import pytest
from agent_files import (
    claude_subagent_files,
    claude_transcript,
    codex_meta_line,
    codex_rollout,
    uuid7,
)
from conftest import new_id
from test_codex_queue import DONE_TURN, STARTED

from relay.agents import claude, codex
from relay.host import transcripts

# ---------------------------------------------------------------- where they live


def test_roots_from_relay_override_then_cli_config_then_home(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("RELAY_CLAUDE_PROJECTS", "RELAY_CODEX_SESSIONS", "CLAUDE_CONFIG_DIR", "CODEX_HOME"):
        monkeypatch.setenv(name, "")  # empty counts as unset
    assert claude.projects_root() == tmp_path / "home" / ".claude" / "projects"
    assert codex.sessions_root() == tmp_path / "home" / ".codex" / "sessions"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/cfg/claude")
    monkeypatch.setenv("CODEX_HOME", "/cfg/codex")
    assert claude.projects_root() == Path("/cfg/claude/projects")
    assert codex.sessions_root() == Path("/cfg/codex/sessions")
    monkeypatch.setenv("RELAY_CLAUDE_PROJECTS", "/override/claude")
    monkeypatch.setenv("RELAY_CODEX_SESSIONS", "/override/codex")
    assert claude.projects_root() == Path("/override/claude")
    assert codex.sessions_root() == Path("/override/codex")


def test_codex_home_of() -> None:
    assert codex.home_of("/h/.codex/sessions/2026/11/30/rollout-x.jsonl") == "/h/.codex"
    assert codex.home_of("/h/.codex/archived_sessions/rollout-x.jsonl") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "rollout-2026-11-30T10-00-00-0199aaaa-bbbb-7ccc-8ddd-eeeeffff0000.jsonl",
            "0199aaaa-bbbb-7ccc-8ddd-eeeeffff0000",
        ),
        (
            "/x/rollout-2026-11-30T10-00-00-0199AAAA-BBBB-7CCC-8DDD-EEEEFFFF0000.jsonl",
            "0199aaaa-bbbb-7ccc-8ddd-eeeeffff0000",
        ),
        ("rollout-2026-11-30T10-00-00-not-a-uuid.jsonl", None),
        ("notes-0199aaaa-bbbb-7ccc-8ddd-eeeeffff0000.jsonl", None),
        ("rollout-2026-11-30T10-00-00-0199aaaa-bbbb-7ccc-8ddd-eeeeffff0000.json", None),
    ],
)
def test_rollout_id_from_the_file_name(name, expected):
    assert codex.rollout_id(name) == expected


# ---------------------------------------------------------------- listing them


def test_claude_files_lists_uuid_transcripts_one_level_deep_and_fresh(tmp_path) -> None:
    root = tmp_path / "projects"
    fresh, old = new_id(), new_id()
    fresh_path = claude_transcript(root, "/p/fresh", session_id=fresh, age=60)
    claude_transcript(root, "/p/old", session_id=old, age=7200)
    claude_subagent_files(root, "/p/fresh", fresh)  # under <uuid>/subagents/, or agent-<hex>.jsonl
    (root / "-p-fresh" / "notes.jsonl").write_text("{}\n")
    os.symlink(fresh_path, root / "-p-fresh" / f"{new_id()}.jsonl")  # a link is not a transcript
    os.symlink(root / "-p-fresh", root / "-linked-project")  # nor is a linked project dir
    listed = list(claude.transcript_files(root, since=os.path.getmtime(fresh_path) - 1))
    assert [(sid, path) for sid, path, _ in listed] == [(fresh, str(fresh_path))]
    assert {sid for sid, _, _ in claude.transcript_files(root, since=0.0)} == {fresh, old}
    assert list(claude.transcript_files(tmp_path / "missing", since=0.0)) == []


def test_codex_files_walks_every_depth_but_archived_and_links(tmp_path) -> None:
    root = tmp_path / "sessions"
    today = codex_rollout(root, "/p/today", age=60)
    resumed = codex_rollout(root, "/p/resumed", date=(2025, 1, 2), age=60)  # old dir, live file
    codex_rollout(root, "/p/old", date=(2025, 1, 3), age=7200)
    codex_rollout(root, "/p/archived", under="archived_sessions", age=60)
    os.symlink(today.parent, root / "linked-day")
    (today.parent / "notes.jsonl").write_text("{}\n")
    since = os.path.getmtime(today) - 1
    assert sorted(path for path, _ in codex.rollout_files(root, since)) == sorted([str(today), str(resumed)])


# ---------------------------------------------------------------- reading one


def test_bounded_lines_unit(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"one\ntwo\n" + b"x" * 100 + b"\nlast-without-newline")
    assert list(transcripts.bounded_lines(str(path))) == [b"one", b"two", b"x" * 100, b"last-without-newline"]
    # a line cut by the limit is dropped, not returned half
    assert list(transcripts.bounded_lines(str(path), limit=10)) == [b"one", b"two"]
    assert list(transcripts.bounded_lines(str(tmp_path / "missing"))) == []


def test_bounded_lines_never_follows_a_link_nor_waits_on_a_fifo(tmp_path) -> None:
    target = tmp_path / "real.jsonl"
    target.write_bytes(b'{"cwd":"/secret"}\n')
    link = tmp_path / "link.jsonl"
    os.symlink(target, link)
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    found: list[list[bytes]] = []
    worker = threading.Thread(
        target=lambda: found.extend([list(transcripts.bounded_lines(str(p))) for p in (link, fifo)]), daemon=True
    )
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("bounded_lines blocked on a FIFO")
    assert found == [[], []]


@pytest.mark.parametrize("first", ["user", "queue-operation", "file-history-snapshot", "summary"])
def test_claude_cwd_is_the_first_cwd_however_far(tmp_path, first) -> None:
    path = claude_transcript(tmp_path, "/srv/app", first=first, prompt_bytes=200 * 1024)
    assert claude.transcript_cwd(str(path)) == "/srv/app"
    assert claude.transcript_cwd(str(claude_transcript(tmp_path, None))) is None


def test_claude_cwd_refuses_a_subagent_transcript(tmp_path) -> None:
    for path in claude_subagent_files(tmp_path, "/srv/app", new_id()):
        with pytest.raises(claude.Sidechain):
            claude.transcript_cwd(str(path))


def test_codex_meta_reads_the_session_meta_line(tmp_path) -> None:
    sid = uuid7()
    assert codex.session_meta(str(codex_rollout(tmp_path, "/srv/x", session_id=sid))) == (sid, "/srv/x")
    blank_first = codex_rollout(tmp_path, None, first_line="\n  \n" + codex_meta_line(sid, "/srv/blank"))
    assert codex.session_meta(str(blank_first)) == (sid, "/srv/blank")
    no_cwd = codex_rollout(tmp_path, None, session_id=sid)
    assert codex.session_meta(str(no_cwd)) == (sid, None)
    only_session_id = json.dumps({"type": "session_meta", "payload": {"session_id": sid, "cwd": "/s"}}) + "\n"
    assert codex.session_meta(str(codex_rollout(tmp_path, None, first_line=only_session_id))) == (sid, "/s")


@pytest.mark.parametrize(
    "first_line",
    [
        '{"type":"event_msg","payload":{"id":"x","cwd":"/not-meta"}}\n',  # the meta must come first
        '{"type":"session_meta","payload":"flat"}\n',
        "[1, 2]\n",
        "not json\n",
        "",
    ],
)
def test_codex_meta_without_a_session_meta_first_is_nothing(tmp_path, first_line) -> None:
    path = codex_rollout(tmp_path, None, first_line=first_line)
    if not first_line:
        path.write_text("")
    assert codex.session_meta(str(path)) == (None, None)


def test_codex_meta_ids_are_returned_only_as_strings(tmp_path) -> None:
    line = json.dumps({"type": "session_meta", "payload": {"id": 7, "cwd": ""}}) + "\n"
    assert codex.session_meta(str(codex_rollout(tmp_path, None, first_line=line))) == (None, None)


@pytest.mark.parametrize(
    ("source", "expected"),
    [({"subagent": {"thread_spawn": {"parent_thread_id": "p"}}}, True), ("exec", False), ("cli", False)],
)
def test_codex_is_subagent_from_the_meta_source(tmp_path, source, expected) -> None:
    sid = uuid7()
    line = json.dumps({"type": "session_meta", "payload": {"id": sid, "cwd": "/s", "source": source}}) + "\n"
    assert codex.is_subagent(str(codex_rollout(tmp_path, None, first_line=line))) is expected


def test_codex_is_subagent_of_nothing_readable_is_false(tmp_path) -> None:
    assert codex.is_subagent(None) is False
    assert codex.is_subagent(str(tmp_path / "missing.jsonl")) is False
    assert codex.is_subagent(str(codex_rollout(tmp_path, None, first_line="{oops\n"))) is False


def test_turn_in_progress(tmp_path: Path) -> None:
    rollout = tmp_path / "r.jsonl"
    assert not codex.turn_in_progress(str(rollout))  # unreadable: not busy
    rollout.write_bytes(b"")
    assert not codex.turn_in_progress(str(rollout))
    rollout.write_bytes(DONE_TURN)
    assert not codex.turn_in_progress(str(rollout))
    rollout.write_bytes(DONE_TURN + STARTED)
    assert codex.turn_in_progress(str(rollout))
    # A user's text quoting the marker is escaped inside the JSON line and does not count.
    rollout.write_bytes(DONE_TURN + json.dumps({"text": '"type":"task_started"'}).encode() + b"\n")
    assert not codex.turn_in_progress(str(rollout))


def test_turn_in_progress_reads_only_the_tail(tmp_path: Path) -> None:
    """A turn that started before the last `_TAIL_BYTES` is not seen: the read stays bounded."""
    rollout = tmp_path / "r.jsonl"
    filler = b'{"type":"event_msg","payload":{"type":"token_count","n":"' + b"0" * 1000 + b'"}}\n'
    rollout.write_bytes(STARTED + filler * (codex.TAIL_BYTES // len(filler) + 1))
    assert not codex.turn_in_progress(str(rollout))
    rollout.write_bytes(STARTED + filler * (codex.TAIL_BYTES // len(filler) - 1))
    assert codex.turn_in_progress(str(rollout))

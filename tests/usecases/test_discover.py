"""Discovery (docs/discovery.md): live sessions from real-shaped Claude and Codex transcripts, read-only and bounded."""

import builtins
import io
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_files import (
    claude_hook_event,
    claude_subagent_files,
    claude_transcript,
    codex_meta_line,
    codex_rollout,
    set_age,
    snapshot_tree,
    uuid7,
)
from conftest import new_id
from test_liveness import Procs, hold_open, holds, named_copy, proc_start, sleep_binary, wait_for, write_session

from relay import agents
from relay.agents import claude, codex
from relay.host import transcripts
from relay.store.files import Registry
from relay.usecases import discover as discover_mod

ROW_KEYS = {"tool", "id", "cwd", "name", "registered", "lastActivity", "ageSec", "live"}


@pytest.fixture
def roots(env):
    claude = Path(env["RELAY_CLAUDE_PROJECTS"])
    codex = Path(env["RELAY_CODEX_SESSIONS"])
    claude.mkdir(parents=True)
    codex.mkdir(parents=True)
    return claude, codex


def discover_rows(run_relay, *args, cwd=None):
    result = run_relay("discover", "--json", *args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    for row in rows:
        assert set(row) == ROW_KEYS
    return rows


def by_id(rows):
    return {row["id"]: row for row in rows}


# -- real shapes: where the cwd is ------------------------------------------------------------


def test_claude_plain_transcript_row(run_relay, roots):
    claude, _ = roots
    sid = new_id()
    claude_transcript(claude, "/work/web app", session_id=sid, age=30)
    rows = discover_rows(run_relay)
    assert len(rows) == 1
    row = rows[0]
    assert row["tool"] == "claude"
    assert row["id"] == sid
    assert row["cwd"] == "/work/web app"
    assert row["name"] is None
    assert row["registered"] is False
    assert 25 <= row["ageSec"] <= 90
    assert row["live"] is False  # no CLI process runs it
    assert row["lastActivity"].endswith("Z") and len(row["lastActivity"]) == len("2026-07-01T12:34:56.789Z")


def test_cwd_is_read_from_content_not_the_lossy_dir_name(run_relay, roots):
    claude, _ = roots
    sid = new_id()
    # The dir name decodes (lossily) to /work/my-project, but the session's real cwd has a dot and space.
    claude_transcript(claude, "/work/my.project v2", session_id=sid, project="-work-my-project")
    assert by_id(discover_rows(run_relay))[sid]["cwd"] == "/work/my.project v2"


@pytest.mark.parametrize(
    "shape",
    [
        {"first": "user", "prompt_bytes": 200 * 1024},
        {"first": "queue-operation", "prompt_bytes": 100 * 1024},
        {"first": "file-history-snapshot", "snapshot_bytes": 300 * 1024},
        {"first": "summary", "prompt_bytes": 70 * 1024},
        {"first": "queue-operation", "prompt_bytes": 3 * 1024 * 1024},
    ],
    ids=["huge-first-prompt", "queue-operation-first", "big-snapshot-first", "summary-first", "3MiB-prompt"],
)
def test_claude_cwd_past_64k_is_found(run_relay, roots, shape):
    claude, _ = roots
    sid = new_id()
    path = claude_transcript(claude, "/srv/api", session_id=sid, **shape)
    data = path.read_bytes()
    assert data.index(b'"cwd"') > 64 * 1024  # the shape really puts the cwd past 64 KiB
    row = by_id(discover_rows(run_relay))[sid]
    assert row["cwd"] == "/srv/api"


@pytest.mark.parametrize("cwd_last", [False, True], ids=["cwd-before-prompt", "cwd-after-prompt"])
def test_codex_session_meta_over_64k_is_found(run_relay, roots, cwd_last):
    _, codex = roots
    sid = uuid7()
    path = codex_rollout(codex, "/srv/worker", session_id=sid, meta_bytes=150 * 1024, cwd_last=cwd_last)
    assert len(path.read_bytes().split(b"\n")[0]) > 64 * 1024
    rows = discover_rows(run_relay)
    assert [r["id"] for r in rows] == [sid]
    assert rows[0]["tool"] == "codex"
    assert rows[0]["cwd"] == "/srv/worker"


def test_codex_typical_23k_meta_and_uuid7_id(run_relay, roots):
    _, codex = roots
    sid = uuid7()
    assert sid[14] == "7"
    path = codex_rollout(codex, "/home/u/proj", session_id=sid)
    assert 20 * 1024 < len(path.read_bytes().split(b"\n")[0]) < 64 * 1024
    row = by_id(discover_rows(run_relay))[sid]
    assert (row["tool"], row["cwd"]) == ("codex", "/home/u/proj")


def test_codex_live_session_in_old_date_dir(run_relay, roots):
    _, codex = roots
    sid = uuid7(time.time() - 400 * 86400)
    codex_rollout(codex, "/srv/old", session_id=sid, date=(2025, 1, 15), age=10)  # resumed: appended today
    row = by_id(discover_rows(run_relay))[sid]
    assert row["cwd"] == "/srv/old"


def test_codex_first_line_blank_lines_skipped(run_relay, roots):
    _, codex = roots
    sid = uuid7()
    codex_rollout(codex, None, session_id=sid, first_line="\n\n" + codex_meta_line(sid, "/srv/blank"))
    assert by_id(discover_rows(run_relay))[sid]["cwd"] == "/srv/blank"


# -- what is not a session --------------------------------------------------------------------


def test_subagent_transcripts_are_skipped(run_relay, roots):
    claude, _ = roots
    parent = new_id()
    claude_transcript(claude, "/work/app", session_id=parent)
    claude_subagent_files(claude, "/work/app", parent)
    # A uuid-named top-level file whose lines are sidechain lines is a sub-agent's too.
    side = new_id()
    path = claude_transcript(claude, "/work/app", session_id=side, sidechain=True)
    assert b'"isSidechain":true' in path.read_bytes()
    rows = discover_rows(run_relay)
    assert [r["id"] for r in rows] == [parent]


def test_archived_codex_sessions_are_skipped(run_relay, roots):
    _, codex = roots
    live = uuid7()
    codex_rollout(codex, "/srv/live", session_id=live)
    codex_rollout(codex, "/srv/archived", under="archived_sessions")
    codex_rollout(codex, "/srv/archived2", under="2026/archived_sessions")
    assert [r["id"] for r in discover_rows(run_relay)] == [live]


def test_non_uuid_names_and_ids_are_dropped(run_relay, roots):
    claude, codex = roots
    good = new_id()
    claude_transcript(claude, "/a", session_id=good)
    for name in ("notes.jsonl", "abc.jsonl", uuid.uuid4().hex + ".jsonl", f"{new_id()}.json", f"{new_id()}.jsonl.bak"):
        claude_transcript(claude, "/a", file_name=name)
    claude_transcript(claude, "/a", file_name="--config=evil.jsonl")
    bad = "--config=evil"
    codex_rollout(codex, "/b", session_id=bad, name_id="not-a-uuid")
    codex_rollout(codex, "/b", session_id="../../etc", name_id="x" * 36)
    rows = discover_rows(run_relay)
    assert [r["id"] for r in rows] == [good]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n\n",
        b"not json at all\n",
        b'{"type":"user","message":{}}\n',
        b"[1,2,3]\n",
        b'{"cwd": 42}\n',
        b'{"cwd":"',
        b"\xff\xfe\x00garbage",
    ],
    ids=["empty", "blank", "garbage", "cwd-less", "array", "cwd-not-string", "truncated", "binary"],
)
def test_malformed_claude_file_gives_null_cwd(run_relay, roots, content):
    claude, _ = roots
    sid = new_id()
    folder = claude / "-x"
    folder.mkdir()
    (folder / f"{sid}.jsonl").write_bytes(content)
    set_age(folder / f"{sid}.jsonl", 5)
    rows = discover_rows(run_relay)
    assert len(rows) == 1
    assert rows[0]["id"] == sid and rows[0]["cwd"] is None


@pytest.mark.parametrize(
    "first_line",
    ["", "garbage\n", '{"type":"event_msg","payload":{}}\n', '{"type":"session_meta","payload":"x"}\n', "[]\n"],
    ids=["empty", "garbage", "not-meta", "payload-not-object", "array"],
)
def test_malformed_codex_file_uses_name_id_and_null_cwd(run_relay, roots, first_line):
    _, codex = roots
    sid = uuid7()
    path = codex_rollout(codex, "/never", session_id=sid, first_line=first_line)
    if first_line == "":
        path.write_bytes(b"")
        set_age(path, 5)
    rows = discover_rows(run_relay)
    assert [(r["id"], r["cwd"]) for r in rows] == [(sid, None)]


def test_fifo_named_like_a_transcript_does_not_hang(run_relay, roots):
    claude, codex = roots
    (claude / "-p").mkdir()
    os.mkfifo(claude / "-p" / f"{new_id()}.jsonl")
    day = codex / "2026" / "11" / "23"
    day.mkdir(parents=True)
    os.mkfifo(day / f"rollout-2026-11-23T10-11-12-{uuid7()}.jsonl")
    assert discover_rows(run_relay) == []


def test_symlinked_transcript_is_not_a_regular_file(run_relay, roots, tmp_path):
    claude, _ = roots
    target = claude_transcript(tmp_path / "elsewhere", "/secret", session_id=new_id())
    (claude / "-p").mkdir()
    (claude / "-p" / f"{new_id()}.jsonl").symlink_to(target)
    assert discover_rows(run_relay) == []


@pytest.mark.parametrize("swap", ["fifo", "symlink"])
@pytest.mark.parametrize("kind", ["claude", "codex"])
def test_transcript_swapped_right_after_its_stat_is_skipped_never_waited_on(
    env, roots, monkeypatch, tmp_path, kind, swap
):
    """The race made deterministic: the file is replaced the moment discovery has statted it.

    Failed before: a FIFO blocked discover for ever in open() (here: the 20 s timeout), and a
    symlink was followed into a file outside the transcript root.
    """
    claude, codex = roots
    path = claude_transcript(claude, "/victim") if kind == "claude" else codex_rollout(codex, "/victim")
    decoy = tmp_path / "decoy.jsonl"
    decoy.write_bytes(path.read_bytes().replace(b"/victim", b"/decoy"))
    real_fresh = transcripts.fresh_mtime

    def fresh_then_swapped(entry: os.DirEntry[str], since: float) -> float | None:
        mtime = real_fresh(entry, since)
        if entry.path == str(path):
            os.unlink(path)
            if swap == "fifo":
                os.mkfifo(path)
            else:
                os.symlink(decoy, path)
        return mtime

    monkeypatch.setattr(transcripts, "fresh_mtime", fresh_then_swapped)
    found: list[list[dict]] = []
    worker = threading.Thread(target=lambda: found.append(_run_discover(within_min=60)), daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # release the blocked reader, then fail
        worker.join(timeout=5)
        pytest.fail("discover blocked on a FIFO swapped in between stat and open")
    (rows,) = found
    assert [row["cwd"] for row in rows] == [None]  # fresh when statted, but nothing read from the swap


# -- ordering, dedupe, registry ---------------------------------------------------------------


def test_newest_first_across_tools(run_relay, roots):
    claude, codex = roots
    a, b, c, d = new_id(), uuid7(), new_id(), uuid7()
    claude_transcript(claude, "/a", session_id=a, age=300)
    codex_rollout(codex, "/b", session_id=b, age=10)
    claude_transcript(claude, "/c", session_id=c, age=60)
    codex_rollout(codex, "/d", session_id=d, age=1000)
    rows = discover_rows(run_relay)
    assert [r["id"] for r in rows] == [b, c, a, d]
    assert [r["live"] for r in rows] == [False] * 4  # recent or not, no CLI process runs any of them


def test_one_row_per_id_newest_wins(run_relay, roots):
    claude, codex = roots
    sid = new_id()
    claude_transcript(claude, "/old/place", session_id=sid, age=600)
    claude_transcript(claude, "/new/place", session_id=sid, age=20)
    claude_transcript(claude, "/older/place", session_id=sid, age=900)
    cid = uuid7()
    codex_rollout(codex, "/codex/new", session_id=cid, date=(2026, 1, 1), age=15)
    codex_rollout(codex, "/codex/old", session_id=cid, date=(2026, 1, 2), age=500)
    rows = discover_rows(run_relay)
    assert len(rows) == 2
    found = by_id(rows)
    assert found[sid]["cwd"] == "/new/place"
    assert found[cid]["cwd"] == "/codex/new"


def test_registered_name_and_flag(run_relay, roots):
    claude, codex = roots
    named, plain = new_id(), uuid7()
    claude_transcript(claude, "/a", session_id=named)
    codex_rollout(codex, "/b", session_id=plain)
    assert run_relay("register", "frontend", "--id", named).returncode == 0
    found = by_id(discover_rows(run_relay))
    assert (found[named]["name"], found[named]["registered"]) == ("frontend", True)
    assert (found[plain]["name"], found[plain]["registered"]) == (None, False)


def test_discover_reads_but_never_creates_the_store(run_relay, roots, store_home):
    claude, _ = roots
    claude_transcript(claude, "/a")
    discover_rows(run_relay)
    assert not store_home.exists()


# -- filters ----------------------------------------------------------------------------------


def test_mtime_window(run_relay, roots):
    claude, codex = roots
    fresh, stale, stale_codex = new_id(), new_id(), uuid7()
    claude_transcript(claude, "/a", session_id=fresh, age=30 * 60)
    claude_transcript(claude, "/b", session_id=stale, age=2 * 3600)
    codex_rollout(codex, "/c", session_id=stale_codex, age=3 * 3600)
    assert [r["id"] for r in discover_rows(run_relay)] == [fresh]  # default 60 minutes
    assert [r["id"] for r in discover_rows(run_relay, "--within", "10")] == []
    assert [r["id"] for r in discover_rows(run_relay, "--within", "150")] == [fresh, stale]
    assert [r["id"] for r in discover_rows(run_relay, "--within", "0.5")] == []
    assert {r["id"] for r in discover_rows(run_relay, "--within", "1000")} == {fresh, stale, stale_codex}


def test_tool_exclude_cwd_and_limit(run_relay, roots, tmp_path):
    claude, codex = roots
    here = tmp_path / "here"
    here.mkdir()
    ids = [new_id(), uuid7(), new_id(), uuid7()]
    claude_transcript(claude, "/x", session_id=ids[0], age=10)
    codex_rollout(codex, "/y", session_id=ids[1], age=20)
    claude_transcript(claude, str(here), session_id=ids[2], age=30)
    codex_rollout(codex, str(here), session_id=ids[3], age=40)

    assert [r["id"] for r in discover_rows(run_relay, "--tool", "claude")] == [ids[0], ids[2]]
    assert [r["id"] for r in discover_rows(run_relay, "--tool", "codex")] == [ids[1], ids[3]]
    assert [r["id"] for r in discover_rows(run_relay, "--exclude", ids[0])] == ids[1:]
    # --cwd sorts that dir's sessions first (newest first among them), then the rest newest first.
    assert [r["id"] for r in discover_rows(run_relay, "--cwd", str(here))] == [ids[2], ids[3], ids[0], ids[1]]
    # a relative --cwd is taken from the caller's cwd
    assert [r["id"] for r in discover_rows(run_relay, "--cwd", ".", cwd=here)][:2] == [ids[2], ids[3]]
    assert [r["id"] for r in discover_rows(run_relay, "--limit", "2")] == ids[:2]
    assert [r["id"] for r in discover_rows(run_relay, "--limit", "1", "--tool", "codex")] == [ids[1]]


def test_plain_text_output(run_relay, roots):
    claude, _ = roots
    sid = new_id()
    claude_transcript(claude, "/srv/shown", session_id=sid)
    result = run_relay("discover")
    assert result.returncode == 0
    out = result.stdout.decode()
    assert sid in out and "/srv/shown" in out and "claude" in out
    empty = run_relay("discover", "--within", "0.001", "--tool", "codex")
    assert empty.returncode == 0 and empty.stdout.strip()


@pytest.mark.parametrize(
    "args",
    [
        ("--within", "abc"),
        ("--within", "0"),
        ("--within", "-5"),
        ("--within", "inf"),
        ("--within", "nan"),
        ("--within",),
        ("--tool", "vim"),
        ("--tool", "CLAUDE"),
        ("--limit", "2.5"),
        ("--limit", "0"),
        ("--bogus",),
        ("extra",),
    ],
)
def test_bad_options_are_usage_errors(run_relay, roots, args):
    result = run_relay("discover", *args)
    assert result.returncode == 2, (args, result.stderr)
    assert result.stdout == b""
    err = result.stderr.decode()
    assert err.count("\n") == 1 and err.strip()


# -- read-only, bounded -----------------------------------------------------------------------


def test_never_writes_to_the_clis_stores(run_relay, roots):
    claude, codex = roots
    parent = new_id()
    claude_transcript(claude, "/a", session_id=parent, first="queue-operation", prompt_bytes=100_000)
    claude_subagent_files(claude, "/a", parent)
    claude_transcript(claude, "/old", age=7200)
    codex_rollout(codex, "/b", meta_bytes=80_000)
    codex_rollout(codex, "/c", under="archived_sessions")
    (claude / "-bad").mkdir()
    (claude / "-bad" / f"{new_id()}.jsonl").write_bytes(b"garbage")
    assert run_relay("register", "named", "--id", parent).returncode == 0
    before_claude, before_codex = snapshot_tree(claude), snapshot_tree(codex)
    discover_rows(run_relay)
    discover_rows(run_relay, "--within", "1000", "--cwd", "/a")
    run_relay("discover")
    assert snapshot_tree(claude) == before_claude
    assert snapshot_tree(codex) == before_codex


def test_cwd_beyond_the_read_limit_is_null(run_relay, roots):
    claude, codex = roots
    limit = transcripts.READ_LIMIT_BYTES
    sid = new_id()
    path = claude_transcript(claude, "/too/far", session_id=sid, prompt_bytes=limit + 1024)
    assert path.read_bytes().index(b'"cwd"') > limit
    cid = uuid7()
    codex_rollout(codex, "/too/far/codex", session_id=cid, meta_bytes=limit + 1024)
    found = by_id(discover_rows(run_relay))
    assert found[sid]["cwd"] is None
    assert found[cid]["cwd"] is None


class _OpenRecorder:
    """Records every transcript path opened in-process (builtins/io open, os.open) and bytes read."""

    def __init__(self, monkeypatch, roots):
        self.roots = [str(r) for r in roots]
        self.opened: list[str] = []
        self.read: dict[str, int] = {}
        real_open, real_os_open, real_os_read = builtins.open, os.open, os.read
        fds: dict[int, str] = {}
        recorder = self

        class Counting(io.RawIOBase):
            def __init__(self, inner, name):
                self.inner, self.name_ = inner, name

            def read(self, size=-1):
                data = self.inner.read(size)
                recorder.read[self.name_] = recorder.read.get(self.name_, 0) + len(data or b"")
                return data

            def readinto(self, buffer):
                count = self.inner.readinto(buffer)
                recorder.read[self.name_] = recorder.read.get(self.name_, 0) + (count or 0)
                return count

            def readline(self, size=-1):
                data = self.inner.readline(size)
                recorder.read[self.name_] = recorder.read.get(self.name_, 0) + len(data)
                return data

            def __iter__(self):
                return iter(self.readline, b"")

            def readable(self):
                return True

            def close(self):
                self.inner.close()
                super().close()

        def ours(path):
            text = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else ""
            return any(text.startswith(r) for r in recorder.roots)

        def fake_open(file, mode="r", *args, **kwargs):
            handle = real_open(file, mode, *args, **kwargs)
            if ours(file):
                name = os.fsdecode(file)
                recorder.opened.append(name)
                if "b" in mode:
                    return Counting(handle, name)
            return handle

        def fake_os_open(path, flags, *args, **kwargs):
            fd = real_os_open(path, flags, *args, **kwargs)
            if ours(path):
                recorder.opened.append(os.fsdecode(path))
                fds[fd] = os.fsdecode(path)
            return fd

        def fake_os_read(fd, size):
            data = real_os_read(fd, size)
            if fd in fds:
                recorder.read[fds[fd]] = recorder.read.get(fds[fd], 0) + len(data)
            return data

        for target in (builtins, io):
            monkeypatch.setattr(target, "open", fake_open)
        monkeypatch.setattr(transcripts, "open", fake_open, raising=False)
        monkeypatch.setattr(os, "open", fake_os_open)
        monkeypatch.setattr(os, "read", fake_os_read)


def _run_discover(**kwargs):
    return discover_mod.discover(Registry({"agents": {}, "names": {}}), **kwargs)


def test_old_files_are_never_opened(env, roots, monkeypatch):
    claude, codex = roots
    fresh_claude = claude_transcript(claude, "/fresh", age=60)
    fresh_codex = codex_rollout(codex, "/fresh-codex", age=60)
    old = [claude_transcript(claude, f"/old{i}", age=7200 + i) for i in range(3)]
    old += [codex_rollout(codex, f"/old-codex{i}", age=7200 + i, date=(2025, 3, i + 1)) for i in range(3)]
    recorder = _OpenRecorder(monkeypatch, roots)
    rows = _run_discover(within_min=60)
    monkeypatch.undo()
    assert {r["cwd"] for r in rows} == {"/fresh", "/fresh-codex"}
    assert set(recorder.opened) == {str(fresh_claude), str(fresh_codex)}
    for path in old:
        assert str(path) not in recorder.opened


def test_read_is_bounded_and_stops_at_the_cwd(env, roots, monkeypatch):
    claude, codex = roots
    limit = transcripts.READ_LIMIT_BYTES
    # 1) no cwd anywhere in a file far bigger than the limit: at most the limit is read
    huge = claude / "-huge"
    huge.mkdir()
    huge_path = huge / f"{new_id()}.jsonl"
    with huge_path.open("wb") as out:
        line = b'{"type":"progress","data":"' + b"z" * (1024 * 1024) + b'"}\n'
        for _ in range(3 * limit // len(line)):
            out.write(line)
    set_age(huge_path, 5)
    # 2) cwd on the first line, many MiB after it: the read stops early
    early = claude_transcript(claude, "/early", age=5)
    with early.open("ab") as out:
        out.write((b'{"type":"assistant","message":"' + b"q" * 4096 + b'"}\n') * 2048)
    set_age(early, 5)
    # 3) a codex rollout with a large tail after its session_meta
    rollout = codex_rollout(codex, "/codex-early", age=5)
    with rollout.open("ab") as out:
        out.write((b'{"type":"event_msg","payload":"' + b"w" * 4096 + b'"}\n') * 2048)
    set_age(rollout, 5)

    recorder = _OpenRecorder(monkeypatch, roots)
    rows = _run_discover(within_min=60)
    monkeypatch.undo()
    assert {r["cwd"] for r in rows} == {None, "/early", "/codex-early"}
    assert str(huge_path) in recorder.opened
    assert 0 < recorder.read[str(huge_path)] <= limit
    assert huge_path.stat().st_size > 2 * limit
    assert early.stat().st_size > 8 * 1024 * 1024 and recorder.read[str(early)] <= 512 * 1024
    assert recorder.read[str(rollout)] <= 512 * 1024


def test_default_roots_follow_claude_config_dir_and_codex_home(run_relay, env, tmp_path):
    for name in ("RELAY_CLAUDE_PROJECTS", "RELAY_CODEX_SESSIONS"):
        del env[name]  # run_relay uses this dict
    config, codex_home = tmp_path / "claude-config", tmp_path / "codex-home"
    a, b = new_id(), uuid7()
    claude_transcript(config / "projects", "/via/config", session_id=a)
    codex_rollout(codex_home / "sessions", "/via/codex-home", session_id=b)
    extra = {"CLAUDE_CONFIG_DIR": str(config), "CODEX_HOME": str(codex_home)}
    result = run_relay("discover", "--json", extra_env=extra)
    assert result.returncode == 0, result.stderr
    assert {r["id"]: r["cwd"] for r in json.loads(result.stdout)} == {a: "/via/config", b: "/via/codex-home"}


def test_default_roots_under_home(run_relay, env):
    for name in ("RELAY_CLAUDE_PROJECTS", "RELAY_CODEX_SESSIONS"):
        del env[name]
    home = Path(env["HOME"])
    a, b = new_id(), uuid7()
    claude_transcript(home / ".claude" / "projects", "/via/home", session_id=a)
    codex_rollout(home / ".codex" / "sessions", "/via/home/codex", session_id=b)
    # empty values count as unset
    result = run_relay("discover", "--json", extra_env={"CLAUDE_CONFIG_DIR": "", "CODEX_HOME": ""})
    assert result.returncode == 0, result.stderr
    assert {r["id"]: r["cwd"] for r in json.loads(result.stdout)} == {a: "/via/home", b: "/via/home/codex"}


def test_missing_roots_are_not_an_error(run_relay, env):
    assert not Path(env["RELAY_CLAUDE_PROJECTS"]).exists()
    assert discover_rows(run_relay) == []


# -- live: asked of the CLIs' own process state, never of the transcript's mtime ---------------

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="fake CLI processes are found in /proc")


@pytest.fixture
def procs() -> Iterator[Procs]:
    found = Procs()
    yield found
    found.close()


def fake_claude(procs: Procs, sessions: Path, session_id: str) -> tuple[subprocess.Popen, Path]:
    """A running process that is Claude Code for relay (argv[0] `claude`) and its sessions/<pid>.json."""
    proc = procs.start(["claude", "60"], executable=sleep_binary())
    assert wait_for(lambda: claude.is_claude_process(proc.pid))
    return proc, write_session(sessions.parent, proc.pid, session_id, procStart=proc_start(proc.pid))


def text_line(run_relay, session_id: str, *args: str, extra_env: dict[str, str] | None = None) -> str:
    """The plain-text discover line of `session_id`."""
    result = run_relay("discover", *args, extra_env=extra_env)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.decode().splitlines() if session_id in line]
    return line


@needs_proc
@pytest.mark.parametrize("where", ["home", "claude-config-dir"])
def test_claude_session_with_its_process_running_is_live_until_the_process_is_killed(
    run_relay, roots, env, procs, tmp_path, where
):
    claude, _ = roots
    config = tmp_path / "claude-config" if where == "claude-config-dir" else Path(env["HOME"]) / ".claude"
    extra = {"CLAUDE_CONFIG_DIR": str(config)} if where == "claude-config-dir" else {}
    running, finished = new_id(), new_id()
    claude_transcript(claude, "/srv/open", session_id=running, age=20 * 60)  # idle a while, still open
    claude_transcript(claude, "/srv/done", session_id=finished, first="queue-operation", age=0)
    proc, record = fake_claude(procs, config / "sessions", running)

    result = run_relay("discover", "--json", extra_env=extra)
    assert result.returncode == 0, result.stderr
    assert {r["id"]: r["live"] for r in json.loads(result.stdout)} == {running: True, finished: False}
    assert text_line(run_relay, running, extra_env=extra).endswith("/srv/open  (live)")
    assert "(live)" not in text_line(run_relay, finished, extra_env=extra)

    procs.stop(proc)  # SIGKILL: Claude Code gets no chance to remove its record
    assert record.exists()
    result = run_relay("discover", "--json", extra_env=extra)
    assert {r["id"]: r["live"] for r in json.loads(result.stdout)} == {running: False, finished: False}
    assert "(live)" not in run_relay("discover", extra_env=extra).stdout.decode()


def test_a_transcript_just_written_with_no_cli_running_is_not_live(run_relay, roots):
    """The old bug: a finished `claude -p` / `codex exec` wrote its transcript a moment ago and was
    shown `active`, as if running (failed before: the mtime decided)."""
    claude, codex = roots
    sid, cid = new_id(), uuid7()
    claude_transcript(claude, "/srv/p", session_id=sid, first="queue-operation", age=0)
    codex_rollout(codex, "/srv/exec", session_id=cid, age=0)
    rows = discover_rows(run_relay)
    assert {r["id"]: (r["live"], r["ageSec"] <= 5) for r in rows} == {sid: (False, True), cid: (False, True)}
    assert "(live)" not in run_relay("discover").stdout.decode()


@needs_proc
def test_codex_session_whose_process_holds_its_rollout_is_live_until_it_exits(run_relay, roots, procs, tmp_path):
    _, codex = roots
    running, idle = uuid7(), uuid7()
    path = codex_rollout(codex, "/srv/codex", session_id=running, age=30 * 60)
    codex_rollout(codex, "/srv/idle", session_id=idle, age=1)
    proc = hold_open(procs, named_copy(tmp_path, "codex"), path)
    assert wait_for(lambda: holds(proc, path))
    assert {r["id"]: r["live"] for r in discover_rows(run_relay)} == {running: True, idle: False}
    assert text_line(run_relay, running).endswith("/srv/codex  (live)")
    assert text_line(run_relay, running, "--tool", "codex").endswith("(live)")

    proc.terminate()
    proc.wait(timeout=10)
    assert {r["id"]: r["live"] for r in discover_rows(run_relay)} == {running: False, idle: False}


@needs_proc
def test_a_process_of_the_other_cli_does_not_make_a_row_live(run_relay, roots, env, procs, tmp_path):
    """A row is live by its own CLI's signal: a Codex row is not live because a Claude record names its id."""
    _, codex = roots
    cid = uuid7()
    codex_rollout(codex, "/srv/codex", session_id=cid)
    fake_claude(procs, Path(env["HOME"]) / ".claude" / "sessions", cid)
    assert agents.is_live(cid, "claude")
    assert [r["live"] for r in discover_rows(run_relay)] == [False]


@needs_proc
def test_a_registered_session_whose_end_was_recorded_is_not_live(run_relay, roots, env, procs, tmp_path):
    claude, _ = roots
    sid = new_id()
    project = tmp_path / "project"
    project.mkdir()
    claude_transcript(claude, str(project), session_id=sid)
    fake_claude(procs, Path(env["HOME"]) / ".claude" / "sessions", sid)
    assert run_relay("hook", input=claude_hook_event(sid, str(project))).returncode == 0  # SessionStart
    (row,) = discover_rows(run_relay)
    assert (row["registered"], row["live"]) == (True, True)

    end = {"session_id": sid, "cwd": str(project), "hook_event_name": "SessionEnd", "reason": "other"}
    assert run_relay("hook", input=json.dumps(end)).returncode == 0
    (row,) = discover_rows(run_relay)
    assert (row["registered"], row["live"]) == (True, False)  # its record and process linger; the end counts
    assert "(live)" not in run_relay("discover").stdout.decode()

    assert run_relay("hook", input=claude_hook_event(sid, str(project))).returncode == 0  # resumed
    assert discover_rows(run_relay)[0]["live"] is True


def test_liveness_is_asked_once_per_cli_however_many_rows(env, roots, monkeypatch):
    """One pass over each CLI's signals per discover (not one per row), and none for a CLI without rows."""
    claude_dir, codex_dir = roots
    for _ in range(30):
        claude_transcript(claude_dir, "/srv/many")
        codex_rollout(codex_dir, "/srv/many-codex")
    calls: list[str] = []
    real_claude, real_codex = claude.live_sessions, codex.live_sessions

    def counted_claude(*args):
        calls.append("claude")
        return real_claude(*args)

    def counted_codex():
        calls.append("codex")
        return real_codex()

    monkeypatch.setattr(claude, "live_sessions", counted_claude)
    monkeypatch.setattr(codex, "live_sessions", counted_codex)
    assert len(_run_discover(limit=100)) == 60
    assert sorted(calls) == ["claude", "codex"]
    calls.clear()
    assert len(_run_discover(tool="claude", limit=100)) == 30
    assert calls == ["claude"]
    calls.clear()
    assert _run_discover(within_min=60, exclude=None, cwd_first=None, limit=100, tool="codex")
    assert calls == ["codex"]
    calls.clear()
    assert _run_discover(within_min=0.0001) == []
    assert calls == []


@needs_proc
def test_the_bulk_form_and_is_live_give_the_same_answers(env, procs, tmp_path):
    """discover's one-pass sets and gc's / send's per-session is_live are one code path."""
    claude_id, codex_id, nobody = new_id(), uuid7(), new_id()
    sessions = Path(env["HOME"]) / ".claude" / "sessions"
    proc, _ = fake_claude(procs, sessions, claude_id)
    dead = procs.start([sleep_binary(), "60"])
    write_session(sessions.parent, dead.pid, nobody)  # a live pid that is not Claude Code
    path = tmp_path / "rollouts" / f"rollout-2026-11-30T10-00-00-{codex_id.upper()}.jsonl"
    path.parent.mkdir()
    path.write_text("{}\n")
    holder = hold_open(procs, named_copy(tmp_path, "codex"), path)
    assert wait_for(lambda: holds(holder, path))

    assert claude.live_sessions() == {claude_id}
    assert codex_id in codex.live_sessions()  # a lower-case id, whatever the file name's case
    assert {claude_id, codex_id} <= agents.live_sessions()
    assert claude_id in agents.live_sessions("claude") and codex_id not in agents.live_sessions("claude")
    assert codex_id in agents.live_sessions("codex") and claude_id not in agents.live_sessions("codex")
    for sid in (claude_id, codex_id, nobody):
        assert agents.is_live(sid) == (sid in agents.live_sessions())
    procs.stop(proc)
    procs.stop(holder)
    assert claude.live_sessions() == set()
    assert not agents.is_live(claude_id) and not agents.is_live(codex_id)


# -- the real CLIs (offline, in `unshare -n`) ---------------------------------------------------


def real_discover(env: dict[str, str], relay: list[str]) -> dict[str, bool]:
    """id -> live, from `relay discover --json` with the sandbox's CLI homes (no RELAY_* roots)."""
    done = subprocess.run([*relay, "discover", "--json"], env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return {row["id"]: row["live"] for row in json.loads(done.stdout)}


@pytest.mark.real_clients
def test_real_claude_code_is_live_while_open_and_a_finished_claude_p_is_not(tmp_path, relay_cmd):
    """The real Claude Code: an open session (a prompt in flight, stream-json stdin kept open) is live;
    a finished `claude -p` that wrote its transcript a moment ago is not (the old `active` said it was);
    the open one after a SIGKILL, its sessions/<pid>.json left behind, is not."""
    import realclients as rc

    rc.skip_unless_runnable("claude")
    box = rc.Sandbox(tmp_path / "box")
    env = {**box.env(), "PYTHONPATH": str(rc.REPO)}
    claude = str(rc.clients_bin() / "claude")
    finished = new_id()
    [run] = rc.scenario(
        {
            "steps": [
                {"kind": "claude", "cwd": str(box.project), "argv": [claude, "-p", "hi", "--session-id", finished]}
            ]
        },
        env,
        box.project,
    )["steps"]
    assert run["rc"] == 0, run["stderr"][-3000:]
    assert real_discover(env, relay_cmd) == {finished: False}

    # The model is unreachable (no network in the namespace): the prompt stays in flight, the session open.
    offline = {**env, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_API_KEY": "sk-ant-offline-test"}
    argv = [claude, "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]
    proc = subprocess.Popen(
        ["unshare", "-n", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=offline,
        cwd=str(box.project),
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(b'{"type":"user","message":{"role":"user","content":"hello"}}\n')
        proc.stdin.flush()
        records = box.claude_config / "sessions"
        assert wait_for(lambda: len(real_discover(env, relay_cmd)) == 2 and any(records.glob("*.json")), 60)
        [record] = [json.loads(path.read_text()) for path in records.glob("*.json")]
        open_id = record["sessionId"]
        assert real_discover(env, relay_cmd) == {open_id: True, finished: False}
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert any(records.glob("*.json"))  # SIGKILL: Claude Code could not remove its record
    assert real_discover(env, relay_cmd) == {open_id: False, finished: False}


@pytest.mark.real_clients
def test_real_codex_is_live_while_its_exec_runs_and_not_after(tmp_path, relay_cmd):
    """The real Codex: discover run while `codex exec` waits for its model calls it live; once the
    run has finished (its rollout just written) it is not."""
    import realclients as rc

    rc.skip_unless_runnable("codex")
    box = rc.Sandbox(tmp_path / "box")
    env = {**box.env(), "PYTHONPATH": str(rc.REPO)}
    during = {"kind": "plain", "cwd": str(box.project), "argv": [*relay_cmd, "discover", "--json"]}
    codex = [str(rc.clients_bin() / "codex"), "exec", "--skip-git-repo-check", *rc.codex_provider_args("{PORT}")]
    step = {"kind": "codex", "cwd": str(box.project), "js": None, "argv": [*codex, "say hi"]}
    [run] = rc.scenario({"steps": [{**step, "during_first_request": during}]}, env, box.project)["steps"]
    assert run["rc"] == 0, run["stderr"][-3000:]
    [session] = rc.codex_rollouts(box)
    nested = run["during_first_request"]
    assert nested and nested["rc"] == 0, nested
    assert {row["id"]: row["live"] for row in json.loads(nested["stdout"])} == {session: True}
    assert real_discover(env, relay_cmd) == {session: False}

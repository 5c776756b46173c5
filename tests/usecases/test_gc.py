"""`relay gc` (docs/store.md): stale registrations go with their markers, their mail is archived
and never deleted, empty mailboxes go, nothing of a recent or live session is touched; the hook runs
the same collection at most once a day, counting from its first run on the store."""

import json
import os
import time
from pathlib import Path

from agent_files import claude_transcript
from conftest import file_registry, new_id, plant_registry

from relay.store.files import Store
from relay.store.layout import marker_name

DAY = 86400


def _registry(store_home: Path) -> dict:
    return file_registry(store_home)


def _age(store_home: Path, sid: str, days: float) -> None:
    """Make a registration look last seen `days` ago."""
    data = _registry(store_home)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - days * DAY))
    data["agents"][sid]["lastSeen"] = stamp
    plant_registry(store_home, data)


def _hook(run_relay, sid: str, cwd: Path):
    event = json.dumps({"session_id": sid, "cwd": str(cwd), "hook_event_name": "SessionStart"})
    result = run_relay("hook", input=event)
    assert result.returncode == 0, result.stderr
    return result


def _world(run_relay, store_home: Path, tmp_path: Path) -> dict[str, str]:
    """old (stale, with mail), fresh (seen today), old-but-active (old lastSeen, fresh transcript)."""
    ids = {"old": new_id(), "fresh": new_id(), "active": new_id()}
    for key, sid in ids.items():
        project = tmp_path / key
        project.mkdir()
        _hook(run_relay, sid, project)
        assert run_relay("register", key, "--id", sid).returncode == 0
    for n in range(3):
        assert run_relay("send", "old", "--", f"unread {n}").returncode == 0
    assert run_relay("send", "fresh", "--", "for fresh").returncode == 0
    _age(store_home, ids["old"], 30)
    _age(store_home, ids["active"], 30)
    claude_transcript(tmp_path / "claude-projects", str(tmp_path / "active"), session_id=ids["active"])
    return ids


def test_gc_retires_stale_sessions_and_archives_their_mail(run_relay, store_home, tmp_path):
    ids = _world(run_relay, store_home, tmp_path)
    (store_home / "mailbox" / f"{new_id()}.jsonl").write_text("")  # an empty mailbox
    (store_home / "watchers").mkdir(mode=0o700)
    for key in ("old", "fresh"):  # idle-mail watchers' lock files, none held now
        (store_home / "watchers" / f"{ids[key]}.pid").write_text("12345\n")
    result = run_relay("gc", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [row["id"] for row in report["retired"]] == [ids["old"]]
    assert not (store_home / "watchers" / f"{ids['old']}.pid").exists()
    assert (store_home / "watchers" / f"{ids['fresh']}.pid").exists()
    assert report["retired"][0]["archived"] == 3
    assert len(report["emptyMailboxes"]) == 1
    registry = _registry(store_home)
    assert set(registry["agents"]) == {ids["fresh"], ids["active"]}
    assert "old" not in registry["names"]
    assert not (store_home / "markers" / marker_name(str(tmp_path / "old"))).exists()
    assert (store_home / "markers" / marker_name(str(tmp_path / "fresh"))).exists()
    assert not (store_home / "mailbox" / f"{ids['old']}.jsonl").exists()
    archived = (store_home / "archive" / f"{ids['old']}.jsonl").read_text().splitlines()
    assert [json.loads(line)["body"] for line in archived] == ["unread 0", "unread 1", "unread 2"]
    assert os.stat(store_home / "archive").st_mode & 0o777 == 0o700
    # the fresh session's mail is untouched
    assert json.loads(run_relay("peek", "fresh").stdout)["count"] == 1
    assert (store_home / "mailbox" / f"{ids['fresh']}.jsonl").exists()


def test_gc_dry_changes_nothing_and_older_than_is_honoured(run_relay, store_home, tmp_path):
    ids = _world(run_relay, store_home, tmp_path)
    assert run_relay("list").returncode == 0  # migrates the registry.json _world planted
    before = {p: p.read_bytes() for p in store_home.rglob("*") if p.is_file() and p.name != ".lock"}
    dry = run_relay("gc", "--dry")
    assert dry.returncode == 0
    assert "would forget old" in dry.stdout.decode()
    assert {p: p.read_bytes() for p in store_home.rglob("*") if p.is_file() and p.name != ".lock"} == before
    kept = json.loads(run_relay("gc", "--older-than", "45", "--json").stdout)
    assert kept["retired"] == []
    assert ids["old"] in _registry(store_home)["agents"]
    assert run_relay("gc", "--older-than", "soon").returncode == 2


def test_archived_mail_is_appended_never_replaced(env, store_home, tmp_path):
    store = Store(store_home, warn=lambda _m: None)
    sid = new_id()
    from relay.usecases.mail import send

    send(store, sid, "first", None, "cli")
    store.register(sid, name="gone")
    assert store.retire(sid) == 1
    send(store, sid, "second", None, "cli")
    store.take(sid).close()  # in flight when it is retired again
    assert store.retire(sid) == 1
    lines = (store_home / "archive" / f"{sid}.jsonl").read_text().splitlines()
    assert [json.loads(line)["body"] for line in lines] == ["first", "second"]
    assert not (store_home / "inflight" / f"{sid}.jsonl").exists()


def test_a_live_session_is_never_collected(env, store_home, tmp_path, monkeypatch):
    from relay.usecases import gc

    store = Store(store_home)
    sid = new_id()
    store.register(sid, name="busy")
    store.register(new_id(), name="today")  # seen now: the clock is believable
    data = _registry(store_home)
    data["agents"][sid]["lastSeen"] = "2020-01-01T00:00:00.000Z"
    plant_registry(store_home, data)
    monkeypatch.setattr(gc, "is_live", lambda session_id, tool: session_id == sid)
    assert gc.collect(store)["retired"] == []
    monkeypatch.setattr(gc, "is_live", lambda session_id, tool: False)
    assert [r["id"] for r in gc.collect(store)["retired"]] == [sid]


def test_hook_collects_at_most_once_a_day_counting_from_its_first_run(run_relay, store_home, tmp_path):
    ids = _world(run_relay, store_home, tmp_path)  # its hook runs wrote the stamp
    stamp = store_home / "gc.stamp"
    assert stamp.exists()
    _hook(run_relay, ids["fresh"], tmp_path / "fresh")
    assert ids["old"] in _registry(store_home)["agents"]  # not due: less than a day since the first run
    past = time.time() - 2 * DAY
    os.utime(stamp, (past, past))
    _hook(run_relay, ids["fresh"], tmp_path / "fresh")
    assert ids["old"] not in _registry(store_home)["agents"]
    assert (store_home / "archive" / f"{ids['old']}.jsonl").exists()
    assert stamp.stat().st_mtime > time.time() - 60  # collected now: the next one is a day away


def test_the_transcript_decides_for_both_clis(env, store_home, tmp_path):
    """Not seen for DAYS is not enough: a transcript written within DAYS (Claude or Codex) keeps the
    session; one as old as the registration does not."""
    from agent_files import codex_rollout

    from relay.usecases import gc

    store = Store(store_home)
    ids = {key: new_id() for key in ("claude-old", "claude-new", "codex-old", "codex-new", "none")}
    for key, sid in ids.items():
        store.register(sid, name=key, tool="codex" if key.startswith("codex") else "claude")
        _age(store_home, sid, 20)
    claude_root, codex_root = tmp_path / "claude-projects", tmp_path / "codex-sessions"
    claude_transcript(claude_root, "/p/a", session_id=ids["claude-old"], age=19 * DAY)
    claude_transcript(claude_root, "/p/b", session_id=ids["claude-new"], age=2 * DAY)
    codex_rollout(codex_root, "/p/c", session_id=ids["codex-old"], age=19 * DAY)
    codex_rollout(codex_root, "/p/d", session_id=ids["codex-new"], age=2 * DAY)
    report = gc.collect(store, days=14)
    assert sorted(row["name"] for row in report["retired"]) == ["claude-old", "codex-old", "none"]
    assert sorted(_registry(store_home)["names"]) == ["claude-new", "codex-new"]


def _sessions_with_mail(run_relay, tmp_path: Path, keys: tuple[str, ...]) -> dict[str, str]:
    ids = {key: new_id() for key in keys}
    for key, sid in ids.items():
        (tmp_path / key).mkdir()
        _hook(run_relay, sid, tmp_path / key)
        assert run_relay("register", key, "--id", sid).returncode == 0
        assert run_relay("send", key, "--", f"for {key}").returncode == 0
    return ids


def test_a_forward_clock_jump_forgets_nobody(run_relay, store_home, tmp_path):
    """Every session last seen 30 days ago, no transcript newer: what a clock set 30 days forward
    shows. gc forgets none (each is skipped, saying why) until another session shows life within
    DAYS; then the stale ones go."""
    ids = _sessions_with_mail(run_relay, tmp_path, ("a", "b", "c"))
    for sid in ids.values():
        _age(store_home, sid, 30)
    report = json.loads(run_relay("gc", "--json").stdout)
    assert report["retired"] == []
    assert sorted(row["id"] for row in report["skipped"]) == sorted(ids.values())
    assert all("clock" in row["reason"] for row in report["skipped"])
    assert set(_registry(store_home)["agents"]) == set(ids.values())
    assert not (store_home / "archive").exists()
    assert "clock may have jumped" in run_relay("gc").stdout.decode()
    _age(store_home, ids["b"], 1)  # one session seen yesterday: the clock is believable
    report = json.loads(run_relay("gc", "--json").stdout)
    assert sorted(row["id"] for row in report["retired"]) == sorted([ids["a"], ids["c"]])


def test_the_hooks_daily_collection_after_a_clock_jump_forgets_nobody(run_relay, store_home, tmp_path):
    """The hook's own session was just seen: that is no evidence that the clock is right."""
    ids = _sessions_with_mail(run_relay, tmp_path, ("a", "b"))
    for sid in ids.values():
        _age(store_home, sid, 30)
    stamp = store_home / "gc.stamp"
    past = time.time() - 30 * DAY
    os.utime(stamp, (past, past))
    (tmp_path / "new").mkdir()
    _hook(run_relay, new_id(), tmp_path / "new")
    assert stamp.stat().st_mtime > time.time() - 60  # the collection ran
    assert set(ids.values()) <= set(_registry(store_home)["agents"])
    assert not (store_home / "archive").exists()

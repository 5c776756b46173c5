"""The registry as one file per session and a names index (docs/store.md#the-registry), black-box
through RELAY_CMD: a start with many sessions registered writes only its own files, and a
registry.json of an older relay is migrated once, surviving a kill at any step of it."""

import json
import os
from pathlib import Path

import pytest
from conftest import file_registry, new_id

SESSIONS = 10_000


def _plant_legacy(store_home: Path, count: int) -> dict:
    """An older relay's registry.json of `count` named sessions."""
    agents, names = {}, {}
    for i in range(count):
        session_id = new_id()
        agents[session_id] = {
            "id": session_id,
            "dir": f"/srv/p{i}",
            "name": f"p{i}",
            "tool": "claude",
            "lastSeen": "2026-11-30T12:00:00.000Z",
        }
        names[f"p{i}"] = session_id
    data = {"agents": agents, "names": names}
    store_home.mkdir(mode=0o700, exist_ok=True)
    (store_home / "registry.json").write_text(json.dumps(data, indent=2))
    (store_home / "registry.json").chmod(0o600)
    return data


def _snapshot(store_home: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, mtime in ns, size) of every file of the registry."""
    found = {}
    for sub in ("agents", "names"):
        for entry in os.scandir(store_home / sub):
            info = entry.stat(follow_symlinks=False)
            found[f"{sub}/{entry.name}"] = (info.st_ino, info.st_mtime_ns, info.st_size)
    return found


def _start(run_relay, session_id: str, cwd: Path, source: str = "startup"):
    event = {"session_id": session_id, "cwd": str(cwd), "hook_event_name": "SessionStart", "source": source}
    result = run_relay("hook", input=json.dumps(event))
    assert result.returncode == 0 and not result.stderr, result.stderr
    return result


def test_a_start_among_many_sessions_writes_only_its_own_files(run_relay, store_home, tmp_path):
    planted = _plant_legacy(store_home, SESSIONS)
    resumed = next(iter(planted["agents"]))
    project = tmp_path / "p0"
    project.mkdir()
    first = new_id()
    _start(run_relay, first, project)  # migrates, then registers `first`
    assert not (store_home / "registry.json").exists()
    assert (store_home / "registry.json.migrated").exists()
    registry = file_registry(store_home)
    assert len(registry["agents"]) == SESSIONS + 1
    assert registry["names"] == {**planted["names"], "p0-2": first}  # p0 was taken: the first free name

    before = _snapshot(store_home)
    _start(run_relay, resumed, project, "resume")  # planted with dir /srv/p0: its dir changes, its name stays
    after = _snapshot(store_home)
    changed = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
    assert changed == {f"agents/{resumed}.json"}
    entry = json.loads((store_home / "agents" / f"{resumed}.json").read_text())
    assert entry["dir"] == str(project) and entry["name"] == "p0" and entry["lastSeen"] != "2026-11-30T12:00:00.000Z"

    before = after
    _start(run_relay, resumed, project, "resume")  # registered as it is, seen just now: nothing is written
    after = _snapshot(store_home)
    assert after == before

    entry_file = store_home / "agents" / f"{resumed}.json"
    entry_file.write_text(json.dumps({**json.loads(entry_file.read_text()), "lastSeen": "2026-11-30T12:00:00.000Z"}))
    before = _snapshot(store_home)
    _start(run_relay, resumed, project, "resume")  # seen long ago: only its lastSeen is rewritten
    after = _snapshot(store_home)
    assert {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)} == {f"agents/{resumed}.json"}
    assert json.loads(entry_file.read_text())["lastSeen"] > "2026-11-30T12:00:00.000Z"

    before = after
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    fresh = new_id()
    _start(run_relay, fresh, fresh_dir)  # a new session: its entry and its name's index file, nothing else
    after = _snapshot(store_home)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert changed == {f"agents/{fresh}.json", "names/fresh.json"}

    sent = run_relay("send", "P5", "--", "by name, any case")  # a lookup among many: one index file
    assert sent.returncode == 0, sent.stderr


@pytest.mark.parametrize("step", ["migrate:entry", "migrate:written"])
def test_a_migration_killed_half_way_completes_at_the_next_start(run_relay, store_home, tmp_path, step):
    planted = _plant_legacy(store_home, 50)
    project = tmp_path / "proj"
    project.mkdir()
    sid = new_id()
    event = json.dumps({"session_id": sid, "cwd": str(project), "hook_event_name": "SessionStart"})
    killed = run_relay("hook", input=event, extra_env={"RELAY_TEST_KILL_AT": step})
    assert killed.returncode == -9, killed
    assert (store_home / "registry.json").exists(), "registry.json stays until every file is written"
    _start(run_relay, sid, project)
    assert not (store_home / "registry.json").exists()
    registry = file_registry(store_home)
    assert {k: v for k, v in registry["agents"].items() if k != sid} == planted["agents"]
    assert registry["names"] == {**planted["names"], "proj": sid}
    assert json.loads((store_home / "registry.json.migrated").read_text()) == planted


def test_one_unparseable_entry_is_set_aside_and_the_rest_still_work(run_relay, store_home, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    good, bad = new_id(), new_id()
    _start(run_relay, good, project)
    _start(run_relay, bad, project)
    (store_home / "agents" / f"{bad}.json").write_text('{"id": ')
    listed = run_relay("list")
    assert listed.returncode == 0 and good in listed.stdout.decode()
    assert "quarantine" in listed.stderr.decode()
    assert not (store_home / "agents" / f"{bad}.json").exists()
    assert any(p.name.startswith(f"{bad}.json") for p in (store_home / "quarantine").iterdir())
    assert run_relay("send", "proj", "--", "still reachable").returncode == 0
    _start(run_relay, bad, project)  # registers afresh
    assert bad in file_registry(store_home)["agents"]

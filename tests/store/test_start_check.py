"""The check a session's start makes before it writes (relay.store.markers.unchanged_start): a start
of a registered session that changes nothing is answered from the entry as stored, by the hook's
LocalStore without opening the whole store; anything the check cannot vouch for takes the writing
path, which ends with the same entry and marker as a store that never had the quick check."""

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import new_id

from relay.domain.ids import require_uuid
from relay.store import glance, markers
from relay.store.contract import LocalStore
from relay.store.files import Store
from relay.store.layout import marker_name


def _registered(store_home: Path, project: Path) -> tuple[str, Path]:
    """A session registered by its start in `project`, and its entry file."""
    sid = require_uuid(new_id())
    Store(str(store_home)).record_start(sid, str(project), "claude")
    return sid, store_home / "agents" / f"{sid}.json"


def test_a_start_that_changes_nothing_is_answered_without_the_store(env, store_home, tmp_path):
    sid, entry_file = _registered(store_home, tmp_path)
    before = entry_file.stat().st_mtime_ns
    local = LocalStore()
    entry = local.record_start(require_uuid(sid), str(tmp_path), "claude")
    assert entry == json.loads(entry_file.read_bytes())
    assert local._store is None  # the whole store was never opened
    assert entry_file.stat().st_mtime_ns == before  # and nothing was written


def _symlinked(entry_file: Path, store_home: Path) -> None:
    kept = store_home.parent / "elsewhere.json"
    kept.write_bytes(entry_file.read_bytes())
    entry_file.unlink()
    entry_file.symlink_to(kept)


def _oversized(entry_file: Path, store_home: Path) -> None:
    entry = json.loads(entry_file.read_bytes())
    entry["padding"] = "x" * glance.ENTRY_READ_MAX  # the session's own entry, but too long to read quickly
    entry_file.write_text(json.dumps(entry))


def _another_id(entry_file: Path, store_home: Path) -> None:
    entry = json.loads(entry_file.read_bytes())
    entry_file.write_text(json.dumps({**entry, "id": new_id()}))


def _stale(entry_file: Path, store_home: Path) -> None:
    entry = json.loads(entry_file.read_bytes())
    entry["lastSeen"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 3600))
    entry_file.write_text(json.dumps(entry))


def _ended(entry_file: Path, store_home: Path) -> None:
    entry = json.loads(entry_file.read_bytes())
    entry_file.write_text(json.dumps({**entry, "endedAt": entry["lastSeen"]}))


def _to_migrate(entry_file: Path, store_home: Path) -> None:
    (store_home / "registry.json").write_text(json.dumps({"agents": {}, "names": {}}))


@pytest.mark.parametrize(
    "plant",
    [_symlinked, _oversized, _another_id, _stale, _ended, _to_migrate],
    ids=["symlink", "oversized", "another-id", "stale-lastSeen", "ended", "registry.json"],
)
def test_what_the_quick_check_cannot_vouch_for_takes_the_writing_path(
    env, store_home, tmp_path, plant: Callable[[Path, Path], None]
):
    sid, entry_file = _registered(store_home, tmp_path)
    plant(entry_file, store_home)
    local = LocalStore()
    entry = local.record_start(require_uuid(sid), str(tmp_path), "claude")
    assert local._store is not None  # the whole store answered
    assert entry["id"] == sid and "endedAt" not in entry
    assert not entry_file.is_symlink() and json.loads(entry_file.read_bytes())["id"] == sid
    if plant is not _oversized:  # the store keeps an entry's other fields, the padding too
        assert glance.stored_entry(str(store_home), sid) is not None  # written back in a shape the check reads


def test_a_marker_held_by_another_session_takes_the_writing_path(env, store_home, tmp_path):
    sid, _ = _registered(store_home, tmp_path)
    marker = store_home / "markers" / marker_name(str(tmp_path))
    marker.write_text(f"{new_id()}\n{tmp_path}\n")
    local = LocalStore()
    local.record_start(require_uuid(sid), str(tmp_path), "claude")
    assert local._store is not None
    assert markers.marked_session(str(store_home), str(tmp_path)) == sid  # the start took its dir back


def test_a_start_in_another_dir_or_tool_takes_the_writing_path(env, store_home, tmp_path):
    sid, _ = _registered(store_home, tmp_path)
    for directory, tool in ((tmp_path / "sub", "claude"), (tmp_path, "codex")):
        local = LocalStore()
        entry = local.record_start(require_uuid(sid), str(directory), tool)
        assert local._store is not None and (entry["dir"], entry["tool"]) == (str(directory), tool)


def test_the_quick_read_refuses_what_the_store_refuses(env, store_home, tmp_path):
    sid, entry_file = _registered(store_home, tmp_path)
    home = str(store_home)
    assert glance.stored_entry(home, sid) == json.loads(entry_file.read_bytes())
    os.link(entry_file, tmp_path / "second-link.json")  # a hard link may be another user's trap
    assert glance.stored_entry(home, sid) is None
    (tmp_path / "second-link.json").unlink()
    entry_file.write_bytes(b"{not json")
    assert glance.stored_entry(home, sid) is None
    assert glance.stored_entry(home, "x" * (glance.MAX_ID + 1)) is None


def test_the_gc_stamp_is_one_stat_until_a_collection_is_due(env, store_home, tmp_path):
    _registered(store_home, tmp_path)
    stamp = store_home / "gc.stamp"
    assert not stamp.exists()
    local = LocalStore()
    assert local.gc_due(3600) is False and local._store is not None  # no stamp: the store writes the first
    assert stamp.exists()
    local = LocalStore()
    assert local.gc_due(3600) is False and local._store is None  # a fresh stamp: one lstat
    os.utime(stamp, (time.time() - 7200, time.time() - 7200))
    assert local.gc_due(3600) is True and local._store is not None

"""relay.store.fileio: synced writes, nothing half-written on failure, no write through a symlink."""

import errno
import json
import os
import posix
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, new_id

from relay.store import fileio
from relay.store.files import Store
from relay.util.errors import RelayError


@pytest.fixture
def fsyncs(monkeypatch):
    """Record (inode, is_dir) of every fsync."""
    seen: list[tuple[int, bool]] = []
    real = os.fsync

    def spy(fd):
        info = os.fstat(fd)
        seen.append((info.st_ino, stat.S_ISDIR(info.st_mode)))
        return real(fd)

    monkeypatch.setattr(posix, "fsync", spy)
    return seen


def _ino(path: Path) -> int:
    return os.stat(path).st_ino


def test_append_syncs_the_file_and_a_new_files_directory(tmp_path, fsyncs):
    path = tmp_path / "box.jsonl"
    fileio.append_durably(str(path), b'{"a":1}\n')
    assert (_ino(path), False) in fsyncs
    assert (_ino(tmp_path), True) in fsyncs
    fsyncs.clear()
    fileio.append_durably(str(path), b'{"a":2}\n')
    assert (_ino(path), False) in fsyncs
    assert path.read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_atomic_write_syncs_file_then_directory(tmp_path, fsyncs):
    path = tmp_path / "registry.json"
    fileio.atomic_write(str(path), b"{}\n")
    assert path.read_bytes() == b"{}\n"
    assert (_ino(path), False) in fsyncs  # the temp file, now renamed into place
    assert fsyncs[-1] == (_ino(tmp_path), True)
    assert [p.name for p in tmp_path.iterdir()] == ["registry.json"]


def test_store_send_is_synced_before_enqueue_returns(env, store_home, fsyncs):
    store = Store(store_home)
    sid = new_id()
    store.enqueue(sid, {"id": new_id(), "body": "durable"})
    mailbox = store_home / "mailbox" / f"{sid}.jsonl"
    assert (_ino(mailbox), False) in fsyncs
    assert (_ino(mailbox.parent), True) in fsyncs


def test_store_register_and_marker_are_synced(env, store_home, tmp_path, fsyncs):
    store = Store(store_home)
    sid = new_id()
    store.register(sid, name="n")
    assert (_ino(store_home / "agents" / f"{sid}.json"), False) in fsyncs
    assert (_ino(store_home / "agents"), True) in fsyncs
    assert (_ino(store_home / "names" / "n.json"), False) in fsyncs
    assert (_ino(store_home / "names"), True) in fsyncs
    fsyncs.clear()
    store.set_marker(str(tmp_path), sid)
    markers = store_home / "markers"
    assert (_ino(next(markers.iterdir())), False) in fsyncs
    assert (_ino(markers), True) in fsyncs


def _seen_long_ago(store_home: Path, sid: str) -> None:
    path = store_home / "agents" / f"{sid}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "lastSeen": "2026-01-01T00:00:00.000Z"}))


def test_a_session_start_that_only_refreshes_last_seen_skips_the_directory_sync(env, store_home, tmp_path, fsyncs):
    """A first start, and a start that changes the entry (here its dir, then its tool), are synced
    whole; a start of a session registered as it is but seen long ago only refreshes lastSeen: the
    new registry's data is still synced before the rename (never an empty file after a power cut),
    the dir is not; one seen lately writes nothing at all."""
    store = Store(store_home)
    sid = new_id()
    store.record_start(sid, str(tmp_path), "claude")
    assert (_ino(store_home / "agents" / f"{sid}.json"), False) in fsyncs
    assert (_ino(store_home / "agents"), True) in fsyncs
    for directory, tool, dir_synced in [
        (tmp_path, "claude", False),
        (tmp_path / "sub", "claude", True),
        (tmp_path / "sub", "codex", True),
        (tmp_path / "sub", "codex", False),
    ]:
        _seen_long_ago(store_home, sid)
        fsyncs.clear()
        entry = store.record_start(sid, str(directory), tool)
        assert (entry["dir"], entry["tool"]) == (str(directory), tool)
        assert entry["lastSeen"] > "2026-01-01T00:00:00.000Z"
        assert (_ino(store_home / "agents" / f"{sid}.json"), False) in fsyncs
        assert ((_ino(store_home / "agents"), True) in fsyncs) is dir_synced, (directory, tool)
        fsyncs.clear()
        assert store.record_start(sid, str(directory), tool) == entry  # seen just now
        assert fsyncs == []
    store.record_end(sid)
    fsyncs.clear()
    store.record_start(sid, str(tmp_path / "sub"), "codex")  # resumed after its end: endedAt goes
    assert (_ino(store_home / "agents"), True) in fsyncs
    assert "endedAt" not in store.registry().agents[sid]


def test_atomic_write_failure_keeps_old_content_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "registry.json"
    path.write_bytes(b"old\n")

    def no_space(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(posix, "write", no_space)
    with pytest.raises(RelayError, match="no space"):
        fileio.atomic_write(str(path), b"new content\n")
    monkeypatch.undo()
    assert path.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["registry.json"]


def test_append_failure_midway_cuts_the_file_back(tmp_path, monkeypatch):
    path = tmp_path / "box.jsonl"
    path.write_bytes(b'{"ok":1}\n')
    real_write = os.write
    calls = {"n": 0}

    def partial_then_full(fd, data):
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[:5]))  # a short write lands ...
        raise OSError(errno.ENOSPC, "No space left on device")  # ... then the disk is full

    monkeypatch.setattr(posix, "write", partial_then_full)
    with pytest.raises(RelayError, match="no space"):
        fileio.append_durably(str(path), b'{"new":"' + b"x" * 100 + b'"}\n')
    monkeypatch.undo()
    assert path.read_bytes() == b'{"ok":1}\n'


def test_append_after_a_torn_line_starts_a_new_line(tmp_path):
    path = tmp_path / "box.jsonl"
    path.write_bytes(b'{"ok":1}\n{"torn":')
    fileio.append_durably(str(path), b'{"ok":2}\n')
    assert path.read_bytes() == b'{"ok":1}\n{"torn":\n{"ok":2}\n'


def test_append_refuses_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"original\n")
    link = tmp_path / "box.jsonl"
    link.symlink_to(victim)
    with pytest.raises(RelayError, match="symlink"):
        fileio.append_durably(str(link), b"x\n")
    assert victim.read_bytes() == b"original\n"


def test_append_refuses_a_planted_fifo_without_hanging(tmp_path):
    """A FIFO planted as a mailbox must not block a sender (which holds the store lock) forever."""
    fifo = tmp_path / "box.jsonl"
    os.mkfifo(fifo, 0o600)
    code = "import sys; from pathlib import Path; from relay.store import fileio\n"
    code += "try:\n    fileio.append_durably(str(Path(sys.argv[1])), b'x\\n')\nexcept Exception as e:\n    print(e)\n"
    try:
        result = subprocess.run(
            [sys.executable, "-c", code, str(fifo)],
            capture_output=True,
            timeout=5,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("append_durably blocked on a FIFO planted as a mailbox file")
    assert b"not a regular file" in result.stdout


def test_atomic_write_replaces_a_symlink_without_following_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"original\n")
    link = tmp_path / "marker"
    link.symlink_to(victim)
    fileio.atomic_write(str(link), b"id\n")
    assert not link.is_symlink()
    assert link.read_bytes() == b"id\n"
    assert victim.read_bytes() == b"original\n"


def test_read_file_does_not_follow_symlinks(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"secret\n")
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(RelayError, match="symlink"):
        fileio.read_file(str(tmp_path / "link"))
    assert fileio.read_file(str(tmp_path / "missing")) is None
    assert fileio.read_file(str(victim)) == b"secret\n"


def test_ensure_private_dir(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.chmod(real, 0o755)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    with pytest.raises(RelayError, match="symlink"):
        fileio.ensure_private_dir(str(link))
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o755
    fileio.ensure_private_dir(str(link), allow_symlink=True)  # a user's own choice for the home
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o700
    (tmp_path / "file").write_text("x")
    with pytest.raises(RelayError, match="not a directory"):
        fileio.ensure_private_dir(str(tmp_path / "file"))
    nested = tmp_path / "a" / "b"
    fileio.ensure_private_dir(str(nested))
    assert stat.S_IMODE(os.stat(nested).st_mode) == 0o700


def test_move_aside_never_overwrites(tmp_path):
    src = tmp_path / "registry.json"
    src.write_text("{bad")
    kept = tmp_path / "kept"
    kept.write_text("earlier")
    with pytest.raises(RelayError, match="already exists"):
        fileio.move_aside(str(src), str(kept))
    assert kept.read_text() == "earlier"
    assert src.read_text() == "{bad"
    fileio.move_aside(str(src), str(tmp_path / "kept2"))
    assert (tmp_path / "kept2").read_text() == "{bad"
    assert not src.exists()


def test_remove_is_idempotent(tmp_path):
    path = tmp_path / "x"
    path.write_text("1")
    fileio.remove(str(path))
    fileio.remove(str(path))
    assert not path.exists()


# -- hard links, foreign owners, shared homes, bounded reads --------------------------------


def test_append_refuses_a_hard_link_and_leaves_its_target_alone(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"keep\n")
    link = tmp_path / "box.jsonl"
    os.link(target, link)
    with pytest.raises(fileio.UnsafeFile, match="2 hard links"):
        fileio.append_durably(str(link), b'{"x": 1}\n')
    assert target.read_bytes() == b"keep\n"
    with pytest.raises(fileio.UnsafeFile):
        fileio.read_file(str(link))
    assert fileio.read_file(str(link), links_ok=True) == b"keep\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_file_or_dir_of_another_user_is_refused_unchanged(tmp_path):
    path = tmp_path / "theirs"
    path.write_bytes(b"x")
    os.chmod(path, 0o644)
    os.chown(path, 12345, 12345)
    with pytest.raises(fileio.ForeignFile, match="uid 12345"):
        fileio.append_durably(str(path), b"y\n")
    assert path.read_bytes() == b"x" and stat.S_IMODE(os.stat(path).st_mode) == 0o644
    folder = tmp_path / "their-dir"
    folder.mkdir(mode=0o755)
    os.chown(folder, 12345, 12345)
    with pytest.raises(fileio.ForeignFile, match="uid 12345"):
        fileio.ensure_private_dir(str(folder))
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o755


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_symlinked_home_is_used_only_when_link_and_target_are_the_users(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o750)
    link = tmp_path / "home"
    link.symlink_to(mine)
    fileio.ensure_private_dir(str(link), allow_symlink=True, is_home=True)  # the user's own choice
    assert stat.S_IMODE(os.stat(mine).st_mode) == 0o700
    os.chmod(mine, 0o750)
    os.lchown(link, 12345, 12345)  # another user's link: they could repoint it at any time
    with pytest.raises(fileio.ForeignFile, match="symlink owned by uid 12345"):
        fileio.ensure_private_dir(str(link), allow_symlink=True, is_home=True)
    assert stat.S_IMODE(os.stat(mine).st_mode) == 0o750  # followed and chmodded: never
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 12345, 12345)
    own_link = tmp_path / "to-theirs"
    own_link.symlink_to(theirs)
    with pytest.raises(fileio.ForeignFile, match="uid 12345"):
        fileio.ensure_private_dir(str(own_link), allow_symlink=True, is_home=True)
    assert stat.S_IMODE(os.stat(theirs).st_mode) == 0o755


@pytest.mark.parametrize("mode", [0o1777, 0o777, 0o770, 0o722])
def test_a_home_writable_by_others_is_refused_never_chmodded(tmp_path, mode):
    home = tmp_path / "shared"
    home.mkdir()
    os.chmod(home, mode)
    with pytest.raises(fileio.ForeignFile, match="writable by group or others"):
        fileio.ensure_private_dir(str(home), allow_symlink=True, is_home=True)
    assert stat.S_IMODE(os.stat(home).st_mode) == mode


def test_a_loose_file_of_the_user_is_tightened_on_open(tmp_path):
    path = tmp_path / "mine"
    path.write_bytes(b"x")
    os.chmod(path, 0o666)
    assert fileio.read_file(str(path)) == b"x"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_read_head_returns_whole_lines_within_the_budget(tmp_path):
    path = tmp_path / "box"
    path.write_bytes(b"aaaa\nbbbb\ncccc\n")
    assert fileio.read_head(str(path), 12, 100) == (b"aaaa\nbbbb\n", 0, 15)
    assert fileio.read_head(str(path), 100, 100) == (b"aaaa\nbbbb\ncccc\n", 0, 15)
    assert fileio.read_head(str(path), 2, 100) == (b"aaaa\n", 0, 15)  # at least one line
    path.write_bytes(b"x" * 50 + b"\nnext\n")
    assert fileio.read_head(str(path), 10, 20) == (b"", 51, 56)  # an oversize line: skip it
    assert fileio.read_head(str(tmp_path / "none"), 10, 10) is None


def test_replace_prefix_streams_and_counts(tmp_path):
    path = tmp_path / "box"
    path.write_bytes(b"1\n2\n3\n")
    inode = os.stat(path).st_ino
    assert fileio.replace_prefix(str(path), 2, b"0\n") == 3
    assert path.read_bytes() == b"0\n2\n3\n"
    assert os.stat(path).st_ino != inode  # a new file: never written through a link
    assert fileio.replace_prefix(str(path), 6) == 0
    assert not path.exists()
    assert fileio.count_lines(str(path)) == 0
    path.write_bytes(b"a\nb")
    assert fileio.count_lines(str(path)) == 2


def test_reads_and_counts_start_at_an_offset_and_a_window_bounds_the_count(tmp_path):
    """The read cursor's primitives: nothing before `start` is read, and a count given a window
    reads only that much, estimating the rest from the mean line length."""
    path = tmp_path / "box"
    path.write_bytes(b"aaaa\nbbbb\ncccc\n")
    assert fileio.read_head(str(path), 100, 100, start=5) == (b"bbbb\ncccc\n", 0, 15)
    assert fileio.read_head(str(path), 6, 100, start=5) == (b"bbbb\n", 0, 15)
    assert fileio.read_head(str(path), 100, 100, start=15) == (b"", 0, 15)
    assert fileio.count_lines(str(path), 5) == 2
    path.write_bytes(b"x" * 9 + b"\n" + b"0123456789" * 1000)  # a torn last line counts
    assert fileio.count_lines(str(path), 10, 50) == 1
    path.write_bytes(b"123456789\n" * 10_000)
    assert fileio.count_lines(str(path), 0, 1000) == 10_000
    assert fileio.count_lines(str(path), 50, 1000) == 9_995

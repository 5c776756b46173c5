"""The store (docs/store.md, docs/security.md): the 0.1 on-disk format, upserts, resolving, privacy, symlinks, ids.

In-process tests call relay.store.files directly; the format and id checks also go through the program
(run_relay) so they hold for the frozen binary too.
"""

import json
import os
import posix
import re
import stat
from pathlib import Path

import pytest
from conftest import file_registry, new_id, plant_registry, queued_to

import relay.store.files as store_module
from relay.store.files import Store
from relay.store.layout import mailbox_name, marker_name
from relay.util.errors import RelayError

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ENTRY_KEYS = {"id", "dir", "name", "tool", "lastSeen"}
MESSAGE_KEYS = {"id", "ts", "from", "fromName", "to", "toName", "body"}


def write_v01_store(home: Path, alice: str, bob: str, project: str) -> dict:
    """Lay out a store exactly as session-relay 0.1 (Node) leaves it."""
    home.mkdir(parents=True, mode=0o700)
    registry = {
        "agents": {
            alice: {
                "id": alice,
                "dir": project,
                "name": "alice",
                "tool": "claude",
                "lastSeen": "2026-07-01T12:34:56.789Z",
            },
            bob: {"id": bob, "dir": None, "name": "bob", "tool": "codex", "lastSeen": "2026-07-01T12:35:00.000Z"},
        },
        "names": {"alice": alice, "bob": bob},
    }
    # Node: JSON.stringify(registry, null, 2), no trailing newline.
    (home / "registry.json").write_text(json.dumps(registry, indent=2))
    (home / "mailbox").mkdir(mode=0o700)
    lines = [
        {
            "id": "6f1c2a1e-0d1b-4c55-9d8e-0a1b2c3d4e5f",
            "ts": "2026-07-01T12:40:00.000Z",
            "from": bob,
            "fromName": "bob",
            "to": alice,
            "toName": "alice",
            "body": "first from 0.1",
        },
        {
            "id": "7f1c2a1e-0d1b-4c55-9d8e-0a1b2c3d4e5f",
            "ts": "2026-07-01T12:41:00.000Z",
            "from": None,
            "fromName": "cli",
            "to": alice,
            "toName": "alice",
            "body": "second — ünïcode",
        },
    ]
    (home / "mailbox" / f"{alice}.jsonl").write_text(
        "".join(json.dumps(m, ensure_ascii=False, separators=(",", ":")) + "\n" for m in lines)
    )
    (home / "markers").mkdir(mode=0o700)
    (home / "markers" / re.sub(r"[^A-Za-z0-9]", "-", project)).write_text(f"{alice}\n")
    return {"registry": registry, "messages": lines}


# -- 0.1 format compatibility -------------------------------------------------------------------


def test_reads_a_v01_store(run_relay, store_home, tmp_path):
    alice, bob = new_id(), new_id()
    project = str(tmp_path / "my project.v1")
    os.makedirs(project)
    written = write_v01_store(store_home, alice, bob, project)

    listed = run_relay("list", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert {e["id"]: e for e in entries} == {
        k: {**v, "deliver": "turn"} for k, v in written["registry"]["agents"].items()
    }

    # the marker names alice for the project dir
    assert Store(store_home).marker(project) == alice

    # a name from the 0.1 registry resolves; the 0.1 mail is delivered, ids and bodies intact
    inbox = run_relay("inbox", "alice")
    assert inbox.returncode == 0, inbox.stderr
    got = json.loads(inbox.stdout)
    assert got["count"] == 2
    assert [(m["id"], m["body"]) for m in got["messages"]] == [(m["id"], m["body"]) for m in written["messages"]]
    assert all(not m.get("redelivered") for m in got["messages"])

    sent = run_relay("send", "bob", "--", "hello bob")
    assert sent.returncode == 0, sent.stderr
    assert queued_to(sent.stdout) == "bob"


def test_files_we_write_have_the_v01_shape(run_relay, store_home, tmp_path):
    alice, bob = new_id(), new_id()
    project = tmp_path / "proj dir.x"
    project.mkdir()
    assert run_relay("register", "alice", "--id", alice, "--dir", str(project)).returncode == 0
    assert run_relay("register", "bob", "--id", bob, "--tool", "codex").returncode == 0
    event = json.dumps(
        {"session_id": alice, "cwd": str(project), "source": "startup", "hook_event_name": "SessionStart"}
    )
    assert run_relay("hook", input=event).returncode == 0
    assert run_relay("send", "alice", "--", "one", "two").returncode == 0

    raw = (store_home / "agents" / f"{alice}.json").read_text()
    assert raw.startswith("{\n  "), "an entry file must be pretty JSON"
    assert json.loads((store_home / "names" / "alice.json").read_text()) == {"alice": alice}
    registry = file_registry(store_home)
    assert set(registry) == {"agents", "names"}
    assert registry["names"] == {"alice": alice, "bob": bob}
    for session_id, entry in registry["agents"].items():
        assert set(entry) == ENTRY_KEYS
        assert entry["id"] == session_id
        assert ISO_MS.match(entry["lastSeen"])
    assert registry["agents"][alice]["dir"] == str(project)
    assert registry["agents"][alice]["tool"] == "claude"
    assert registry["agents"][bob] | {"lastSeen": "x"} == {
        "id": bob,
        "dir": None,
        "name": "bob",
        "tool": "codex",
        "lastSeen": "x",
    }

    mailbox = store_home / "mailbox" / f"{alice}.jsonl"
    data = mailbox.read_bytes()
    assert data.endswith(b"\n")
    lines = data.split(b"\n")[:-1]
    assert len(lines) == 1
    message = json.loads(lines[0])
    # 0.1's keys, plus the mark of mail sent to a name (it follows the name; 0.1 readers ignore it)
    assert set(message) == MESSAGE_KEYS | {"byName"} and message["byName"] is True
    assert UUID4.match(message["id"])
    assert ISO_MS.match(message["ts"])
    assert message == message | {"from": None, "fromName": "cli", "to": alice, "toName": "alice", "body": "one two"}

    marker = store_home / "markers" / re.sub(r"[^A-Za-z0-9]", "-", str(project))
    # 0.1 reads the first line; the second (new) names the dir, to tell colliding dirs apart.
    assert marker.read_bytes() == f"{alice}\n{project}\n".encode()


def test_marker_and_mailbox_name_encoding():
    assert marker_name("/home/u/my project.v1/a_b") == "-home-u-my-project-v1-a-b"
    assert marker_name("/tmp/ünï") == "-tmp--n-"
    assert mailbox_name("123e4567-e89b-12d3-a456-426614174000") == "123e4567-e89b-12d3-a456-426614174000.jsonl"
    assert mailbox_name("AB.cd_ef-9") == "AB.cd_ef-9.jsonl"
    assert mailbox_name("../../etc/passwd") == "..-..-etc-passwd.jsonl"
    assert mailbox_name("a b/c\\d\x00e") == "a-b-c-d-e.jsonl"
    assert "/" not in mailbox_name("/x/y/z")


# -- register / resolve --------------------------------------------------------------------------


def test_register_upserts_and_refreshes_last_seen(env, store_home, monkeypatch):
    store = Store(store_home)
    sid = new_id()
    stamps = iter(["2026-01-01T00:00:00.001Z", "2026-01-01T00:00:05.002Z", "2026-01-01T00:00:09.003Z"])
    monkeypatch.setattr(store_module, "now_iso", lambda: next(stamps))

    first = store.register(sid, directory="/work/a", name="alpha", tool="codex")
    assert first == {
        "id": sid,
        "dir": "/work/a",
        "name": "alpha",
        "tool": "codex",
        "lastSeen": "2026-01-01T00:00:00.001Z",
    }
    second = store.register(sid)  # nothing given: every field kept, lastSeen refreshed
    assert second == first | {"lastSeen": "2026-01-01T00:00:05.002Z"}
    third = store.register(sid, directory="/work/b")
    assert third == first | {"dir": "/work/b", "lastSeen": "2026-01-01T00:00:09.003Z"}
    on_disk = file_registry(Path(store.home))
    assert on_disk["agents"][sid] == third
    assert on_disk["names"] == {"alpha": sid}


def test_register_defaults_and_real_timestamp_format(env, store_home):
    sid = new_id()
    entry = Store(store_home).register(sid)
    assert entry["dir"] is None and entry["name"] is None and entry["tool"] == "claude"
    assert ISO_MS.match(entry["lastSeen"])


def _files(home: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, mtime in ns, size) of every file under the store, the lock file included."""
    found = {}
    for folder, _, names in os.walk(home):
        for name in names:
            info = os.lstat(os.path.join(folder, name))
            found[os.path.relpath(os.path.join(folder, name), home)] = (info.st_ino, info.st_mtime_ns, info.st_size)
    return found


def _set_last_seen(home: Path, sid: str, stamp: str) -> None:
    path = home / "agents" / f"{sid}.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"lastSeen": stamp}))


def test_a_start_that_changes_nothing_writes_nothing(env, store_home, tmp_path):
    """A resume, /clear or compaction of a session registered as it is, seen within the refresh
    interval and still named by its dir's marker, writes no file and takes no lock (the store lock
    counts its holders in its file, so a lock taken shows in the snapshot)."""
    store, sid = Store(store_home), new_id()
    first = store.record_start(sid, str(tmp_path), "claude")
    before = _files(store_home)
    again = store.record_start(sid, str(tmp_path), "claude")
    assert _files(store_home) == before
    assert again == first == file_registry(store_home)["agents"][sid]


def _other_start_in_the_dir(store: Store, sid: str, directory: Path) -> None:
    store.record_start(new_id(), str(directory), "claude")


@pytest.mark.parametrize(
    ("meanwhile", "tool", "changed"),
    [
        (lambda store, sid, d: None, "codex", {"tool": "codex"}),  # the session now runs under another CLI
        (lambda store, sid, d: store.record_end(sid), "claude", {}),  # resumed after its SessionEnd
        (_other_start_in_the_dir, "claude", {}),  # another session took the dir's marker
        (lambda store, sid, d: _set_last_seen(Path(store.home), sid, "2020-01-01T00:00:00.000Z"), "claude", {}),
        (lambda store, sid, d: _set_last_seen(Path(store.home), sid, "2999-01-01T00:00:00.000Z"), "claude", {}),
        (lambda store, sid, d: store.register(sid, name=None), "claude", {}),  # unnamed: the start names it
    ],
    ids=["tool", "ended", "marker", "seen-long-ago", "seen-in-the-future", "unnamed"],
)
def test_a_start_that_changes_something_is_written(env, store_home, tmp_path, meanwhile, tool, changed):
    store, sid = Store(store_home), new_id()
    first = store.record_start(sid, str(tmp_path), "claude")
    meanwhile(store, sid, tmp_path)
    entry = store.record_start(sid, str(tmp_path), tool)
    stored = file_registry(store_home)["agents"][sid]
    assert entry == stored == first | changed | {"lastSeen": stored["lastSeen"]}
    assert stored["lastSeen"] != "2020-01-01T00:00:00.000Z" and stored["lastSeen"] < "2999"
    assert store.marker(str(tmp_path)) == sid


def test_resolve_takes_an_id_before_a_name(env, store_home):
    a, b = new_id(), new_id()
    store_home.mkdir(mode=0o700)
    # A 0.1 registry may hold a name that is literally another session's id.
    registry = {
        "agents": {
            a: {"id": a, "dir": None, "name": b, "tool": "claude", "lastSeen": "2026-01-01T00:00:00.000Z"},
            b: {"id": b, "dir": None, "name": "bee", "tool": "codex", "lastSeen": "2026-01-01T00:00:00.000Z"},
        },
        "names": {b: a, "bee": b},
    }
    plant_registry(store_home, registry)
    reg = Store(store_home).registry()
    assert reg.resolve(b)["id"] == b
    assert reg.resolve("bee")["id"] == b
    assert reg.resolve(a)["id"] == a


def test_cli_send_to_an_id_goes_to_that_id_not_a_name(run_relay, store_home):
    a, b = new_id(), new_id()
    store_home.mkdir(mode=0o700)
    registry = {
        "agents": {
            a: {"id": a, "dir": None, "name": b, "tool": "claude", "lastSeen": "2026-01-01T00:00:00.000Z"},
            b: {"id": b, "dir": None, "name": None, "tool": "claude", "lastSeen": "2026-01-01T00:00:00.000Z"},
        },
        "names": {b: a},
    }
    plant_registry(store_home, registry)
    assert run_relay("send", b, "--", "for b").returncode == 0
    assert (store_home / "mailbox" / f"{b}.jsonl").exists()
    assert not (store_home / "mailbox" / f"{a}.jsonl").exists()


# -- privacy: 0700 dirs, 0600 files ---------------------------------------------------------------


def _all_modes(home: Path) -> dict[str, int]:
    modes = {".": stat.S_IMODE(os.lstat(home).st_mode)}
    for root, dirs, files in os.walk(home):
        for name in dirs + files:
            path = Path(root) / name
            modes[str(path.relative_to(home))] = stat.S_IMODE(os.lstat(path).st_mode)
    return modes


def _exercise(store: Store, tmp: Path) -> None:
    a, b = new_id(), new_id()
    store.register(a, directory=str(tmp), name="alpha")
    store.set_marker(str(tmp), a)
    from relay.usecases.mail import send

    send(store, "alpha", "one", b, None)
    send(store, "alpha", "two", b, None)
    with store.take(a) as delivery:
        delivery.ack(1)  # one shown, one goes back to the queue (rewritten)
    (Path(store.home) / "mailbox" / f"{a}.jsonl").open("ab").write(b"not json\n")
    with store.take(a) as delivery:  # quarantines the bad line
        delivery.ack()
    (Path(store.home) / "agents" / f"{b}.json").write_bytes(b"{broken")
    store.register(b, name="bravo")  # moves the corrupt entry aside


def test_store_is_private_even_with_umask_000(env, store_home, tmp_path):
    old = os.umask(0)
    try:
        store = Store(store_home, warn=lambda _m: None)
        _exercise(store, tmp_path)
    finally:
        os.umask(old)
    modes = _all_modes(store_home)
    assert any(k.startswith("quarantine/") for k in modes), modes
    assert any(k.startswith("markers/") for k in modes), modes
    for rel, mode in modes.items():
        path = store_home / rel
        expected = 0o700 if path.is_dir() else 0o600
        assert mode == expected, f"{rel}: {oct(mode)}"


def test_looser_existing_home_and_subdirs_are_tightened(env, store_home, tmp_path):
    store_home.mkdir()
    os.chmod(store_home, 0o755)
    for sub in ("mailbox", "markers"):
        (store_home / sub).mkdir()
        os.chmod(store_home / sub, 0o777)
    Store(store_home).register(new_id(), name="x")
    assert stat.S_IMODE(os.stat(store_home).st_mode) == 0o700
    for sub in ("mailbox", "markers"):
        assert stat.S_IMODE(os.stat(store_home / sub).st_mode) == 0o700


def test_cli_creates_a_private_store(run_relay, store_home):
    result = run_relay("send", "--id", new_id(), "--", "hi", extra_env={})
    assert result.returncode == 0, result.stderr
    for rel, mode in _all_modes(store_home).items():
        assert mode == (0o700 if (store_home / rel).is_dir() else 0o600), rel


# -- planted symlinks are never written through ---------------------------------------------------


@pytest.fixture
def victim(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "victim"
    target.write_bytes(b"original\n")
    os.chmod(target, 0o644)
    return target


def _unchanged(target: Path) -> None:
    assert target.read_bytes() == b"original\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["victim"]


def _prepared(store_home: Path) -> Store:
    store = Store(store_home)
    store.register(new_id(), name="seed")
    return store


def test_symlinked_mailbox_file_is_not_written_through(env, store_home, victim, run_relay):
    store = _prepared(store_home)
    sid = new_id()
    (store_home / "mailbox" / f"{sid}.jsonl").symlink_to(victim)
    # The planted link is moved to quarantine/ (never followed) and the mail goes to a real mailbox.
    store.enqueue(sid, {"id": new_id(), "body": "x"})
    assert not (store_home / "mailbox" / f"{sid}.jsonl").is_symlink()
    assert any(p.is_symlink() for p in (store_home / "quarantine").iterdir())
    (store_home / "mailbox" / f"{sid}.jsonl").unlink()
    (store_home / "mailbox" / f"{sid}.jsonl").symlink_to(victim)
    result = run_relay("send", "--id", sid, "--", "evil")
    assert result.returncode == 0, result.stderr
    event = json.dumps({"session_id": sid, "cwd": str(store_home.parent)})
    assert run_relay("hook", input=event).returncode == 0
    run_relay("inbox", sid)
    _unchanged(victim)


def test_symlinked_registry_is_not_written_through(env, store_home, victim, run_relay):
    _prepared(store_home)
    sid = new_id()
    entry = store_home / "agents" / f"{sid}.json"
    entry.symlink_to(victim)
    # Handled like a corrupt entry: moved aside, never followed; a fresh one is written.
    Store(store_home, warn=lambda _m: None).register(sid, name="evil")
    assert not entry.is_symlink()
    entry.unlink()
    entry.symlink_to(victim)
    assert run_relay("register", "evil2", "--id", sid).returncode == 0
    assert not entry.is_symlink()
    names = store_home / "names" / "evil3.json"
    names.symlink_to(victim)  # the names index is guarded the same way
    assert run_relay("register", "evil3", "--id", sid).returncode == 0
    assert not names.is_symlink()
    _unchanged(victim)


def test_symlinked_marker_is_not_written_through(env, store_home, victim, tmp_path, run_relay):
    store = _prepared(store_home)
    project = tmp_path / "proj"
    project.mkdir()
    marker = store_home / "markers" / marker_name(str(project))
    marker.symlink_to(victim)
    sid = new_id()
    store.set_marker(str(project), sid)  # replaced atomically, never followed
    assert not marker.is_symlink() and store.marker(str(project)) == sid
    marker.unlink()
    marker.symlink_to(victim)
    other = new_id()
    event = json.dumps({"session_id": other, "cwd": str(project)})
    assert run_relay("hook", input=event).returncode == 0
    assert not marker.is_symlink() and store.marker(str(project)) == other
    _unchanged(victim)


@pytest.mark.parametrize("sub", ["mailbox", "markers", "inflight", "quarantine", "agents", "names"])
def test_symlinked_store_subdir_is_not_written_through(env, store_home, victim, tmp_path, run_relay, sub):
    store = _prepared(store_home)
    target_dir = victim.parent
    path = store_home / sub
    if path.exists():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    path.symlink_to(target_dir, target_is_directory=True)
    sid = new_id()
    project = tmp_path / "proj"
    project.mkdir(exist_ok=True)
    with pytest.raises(RelayError):
        if sub == "quarantine":
            (store_home / "agents" / f"{sid}.json").write_bytes(b"{corrupt")
            store.register(sid, name="q")
        elif sub in ("agents", "names"):
            store.register(sid, name="q")
        else:
            store.set_marker(str(project), sid)
            store.enqueue(sid, {"id": new_id(), "body": "x"})
            store.take(sid).close()
    run_relay("send", "--id", sid, "--", "evil")
    run_relay("hook", input=json.dumps({"session_id": sid, "cwd": str(project)}))
    run_relay("inbox", sid)
    _unchanged(victim)


def test_symlinked_lock_file_is_not_followed(env, store_home, victim, run_relay):
    _prepared(store_home)
    (store_home / ".lock").unlink()
    (store_home / ".lock").symlink_to(victim)
    with pytest.raises(RelayError, match="symlink"):
        Store(store_home).register(new_id())
    result = run_relay("send", "--id", new_id(), "--", "x")
    assert result.returncode == 1
    assert b"symlink" in result.stderr
    _unchanged(victim)


# -- ids that are not UUIDs never reach a file name -------------------------------------------------

BAD_IDS = ["../../evil", "--config=evil", "evil", "", "123e4567-e89b-12d3-a456-42661417400", "a/b", "x" * 300]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_an_id_is_checked_once_where_it_enters(bad):
    """The store trusts the SessionId it is given (relay.domain.ids): only `require_uuid` makes one, and
    it refuses whatever is not a UUID. The faces' refusals are below, black-box."""
    from relay.domain.ids import SessionId, require_uuid

    with pytest.raises(RelayError, match="invalid"):
        require_uuid(bad)
    upper = new_id().upper()
    made = require_uuid(upper)
    assert isinstance(made, SessionId) and made == upper.lower()


def test_cli_and_hook_refuse_non_uuid_ids(run_relay, store_home, tmp_path):
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for bad in BAD_IDS:
        for args in (
            ("send", "--id", bad, "--", "x"),
            ("ask", "--id", bad, "--wait", "0", "--", "x"),
            ("register", "name", "--id", bad),
            ("inbox", bad),
            ("peek", bad),
            ("send", bad, "--", "x"),
            ("wake", "--id", bad, "--dir", str(tmp_path), "--tool", "claude", "--dry"),
        ):
            result = run_relay(*args)
            assert result.returncode in (1, 2), (args, result)
            assert len(result.stderr.decode().strip().splitlines()) == 1, (args, result.stderr)
        hooked = run_relay("hook", input=json.dumps({"session_id": bad, "cwd": str(tmp_path)}))
        assert hooked.returncode == 0
        assert hooked.stdout == b""
        if bad:  # an event without a session id is ignored, silently
            assert b"[session-relay/hook]" in hooked.stderr
    if (store_home / "mailbox").is_dir():
        assert list((store_home / "mailbox").iterdir()) == []
    if (store_home / "markers").is_dir():
        assert list((store_home / "markers").iterdir()) == []
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "evil" in p.name)
    assert after == [], after
    assert file_registry(store_home)["agents"] == {}
    created = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    # (the frozen binary unpacks itself under $HOME/.cache: that is not the store)
    stray = [p for p in created if p not in before and not str(p).startswith(("store/", "home/.cache/"))]
    assert stray == [], stray


def test_an_id_in_upper_case_reaches_the_same_session(run_relay, store_home):
    """The id pattern of docs/store.md accepts A-F; both CLIs mint lower case. Mail sent to the upper-case spelling
    must reach the session, not a mailbox nobody reads. Bug B-T5 in notes/bugs.md."""
    sid = new_id()
    assert run_relay("register", "lower", "--id", sid).returncode == 0
    assert run_relay("send", "--id", sid.upper(), "--", "by flag").returncode == 0
    assert run_relay("send", sid.upper(), "--", "by target").returncode == 0
    got = json.loads(run_relay("inbox", sid).stdout)
    assert sorted(m["body"] for m in got["messages"]) == ["by flag", "by target"]


# -- a store that is not the user's ------------------------------------------------------

HOOK_PREFIX = "[session-relay/hook] "
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


def _hook(run_relay, sid: str, cwd: Path):
    return run_relay("hook", input=json.dumps({"session_id": sid, "cwd": str(cwd), "hook_event_name": "SessionStart"}))


def _refused_by_hook(result) -> str:
    assert result.returncode == 0 and result.stdout == b""
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(HOOK_PREFIX), result.stderr
    return lines[0]


@needs_root
def test_a_home_owned_by_another_user_is_refused_and_never_changed(run_relay, store_home, tmp_path):
    store_home.mkdir(mode=0o755)
    os.chmod(store_home, 0o755)
    os.chown(store_home, 12345, 12345)
    line = _refused_by_hook(_hook(run_relay, new_id(), tmp_path))
    assert "uid 12345" in line
    send = run_relay("send", "--id", new_id(), "--", "hi")
    assert send.returncode == 1 and "uid 12345" in send.stderr.decode()
    assert run_relay("list").returncode == 1
    info = os.stat(store_home)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (12345, 0o755)
    assert list(store_home.iterdir()) == []


def test_a_home_writable_by_others_is_refused_and_never_chmodded(run_relay, store_home, tmp_path):
    """Red team: AGENT_RELAY_HOME at an existing 1777 dir was silently chmodded 0700 and used."""
    store_home.mkdir()
    os.chmod(store_home, 0o1777)
    line = _refused_by_hook(_hook(run_relay, new_id(), tmp_path))
    assert "writable by group or others" in line and "1777" in line
    assert run_relay("send", "--id", new_id(), "--", "hi").returncode == 1
    assert stat.S_IMODE(os.stat(store_home).st_mode) == 0o1777
    assert list(store_home.iterdir()) == []
    os.chmod(store_home, 0o775)  # group-writable is refused too
    assert run_relay("send", "--id", new_id(), "--", "hi").returncode == 1
    assert stat.S_IMODE(os.stat(store_home).st_mode) == 0o775


@needs_root
def test_a_store_file_owned_by_another_user_is_refused(run_relay, store_home, tmp_path):
    sid = new_id()
    assert _hook(run_relay, sid, tmp_path).returncode == 0
    registry = store_home / "agents" / f"{sid}.json"
    os.chown(registry, 12345, 12345)
    before = registry.read_bytes()
    line = _refused_by_hook(_hook(run_relay, sid, tmp_path))
    assert "uid 12345" in line
    assert registry.read_bytes() == before and os.stat(registry).st_uid == 12345
    mailbox = store_home / "mailbox" / f"{sid}.jsonl"
    mailbox.write_text("")
    os.chown(mailbox, 12345, 12345)
    os.chown(registry, 0, 0)
    send = run_relay("send", "--id", sid, "--", "x")
    assert send.returncode == 1 and "uid 12345" in send.stderr.decode()
    assert mailbox.read_bytes() == b""


def test_a_loose_store_of_the_user_is_tightened(env, store_home, tmp_path):
    """A 0.1 store written under a loose umask upgrades cleanly: home 0700, files 0600."""
    sid = new_id()
    store_home.mkdir()
    (store_home / "mailbox").mkdir()
    (store_home / "mailbox" / f"{sid}.jsonl").write_text("")
    (store_home / "registry.json").write_text('{"agents": {}, "names": {}}')
    for path, mode in ((store_home, 0o755), (store_home / "mailbox", 0o755)):
        os.chmod(path, mode)
    for path in (store_home / "registry.json", store_home / "mailbox" / f"{sid}.jsonl"):
        os.chmod(path, 0o644)
    store = Store(store_home)
    store.register(sid, name="loose")
    from relay.usecases.mail import send

    send(store, sid, "hi", None, "cli")
    for rel, mode in _all_modes(store_home).items():
        assert mode == (0o700 if (store_home / rel).is_dir() else 0o600), rel


# -- hard links are never written through ----------------------------------------------------------


def test_a_hard_linked_mailbox_never_writes_into_its_target(run_relay, store_home, tmp_path):
    """Red team: a hard link planted as a mailbox got mail appended into its target."""
    sid = new_id()
    assert run_relay("register", "x", "--id", sid).returncode == 0
    target = store_home / "precious"
    target.write_bytes(b"precious data\n")
    os.link(target, store_home / "mailbox" / f"{sid}.jsonl")
    result = run_relay("send", "--id", sid, "--", "hello")
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == b"precious data\n"
    assert os.stat(target).st_nlink == 2  # the link was moved to quarantine/, not written
    got = json.loads(run_relay("inbox", sid).stdout)
    assert [m["body"] for m in got["messages"]] == ["hello"]
    assert target.read_bytes() == b"precious data\n"


def test_a_hard_linked_in_flight_file_is_set_aside(run_relay, store_home, tmp_path):
    sid = new_id()
    assert run_relay("send", "--id", sid, "--", "real mail").returncode == 0
    target = store_home / "precious"
    target.write_bytes(b'{"id": "x", "body": "not mail"}\n')
    os.link(target, store_home / "inflight" / f"{sid}.jsonl")
    got = json.loads(run_relay("inbox", sid).stdout)
    assert [m["body"] for m in got["messages"]] == ["real mail"]
    assert target.read_bytes() == b'{"id": "x", "body": "not mail"}\n'


# -- planted symlinks and FIFOs never block a session ----------------------------------------------


def _plant(path: Path, kind: str, victim: Path) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    if kind == "symlink":
        path.symlink_to(victim)
    else:
        os.mkfifo(path)


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
@pytest.mark.parametrize("where", ["registry", "marker", "inflight", "take-lock", "mailbox"])
def test_a_planted_file_never_blocks_the_hook(run_relay, store_home, tmp_path, victim, kind, where):
    """Red team: a symlink or FIFO in markers/, inflight/ or as registry.json blocked that session on
    every run. Now the hook still registers and delivers, twice in a row."""
    sid = new_id()
    project = tmp_path / "proj"
    project.mkdir()
    assert _hook(run_relay, sid, project).returncode == 0
    paths = {
        "registry": store_home / "agents" / f"{sid}.json",
        "marker": store_home / "markers" / marker_name(str(project)),
        "inflight": store_home / "inflight" / f"{sid}.jsonl",
        "take-lock": store_home / "inflight" / f"{sid}.lock",
        "mailbox": store_home / "mailbox" / f"{sid}.jsonl",
    }
    for round_ in range(2):
        if where != "mailbox":
            assert run_relay("send", "--id", sid, "--", f"mail {round_}").returncode == 0
        _plant(paths[where], kind, victim)
        if where == "mailbox":
            assert run_relay("send", "--id", sid, "--", f"mail {round_}").returncode == 0
        result = _hook(run_relay, sid, project)
        assert result.returncode == 0
        context = json.loads(result.stdout)["hookSpecificOutput"]["additionalContext"]
        assert f"): mail {round_}" in context
        entry = file_registry(store_home)["agents"][sid]
        assert entry["dir"] == str(project)
        assert Store(store_home).marker(str(project)) == sid
    _unchanged(victim)


# -- markers of dirs that encode alike ---------------------------------------------------------------


def test_colliding_dirs_each_keep_their_own_session(run_relay, store_home, tmp_path):
    """Red team: markers of /x/my_proj and /x/my-proj collided (both encode to -x-my-proj)."""
    under, dash = tmp_path / "my_proj", tmp_path / "my-proj"
    under.mkdir()
    dash.mkdir()
    assert marker_name(str(under)) == marker_name(str(dash))
    a, b = new_id(), new_id()
    assert _hook(run_relay, a, under).returncode == 0
    assert _hook(run_relay, b, dash).returncode == 0
    store = Store(store_home)
    assert store.marker(str(under)) == a
    assert store.marker(str(dash)) == b
    # the first dir keeps Claude Code's exact name; a restart there stays put
    assert (store_home / "markers" / marker_name(str(under))).read_text() == f"{a}\n{under}\n"
    c = new_id()
    assert _hook(run_relay, c, under).returncode == 0
    assert (store.marker(str(under)), store.marker(str(dash))) == (c, b)
    # and the MCP server of each dir finds its own session
    for directory, expected in ((under, c), (dash, b)):
        result = run_relay("bus", input=_whoami_frames(), extra_env={"RELAY_PROJECT_DIR": str(directory)})
        answer = json.loads(result.stdout.splitlines()[-1])
        assert json.loads(answer["result"]["content"][0]["text"])["id"] == expected


def _whoami_frames() -> str:
    frames = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}},
    ]
    return "".join(json.dumps(f) + "\n" for f in frames)


def test_a_01_marker_without_a_dir_line_is_still_read(env, store_home, tmp_path):
    sid = new_id()
    (store_home / "markers").mkdir(parents=True)
    os.chmod(store_home, 0o700)
    (store_home / "markers" / marker_name(str(tmp_path))).write_text(f"{sid}\n")
    assert Store(store_home).marker(str(tmp_path)) == sid


# -- take(select=): a hook event that may deliver only some mail (docs/delivery.md) --------------


def _queue_mixed(store: Store, sid: str) -> list[str]:
    """a, b!, c, d!, e (! = urgent); their ids."""
    from relay.usecases.mail import send

    return [
        send(store, sid, body, None, "cli", urgent=body.endswith("!"))[1]["id"] for body in ["a", "b!", "c", "d!", "e"]
    ]


def test_take_select_takes_the_accepted_and_keeps_the_rest_queued_in_order(env, store_home):
    from relay.domain.policy import is_urgent

    store, sid = Store(store_home), new_id()
    ids = _queue_mixed(store, sid)
    mailbox = store_home / "mailbox" / mailbox_name(sid)
    lines = mailbox.read_bytes().splitlines(keepends=True)
    with store.take(sid, select=is_urgent) as delivery:
        assert [m["body"] for m in delivery.messages] == ["b!", "d!"]
        assert [m["id"] for m in delivery.messages] == [ids[1], ids[3]]
        assert delivery.remaining == 3
        delivery.ack()
    assert mailbox.read_bytes() == b"".join(lines[i] for i in (0, 2, 4))  # the kept lines, byte for byte
    with store.take(sid, select=is_urgent) as delivery:
        assert delivery.messages == []
    with store.take(sid) as delivery:
        assert [m["id"] for m in delivery.messages] == [ids[0], ids[2], ids[4]]
        delivery.ack()
    assert store.peek(sid) == []


def test_take_select_accepting_nothing_leaves_the_mailbox_untouched(env, store_home):
    store, sid = Store(store_home), new_id()
    _queue_mixed(store, sid)
    store.take(sid, select=lambda message: False).close()  # the take lock exists, as after any take
    mailbox = store_home / "mailbox" / mailbox_name(sid)
    before = mailbox.stat()
    with store.take(sid, select=lambda message: False) as delivery:
        assert (delivery.messages, delivery.remaining) == ([], 5)
        delivery.ack()
    after = mailbox.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert not (store_home / "inflight" / mailbox_name(sid)).exists()


def test_delivering_a_batch_syncs_its_move_into_flight_and_each_receipt_once(tmp_path, monkeypatch):
    """docs/delivery.md: taking ten messages and confirming them syncs the move into flight (both
    dirs) and each receipt's data before its rename, no more: neither the removal from flight nor
    the receipts' dir is synced (a power cut may undo them: the batch comes again, a stamp is lost)."""
    from relay.domain.ids import require_uuid
    from relay.usecases import mail

    store = Store(tmp_path / "store")
    sid = require_uuid(new_id())
    store.record_start(sid, str(tmp_path), "claude")
    sent = [mail.send(store, sid, f"message {i}", None, "cli")[1]["id"] for i in range(10)]
    synced: list[str] = []
    fsync = os.fsync
    monkeypatch.setattr(posix, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), fsync(fd))[1])
    assert mail.deliver(store, sid, lambda batch, remaining: len(batch)) == 10
    assert sorted(os.path.basename(path) for path in synced if os.path.isdir(path)) == ["inflight", "mailbox"]
    receipts = [path for path in synced if not os.path.isdir(path)]
    assert len(receipts) == 10 and all(os.path.basename(os.path.dirname(p)) == "receipts" for p in receipts)
    assert [store.message_state(message_id)["state"] for message_id in sent] == ["delivered"] * 10
    assert not (tmp_path / "store" / "inflight" / f"{sid}.jsonl").exists()

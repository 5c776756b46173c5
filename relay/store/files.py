"""The on-disk store under `<home>`: the only module that reads or writes its files.

Layout (the session-relay 0.1 format, so an upgrade keeps registrations and unread mail):

    registry.json          {"agents": {id: Entry}, "names": {name: id}}: 0.1's registry, migrated
                           at the first access into agents/ and names/ (below), then renamed
                           registry.json.migrated
    mailbox/<id>.jsonl     mail, one JSON message per line, only appended to
    mailbox/<id>.offset    "<inode> <offset>": its read cursor, the first untaken byte (absent: 0)
    markers/<encoded-dir>  "<session-id>\\n", the session last registered for that dir
    .lock                  the lock file every mutation holds

Added by this version, ignored by 0.1 readers:

    agents/<id>.json       one session's Entry: a start rewrites only its own
    names/<name>.json      {name: id}, one file per name ignoring case: the names index

    inflight/<id>.jsonl    mail a taker has claimed but not yet confirmed as shown
    inflight/<id>.lock     held by the one live taker of that mailbox
    quarantine/            unparseable lines, registries and planted files, kept for a human
    archive/<id>.jsonl     undelivered mail of sessions `relay gc` retired, never deleted
    gc.stamp               when the hook last collected (it does so at most once a day)
    watchers/<id>.pid      locked by a session's one idle-mail watcher, holding its pid
    watchers/<id>.rung     when relay last rang the session's own messaging socket (docs/wake.md)
    receipts/<msg-id>.json what became of one message: queued, delivered, replied (docs/delivery.md)
    wakes/<id>.lock        held by the one running `relay wake` of a session; notes its program's pid
    wakes/<id>.json        {"times": [epoch seconds]}: that session's recent wakes, for the wake budget

A marker now holds "<session-id>\n<dir>\n" (0.1 wrote only the first line and reads only it):
two dirs that encode to the same name (`/x/my_proj`, `/x/my-proj`) are told apart by the second
line, and the later one gets the encoded name plus a hash of its dir.

Nothing an attacker on the machine plants can flood, poison or block the store: a mailbox holds
at most RELAY_MAILBOX_MAX bytes (8 MiB), a take reads a bounded prefix, a home or file of another
user (or a home writable by others) is refused and never chmodded, a file with a second hard link
is never written through, and a symlink or FIFO in place of a store file is replaced or moved to
quarantine/ instead of blocking a session.

Delivery is at-least-once: taking mail moves (at most TAKE_BUDGET bytes of) it to `inflight/`
under the lock, the caller shows it, and only its `ack` removes it. A taker that dies before the
ack leaves the mail in flight; the next taker delivers it again, first and with the same ids,
marked `"redelivered": true`. A message id seen twice in one take (a crash between two steps of
a claim or an ack leaves a copy in both files) is delivered once.
"""

import posix
import sys
import time
from _stat import S_IMODE, S_ISDIR, S_ISFIFO, S_ISLNK, S_ISREG

from relay.domain.ids import MAX_NAME_CHARS, NAME_CHARS, SessionId, is_uuid, name_from_dir, name_key
from relay.domain.policy import is_urgent
from relay.store import fileio, glance
from relay.store.base import (
    UNSET,
    Registration,
    StoreBase,
    bind_name,
    holds_name,
    is_message,
    new_receipt,
    sent_to_name,
    to_json,
)
from relay.store.glance import holder
from relay.store.layout import mailbox_name, relay_home, sha256_hex
from relay.store.lock import FileLock
from relay.util import jsonlite, paths
from relay.util.clock import now_iso
from relay.util.env import env_value
from relay.util.errors import LockBusy, RelayError
from relay.util.faults import checkpoint

TYPE_CHECKING = False  # _collections_abc stays off the path of a hook that takes mail; only mypy reads this
if TYPE_CHECKING:
    from _collections_abc import Callable, Iterator, Mapping
    from os import PathLike
    from typing import Any

# JSON objects as stored; `object` rather than typing.Any keeps typing off the hook's import path.
Entry = dict[str, object]
Message = dict[str, object]
if TYPE_CHECKING:
    Select = Callable[[Message], bool]
    # show(batch, remaining) -> how many of the batch's first messages a face showed; `remaining`
    # counts the messages queued behind the batch (relay.usecases.mail's delivery protocol).
    Show = Callable[[list[Message], int], int]


def _warn_to_stderr(message: str) -> None:
    sys.stderr.write(f"session-relay: {message}\n")


class Registry:
    """A read-only view of the registry: `agents` {id: Entry} and `names` {name: id}."""

    def __init__(self, data: dict) -> None:
        self.agents: Mapping[str, Entry] = data["agents"]
        self.names: Mapping[str, str] = data["names"]

    def resolve(self, target: str) -> Entry | None:
        """An exact id first, then a name: as written, else the one name equal to it ignoring case."""
        entry = self.agents.get(target)
        if entry is not None:
            return entry
        alike = self._alike(target)
        if target in alike:
            name = target
        elif len(alike) == 1:
            (name,) = alike
        else:  # none; or several, left by a relay that told names apart by case
            return None
        bound = alike[name]
        return self.agents.get(bound) or {"id": bound, "dir": None, "name": name, "tool": None}

    def _alike(self, target: str) -> dict[str, str]:
        """The names equal to `target` ignoring case, with their ids."""
        key = name_key(target)
        return {name: bound for name, bound in self.names.items() if name_key(name) == key}

    def ids_starting(self, prefix: str) -> list[str]:
        """The known session ids (registered, or bound to a name) that start with `prefix`, sorted."""
        prefix = prefix.lower()
        return sorted({i for i in (*self.agents, *self.names.values()) if i.lower().startswith(prefix)})

    def entries(self) -> list[Entry]:
        """Every entry, sorted by name, else id."""
        return sorted(self.agents.values(), key=lambda e: str(e.get("name") or e.get("id")))


if TYPE_CHECKING:
    _ReadOnlyMap = Mapping[str, Any]
else:
    _ReadOnlyMap = object  # _collections_abc (~5 M instructions of a frozen start) stays unloaded


class _Listed(_ReadOnlyMap):
    """A map of the store's agents/ or names/ files: one key reads one file; iterating lists the
    directory once and reads every file (only `list`, `discover`, `gc`, doctor and prefix lookups do).

    A Mapping for mypy; at run time it defines the reads of Mapping that the store's callers use
    itself, so a hook taking mail does not load _collections_abc for this one base class."""

    def __init__(self, lookup: "Callable[[str], object]", listing: "Callable[[], dict]") -> None:
        self._lookup, self._listing = lookup, listing
        self._every: dict | None = None

    def _all(self) -> dict:
        if self._every is None:
            self._every = self._listing()
        return self._every

    def __getitem__(self, key: str) -> object:
        value = self._all().get(key) if self._every is not None else self._lookup(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> "Iterator[str]":
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    if not TYPE_CHECKING:  # Mapping's own methods, as it defines them, for mypy

        def get(self, key, default=None):
            try:
                return self[key]
            except KeyError:
                return default

        def keys(self):
            return self._all().keys()

        def values(self):
            return self._all().values()

        def items(self):
            return self._all().items()

        def __eq__(self, other):
            return self._all() == (other._all() if isinstance(other, _Listed) else other)


class FileRegistry(Registry):
    """The file store's registry, read file by file (agents/<id>.json, names/<name>.json): a start
    or a lookup by id or name reads one or two small files, whatever the number of sessions."""

    def __init__(self, store: "Store", quarantine: bool = True) -> None:
        self._store = store
        self.agents = _Listed(store._entry, lambda: store._all_entries(quarantine))
        self.names = _Listed(lambda name: store._bound(name).get(name), store._all_names)

    def _alike(self, target: str) -> dict[str, str]:
        return self._store._bound(target)


# Mailboxes this process is taking right now. fcntl locks do not exclude within one process (and
# closing any descriptor of a file drops them all), so a second take here must not touch the lock.
_TAKING: set[str] = set()


# What one take claims: about what one result (hook text, `inbox`) can show, so a huge mailbox
# is never read whole. A line longer than MAX_LINE cannot be a message this relay wrote.
TAKE_BUDGET = 32 * 1024
MAX_LINE = 256 * 1024
DEFAULT_MAILBOX_MAX = 8 * 1024 * 1024


def mailbox_max() -> int:
    """RELAY_MAILBOX_MAX (bytes of pending and in-flight mail per mailbox), default 8 MiB."""
    raw = env_value("RELAY_MAILBOX_MAX") or ""
    if not raw:
        return DEFAULT_MAILBOX_MAX
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise RelayError(
            f"RELAY_MAILBOX_MAX must be a positive whole number of bytes, not {raw[:40]!r}; fix or unset it"
        )
    return value


class Delivery:
    """Mail claimed by one taker, who holds that mailbox's take lock until `close`.

    `messages` is a bounded batch; `remaining` counts the messages still queued behind it.
    `ack(n)` confirms the first n messages were shown; closing without an ack leaves them in
    flight for the next taker. A Delivery without a lock claimed nothing (the mailbox is already
    being taken in this process) and its ack does nothing.
    """

    def __init__(
        self,
        store: "Store",
        recipient: str,
        lines: list[bytes],
        messages: list[Message],
        lock: FileLock | None,
        remaining: int = 0,
        whole: bool = True,
    ) -> None:
        self._store = store
        self._recipient = recipient
        self._lines = lines
        self._lock = lock
        self._whole = whole  # the batch is all of the in-flight file
        self.messages = messages
        self.remaining = remaining

    def ack(self, count: int | None = None) -> None:
        """Remove the first `count` messages (all by default); the rest go back to the queue front."""
        if self._lock is None:
            return
        shown = len(self.messages) if count is None else count
        checkpoint("take:before-ack")
        self._store._finish_take(self._recipient, self._lines[:shown], self._lines[shown:], self._whole)
        checkpoint("take:acked")
        self._store._mark_delivered(self.messages[:shown])

    def close(self) -> None:
        """Release the mailbox for the next taker."""
        if self._lock is not None:
            self._lock.release()
            _TAKING.discard(self._lock.path)
            self._lock = None

    def __enter__(self) -> "Delivery":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _listdir(directory: str) -> list[str]:
    try:
        return sorted(posix.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _size(path: str) -> int:
    try:
        return posix.lstat(path).st_size
    except FileNotFoundError:
        return 0


def _split_lines(data: bytes) -> tuple[list[bytes], list[Message], list[bytes]]:
    """Parse mailbox bytes into (good raw lines, their messages, unparseable lines)."""
    good: list[bytes] = []
    messages: list[Message] = []
    bad: list[bytes] = []
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            message = jsonlite.loads(raw)
        except ValueError:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
            bad.append(raw)
            continue
        if isinstance(message, dict):
            good.append(raw)
            messages.append(message)
        else:
            bad.append(raw)
    return good, messages, bad


def _parse_line(raw: bytes) -> Message | None:
    """One mailbox line as a message; None when it is blank or not a JSON object."""
    if not raw.strip():
        return None
    try:
        message = jsonlite.loads(raw)
    except ValueError:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
        return None
    return message if isinstance(message, dict) else None


def _join(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


_UNUSABLE = object()  # a store file that is planted (a link, a FIFO) or does not parse


def _check_registry(data: object) -> dict | None:
    """The registry with both maps present, or None when its shape is not the store's."""
    if not isinstance(data, dict):
        return None
    agents = data.setdefault("agents", {})
    names = data.setdefault("names", {})
    if not isinstance(agents, dict) or not isinstance(names, dict):
        return None
    if not all(isinstance(e, dict) for e in agents.values()):
        return None
    if not all(isinstance(i, str) for i in names.values()):
        return None
    return data


def _name_file(name: str) -> str:
    """The file of the names index holding `name` and every name equal to it ignoring case."""
    key = name_key(name)
    if key and len(key) <= MAX_NAME_CHARS and key not in (".", "..") and all(ch in NAME_CHARS for ch in key):
        return f"{key}.json"
    return "~" + sha256_hex(key)[:32] + ".json"  # a name no check let in (planted before names were checked)


class _TakenNames:
    """The names index as name_from_dir's `taken`: a key is taken when its file exists (one stat)."""

    def __init__(self, store: "Store") -> None:
        self._store = store

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and paths.lexists(self._store._path("names", _name_file(key)))


class _StoreLock:
    """Holds the store lock for a `with` block (a class, not contextlib: that import is costly)."""

    def __init__(self, store: "Store", prepare: bool) -> None:
        self._store, self._prepare = store, prepare
        self._lock: FileLock | None = None

    def __enter__(self) -> None:
        if self._store._held:
            return  # an outer block of this store holds it
        if self._prepare:
            self._store._prepare()
        lock = FileLock(self._store._path(".lock"), counted=True)
        lock.acquire()
        self._lock, self._store._held = lock, True

    def __exit__(self, *exc_info: object) -> None:
        if self._lock is not None:
            self._store._held = False
            self._lock.release()
            self._lock = None


class WakeLock(FileLock):
    """A session's resume lock (`relay wake`), held while the program it woke runs. That program
    notes itself in it ("<pid>", then relay adds its start: "<pid> <start>") before it starts
    (relay.usecases.doorbell), so the note names it even when relay is killed while it runs."""

    def note(self) -> bytes:
        """What the last woken program noted, read through the held descriptor (opening the file
        again and closing it would drop this process's lock)."""
        return posix.pread(self._fd, 64, 0) if self._fd is not None else b""


class Store(StoreBase):
    """One store directory. Methods that change anything hold the store lock.

    Public methods check the ids they are given; the `_`-methods trust ids already checked.
    """

    def __init__(
        self, home: "str | PathLike[str] | None" = None, warn: "Callable[[str], None]" = _warn_to_stderr
    ) -> None:
        self.home = posix.fspath(home) if home is not None else relay_home()
        self.warn = warn
        self._held = False
        self._trusted = False

    # -- locking and layout -------------------------------------------------------------------

    def _locked(self, prepare: bool = True) -> "_StoreLock":
        """The store lock for a `with` block; re-entrant within this Store."""
        return _StoreLock(self, prepare)

    def _prepare(self) -> None:
        """Create the store (0700) or check that the existing one is the user's, tightening it."""
        fileio.ensure_private_dir(self.home, allow_symlink=True, is_home=True)
        self._trusted = True
        for sub in ("mailbox", "markers", "inflight"):
            fileio.ensure_private_dir(self._path(sub))

    def _check_home(self) -> bool:
        """For reads: False when there is no store yet; ForeignFile when it is not the user's."""
        if not self._trusted:
            self._trusted = fileio.home_exists(self.home)
        return self._trusted

    def _path(self, *parts: str) -> str:
        return paths.join(self.home, *parts)

    def _mailbox(self, session_id: str) -> str:
        return glance.mailbox_path(self.home, session_id)

    def _inflight(self, session_id: str) -> str:
        return glance.inflight_path(self.home, session_id)

    def _quarantine_path(self, stem: str) -> str:
        directory = self._path("quarantine")
        fileio.ensure_private_dir(directory)
        return paths.join(directory, f"{stem}-{time.time_ns()}")

    def _set_aside(self, path: str, why: str, what: str) -> None:
        """Move a planted or unusable file to quarantine/ (never writing to it) and say so."""
        kept = self._quarantine_path(f"{paths.basename(path)}.{why.replace(' ', '-')}")
        try:
            fileio.move_aside(path, kept)
        except FileNotFoundError:
            return
        self.warn(f"{path} {why}; {what} was moved to {kept} (inspect it, then delete it)")

    # -- registry: agents/<id>.json, one file per session, and the names index names/<name>.json ---
    #
    # A start that only refreshes lastSeen rewrites its own entry file; a name change rewrites the
    # one or two index files of the names concerned (a file per name ignoring case, holding
    # {name: id} for each spelling). Nothing on a start's path reads the whole registry.

    def registry(self) -> Registry:
        """The current registry (empty when there is none yet), read file by file as asked."""
        if not self._check_home():
            return Registry({"agents": {}, "names": {}})
        self._upgrade()
        return FileRegistry(self)

    def _agent_path(self, session_id: str) -> str:
        return glance.entry_path(self.home, session_id)

    def _read_doc(self, path: str) -> object:
        """A small JSON file's value: None when absent, _UNUSABLE when planted or torn."""
        try:
            raw = fileio.read_file(path)
        except fileio.UnsafeFile:
            return _UNUSABLE
        if raw is None:
            return None
        try:
            return jsonlite.loads(raw)
        except ValueError:
            return _UNUSABLE

    def _entry(self, session_id: str) -> Entry | None:
        """The entry of `session_id`, None when there is none (or its file is unusable: see _load_entry)."""
        if len(session_id) > glance.MAX_ID:
            return None  # no session id is that long (a name, or a planted word, looked up as an id first)
        return glance.own_entry(self._read_doc(self._agent_path(session_id)), session_id)

    def _bound(self, name: str) -> dict[str, str]:
        """The names equal to `name` ignoring case, with their ids: one file of the index."""
        pairs = self._read_doc(self._path("names", _name_file(name)))
        if not isinstance(pairs, dict):
            return {}
        key = name_key(name)
        return {n: i for n, i in pairs.items() if isinstance(i, str) and name_key(n) == key}

    def _unusable(self, path: str, value: object, what: str) -> bool:
        """Under the lock: a file that is not the JSON object expected is moved to quarantine/
        (never overwritten, never followed) and reported; True when it was."""
        if value is not _UNUSABLE and (value is None or isinstance(value, dict)):
            return False
        self._set_aside(path, "is unreadable", what)
        return True

    def _load_entry(self, session_id: str) -> Entry | None:
        """Under the lock: the entry, moving an unusable file aside so it is never overwritten."""
        path = self._agent_path(session_id)
        value = self._read_doc(path)
        if self._unusable(path, value, "a registry entry"):
            return None
        return glance.own_entry(value, session_id)

    def _load_bound(self, name: str) -> dict[str, str]:
        path = self._path("names", _name_file(name))
        self._unusable(path, self._read_doc(path), "a names index file")
        return self._bound(name)

    def _write_entry(self, entry: Entry, sync_dir: bool = True, sync_file: bool = True) -> None:
        fileio.ensure_private_dir(self._path("agents"))
        data = to_json(entry, indent=2) + b"\n"
        fileio.atomic_write(self._agent_path(str(entry["id"])), data, sync_dir, sync_file)

    def _write_bound(self, name: str, pairs: dict[str, str], sync: bool = True) -> None:
        """Under the lock: the index file of `name` holds `pairs` (removed when there are none)."""
        path = self._path("names", _name_file(name))
        if not pairs:
            fileio.remove(path)
            return
        fileio.ensure_private_dir(self._path("names"))
        fileio.atomic_write(path, to_json(pairs) + b"\n", sync, sync)

    def _all_entries(self, quarantine: bool = True) -> dict[str, Entry]:
        """Every entry, read from agents/ (the listings only); unusable files are set aside."""
        found: dict[str, Entry] = {}
        bad: list[str] = []
        for file_name in _listdir(self._path("agents")):
            if not file_name.endswith(".json"):
                continue  # a writer's temp file
            path = self._path("agents", file_name)
            value = self._read_doc(path)
            if isinstance(value, dict) and isinstance(value.get("id"), str):
                found[value["id"]] = value
            elif value is not None:
                bad.append(path)
        if bad and quarantine:
            with self._locked():
                for path in bad:
                    value = self._read_doc(path)
                    if not (isinstance(value, dict) and isinstance(value.get("id"), str)):
                        self._unusable(path, _UNUSABLE if value is not None else None, "a registry entry")
        return found

    def _all_names(self) -> dict[str, str]:
        """Every name of the index with its id (the listings only)."""
        found: dict[str, str] = {}
        for file_name in _listdir(self._path("names")):
            if file_name.endswith(".json"):
                pairs = self._read_doc(self._path("names", file_name))
                if isinstance(pairs, dict):
                    found.update((n, i) for n, i in pairs.items() if isinstance(i, str))
        return found

    def _upgrade(self) -> None:
        """One stat: a registry.json left by an older relay (or written by one since) is migrated first."""
        if paths.lexists(self._path("registry.json")):
            with self._locked():
                if paths.lexists(self._path("registry.json")):
                    self._migrate()

    def _migrate(self) -> None:
        """Under the lock: registry.json becomes agents/ and names/ files, then registry.json.migrated.

        Its entries and names replace any files of the same sessions and names. Files are written
        without a sync each, then synced at once, and only then is registry.json renamed: a
        migration killed half-way leaves registry.json in place, and the next one writes it all again.
        """
        legacy = self._path("registry.json")
        data = self._load_registry()
        if not paths.lexists(legacy):
            return  # it did not parse and was set aside
        for session_id, entry in data["agents"].items():
            if len(session_id) > glance.MAX_ID:
                continue  # planted: no session has such an id, and no file can be named after it
            self._write_entry({**entry, "id": session_id}, sync_dir=False, sync_file=False)
            checkpoint("migrate:entry")
        grouped: dict[str, dict[str, str]] = {}
        for name, session_id in data["names"].items():
            grouped.setdefault(_name_file(name), {})[name] = session_id
        for pairs in grouped.values():
            self._write_bound(next(iter(pairs)), pairs, sync=False)
        posix.sync()  # one sync for every file written above (a large registry has thousands)
        for sub in ("agents", "names"):
            if paths.is_dir(self._path(sub)):
                fileio.fsync_dir(self._path(sub))
        checkpoint("migrate:written")
        posix.replace(legacy, self._path("registry.json.migrated"))
        fileio.fsync_dir(self.home)

    def _parse_registry(self) -> dict | None:
        """The parsed registry.json, `{}`-shaped when absent, None when it is corrupt or not a plain file."""
        try:
            raw = fileio.read_file(self._path("registry.json"))
        except fileio.UnsafeFile:
            return None
        if raw is None:
            return {"agents": {}, "names": {}}
        try:
            return _check_registry(jsonlite.loads(raw))
        except ValueError:
            return None

    def _load_registry(self) -> dict:
        """Under the lock: registry.json, moving a corrupt one aside (once) so it is never overwritten."""
        data = self._parse_registry()
        if data is not None:
            return data
        path = self._path("registry.json")
        kept = self._quarantine_path(f"registry.json.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
        fileio.move_aside(path, kept)
        self.warn(
            f"registry.json did not parse (or was not a plain file); it was kept as {kept} and a new "
            "registry was started. Repair that file by hand to recover the old registrations."
        )
        return {"agents": {}, "names": {}}

    def _register(self, session_id: str, change: Registration) -> Entry:
        with self._locked():
            self._upgrade()
            known = self._load_entry(session_id)
            fresh: Entry = {"id": session_id, "dir": None, "name": None, "tool": "claude"}
            entry = dict(known) if known is not None else fresh
            name = change.name
            if change.apply(entry):  # its first name: the dir's, unless that is taken (one stat a try)
                name = name_from_dir(str(entry["dir"]), _TakenNames(self))  # type: ignore[arg-type]
            entry["lastSeen"] = now_iso()
            checkpoint("register:before-write")
            if name is not UNSET:  # the names index first: a crash before the entry leaves it ahead
                self._bind(session_id, entry, None if name is None else str(name))
            # A session start of a session registered as it is (a resume, /clear, a compaction)
            # changes only its lastSeen: the directory is not synced after the rename, which spares
            # the start one of its two waits for the disk. A power cut may then undo the refresh
            # (the old entry stays, whole); it cannot lose or tear anything else.
            only_seen = change.started and known is not None and not change.changes(known)
            self._write_entry(entry, sync_dir=not only_seen)
            return dict(entry)

    def _bind(self, session_id: str, entry: Entry, name: str | None) -> None:
        """Under the lock: bind `name` (or none) to the session, by bind_name's rule applied to the
        index files of its old and new names; the entries of sessions that lose the name are
        rewritten, the session's own `entry` is changed for the caller to write."""
        spelled = [n for n in (entry.get("name"), name) if isinstance(n, str)]
        names: dict[str, str] = {}
        for held in spelled:
            names.update(self._load_bound(held))
        before = dict(names)
        others = {i: e for i in set(names.values()) - {session_id} if (e := self._load_entry(i)) is not None}
        for other in bind_name(others, names, session_id, name):
            self._write_entry(others[other])
        for held in {_name_file(n): n for n in spelled}.values():
            key = name_key(held)
            pairs = {n: i for n, i in names.items() if name_key(n) == key}
            if pairs != {n: i for n, i in before.items() if name_key(n) == key}:
                self._write_bound(held, pairs)
        entry["name"] = name

    def move_name(self, name: str, holder: SessionId, taker: SessionId) -> list[str] | None:
        """StoreBase.move_name: the registry change, then the mail, under one hold of the store lock
        (every change to a pending mailbox holds it). The mail is appended to the taker's mailbox
        before it leaves the holder's: a crash between the two leaves a copy in both, never none."""
        with self._locked():
            self._upgrade()
            held = holds_name(self._load_bound(name), holder, name)
            entry = self._load_entry(taker)
            if held is None or entry is None:
                return None
            self._bind(taker, entry, held)
            self._write_entry(entry)
            return self._move_mail(held, holder, taker)

    def _move_mail(self, name: str, holder: str, taker: str) -> list[str]:
        """Under the store lock: the holder's pending mail sent to `name`, moved to the taker's mailbox."""
        pending, cursor = self._mailbox(holder), self._cursor(holder)
        try:
            head = fileio.read_head(pending, mailbox_max(), MAX_LINE, cursor)
        except fileio.UnsafeFile:
            return []
        if head is None or head[1]:  # no mailbox, or an oversize line a take sets aside first
            return []
        data = head[0]
        moved: list[Message] = []
        kept: list[bytes] = []
        for raw in data.removesuffix(b"\n").split(b"\n"):
            message = _parse_line(raw)
            if message is not None and sent_to_name(message, name):
                moved.append({**message, "to": taker, "toName": name})
            elif raw:
                kept.append(raw)
        if not moved:
            return []
        self._append_pending(taker, _join([to_json(m) for m in moved]))
        checkpoint("rename:appended")  # a crash here leaves a copy in both mailboxes: none is lost
        self._compact(holder, cursor + len(data), _join(kept))
        for message in moved:
            receipt = self.receipt(str(message.get("id")))
            if receipt is not None:
                self._write_receipt({**receipt, "to": taker, "toName": name})
        return [str(m.get("id")) for m in moved]

    # -- markers ------------------------------------------------------------------------------

    def _read_marker(self, name: str) -> tuple[str | None, str | None]:
        """(id, dir) of one marker file; a planted symlink or FIFO reads as no marker."""
        from relay.store import markers  # only where a marker is read: not on a hook with nothing to do

        return markers.read_marker(self.home, name)

    def set_marker(self, directory: str, session_id: SessionId) -> None:
        """Record that `session_id` is the session last registered for `directory`."""
        self._set_marker(directory, session_id)

    def _set_marker(self, directory: str, session_id: str) -> None:
        with self._locked():
            change = self._marker_change(directory, session_id)
            if change is not None:
                fileio.atomic_write(*change)

    def _marker_change(self, directory: str, session_id: str) -> tuple[str, bytes] | None:
        from relay.store import markers  # only where a marker is read: not on a hook with nothing to do

        return markers.marker_change(self.home, directory, session_id)

    def _record_start(self, session_id: str, directory: str, tool: str) -> Entry:
        """record_start's writes under one lock hold: the marker, then the entry in one registry
        write; nothing at all for a start that only refreshes (relay.store.markers.unchanged_start)."""
        from relay.store import markers

        change = Registration(directory, tool=tool, started=True)
        entry = markers.unchanged_start(self.home, session_id, change)
        if entry is not None:
            return entry
        with self._locked():
            self._set_marker(directory, session_id)
            return self._register(session_id, change)

    def record_end(self, session_id: SessionId) -> None:
        """SessionEnd: stamp the (registered) session's entry with `endedAt`; unknown ids (and a
        store that does not exist) are left alone, with nothing written."""
        if self._check_home() and session_id in self.registry().agents:
            self._update_entry(session_id, endedAt=now_iso())

    def _update_entry(self, session_id: str, **fields: object) -> None:
        """Set fields of an existing entry, without touching lastSeen or names."""
        with self._locked():
            self._upgrade()
            entry = self._load_entry(session_id)
            if entry is not None:
                entry.update(fields)
                self._write_entry(entry)

    def marker(self, directory: str) -> str | None:
        """The session id the marker for `directory` names, if any."""
        if not self._check_home():
            return None
        from relay.store import markers

        return markers.marked_session(self.home, directory)

    # -- watchers -----------------------------------------------------------------------------

    def _session_file(self, area: str, session_id: str, suffix: str) -> str:
        """`<area>/<mailbox stem><suffix>`: the name rule is relay.store.glance's."""
        return glance.session_file(self.home, area, session_id, suffix)

    def _watch_path(self, session_id: str) -> str:
        return glance.watch_path(self.home, session_id)

    def claim_watch(self, session_id: SessionId) -> FileLock | None:
        """The session's one watcher slot, held and stamped with this pid; None when another
        live watcher holds it. The kernel frees it when its holder dies, however it dies."""
        lock = FileLock(self._watch_path(session_id), deadline=0)
        if not self._claim_lock(lock, "a watcher's lock"):
            return None
        lock.record(f"{posix.getpid()}\n".encode())
        return lock

    def _claim_lock(self, lock: FileLock, what: str) -> bool:
        """Acquire `lock` at once (creating its dir): False while another process holds it. A
        planted link or FIFO in its place is moved to quarantine/ first."""
        self._prepare()
        fileio.ensure_private_dir(paths.dirname(lock.path))
        try:
            try:
                lock.acquire()
            except fileio.UnsafeFile as err:
                self._set_aside(lock.path, err.why, what)
                lock.acquire()
        except LockBusy:
            return False
        return True

    def watcher(self, session_id: SessionId) -> int | None:
        """The pid of the session's live watcher, if one runs. Read-only, one failed open when none ever ran."""
        return glance.watcher(self.home, session_id)

    def _auto_wake_count_path(self, session_id: str) -> str:
        """The watcher's count of wakes it rang on its own since the session last took mail."""
        return glance.auto_wake_count_path(self.home, session_id)

    def auto_wakes(self, session_id: SessionId) -> int:
        """How many turns relay started by itself in this session since its user last prompted it."""
        try:
            raw = fileio.read_file(self._auto_wake_count_path(session_id))
        except fileio.UnsafeFile:
            return 0
        text = (raw or b"").decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else 0

    def count_auto_wake(self, session_id: SessionId) -> int:
        """One more turn relay started by itself (a watcher's rewake, a Codex nudge); the new count."""
        with self._locked():
            fileio.ensure_private_dir(self._path("watchers"))
            count = self.auto_wakes(session_id) + 1
            fileio.atomic_write(self._auto_wake_count_path(session_id), f"{count}\n".encode())
            return count

    def reset_auto_wakes(self, session_id: SessionId) -> None:
        """The session's user prompted it: relay may start turns by itself again. One failed stat
        (nothing written) when there is nothing to reset."""
        if glance.auto_wakes_counted(self.home, session_id):
            fileio.remove(self._auto_wake_count_path(session_id))
            fileio.remove(self._ring_path(session_id))

    def _ring_path(self, session_id: str) -> str:
        """When relay last rang the session's own messaging socket (docs/wake.md)."""
        return self._session_file("watchers", session_id, ".rung")

    def note_ring(self, session_id: SessionId) -> None:
        """relay just rang the session's messaging socket: its watcher holds off for a while."""
        fileio.ensure_private_dir(self._path("watchers"))
        fileio.atomic_write(self._ring_path(session_id), f"{time.time()!r}\n".encode())

    def last_ring(self, session_id: SessionId) -> float | None:
        """When relay last rang the session's messaging socket (epoch seconds), if ever."""
        try:
            raw = fileio.read_file(self._ring_path(session_id))
        except fileio.UnsafeFile:
            return None
        try:
            return float((raw or b"").decode("ascii", "replace").strip())
        except ValueError:
            return None

    # -- wakes: `relay wake`'s resume lock and budget (docs/wake.md; relay.usecases.wakeguard decides) ---

    def _doorbell_file(self, session_id: str, suffix: str) -> str:
        """The doorbell's resume lock (.lock) and wake budget (.json) for one session."""
        return self._session_file("wakes", session_id, suffix)

    def claim_wake(self, session_id: SessionId) -> "WakeLock | None":
        """The session's resume lock, held by this process; None while another wake holds it."""
        lock = WakeLock(self._doorbell_file(session_id, ".lock"), deadline=0)
        return lock if self._claim_lock(lock, "a wake's lock") else None

    def wake_host(self, entry: "Entry") -> str | None:
        """The other host a session's wake must ring on; never one here: every session of a
        local store is on this machine."""
        return None

    def hosted(self, session_id: SessionId) -> tuple[str, str] | None:
        """The (dir, tool) this host recorded for the session: its registry entry's, all local here."""
        entry = self.registry().agents.get(session_id)
        directory, tool = (entry.get("dir"), entry.get("tool", "claude")) if entry else (None, None)
        return (directory, tool) if isinstance(directory, str) and isinstance(tool, str) else None

    def doorbells(self) -> None:
        """No doorbell streams: a local store has no other hosts to ring (relay.faces.doorbell_server)."""
        return None

    def wake_note(self, session_id: SessionId) -> tuple[bool, bytes]:
        """(held, note) of the session's resume lock, without taking it: whether a wake holds it
        now, and what its last woken program noted there (WakeLock). Never called by the holder:
        closing a second descriptor of the file would drop this process's lock."""
        path = self._doorbell_file(session_id, ".lock")
        note = holder(path)
        if note is not None:
            return True, note
        try:
            return False, fileio.read_file(path, links_ok=True) or b""
        except RelayError:
            return False, b""  # planted or unreadable: the next claim sets it aside

    def wake_times(self, session_id: SessionId, since: float, until: float) -> list[float]:
        """When the session's wakes in (since, until] rang, in epoch seconds, oldest first."""
        try:
            raw = fileio.read_file(self._doorbell_file(session_id, ".json"))
            data = jsonlite.loads(raw) if raw else None
        except (fileio.UnsafeFile, ValueError):
            data = None  # planted or torn: replaced at the next count
        times = data.get("times") if isinstance(data, dict) else None
        if not isinstance(times, list):
            return []
        return sorted(t for t in times if type(t) in (int, float) and since < t <= until)

    def spend_wake(self, session_id: SessionId, since: float, now: float, budget: int) -> list[float]:
        """The session's wakes in (since, now]; when fewer than `budget`, one at `now` is counted
        too (times before `since` are dropped). Under the store lock: two wakes never both take
        the last one."""
        with self._locked():
            times = self.wake_times(session_id, since, now)
            if len(times) < budget:
                fileio.ensure_private_dir(self._path("wakes"))
                fileio.atomic_write(self._doorbell_file(session_id, ".json"), to_json({"times": [*times, now]}) + b"\n")
            return times

    # -- mail ---------------------------------------------------------------------------------

    def has_mail(self, recipient: SessionId) -> bool:
        """Is anything waiting for `recipient` (pending or in flight)? Two stats, no lock, no writes:
        the check every hook event makes before it pays for anything else."""
        return self.mail_stamp(recipient) is not None

    def has_urgent(self, recipient: SessionId) -> bool:
        """Is mail marked urgent waiting for `recipient`, anywhere in its mailbox or in flight?
        Read-only (no lock, nothing created): PostToolUse asks before it takes anything."""
        for path, start in ((self._inflight(recipient), 0), (self._mailbox(recipient), self._cursor(recipient))):
            try:
                head = fileio.read_head(path, mailbox_max(), MAX_LINE, start)
            except fileio.UnsafeFile:
                continue  # the next take sets it aside
            if head is None or b'"urgent"' not in head[0]:
                continue
            for raw in head[0].split(b"\n"):
                if b'"urgent"' in raw:
                    message = _parse_line(raw)
                    if message is not None and is_urgent(message):
                        return True
        return False

    def mail_stamp(self, recipient: SessionId) -> tuple[int, ...] | None:
        """Sizes and change times of the recipient's pending and in-flight mail; None when there is
        none. Equal stamps mean nothing arrived in between (the idle watcher's cheap check)."""
        return glance.mail_stamp(self.home, recipient)

    def enqueue(self, recipient: SessionId, message: Message) -> None:
        """Append one message to the recipient's mailbox; synced to disk when this returns.

        Refused, with nothing written, when the mailbox already holds RELAY_MAILBOX_MAX bytes of
        pending and in-flight mail: a flood fills the flooder's error log, not the disk.
        """
        line = to_json(message) + b"\n"
        limit = mailbox_max()
        with self._locked():
            pending = self._mailbox(recipient)
            used = _size(pending) - self._cursor(recipient) + _size(self._inflight(recipient))
            if used + len(line) > limit:
                from relay.util.textsafe import one_line

                label = one_line(str(message.get("toName") or recipient))
                raise RelayError(
                    f"the mailbox of {label} is full ({used} bytes waiting; RELAY_MAILBOX_MAX is {limit}): "
                    "nothing was queued; send again after that session has read its mail"
                )
            checkpoint("send:before-append")
            try:
                self._append_pending(recipient, line)
            except fileio.UnsafeFile as err:
                self._set_aside(pending, err.why, "the mailbox")
                self._append_pending(recipient, line)
            checkpoint("send:appended")
            self._record_queued(message)

    def take(self, recipient: SessionId, budget: int = TAKE_BUDGET, select: "Select | None" = None) -> Delivery:
        """Claim a bounded batch of the recipient's mail; confirm what was shown with
        `Delivery.ack`, then close.

        Only one taker per mailbox at a time (its own lock, so the store lock is not held while
        the caller writes to a possibly slow pipe). Mail left in flight by a dead taker comes
        first, flagged `redelivered`, then the oldest pending mail, about `budget` bytes in all.
        With `select`, only pending messages it accepts are taken; the others stay queued, in order.
        """
        self._prepare()
        take_lock = self._take_lock(recipient)
        if take_lock is None:
            return Delivery(self, recipient, [], [], None)
        try:
            checkpoint("take:locked")
            with self._locked(prepare=False):  # prepared above: the take lock lives in inflight/
                delivery = self._claim(recipient, budget, take_lock, select)
            checkpoint("take:claimed")
        except BaseException:
            take_lock.release()
            _TAKING.discard(take_lock.path)
            raise
        return delivery

    def _take_lock(self, recipient: str) -> FileLock | None:
        """The mailbox's take lock, held; None when this process is taking it already.

        A symlink or FIFO planted in its place is moved to quarantine/ under the store lock (so
        two takers never both replace it) and a fresh lock file is used.
        """
        lock = FileLock(self._inflight(recipient).removesuffix(".jsonl") + ".lock")
        if lock.path in _TAKING:
            return None
        try:
            lock.acquire()
        except fileio.UnsafeFile as err:
            with self._locked(prepare=False):
                try:
                    fileio.check_file(lock.path, posix.lstat(lock.path), links_ok=True)
                except fileio.UnsafeFile:
                    self._set_aside(lock.path, err.why, "the take lock")
                except FileNotFoundError:
                    pass
            lock.acquire()
        _TAKING.add(lock.path)
        return lock

    def _read_head(self, path: str, budget: int, what: str) -> tuple[bytes, int] | None:
        """Whole lines from the start of a mail file within `budget` bytes, and the file's size.

        An oversize line is copied to quarantine/ and cut off; a planted symlink, FIFO or hard
        link is moved to quarantine/. None when there is no (usable) file.
        """
        head = self._read_from(path, 0, budget, what)
        return None if head is None else (head[1], head[2])

    def _read_pending(self, recipient: str, budget: int) -> tuple[int, bytes, int] | None:
        """Under the store lock: (cursor, whole lines from the cursor within `budget`, file size)
        of a mailbox; an oversize line at the cursor is set aside by moving the cursor past it."""
        return self._read_from(self._mailbox(recipient), self._cursor(recipient), budget, "the mailbox", recipient)

    def _read_from(
        self, path: str, start: int, budget: int, what: str, cursor_of: str | None = None
    ) -> tuple[int, bytes, int] | None:
        """(start, whole lines from `start` within `budget`, size) of a mail file. An oversize line
        is copied to quarantine/ and then skipped: cut off the file, or for a mailbox (`cursor_of`)
        passed by its cursor. A planted symlink, FIFO or hard link is moved to quarantine/. None when
        there is no (usable) file."""
        while True:
            try:
                head = fileio.read_head(path, budget, MAX_LINE, start)
            except fileio.UnsafeFile as err:
                self._set_aside(path, err.why, what)
                return None
            if head is None:
                return None
            data, skip, size = head
            if not skip:
                return start, data, size
            kept = self._quarantine_path(f"{paths.basename(path)}.oversize")
            fileio.copy_range(path, skip, kept, start)
            if cursor_of is None:
                fileio.replace_prefix(path, skip)
            else:
                start += skip
                self._set_cursor(cursor_of, start)
            self.warn(f"a line of {skip} bytes in {what} cannot be a message; it was kept in {kept}")

    # -- the read cursor: a take moves it past what it took, the mailbox itself is only appended to --

    def _cursor_path(self, recipient: str) -> str:
        return self._session_file("mailbox", recipient, ".offset")

    def _cursor(self, recipient: str) -> int:
        """The byte offset of the first untaken line of the recipient's mailbox (0 without a cursor).

        The cursor file holds "<inode> <offset>": it counts only for the mailbox file it was
        written for and only within it, so a mailbox replaced by a compaction, removed, or
        rewritten by an older relay is read from its start."""
        try:
            raw = fileio.read_file(self._cursor_path(recipient))
            info = posix.lstat(self._mailbox(recipient))
        except (OSError, RelayError):
            return 0
        fields = (raw or b"").split()
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            return 0
        inode, offset = int(fields[0]), int(fields[1])
        return offset if inode == info.st_ino and offset <= info.st_size else 0

    def _set_cursor(self, recipient: str, offset: int) -> None:
        """Under the store lock: record `offset` as the mailbox's first untaken byte (atomically)."""
        path = self._cursor_path(recipient)
        if offset <= 0:
            fileio.remove(path)
            return
        inode = posix.lstat(self._mailbox(recipient)).st_ino
        fileio.atomic_write(path, f"{inode} {offset}\n".encode())

    def _drop_pending(self, recipient: str) -> None:
        """Under the store lock: the mailbox is all taken; it goes, then its cursor (a cursor left
        by a crash between the two is dropped by the next append, `_append_pending`)."""
        fileio.remove(self._mailbox(recipient))
        fileio.remove(self._cursor_path(recipient))

    def _append_pending(self, recipient: str, data: bytes) -> None:
        """Under the store lock: append whole lines to a mailbox, durably. A cursor without its
        mailbox (a crash while emptying it) goes first: it must not count for a new file."""
        pending = self._mailbox(recipient)
        if not paths.lexists(pending) and paths.lexists(self._cursor_path(recipient)):
            fileio.remove(self._cursor_path(recipient))
        fileio.append_durably(pending, data)

    def _compact(self, recipient: str, offset: int, prepend: bytes = b"") -> int:
        """Under the store lock: rewrite the mailbox as `prepend` + what follows `offset`, drop its
        cursor (the new file has a new inode, so a crash before that reads it from its start);
        returns how many lines it holds."""
        lines = fileio.replace_prefix(self._mailbox(recipient), offset, prepend)
        fileio.remove(self._cursor_path(recipient))
        return lines

    def _count_pending(self, recipient: str, start: int) -> int:
        """How many messages wait in the mailbox from `start`: counted within RELAY_MAILBOX_MAX bytes
        (all of any mailbox relay itself filled), estimated past them (a planted backlog)."""
        return fileio.count_lines(self._mailbox(recipient), start, mailbox_max())

    def _claim(self, recipient: str, budget: int, take_lock: FileLock, select: "Select | None") -> Delivery:
        """Under the store lock: move a bounded batch of pending mail into flight, deduplicated.

        What is taken is passed by the mailbox's cursor, not cut out of the file: the take costs
        what it takes. The file is rewritten only when the consumed part is at least as large as
        what is left (so every byte is copied at most once per byte taken), when a selective take
        leaves mail behind it, or it goes when all of it was taken."""
        inflight = self._inflight(recipient)
        leftover = self._read_head(inflight, budget, "mail in flight") or (b"", 0)
        old_lines, old_messages, old_bad = _split_lines(leftover[0])
        whole = len(leftover[0]) >= leftover[1]
        remaining = 0
        new_lines: list[bytes] = []
        new_messages: list[Message] = []
        new_bad: list[bytes] = []
        if not whole:  # in-flight mail beyond one batch (left by an older relay): no new mail yet
            remaining = fileio.count_lines(inflight, len(leftover[0]), mailbox_max()) + self._count_pending(
                recipient, self._cursor(recipient)
            )
        else:
            # A selective take looks through RELAY_MAILBOX_MAX bytes of the mailbox: urgent mail
            # queued behind a backlog of ordinary mail must still be found.
            head = self._read_pending(recipient, budget if select is None else mailbox_max())
            if head is not None:
                cursor, data, size = head
                seen = {m.get("id") for m in old_messages if isinstance(m.get("id"), str)}
                room, consumed, dropped, taken = budget - len(leftover[0]), 0, 0, 0
                kept: list[bytes] = []  # mail `select` passed over: it stays pending, in order
                for raw in data.removesuffix(b"\n").split(b"\n"):
                    message = _parse_line(raw)
                    key = message.get("id") if message is not None else None
                    if message is None:
                        if raw.strip():
                            new_bad.append(raw)
                    elif isinstance(key, str) and key in seen:
                        dropped += 1  # a copy left by a crash between two steps: delivered once
                    elif (old_lines or new_lines) and taken + len(raw) + 1 > room:
                        break
                    elif select is not None and not select(message):
                        kept.append(raw)
                    else:
                        if isinstance(key, str):
                            seen.add(key)
                        taken += len(raw) + 1
                        new_lines.append(raw)
                        new_messages.append(message)
                    consumed += len(raw) + 1
                end = cursor + min(consumed, len(data))
                if not new_lines and not new_bad and not dropped:
                    if cursor and cursor >= size:  # all of it was passed (an oversize last line): it goes
                        self._drop_pending(recipient)
                    remaining = self._count_pending(recipient, cursor)  # nothing taken, nothing written
                elif not cursor and not old_lines and not old_bad and not dropped and not kept and end == size:
                    posix.rename(self._mailbox(recipient), inflight)  # the common case: all of it, in one step
                    fileio.fsync_dir(paths.dirname(inflight))
                    fileio.fsync_dir(paths.dirname(self._mailbox(recipient)))
                    fileio.remove(self._cursor_path(recipient))  # one an older crash left, if any
                else:
                    if new_lines:
                        fileio.append_durably(inflight, _join(new_lines))
                    checkpoint("take:copied")  # a crash here leaves copies in both files: deduped
                    remaining = self._advance(recipient, end, size, _join(kept))
        bad = old_bad + new_bad
        if bad:
            self._quarantine_lines(recipient, bad)
            fileio.replace_prefix(
                inflight, len(leftover[0]) if not whole else _size(inflight), _join(old_lines + new_lines)
            )
        for message in old_messages:
            message["redelivered"] = True
        return Delivery(
            self, recipient, old_lines + new_lines, old_messages + new_messages, take_lock, remaining, whole
        )

    def _advance(self, recipient: str, end: int, size: int, kept: bytes) -> int:
        """Under the store lock: the mailbox's mail before `end` was taken (`kept`: what a selective
        take passed over, to stay first in line). Returns how many messages still wait."""
        if kept or (end < size and end >= size - end):
            return self._compact(recipient, end, kept)
        if end >= size:
            self._drop_pending(recipient)
            return 0
        self._set_cursor(recipient, end)
        return self._count_pending(recipient, end)

    def _finish_take(self, recipient: str, shown: list[bytes], rest: list[bytes], whole: bool) -> None:
        """Drop the shown mail from flight; unshown mail goes back in front of newer mail."""
        inflight = self._inflight(recipient)
        if not whole:  # an older relay's oversized in-flight file: drop just the shown prefix
            if not shown:
                return
            with self._locked():
                fileio.replace_prefix(inflight, len(_join(shown)))
            return
        if rest:
            with self._locked():
                self._requeue(recipient, _join(rest))
            checkpoint("take:requeued")  # a crash here leaves the rest in both files: deduped
        # Not synced: a power cut that undoes this removal leaves the batch in flight, and the next
        # take delivers it again (at least once, as for a taker killed before this line).
        fileio.remove(inflight, sync=False)

    def _requeue(self, recipient: str, rest: bytes) -> None:
        """Under the store lock: put unshown mail back in front of the mailbox. When it is the bytes
        just before the cursor (it was taken from there and nothing moved since), the cursor moves
        back over it; otherwise the mailbox is rewritten with it in front."""
        cursor = self._cursor(recipient)
        if 0 < len(rest) <= cursor:
            try:
                fd = fileio.open_regular(self._mailbox(recipient), posix.O_RDONLY)
            except (OSError, RelayError):
                fd = None
            if fd is not None:
                try:
                    same = posix.pread(fd, len(rest), cursor - len(rest)) == rest
                finally:
                    posix.close(fd)
                if same:
                    self._set_cursor(recipient, cursor - len(rest))
                    return
        self._compact(recipient, cursor, rest)

    def _quarantine_lines(self, recipient: str, bad: list[bytes]) -> None:
        path = self._quarantine_path(f"{mailbox_name(recipient)}.unparsed")
        fileio.atomic_write(path, _join(bad))
        self.warn(
            f"{len(bad)} unreadable line(s) in the mailbox of {recipient} were kept in {path}; "
            "the other messages were delivered"
        )

    def peek_batch(self, recipient: SessionId, budget: int | None) -> tuple[list[Message], int]:
        """Waiting messages without taking any (in flight first, then pending, each marked) within
        about `budget` bytes (all of them when None), and how many more wait beyond those."""
        if not self._check_home():
            return [], 0
        left = sys.maxsize if budget is None else budget
        shown: list[Message] = []
        more = 0
        with self._locked():
            for state, path in (("inflight", self._inflight(recipient)), ("pending", self._mailbox(recipient))):
                start = self._cursor(recipient) if state == "pending" else 0
                try:
                    head = fileio.read_head(path, max(left, 1), MAX_LINE, start) if left > 0 else None
                    cut = head is None or start + len(head[0]) < head[2]
                    total = fileio.count_lines(path, start, mailbox_max() if budget is not None else None) if cut else 0
                except fileio.UnsafeFile as err:
                    self.warn(f"{path} {err.why}; its mail was not read (run `relay doctor`)")
                    continue
                data = head[0] if head else b""
                more += max(total - data.count(b"\n"), 0) if cut else 0
                left -= len(data)
                _, messages, bad = _split_lines(data)
                for message in messages:
                    message["state"] = state
                shown.extend(messages)
                if bad:
                    self.warn(f"{len(bad)} unreadable line(s) in the {state} mail of {recipient} (left in place)")
        return shown, more

    # -- receipts: what became of each message (docs/delivery.md) -----------------------------
    #
    # A receipt is written when a message is queued and rewritten when it is delivered (its
    # taker's ack) and when its first reply is queued. `taken` is not written: mail in flight is
    # taken, so the state is read off the mail files. A receipt lost to a crash is rebuilt from
    # the message at its ack; mail whose ack removed it but whose receipt was not yet rewritten
    # is found in neither file, which reads as delivered too.

    def _receipt_path(self, message_id: str) -> str:
        return self._path("receipts", f"{message_id.lower()}.json")

    def receipt(self, message_id: str) -> Message | None:
        """The receipt of a message relay queued, or None (not a UUID, never queued, unreadable)."""
        if not is_uuid(message_id) or not self._check_home():
            return None
        try:
            data = fileio.read_file(self._receipt_path(message_id))
        except fileio.UnsafeFile:
            return None
        try:
            value = jsonlite.loads(data) if data else None
        except ValueError:
            return None
        return value if isinstance(value, dict) and value.get("id") == message_id.lower() else None

    def receipt_ids(self, prefix: str) -> list[str]:
        """The ids of the receipts kept (messages relay queued) that start with `prefix`, sorted."""
        if not self._check_home():
            return []
        prefix = prefix.lower()
        stems = (name.removesuffix(".json") for name in _listdir(self._path("receipts")) if name.endswith(".json"))
        return [stem for stem in stems if stem.startswith(prefix) and is_uuid(stem)]

    def _write_receipt(self, receipt: Message) -> None:
        """Under the store lock: replace one receipt (a planted link in its place is replaced, not followed)."""
        self._write_receipts([receipt])

    def _write_receipts(self, receipts: list[Message], sync_dir: bool = True) -> None:
        """Under the store lock: replace receipts, their dir checked once for them all; sync_dir as
        for fileio.atomic_write."""
        if not receipts:
            return
        fileio.ensure_private_dir(self._path("receipts"))
        for receipt in receipts:
            fileio.atomic_write(self._receipt_path(str(receipt["id"])), to_json(receipt), sync_dir=sync_dir)

    def _record_queued(self, message: Message) -> None:
        """Under the store lock: the new message's receipt, and its parent's first reply."""
        receipt = new_receipt(message)
        if receipt is None:
            return
        self._write_receipt(receipt)
        parent_id = message.get("replyTo")
        parent = self.receipt(parent_id) if isinstance(parent_id, str) else None
        if parent is not None and not parent.get("replyId"):
            self._write_receipt({**parent, "repliedAt": message.get("ts"), "replyId": receipt["id"]})

    def _mark_delivered(self, messages: list[Message]) -> None:
        """Stamp `deliveredAt` on the receipts of messages a taker confirmed it showed.

        Each receipt's data is synced before its rename, the directory is not (one fsync per
        message, not two): a power cut may undo a stamp, never tear a receipt, and a message whose
        stamp was undone still reads as delivered, being in neither mail file (`message_state`)."""
        stamp = now_iso()
        with self._locked(prepare=False):
            stamped: list[Message] = []
            for message in messages:
                receipt = self.receipt(str(message.get("id"))) or new_receipt(message)
                if receipt is not None and not receipt.get("deliveredAt"):
                    stamped.append({**receipt, "deliveredAt": stamp})
            self._write_receipts(stamped, sync_dir=False)

    def message_state(self, message_id: str) -> Message | None:
        """A message's receipt with its `state` (queued, taken, delivered, replied, archived); None when unknown."""
        receipt = self.receipt(message_id)
        if receipt is None:
            return None
        if receipt.get("repliedAt"):
            state = "replied"
        elif receipt.get("deliveredAt"):
            state = "delivered"
        else:
            state = self._waiting_state(str(receipt.get("to")), str(receipt["id"])) or "delivered"
        return {**receipt, "state": state}

    def _archived(self, recipient: str, message_id: str) -> bool:
        """Did gc archive the message, undelivered, when it retired its recipient?"""
        path = paths.join(self._path("archive"), mailbox_name(recipient))
        return any(is_message(raw, message_id) for raw in fileio.lines_with(path, message_id.encode()))

    def _waiting_state(self, recipient: str, message_id: str) -> str | None:
        """`taken` when the message is in flight, `queued` when pending, `archived` when gc set it
        aside undelivered, else None."""
        with self._locked():
            for state, path in (("taken", self._inflight(recipient)), ("queued", self._mailbox(recipient))):
                start = self._cursor(recipient) if state == "queued" else 0
                try:
                    head = fileio.read_head(path, mailbox_max(), MAX_LINE, start)
                except fileio.UnsafeFile:
                    continue
                if any(is_message(raw, message_id) for raw in (head[0] if head else b"").split(b"\n")):
                    return state
            return "archived" if self._archived(recipient, message_id) else None

    def prune_receipts(self, older_than: float, now: float | None = None) -> int:
        """Remove receipts unchanged for `older_than` seconds; how many went."""
        if not self._check_home():
            return 0
        cutoff = (time.time() if now is None else now) - older_than
        removed = 0
        directory = self._path("receipts")
        with self._locked():
            for name in _listdir(directory):
                path = paths.join(directory, name)
                try:
                    if posix.lstat(path).st_mtime < cutoff:
                        fileio.remove(path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    # -- the journal: what happened, bodies included (docs/journal.md) ---------------------------

    def journal_append(self, *events: Message) -> None:
        """Append events to `<home>/journal/<day>.jsonl`, one O_APPEND write per day file (no store lock)."""
        from relay.store import journal_files

        journal_files.append(self.home, events)

    def journal_read(self, cursor: str | None, since: float | None = None) -> tuple[list[Message], str | None]:
        """The events after `cursor` (or from the day of `since`), oldest first, and the new cursor."""
        if not self._check_home():
            return [], cursor
        from relay.store import journal_files

        return journal_files.read(self.home, cursor, since)

    def journal_prune(self, keep_days: int, now: float | None = None) -> int:
        """Remove the journal's days older than the last `keep_days` (every day for 0); how many went."""
        if not self._check_home():
            return 0
        from relay.store import journal_files

        return journal_files.prune(self.home, keep_days, time.time() if now is None else now)

    # -- collection (`relay gc`) ----------------------------------------------------------------

    def gc_due(self, interval: float) -> bool:
        """True once `interval` seconds have passed since the last collection, counting from the
        first call on this store (which only writes the stamp). One stat when not due."""
        due = glance.gc_stamp_due(self.home, interval)
        if due is not None:
            return due
        stamp = self._path("gc.stamp")
        if self._check_home():
            with self._locked():
                if not paths.lexists(stamp):
                    self.touch_gc_stamp()
        return False

    def touch_gc_stamp(self) -> None:
        """Record that a collection ran now (nothing when there is no store)."""
        if not self._check_home():
            return
        with self._locked():
            fileio.atomic_write(self._path("gc.stamp"), now_iso().encode() + b"\n")

    def mailbox_files(self) -> list[tuple[str, int]]:
        """(file name, size) of every regular mailbox file."""
        if not self._check_home():
            return []
        found = []
        for name in _listdir(self._path("mailbox")):
            try:
                info = posix.lstat(self._path("mailbox", name))
            except FileNotFoundError:
                continue
            if name.endswith(".jsonl") and S_ISREG(info.st_mode):
                found.append((name, info.st_size))
        return found

    def drop_empty_mailbox(self, name: str) -> bool:
        """Remove mailbox file `name` if it is (still) an empty plain file of the user's."""
        path = self._path("mailbox", paths.basename(name))
        with self._locked():
            try:
                fileio.check_file(path, posix.lstat(path))
            except (FileNotFoundError, RelayError):
                return False
            if _size(path):
                return False
            fileio.remove(path)
            fileio.remove(self._path("mailbox", paths.basename(name).removesuffix(".jsonl") + ".offset"))
            return True

    def on_this_host(self, entry: Entry) -> bool:
        """Does `entry` run on this machine? Always: only this machine's sessions share these files."""
        return True

    def archive_location(self) -> str:
        """Where `retire` keeps undelivered mail, for a person to read (`relay gc` reports it)."""
        return f"{self.home}/archive"

    def retire(self, session_id: SessionId) -> int:
        """Forget a session: its entry, names and markers go; its undelivered mail (in flight and
        pending) is appended to archive/<id>.jsonl, never deleted. Returns the messages archived.

        LockBusy when a taker holds its mailbox right now (then nothing is changed).
        """
        self._prepare()
        take_lock = FileLock(self._inflight(session_id).removesuffix(".jsonl") + ".lock", deadline=0.2)
        with take_lock, self._locked(prepare=False):
            archived = 0
            archive = self._path("archive")
            for path in (self._inflight(session_id), self._mailbox(session_id)):
                if not paths.lexists(path):
                    continue
                start = self._cursor(session_id) if path == self._mailbox(session_id) else 0
                try:
                    archived += fileio.count_lines(path, start)
                except fileio.UnsafeFile as err:
                    self._set_aside(path, err.why, "a mail file")
                    continue
                fileio.ensure_private_dir(archive)
                fileio.append_file(path, paths.join(archive, mailbox_name(session_id)), start)
                fileio.remove(path)
            fileio.remove(self._cursor_path(session_id))
            # The take lock file stays: unlinking a held lock would let two takers hold two inodes.
            # A watcher's lock goes when no watcher holds it (a retired session runs none).
            if holder(self._watch_path(session_id)) is None:
                fileio.remove(self._watch_path(session_id))
            fileio.remove(self._auto_wake_count_path(session_id))
            fileio.remove(self._doorbell_file(session_id, ".json"))  # its lock file stays, as the take lock does
            for name in _listdir(self._path("markers")):
                held_by, _ = self._read_marker(name)
                if held_by is not None and held_by.lower() == session_id.lower():
                    fileio.remove(self._path("markers", name))
            self._upgrade()
            entry = self._load_entry(session_id)
            if entry is not None:
                if isinstance(entry.get("name"), str):
                    self._bind(session_id, entry, None)
                fileio.remove(self._agent_path(session_id))
            return archived

    # -- facts for `relay doctor` (read-only) -------------------------------------------------

    def facts(self) -> list[tuple[str, str, str]]:
        """Every finding about the store as (code, path, detail), without changing anything.

        Codes and details are data, not words (relay.usecases.doctor words them): a count, a mode in octal,
        a uid, a symlink's target, or the kind of a misplaced entry (fifo, dir, file, other).

        It never stops at the first bad file and only probes the store lock (0.2 s at most), so
        it is safe while sessions run.
        """
        try:
            info = posix.stat(self.home)
        except (FileNotFoundError, NotADirectoryError):
            blocked = _cannot_create(self.home)
            return [("cannot-create", self.home, blocked) if blocked else ("no-store", self.home, "")]
        found: list[tuple[str, str, str]] = [("store", self.home, "")]
        if not S_ISDIR(info.st_mode):
            return [("cannot-create", self.home, "it is a file, not a directory")]
        if info.st_uid != posix.geteuid():
            found.append(("foreign", self.home, str(info.st_uid)))
        else:
            unwritable = _cannot_write(self.home)
            if unwritable:
                found.append(("not-writable", self.home, unwritable))
        if info.st_mode & 0o022:
            found.append(("shared-home", self.home, f"{S_IMODE(info.st_mode):o}"))
        elif info.st_mode & 0o077:
            found.append(("loose-mode", self.home, f"{S_IMODE(info.st_mode):o}"))
        for name in _listdir(self.home):
            path = self._path(name)
            if name in (
                "mailbox",
                "markers",
                "inflight",
                "quarantine",
                "archive",
                "receipts",
                "watchers",
                "wakes",
                "journal",
                "agents",
                "names",
            ):
                found.extend(self._entry_facts(path, expect="dir"))
                for inner in _listdir(path):
                    found.extend(self._entry_facts(paths.join(path, inner), expect="file", area=name))
            else:
                found.extend(
                    self._entry_facts(
                        path, "file" if name in (".lock", "registry.json", "gc.stamp", "error.log") else "any"
                    )
                )
        if not paths.lexists(self._path("registry.json")):  # registry.json is counted as it is read
            counted = [sum(n.endswith(".json") for n in _listdir(self._path(sub))) for sub in ("agents", "names")]
            found.append(("registry", self._path("agents"), f"{counted[0]} {counted[1]}"))
        probe = FileLock(self._path(".lock"), deadline=0.2)
        try:
            with probe:
                found.append(("lock-free", probe.path, ""))
        except LockBusy:
            found.append(("lock-busy", probe.path, ""))
        except RelayError as err:
            found.append(("lock-error", probe.path, str(err)))
        return found

    def registry_as_is(self) -> Registry:
        """The registry for a report: empty when missing or corrupt, and never moved aside (a corrupt
        one stays where it is for `facts` to show; `registry()` would quarantine it)."""
        if not self._check_home():
            return Registry({"agents": {}, "names": {}})
        if paths.lexists(self._path("registry.json")):  # not migrated yet: read as it stands
            return Registry(self._parse_registry() or {"agents": {}, "names": {}})
        return FileRegistry(self, quarantine=False)

    def _entry_facts(self, path: str, expect: str, area: str = "") -> list[tuple[str, str, str]]:
        """Findings about one store entry: what it is, whose, its mode, links, and its content."""
        try:
            info = posix.lstat(path)
        except OSError as err:
            return [("unreadable", path, err.strerror or "")]
        found: list[tuple[str, str, str]] = []
        if area == "quarantine":
            found.append(("quarantine", path, ""))
        if S_ISLNK(info.st_mode):
            return [*found, ("symlink", path, posix.readlink(path))]
        is_dir, is_file = S_ISDIR(info.st_mode), S_ISREG(info.st_mode)
        if not (is_dir if expect == "dir" else is_file if expect == "file" else is_dir or is_file):
            kind = "fifo" if S_ISFIFO(info.st_mode) else "dir" if is_dir else "file" if is_file else "other"
            return [*found, ("not-regular", path, kind)]
        if info.st_uid != posix.geteuid():
            found.append(("foreign", path, str(info.st_uid)))
        if info.st_mode & 0o077:
            found.append(("loose-mode", path, f"{S_IMODE(info.st_mode):o}"))
        if S_ISREG(info.st_mode) and info.st_nlink > 1:
            found.append(("hard-links", path, str(info.st_nlink)))
        if not S_ISREG(info.st_mode) or (found and found[-1][0] in ("foreign", "hard-links")):
            return found
        try:
            found.extend(self._content_facts(path, area, info.st_size))
        except OSError as err:
            found.append(("unreadable", path, err.strerror or ""))
        return found

    def _content_facts(self, path: str, area: str, size: int) -> list[tuple[str, str, str]]:
        name = paths.basename(path)
        if area == "" and name == "registry.json":
            try:
                data = _check_registry(jsonlite.loads(_read_plain(path, 64 << 20)))
            except ValueError:
                data = None
            if data is None:
                return [("bad-registry", path, "")]
            return [("registry", path, f"{len(data['agents'])} {len(data['names'])}")]
        if area == "agents" and name.endswith(".json"):
            value = _read_plain(path, 64 << 10)
            try:
                entry = jsonlite.loads(value)
            except ValueError:
                entry = None
            return [] if isinstance(entry, dict) and isinstance(entry.get("id"), str) else [("bad-entry", path, "")]
        if area == "markers" and not name.startswith("."):
            from relay.store.markers import parse_marker

            held_by, _ = parse_marker(_read_plain(path, 64 << 10))
            from relay.domain.ids import is_session_id

            return [] if is_session_id(held_by) else [("bad-marker", path, "")]
        if area in ("mailbox", "inflight") and name.endswith(".jsonl"):
            start = self._cursor(name.removesuffix(".jsonl")) if area == "mailbox" else 0  # taken before it
            size -= start
            good, bad = _count_lines(path, start)
            found = [("bad-lines", path, str(bad))] if bad else []
            if area == "inflight" and good:
                found.append(("in-flight", path, str(good)))
            if area == "mailbox" and size > mailbox_max():
                found.append(("over-quota", path, str(size)))
            return found
        return []


def _cannot_create(home: str) -> str:
    """Why the store `home` could not be made (its nearest existing parent is no directory, or is not
    writable: read-only, not the user's, or a full disk), or "" when it could. Nothing is created."""
    import os.path  # only when the store cannot be made: the error path may pay for os

    parent = paths.dirname(os.path.abspath(home))
    while True:
        try:
            info = posix.stat(parent)
            break
        except (FileNotFoundError, NotADirectoryError):
            if parent == paths.dirname(parent):
                return "none of its parent directories exists"
            parent = paths.dirname(parent)
    if not S_ISDIR(info.st_mode):
        return f"{parent} is a file, not a directory"
    if not posix.access(parent, posix.W_OK | posix.X_OK):
        return f"{parent} is not writable (read-only file system, or not yours)"
    if _no_space(parent):
        return f"the disk holding {parent} is full"
    return ""


def _cannot_write(home: str) -> str:
    """Why nothing can be written in the store `home` (read-only, full disk), or "" when a probe file
    was written, synced and removed there."""
    if not posix.access(home, posix.W_OK | posix.X_OK):
        return "it is not writable (read-only file system, or its mode)"
    probe = paths.join(home, f".doctor-probe.{posix.getpid()}.{posix.urandom(4).hex()}")
    try:
        fd = posix.open(
            probe, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600
        )
    except OSError as err:
        return err.strerror or str(err)
    try:
        posix.write(fd, b"\0" * 4096)
        posix.fsync(fd)
    except OSError as err:
        return err.strerror or str(err)
    finally:
        posix.close(fd)
        try:
            posix.unlink(probe)
        except OSError:
            pass
    return "full disk" if _no_space(home) else ""


def _no_space(path: str) -> bool:
    try:
        return posix.statvfs(path).f_bavail == 0
    except OSError:
        return False


def _read_plain(path: str, limit: int) -> bytes:
    """At most `limit` bytes of a file checked to be regular, without changing it (for facts)."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_NONBLOCK | posix.O_CLOEXEC)
    try:
        return posix.read(fd, limit)
    finally:
        posix.close(fd)


def _count_lines(path: str, start: int = 0) -> tuple[int, int]:
    """(message lines, unparseable lines) of a mail file from byte `start`, read line by line with
    a bounded line."""
    good = bad = 0
    fd = posix.open(path, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_NONBLOCK | posix.O_CLOEXEC)
    posix.lseek(fd, start, 0)  # SEEK_SET
    with open(fd, "rb") as stream:
        while line := stream.readline(MAX_LINE + 1):
            if len(line) > MAX_LINE:
                bad += 1
                while (rest := stream.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                    pass
                continue
            if not line.strip():
                continue
            try:
                value = jsonlite.loads(line)
            except ValueError:
                value = None
            if isinstance(value, dict):
                good += 1
            else:
                bad += 1
    return good, bad

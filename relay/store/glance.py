"""Read-only questions about one session's files in the local store, answered with a stat or a
lock test and without loading the store itself (relay.store.files) or `os`.

The hook asks three of them at every prompt, tool call and end of turn: does a watcher run for
the session, did relay count wakes it started by itself, is mail waiting. Most of the time every
answer is no and nothing else is done, so the hook opens the full store only when one is yes
(relay.store.contract.LocalStore). Importing `os` and relay.store.files costs a frozen start
millions of instructions (docs/startup.md), so this module is written against `posix`, the C
module under `os`. relay.store.files' `Store` answers the same questions through these functions, and every
open of a store file goes through `open_regular` here, so each rule (a file's name, what counts as
waiting mail, which files the store refuses) is written once.
"""

import errno
import posix
import time
from _stat import S_IMODE, S_ISDIR, S_ISREG

from relay.store.layout import mailbox_name
from relay.util import jsonlite
from relay.util.errors import RelayError
from relay.util.paths import join, lexists

TYPE_CHECKING = False  # typing stays off the hook's import path; only mypy reads this
if TYPE_CHECKING:
    from os import stat_result

PRIVATE_FILE = 0o600


class UnsafeFile(RelayError):
    """A store path holds something the store must not use: a symlink, FIFO or other non-regular
    file, or a file with more than one hard link. The store moves it aside or replaces it."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"session-relay: {path} {why}; the store will not use it")
        self.path = path
        self.why = why


class ForeignFile(RelayError):
    """A store path belongs to another user: refused, never changed (not even its mode)."""


def open_regular(path: str, flags: int, mode: int = PRIVATE_FILE, links_ok: bool = False) -> int:
    """Open a store file that must be a regular file of the user's, never through a symlink and
    never blocking.

    O_NONBLOCK keeps a FIFO planted in the store from hanging the open (and the lock holder);
    it has no effect on regular files. Anything but a regular file, and (unless `links_ok`) a
    file with more than one hard link, is UnsafeFile; another user's file is ForeignFile. A file
    of the user's with a loose mode is tightened to 0600.
    """
    try:
        fd = posix.open(path, flags | posix.O_NOFOLLOW | posix.O_NONBLOCK | posix.O_CLOEXEC, mode)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UnsafeFile(path, "is a symlink") from None
        if err.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise UnsafeFile(path, "is not a regular file") from None
        raise
    try:
        info = posix.fstat(fd)
        check_file(path, info, links_ok)
        if info.st_mode & 0o077:
            posix.fchmod(fd, PRIVATE_FILE)
    except BaseException:
        posix.close(fd)
        raise
    return fd


def check_file(path: str, info: "stat_result", links_ok: bool = False) -> None:
    """Raise UnsafeFile or ForeignFile for a store file the store must not use as it is."""
    if not S_ISREG(info.st_mode):
        raise UnsafeFile(path, "is not a regular file")
    if info.st_uid != posix.geteuid():
        raise ForeignFile(
            f"session-relay: {path} belongs to uid {info.st_uid}, not to you; "
            "the store will not use it: inspect and remove it"
        )
    if info.st_nlink > 1 and not links_ok:
        raise UnsafeFile(path, f"has {info.st_nlink} hard links")


def home_exists(home: str) -> bool:
    """For reads: False when there is no store at `home` yet; ForeignFile (or RelayError) when it
    is not the user's private directory (check_dir)."""
    try:
        info = posix.stat(home)
    except FileNotFoundError:
        return False
    check_dir(home, info, is_home=True)
    return True


def check_dir(directory: str, info: "stat_result", is_home: bool) -> None:
    """Refuse a store dir owned by another user, or a home writable by group or others."""
    if not S_ISDIR(info.st_mode):
        raise RelayError(f"session-relay: {directory} is not a directory; move it out of the way")
    if info.st_uid != posix.geteuid():
        raise ForeignFile(
            f"session-relay: the store directory {directory} belongs to uid {info.st_uid}, not to you; "
            "point AGENT_RELAY_HOME at a directory of your own"
        )
    if is_home and info.st_mode & 0o022:
        raise ForeignFile(
            f"session-relay: the store directory {directory} is writable by group or others "
            f"(mode {S_IMODE(info.st_mode):o}); point AGENT_RELAY_HOME at a private directory "
            "(relay never changes the mode of a shared one)"
        )


def read_file(path: str, links_ok: bool = False, limit: int | None = None) -> bytes | None:
    """The whole file, or None when it does not exist; UnsafeFile for a symlink, FIFO or hard link,
    and (with a `limit`) for a file longer than `limit` bytes.

    Only for the store's small documents (registry, markers); mailboxes are read by
    relay.store.fileio.read_head.
    """
    fd = open_for_reading(path, links_ok)
    if fd is None:
        return None
    try:
        chunks = []
        size = 0
        while chunk := posix.read(fd, 1 << 20 if limit is None else limit + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                raise UnsafeFile(path, f"is longer than {limit} bytes")
        return b"".join(chunks)
    finally:
        posix.close(fd)


def open_for_reading(path: str, links_ok: bool = False) -> int | None:
    """A descriptor of the store file at `path` for reading (open_regular); None when it does not exist."""
    try:
        return open_regular(path, posix.O_RDONLY, links_ok=links_ok)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise RelayError(f"session-relay: cannot read {path}: {err.strerror}") from None


def holder(path: str) -> bytes | None:
    """What the live holder of the lock on `path` recorded in it; None when nobody holds it.

    Read-only: it opens the file for reading and only tests for a shared lock, so asking writes
    nothing and never blocks. A planted link or FIFO, or another user's file, reads as unheld.
    """
    try:
        fd = open_regular(path, posix.O_RDONLY | posix.O_NONBLOCK, links_ok=True)
    except (OSError, RelayError):
        return None
    try:
        import fcntl  # the lock test: only once the file exists

        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EACCES):
                return posix.pread(fd, 64, 0)
            return None
        return None  # we got it: nobody holds it (closing the descriptor drops it again)
    finally:
        posix.close(fd)


# -- the names of one session's files --------------------------------------------------------------


def in_store(home: str, *parts: str) -> str:
    """`<home>/<parts...>`: the store's own relative names under its home."""
    return join(home, *parts)


def session_file(home: str, area: str, session_id: str, suffix: str) -> str:
    """The one name rule for a session's small files: `<area>/<mailbox stem><suffix>`."""
    return in_store(home, area, mailbox_name(session_id).removesuffix(".jsonl") + suffix)


def mailbox_path(home: str, session_id: str) -> str:
    """The session's mailbox: pending mail, only appended to."""
    return in_store(home, "mailbox", mailbox_name(session_id))


def inflight_path(home: str, session_id: str) -> str:
    """Mail a taker of the session's mailbox claimed but has not confirmed as shown."""
    return in_store(home, "inflight", mailbox_name(session_id))


def entry_path(home: str, session_id: str) -> str:
    """The session's registry entry: `agents/<id>.json`."""
    return session_file(home, "agents", session_id, ".json")


def watch_path(home: str, session_id: str) -> str:
    """Locked by the session's one idle-mail watcher, holding its pid."""
    return session_file(home, "watchers", session_id, ".pid")


def auto_wake_count_path(home: str, session_id: str) -> str:
    """The watcher's count of wakes it rang on its own since the session last took mail."""
    return session_file(home, "watchers", session_id, ".wakes")


# -- the questions ---------------------------------------------------------------------------------


def watcher(home: str, session_id: str) -> int | None:
    """The pid of the session's live watcher, if one runs. Read-only, one failed open when none ever ran."""
    note = holder(watch_path(home, session_id))
    if note is None:
        return None
    text = note.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() and int(text) > 1 else None


def auto_wakes_counted(home: str, session_id: str) -> bool:
    """Is a count of relay's own wakes kept for the session (anything at its name)?"""
    return lexists(auto_wake_count_path(home, session_id))


# Longer ids are no session's: a file name of them would pass the file system's limit.
MAX_ID = 200
# What a start reads of an entry when it only asks whether to write (stored_entry): relay writes
# entries of a few hundred bytes; a longer file is left to the store's full read under its lock.
ENTRY_READ_MAX = 64 << 10


def own_entry(value: object, session_id: str) -> "dict[str, object] | None":
    """`value` (a parsed entry file) when it is the entry of `session_id`: a JSON object whose id is
    that session's. Anything else at the session's name is no entry of it."""
    return value if isinstance(value, dict) and value.get("id") == session_id else None


def stored_entry(home: str, session_id: str) -> "dict[str, object] | None":
    """The session's entry as stored, read without the lock and without writing; None when there is
    none or it cannot be used as it is: planted (a link, a FIFO, a hard link), longer than
    ENTRY_READ_MAX, not JSON, or another session's. The store's writing path then reads it again
    under its lock and sets an unusable file aside. Another user's file, or one that cannot be
    read, is the store's error as at any read."""
    if len(session_id) > MAX_ID:
        return None
    try:
        raw = read_file(entry_path(home, session_id), limit=ENTRY_READ_MAX)
        return None if raw is None else own_entry(jsonlite.loads(raw), session_id)
    except (UnsafeFile, ValueError):
        return None


def gc_stamp_due(home: str, interval: float) -> bool | None:
    """Has `interval` passed since the last collection (the mtime of `gc.stamp`)? One lstat; None
    when there is no stamp yet (the store writes the first)."""
    try:
        return posix.lstat(in_store(home, "gc.stamp")).st_mtime + interval <= time.time()
    except FileNotFoundError:
        return None


def mail_stamp(home: str, session_id: str) -> tuple[int, ...] | None:
    """Sizes and change times of the session's pending and in-flight mail; None when there is
    none. Equal stamps mean nothing arrived in between (the idle watcher's cheap check)."""
    stamp: list[int] = []
    for path in (mailbox_path(home, session_id), inflight_path(home, session_id)):
        try:
            info = posix.stat(path)
        except OSError:
            stamp += (0, 0)
            continue
        stamp += (info.st_size, info.st_mtime_ns)
    return tuple(stamp) if stamp[0] or stamp[2] else None

"""File primitives for the store: private dirs, atomic replace, durable append.

What a store file must be to be opened at all (`open_regular`, `check_file`, `check_dir`) and how a
small document is read (`read_file`) are in relay.store.glance, which the hook's read-only questions
use without importing posix.

Every write is synced (file, then directory) before it is reported done, a failed write leaves
nothing half-written behind, and no write ever follows a symlink planted in the store.
"""

import errno
import posix
from _stat import S_ISLNK

from relay.store.glance import PRIVATE_FILE as _PRIVATE_FILE
from relay.store.glance import ForeignFile as ForeignFile  # the store's refusals, named here as before
from relay.store.glance import UnsafeFile as UnsafeFile
from relay.store.glance import check_dir as check_dir
from relay.store.glance import check_file as check_file
from relay.store.glance import home_exists as home_exists
from relay.store.glance import open_for_reading as open_for_reading
from relay.store.glance import open_regular as open_regular
from relay.store.glance import read_file as read_file
from relay.util import paths
from relay.util.errors import RelayError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

_PRIVATE_DIR = 0o700
# How the store creates a file of its own: new (never an existing one), and never through a link.
NEW_FILE = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC


def fsync_dir(directory: str) -> None:
    """Make a rename or a new file inside `directory` survive a power cut."""
    fd = posix.open(directory, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        posix.fsync(fd)
    finally:
        posix.close(fd)


def ensure_private_dir(directory: str, allow_symlink: bool = False, is_home: bool = False) -> None:
    """Create `directory` 0700 if missing; refuse a symlink or one that is not the user's.

    Only the store's home may be a symlink (a user's own choice of where the store lives); a
    symlinked sub-directory would let a planted link redirect writes. A home writable by group or
    others (a 1777 /tmp-like dir) is refused, never chmodded: anyone could have planted files in it.
    A loose dir that is the user's and that nobody else could write into is tightened to 0700.
    """
    try:
        _make_private_dir(directory, allow_symlink, is_home)
    except OSError as err:
        raise RelayError(
            f"session-relay: cannot use {directory} as a store directory: {err.strerror}; "
            "check AGENT_RELAY_HOME and the permissions of its parent"
        ) from None


def _make_private_dir(directory: str, allow_symlink: bool, is_home: bool) -> None:
    try:
        posix.mkdir(directory, _PRIVATE_DIR)
        return
    except FileExistsError:
        pass
    except FileNotFoundError:
        paths.make_dirs(paths.dirname(directory))
        posix.mkdir(directory, _PRIVATE_DIR)
        return
    info = posix.lstat(directory)
    if S_ISLNK(info.st_mode):
        if not allow_symlink:
            raise RelayError(f"session-relay: {directory} is a symlink; the store will not write through it")
        if info.st_uid != posix.geteuid():  # another user's link could be pointed anywhere at any time
            raise ForeignFile(
                f"session-relay: the store home {directory} is a symlink owned by uid {info.st_uid}, not by "
                "you; point AGENT_RELAY_HOME at a directory of your own"
            )
        info = posix.stat(directory)  # the target: check_dir refuses one that is not the user's
    check_dir(directory, info, is_home)
    if info.st_mode & 0o077:
        posix.chmod(directory, _PRIVATE_DIR)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = posix.write(fd, view)
        view = view[written:]


def _explain(err: OSError, path: str) -> RelayError:
    if err.errno == errno.ELOOP:
        return RelayError(f"session-relay: {path} is a symlink; the store will not write through it")
    if err.errno == errno.ENOSPC:
        return RelayError(f"session-relay: no space left to write {path}; free some disk space")
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return RelayError(f"session-relay: cannot write {path}: {err.strerror}; check the store's permissions")
    return RelayError(f"session-relay: cannot write {path}: {err.strerror}")


def atomic_write(path: str, data: bytes, sync_dir: bool = True, sync_file: bool = True) -> None:
    """Replace `path` with `data` all at once: temp file in the same dir, fsync, rename, fsync dir.

    A symlink at `path` is replaced, never followed. On any failure the temp file is removed and
    the old content stays. sync_dir=False leaves out the directory's fsync, for a change that may
    be undone by a power cut: the rename may then be lost, leaving the old content, but the file is
    never found empty or torn, since its data was synced before the rename. sync_file=False leaves
    out the file's fsync too, for a batch of files the caller syncs at once (posix.sync) before it
    relies on them.
    """
    folder, name = paths.split(path)
    temp = paths.join(folder, f".{name}.{posix.getpid()}.{posix.urandom(4).hex()}.tmp")
    try:
        fd = posix.open(temp, NEW_FILE, _PRIVATE_FILE)
    except OSError as err:
        raise _explain(err, path) from None
    try:
        try:
            _write_all(fd, data)
            if sync_file:
                posix.fsync(fd)
        finally:
            posix.close(fd)
        posix.rename(temp, path)
    except OSError as err:
        _unlink_quietly(temp)
        raise _explain(err, path) from None
    if sync_dir:
        fsync_dir(paths.dirname(path))


def _open_to_append(path: str) -> tuple[int, int, bool]:
    """(fd, size, torn) of `path` opened to append (created 0600): `torn` when an earlier writer
    died mid-line, so the file does not end in a newline and the next line must start one."""
    try:
        fd = open_regular(path, posix.O_RDWR | posix.O_APPEND | posix.O_CREAT)
    except OSError as err:
        raise _explain(err, path) from None
    try:
        size = posix.fstat(fd).st_size
        return fd, size, bool(size) and posix.pread(fd, 1, size - 1) != b"\n"
    except OSError as err:
        posix.close(fd)
        raise _explain(err, path) from None


def append_durably(path: str, data: bytes) -> None:
    """Append `data` (whole lines) to `path` and sync it; on failure cut the file back.

    If an earlier writer died mid-line, the file does not end in a newline: one is written first,
    so the new line never fuses with the torn one (which a reader then quarantines).
    """
    fd, size, torn = _open_to_append(path)
    try:
        if torn:
            data = b"\n" + data
        try:
            _write_all(fd, data)
            posix.fsync(fd)
        except OSError as err:
            _truncate_quietly(fd, size)
            if size == 0:
                _unlink_quietly(path)  # a mailbox this failed write created: leave no empty file
            raise _explain(err, path) from None
    finally:
        posix.close(fd)
    if size == 0:
        fsync_dir(paths.dirname(path))


def _truncate_quietly(fd: int, size: int) -> None:
    try:
        posix.ftruncate(fd, size)
        posix.fsync(fd)
    except OSError:
        pass  # already failing: the caller reports the first error


def _unlink_quietly(path: str) -> None:
    try:
        posix.unlink(path)
    except OSError:
        pass  # already failing: the caller reports the first error


_CHUNK = 1 << 16


def read_head(path: str, budget: int, max_line: int, start: int = 0) -> tuple[bytes, int, int] | None:
    """The first whole lines of `path` from byte `start` on within `budget` bytes, without reading
    the rest (nor anything before `start`).

    Returns (head, skip, size): `head` holds whole lines (at least one when the first line is
    at most `max_line` bytes, even past the budget); when the first line is longer than that,
    `head` is empty and `skip` is its length, for the caller to set aside. A last line without a
    newline (a torn write) counts as a line. `size` is the whole file's. None when the file does
    not exist.
    """
    fd = open_for_reading(path)
    if fd is None:
        return None
    try:
        size = posix.fstat(fd).st_size
        left = max(size - start, 0)
        data = posix.pread(fd, min(budget, left), start)
        if len(data) == left:
            return data, 0, size
        cut = data.rfind(b"\n")
        if cut >= 0:
            return data[: cut + 1], 0, size
        data += posix.pread(fd, max_line + 1 - len(data), start + len(data))
        cut = data.find(b"\n")
        if cut >= 0:
            return data[: cut + 1], 0, size
        if len(data) >= left:
            return data, 0, size
        offset = start + len(data)
        while offset < size:  # an oversize line: find where it ends without keeping it
            chunk = posix.pread(fd, _CHUNK, offset)
            if not chunk:
                break
            cut = chunk.find(b"\n")
            if cut >= 0:
                return b"", offset + cut + 1 - start, size
            offset += len(chunk)
        return b"", offset - start, size
    finally:
        posix.close(fd)


def replace_prefix(path: str, drop: int, prepend: bytes = b"", keep_from: str | None = None) -> int:
    """Atomically rewrite `path` as `prepend` + its bytes after the first `drop`, streamed.

    With `keep_from`, the kept bytes come from that file instead of `path` (still after `drop`).
    Returns how many lines the new file holds; an empty result removes the file. A new inode
    replaces the old one, so nothing is ever written through a link.
    """
    source = keep_from or path
    folder, name = paths.split(path)
    temp = paths.join(folder, f".{name}.{posix.getpid()}.{posix.urandom(4).hex()}.tmp")
    lines = prepend.count(b"\n")
    written = len(prepend)
    src = open_for_reading(source)
    try:
        fd = posix.open(temp, NEW_FILE, _PRIVATE_FILE)
    except OSError as err:
        if src is not None:
            posix.close(src)
        raise _explain(err, path) from None
    try:
        try:
            _write_all(fd, prepend)
            offset = drop
            while src is not None and (chunk := posix.pread(src, 1 << 20, offset)):
                _write_all(fd, chunk)
                lines += chunk.count(b"\n")
                written += len(chunk)
                offset += len(chunk)
            posix.fsync(fd)
        finally:
            posix.close(fd)
            if src is not None:
                posix.close(src)
        if written == 0:
            posix.unlink(temp)
            remove(path)
            return 0
        posix.rename(temp, path)
    except OSError as err:
        _unlink_quietly(temp)
        raise _explain(err, path) from None
    fsync_dir(folder)
    return lines


def _stream(src: int, fd: int, length: int | None = None, start: int = 0) -> bytes:
    """Copy `length` bytes of `src` from `start` (all the rest when None) to `fd` in 1 MiB pieces,
    so a big mailbox is never held in memory whole; returns the last byte copied (b"" for none)."""
    offset, last = 0, b""
    while length is None or offset < length:
        piece = 1 << 20 if length is None else min(1 << 20, length - offset)
        chunk = posix.pread(src, piece, start + offset)
        if not chunk:
            break
        _write_all(fd, chunk)
        offset += len(chunk)
        last = chunk[-1:]
    return last


def copy_range(source: str, length: int, destination: str, start: int = 0) -> None:
    """Copy `length` bytes of `source` from `start` into a new file, streamed (for quarantine)."""
    _pour(source, destination, True, lambda src, fd, _torn: _stream(src, fd, length, start))


def count_lines(path: str, start: int = 0, window: int | None = None) -> int:
    """How many lines `path` holds from byte `start` on (a torn last line counts); 0 when absent.

    With `window`, at most that many bytes are read: the lines past it are estimated from the
    mean length of those counted, so a huge planted file costs a bounded read, not a whole one.
    """
    fd = open_for_reading(path)
    if fd is None:
        return 0
    try:
        size = posix.fstat(fd).st_size
        end = size if window is None else min(size, start + window)
        lines, offset, last = 0, start, b"\n"
        while offset < end and (chunk := posix.pread(fd, min(1 << 20, end - offset), offset)):
            lines += chunk.count(b"\n")
            offset += len(chunk)
            last = chunk[-1:]
        if offset >= size:
            return lines + (last != b"\n")
        read = offset - start
        return lines + max(1, round((size - offset) * lines / read) if lines else 1)
    finally:
        posix.close(fd)


def lines_with(path: str, needle: bytes) -> "Iterator[bytes]":
    """Each line of `path` that holds `needle`, read in chunks so a large file (an archive) is
    never loaded whole; nothing when it is absent."""
    fd = open_for_reading(path)
    if fd is None:
        return
    try:
        rest = b""
        while chunk := posix.read(fd, 1 << 20):
            *lines, rest = (rest + chunk).split(b"\n")
            yield from (line for line in lines if needle in line)
        if needle in rest:
            yield rest
    finally:
        posix.close(fd)


def remove(path: str, sync: bool = True) -> None:
    """Delete `path` (gone already is fine) and sync its directory; sync=False leaves that out, for
    a removal a power cut may undo (the file then comes back whole)."""
    try:
        posix.unlink(path)
    except FileNotFoundError:
        return
    if sync:
        fsync_dir(paths.dirname(path))


def move_aside(path: str, new_path: str) -> None:
    """Rename `path` to a fresh name chosen by the caller (timestamped, never reused)."""
    if paths.lexists(new_path):
        raise RelayError(f"session-relay: {new_path} already exists; not overwriting it")
    posix.rename(path, new_path)
    fsync_dir(paths.dirname(path))


def append_file(source: str, destination: str, start: int = 0) -> None:
    """Append `source` from byte `start` on to `destination` (created 0600), streamed and synced,
    so mail being archived is never held in memory whole; a torn last line is ended with a newline."""
    _pour(source, destination, False, lambda src, fd, torn: _append_lines(src, fd, torn, start))


def _append_lines(src: int, fd: int, torn: bool, start: int = 0) -> None:
    """Pour `src` from `start` after a destination's last line (ending a torn one first), ending
    with a newline."""
    if torn:
        _write_all(fd, b"\n")
    last = _stream(src, fd, None, start) or b"\n"  # the destination already ends a line
    if last != b"\n":
        _write_all(fd, b"\n")


def _pour(source: str, destination: str, fresh: bool, pour: "Callable[[int, int, bool], object]") -> None:
    """Stream `source` into `destination` with `pour(src, fd, torn)`, then sync the file and its
    directory: the one shape of every copy the store makes of a mailbox (quarantine, archive).
    `fresh`: a new 0600 file (never an existing one), else appended to. Nothing when `source` is absent."""
    src = open_for_reading(source)
    if src is None:
        return
    try:
        if fresh:
            fd, torn = posix.open(destination, NEW_FILE, _PRIVATE_FILE), False
        else:
            fd, _, torn = _open_to_append(destination)
        try:
            pour(src, fd, torn)
            posix.fsync(fd)
        finally:
            posix.close(fd)
    finally:
        posix.close(src)
    fsync_dir(paths.dirname(destination))

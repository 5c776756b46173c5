"""File primitives for the store: private dirs, atomic replace, durable append.

Every write is synced (file, then directory) before it is reported done, a failed write leaves
nothing half-written behind, and no write ever follows a symlink planted in the store.
"""

import contextlib
import errno
import os
import stat

from relay.errors import RelayError

_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600


def fsync_dir(directory: str) -> None:
    """Make a rename or a new file inside `directory` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_private_dir(directory: str, allow_symlink: bool = False) -> None:
    """Create `directory` 0700 if missing; refuse a symlink; tighten a looser mode we own.

    Only the store's home may be a symlink (a user's own choice of where the store lives); a
    symlinked sub-directory would let a planted link redirect writes.
    """
    try:
        _make_private_dir(directory, allow_symlink)
    except OSError as err:
        raise RelayError(
            f"session-relay: cannot use {directory} as a store directory: {err.strerror}; "
            "check AGENT_RELAY_HOME and the permissions of its parent"
        ) from None


def _make_private_dir(directory: str, allow_symlink: bool) -> None:
    try:
        os.mkdir(directory, _PRIVATE_DIR)
        return
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(os.path.dirname(directory), exist_ok=True)
        os.mkdir(directory, _PRIVATE_DIR)
        return
    info = os.stat(directory) if allow_symlink else os.lstat(directory)
    if stat.S_ISLNK(info.st_mode):
        raise RelayError(f"session-relay: {directory} is a symlink; the store will not write through it")
    if not stat.S_ISDIR(info.st_mode):
        raise RelayError(f"session-relay: {directory} is not a directory; move it out of the way")
    if info.st_mode & 0o077 and info.st_uid == os.geteuid():
        os.chmod(directory, _PRIVATE_DIR)


def open_regular(path: str, flags: int, mode: int = _PRIVATE_FILE) -> int:
    """Open a store file that must be a regular file, never through a symlink and never blocking.

    O_NONBLOCK keeps a FIFO planted in the store from hanging the open (and the lock holder);
    it has no effect on regular files. Anything but a regular file is refused.
    """
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RelayError(f"session-relay: {path} is not a regular file; move it out of the way")
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _explain(err: OSError, path: str) -> RelayError:
    if err.errno == errno.ELOOP:
        return RelayError(f"session-relay: {path} is a symlink; the store will not write through it")
    if err.errno == errno.ENOSPC:
        return RelayError(f"session-relay: no space left to write {path}; free some disk space")
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return RelayError(f"session-relay: cannot write {path}: {err.strerror}; check the store's permissions")
    return RelayError(f"session-relay: cannot write {path}: {err.strerror}")


def atomic_write(path: str, data: bytes) -> None:
    """Replace `path` with `data` all at once: temp file in the same dir, fsync, rename, fsync dir.

    A symlink at `path` is replaced, never followed. On any failure the temp file is removed and
    the old content stays.
    """
    folder, name = os.path.split(path)
    temp = os.path.join(folder, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, _PRIVATE_FILE)
    except OSError as err:
        raise _explain(err, path) from None
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, path)
    except OSError as err:
        _unlink_quietly(temp)
        raise _explain(err, path) from None
    fsync_dir(os.path.dirname(path))


def append_durably(path: str, data: bytes) -> None:
    """Append `data` (whole lines) to `path` and sync it; on failure cut the file back.

    If an earlier writer died mid-line, the file does not end in a newline: one is written first,
    so the new line never fuses with the torn one (which a reader then quarantines).
    """
    try:
        fd = open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    except OSError as err:
        raise _explain(err, path) from None
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError as err:
            _truncate_quietly(fd, size)
            if size == 0:
                _unlink_quietly(path)  # a mailbox this failed write created: leave no empty file
            raise _explain(err, path) from None
    finally:
        os.close(fd)
    if size == 0:
        fsync_dir(os.path.dirname(path))


def _truncate_quietly(fd: int, size: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, size)
        os.fsync(fd)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def read_file(path: str) -> bytes | None:
    """The whole file, or None when it does not exist. Symlinks are not followed."""
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise RelayError(f"session-relay: {path} is a symlink; the store will not read through it") from None
        raise RelayError(f"session-relay: cannot read {path}: {err.strerror}") from None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def remove(path: str) -> None:
    """Delete `path` (gone already is fine) and sync its directory."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_dir(os.path.dirname(path))


def move_aside(path: str, new_path: str) -> None:
    """Rename `path` to a fresh name chosen by the caller (timestamped, never reused)."""
    if os.path.lexists(new_path):
        raise RelayError(f"session-relay: {new_path} already exists; not overwriting it")
    os.rename(path, new_path)
    fsync_dir(os.path.dirname(path))

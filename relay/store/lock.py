"""The store's inter-process lock: an exclusive kernel lock with a 3 second deadline.

It is `fcntl.lockf` on `<home>/.lock`, the same kernel lock that fasteners' InterProcessLock
takes, so older relays built on fasteners and this one exclude each other. It is taken directly
because importing fasteners costs about 10 ms of every hook start. The kernel drops the lock when
its holder dies, so a crashed process never blocks anyone.
"""

import errno
import fcntl
import os
import stat
import time

from relay.store.fileio import open_regular
from relay.util.errors import LockBusy, RelayError

DEADLINE_SECONDS = 3.0


class FileLock:
    """An exclusive lock on one file, held for the life of a `with` block."""

    def __init__(self, path: str | os.PathLike[str], deadline: float = DEADLINE_SECONDS) -> None:
        self.path = os.fspath(path)
        self.deadline = deadline
        self._fd: int | None = None

    def acquire(self) -> None:
        """Wait up to the deadline for the lock; LockBusy after that."""
        fd = _open_lock_file(self.path)
        try:
            _acquire(fd, self.deadline)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def record(self, note: bytes) -> None:
        """Replace the held lock file's content with `note` (e.g. the holder's pid, for others to read)."""
        if self._fd is None:
            raise RelayError(f"session-relay: {self.path} is not held")
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, note, 0)

    def release(self) -> None:
        """Let go of the lock (closing the descriptor releases it); safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def holder(path: str) -> bytes | None:
    """What the live holder of the lock on `path` recorded in it; None when nobody holds it.

    Read-only: it opens the file for reading and only tests for a shared lock, so asking writes
    nothing and never blocks. A planted link or FIFO reads as unheld.
    """
    try:
        fd = open_regular(path, os.O_RDONLY | os.O_NONBLOCK, links_ok=True)
    except (OSError, RelayError):
        return None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EACCES):
                return os.pread(fd, 64, 0)
            return None
        return None  # we got it: nobody holds it (closing the descriptor drops it again)
    finally:
        os.close(fd)


def _open_lock_file(path: str) -> int:
    """Open (creating 0600) the lock file, never through a symlink (UnsafeFile for one, or a FIFO).

    A second hard link does no harm to a lock file (nothing is written to it), so it is allowed.

    The 0.1 Node store used a `.lock` *directory* as its mutex; one left behind is removed first.
    """
    for _ in range(3):
        try:
            return open_regular(path, os.O_RDWR | os.O_CREAT, links_ok=True)
        except IsADirectoryError:
            _remove_leftover_lock_dir(path)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise RelayError(
                    f"session-relay: {path} is a symlink; remove it so the lock file can be recreated"
                ) from None
            raise RelayError(f"session-relay: cannot open lock file {path}: {err.strerror}") from None
    raise RelayError(f"session-relay: cannot replace the leftover lock directory {path}")


def _remove_leftover_lock_dir(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        import shutil  # only ever needed once per store, after a 0.1 upgrade

        shutil.rmtree(path, ignore_errors=True)


def _acquire(fd: int, deadline: float) -> None:
    """Poll for the lock until the deadline, backing off from 1 ms to 25 ms."""
    give_up = time.monotonic() + deadline
    delay = 0.001
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise RelayError(f"session-relay: cannot lock the store: {err.strerror}") from None
        if time.monotonic() >= give_up:
            raise LockBusy()
        time.sleep(delay)
        delay = min(delay * 2, 0.025)

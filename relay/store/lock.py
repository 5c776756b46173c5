"""The store's inter-process lock: an exclusive kernel lock with a 3 second deadline.

It is `fcntl.lockf` on `<home>/.lock`, the same kernel lock that fasteners' InterProcessLock
takes, so older relays built on fasteners and this one exclude each other. It is taken directly
because importing fasteners costs about 10 ms of every hook start. The kernel drops the lock when
its holder dies, so a crashed process never blocks anyone.
"""

import errno
import fcntl
import posix
import time
from _stat import S_ISDIR

from relay.store.glance import open_regular
from relay.util.errors import LockBusy, RelayError

TYPE_CHECKING = False  # only mypy reads this
if TYPE_CHECKING:
    from os import PathLike

DEADLINE_SECONDS = 3.0
PATIENCE = 10  # a waiter in a queue that moves waits at most this many deadlines in all


class FileLock:
    """An exclusive lock on one file, held for the life of a `with` block."""

    def __init__(self, path: "str | PathLike[str]", deadline: float = DEADLINE_SECONDS, counted: bool = False) -> None:
        """`counted`: every holder adds one to a count kept in the file, so a waiter can tell a lock
        that keeps changing hands (a queue that moves) from one that is held (see _acquire)."""
        self.path = posix.fspath(path)
        self.deadline = deadline
        self.counted = counted
        self._fd: int | None = None

    def acquire(self) -> None:
        """Wait up to the deadline for the lock; LockBusy after that."""
        fd = _open_lock_file(self.path)
        try:
            _acquire(fd, self.deadline)
            if self.counted:
                posix.pwrite(fd, b"%020d\n" % (_count(fd) + 1), 0)
        except BaseException:
            posix.close(fd)
            raise
        self._fd = fd

    def record(self, note: bytes) -> None:
        """Replace the held lock file's content with `note` (e.g. the holder's pid, for others to read)."""
        if self._fd is None:
            raise RelayError(f"session-relay: {self.path} is not held")
        posix.ftruncate(self._fd, 0)
        posix.pwrite(self._fd, note, 0)

    def release(self) -> None:
        """Let go of the lock (closing the descriptor releases it); safe to call twice."""
        if self._fd is not None:
            posix.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _open_lock_file(path: str) -> int:
    """Open (creating 0600) the lock file, never through a symlink (UnsafeFile for one, or a FIFO).

    A second hard link does no harm to a lock file (nothing is written to it), so it is allowed.

    The 0.1 Node store used a `.lock` *directory* as its mutex; one left behind is removed first.
    """
    for _ in range(3):
        try:
            return open_regular(path, posix.O_RDWR | posix.O_CREAT, links_ok=True)
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
        info = posix.lstat(path)
    except FileNotFoundError:
        return
    if S_ISDIR(info.st_mode):
        import shutil  # only ever needed once per store, after a 0.1 upgrade

        shutil.rmtree(path, ignore_errors=True)


def _acquire(fd: int, deadline: float) -> None:
    """Take the lock at once if it is free; else wait for it in the kernel.

    A waiter blocks in `lockf` (F_SETLKW) and the kernel wakes it the moment the lock is free, so
    no waiter sleeps past its turn as a poller with back-off does. The wait gives up when the lock
    was held for `deadline` seconds without changing hands: a counted lock's holders count
    themselves in the file (FileLock.acquire), so a waiter whose deadline passes while the count
    moved is in a queue that moves and waits on, up to PATIENCE deadlines in all. On a loaded
    machine a holder is descheduled inside its few milliseconds of work, so 64 waiters in line
    can need more than 3 s between them although nobody holds the lock for long.
    """
    if _try(fd):
        return
    if deadline <= 0:
        raise LockBusy()
    give_up = time.monotonic() + deadline * PATIENCE
    seen = _count(fd)
    while True:
        window = min(deadline, give_up - time.monotonic())
        if window > 0 and _wait(fd, window):
            return
        now = _count(fd)
        if now == seen or time.monotonic() >= give_up:
            raise LockBusy()
        seen = now


def _count(fd: int) -> int:
    """The count a counted lock's holders keep in its file (0 for none, or any other content)."""
    raw = posix.pread(fd, 32, 0)
    return int(raw) if raw[:20].isdigit() and raw[20:] == b"\n" else 0


def _wait(fd: int, seconds: float) -> bool:
    """Wait up to `seconds` for the lock: True when it is ours, False when the time passed."""
    try:
        _wait_with_alarm(fd, seconds)
        return True
    except _Expired:  # the alarm may land in the clean-up after the wait, too
        return _try(fd)
    except _NoAlarm:
        return _poll(fd, time.monotonic() + seconds)


def _try(fd: int) -> bool:
    """Take the lock if nobody holds it; False when somebody does."""
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as err:
        if err.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise RelayError(f"session-relay: cannot lock the store: {err.strerror}") from None


class _NoAlarm(Exception):
    """The timed wait cannot be used here (not the main thread, or the kernel saw a deadlock)."""


class _Expired(Exception):
    """Raised by the SIGALRM handler out of a blocked lockf."""


_armed = False  # whether a SIGALRM now means "the deadline passed" (else the handler does nothing)


def _on_alarm(signum: int, frame: object) -> None:
    if _armed:
        raise _Expired()


def _wait_with_alarm(fd: int, deadline: float) -> None:
    """Block in lockf until it is ours, or the deadline passes (_Expired).

    `_signal` is the interpreter's own C module: `signal` would add `enum` to every hook start.
    The handler stays installed afterwards but does nothing once disarmed, so an alarm that lands
    just after the lock was granted is harmless; an inherited mask blocking SIGALRM is lifted for
    the wait and put back, and a timer someone else had set is restored.
    """
    global _armed
    import _signal  # type: ignore[import-not-found]  # the C module under `signal`: no stub

    try:
        previous = _signal.signal(_signal.SIGALRM, _on_alarm)
    except ValueError:  # not the main thread of the main interpreter
        raise _NoAlarm() from None
    masked = _signal.SIGALRM in _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [_signal.SIGALRM])
    started = time.monotonic()
    old_timer = (0.0, 0.0)
    try:
        _armed = True
        old_timer = _signal.setitimer(_signal.ITIMER_REAL, deadline)
        fcntl.lockf(fd, fcntl.LOCK_EX)
        _armed = False
    except OSError as err:
        if err.errno == errno.EDEADLK:
            raise _NoAlarm() from None
        raise RelayError(f"session-relay: cannot lock the store: {err.strerror}") from None
    finally:
        _armed = False
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        if masked:
            _signal.pthread_sigmask(_signal.SIG_BLOCK, [_signal.SIGALRM])
        if old_timer[0] > 0:
            left = max(old_timer[0] - (time.monotonic() - started), 0.001)
            _signal.setitimer(_signal.ITIMER_REAL, left, old_timer[1])
        if callable(previous) and previous is not _on_alarm:
            _signal.signal(_signal.SIGALRM, previous)


def _poll(fd: int, give_up: float) -> bool:
    """Poll for the lock until `give_up`, backing off from 1 ms to 25 ms; False when time ran out."""
    delay = 0.001
    while not _try(fd):
        if time.monotonic() >= give_up:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.025)
    return True

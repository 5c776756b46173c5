"""Tracebacks of unexpected errors, kept in `<home>/error.log` so a one-line message can point there.

Every face shows a person one line; a bug report needs the traceback. The log is a courtesy and
must never make matters worse: it is created 0600, appended to, never followed through a symlink
or written through a hard link or into a file or directory that is not the user's, and kept under
`MAX_BYTES` by dropping its oldest half. When it cannot be written the one line still appears.
Importing this module is cheap (it is on the hook's path); the rest loads only when an error does.
"""

import os

from relay.store.layout import relay_home
from relay.util.textsafe import one_line

LOG_NAME = "error.log"
MAX_BYTES = 1024 * 1024
# One entry never crowds out all the others (a message can quote a huge value).
_ENTRY_MAX = MAX_BYTES // 8
_ENTRY_START = b"==== "


def unexpected(face: str, err: BaseException) -> str:
    """Log `err` and return its one-line message: where the details are, or what to do without them."""
    path = record(face, err)
    where = f"details in {path}" if path else "please report this with the command you ran"
    return one_line(f"unexpected {type(err).__name__}: {_text(err)} ({where})")


def record(face: str, err: BaseException) -> str | None:
    """Append `err`'s traceback, with a timestamp and `face` (what was running), to the error log.

    The log's path, or None when it could not be written (never an exception of its own).
    """
    try:
        return _append(_entry(face, err))
    except Exception:
        return None


def _text(err: BaseException, limit: int = 500) -> str:
    try:
        text = str(err)
    except Exception:  # a broken __str__ must not hide the error it describes
        text = "(message unavailable)"
    return text if len(text) <= limit else text[:limit] + "..."


def _entry(face: str, err: BaseException) -> bytes:
    import traceback

    from relay import __version__
    from relay.util.clock import now_iso
    from relay.util.textsafe import indent_lines

    details = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    if len(details) > _ENTRY_MAX:
        half = _ENTRY_MAX // 2
        details = f"{details[:half]}\n[... {len(details) - 2 * half} characters cut ...]\n{details[-half:]}"
    header = f"{now_iso()} relay {__version__} pid {os.getpid()} {one_line(face)[:200]}"
    # indent_lines with no indent: line breaks stay, every other control becomes a visible escape,
    # so reading the log on a terminal is as safe as reading relay's output.
    body = indent_lines(details.rstrip("\n"), indent="")
    return (_ENTRY_START.decode() + header + "\n" + body + "\n").encode("utf-8", "backslashreplace")


def _append(entry: bytes) -> str | None:
    home = relay_home()
    os.makedirs(home, mode=0o700, exist_ok=True)
    dir_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if os.fstat(dir_fd).st_uid != os.geteuid():
            return None  # not the user's directory: the store refuses it, and so does the log
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(LOG_NAME, flags, 0o600, dir_fd=dir_fd)  # a symlink there fails (ELOOP)
    finally:
        os.close(dir_fd)
    try:
        import stat

        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink != 1:
            return None  # a FIFO, someone else's file, or a hard link to a file elsewhere
        if stat.S_IMODE(info.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
        _lock(fd)
        size = os.fstat(fd).st_size
        if size + len(entry) > MAX_BYTES:
            _drop_oldest_half(fd, size)
        os.write(fd, entry)
    finally:
        os.close(fd)  # also releases the lock
    return os.path.join(home, LOG_NAME)


def _lock(fd: int) -> None:
    """Serialise writers for a moment; go on without the lock rather than wait long for it."""
    import fcntl
    import time

    for _ in range(20):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError:
            time.sleep(0.01)


def _drop_oldest_half(fd: int, size: int) -> None:
    """Keep only the newest entries within half the cap, starting at an entry boundary."""
    keep = MAX_BYTES // 2
    tail = os.pread(fd, keep, max(0, size - keep))
    cut = tail.find(b"\n" + _ENTRY_START)
    tail = tail[cut + 1 :] if cut >= 0 else b""
    os.ftruncate(fd, 0)
    os.write(fd, tail)  # O_APPEND: lands at the new end, offset 0

"""Write one line to a local Unix stream socket another process listens on, and nothing more
(docs/wake.md: Claude Code's own messaging socket as relay's doorbell).

Guarded, since the path comes from a file another program wrote: the socket must be an absolute
path whose parent is a private dir (owned by this user, no group or other access), the socket
itself owned by this user, and nothing on the way may be a symlink. The connect and the write
each get a short timeout, so a listener that hangs never holds up the caller for long. Nothing
is read back.
"""

import os
import stat

# Connect plus write: the caller (a `send`, a hook) must not wait longer than this for one line.
TIMEOUT_SECONDS = 0.4


def unsafe(path: str, uid: int | None = None) -> str | None:
    """Why `path` must not be written to (one phrase), or None when it is this user's socket in a
    private dir of this user's."""
    uid = os.getuid() if uid is None else uid
    if not path.startswith("/") or os.path.normpath(path) != path:
        return "the socket path is not a plain absolute path"
    parent = os.path.dirname(path)
    try:
        if os.path.realpath(parent) != parent:
            return "the socket's dir goes through a symlink"
        dir_info, info = os.lstat(parent), os.lstat(path)
    except OSError:
        return "no socket there"
    if not stat.S_ISDIR(dir_info.st_mode) or dir_info.st_uid != uid or dir_info.st_mode & 0o077:
        return "the socket's dir is not private to this user"
    if not stat.S_ISSOCK(info.st_mode):
        return "not a socket"
    if info.st_uid != uid:
        return "the socket is not owned by this user"
    return None


def send_line(path: str, line: bytes, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """Connect to the stream socket at `path`, write `line` (which ends in a newline) and close;
    None when it was written, else why not (one phrase)."""
    why = unsafe(path)
    if why is not None:
        return why
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(line)
    except OSError as err:  # refused, timed out, gone meanwhile
        return f"the socket did not take the line ({err.strerror or type(err).__name__})"
    return None

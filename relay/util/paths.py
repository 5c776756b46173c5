"""POSIX path names as plain strings, without importing `os`.

The store and the hints work on absolute POSIX paths only. In the frozen binary importing `os`
(with `stat`, `posixpath` and `_collections_abc`) costs millions of instructions at every start
that needs it (docs/startup.md), so the paths every hook event may take (asking the store, taking
and acknowledging mail, writing the journal) name files through these helpers and `posix`, the C
module under `os`. They answer as their `os.path` namesakes do for the paths relay builds.
"""

import posix
from _stat import S_ISDIR


def join(path: str, *parts: str) -> str:
    """`os.path.join` for str: each part appended after one `/`; an absolute part starts over."""
    for part in parts:
        if part.startswith("/"):
            path = part
        elif not path or path.endswith("/"):
            path += part
        else:
            path += "/" + part
    return path


def split(path: str) -> tuple[str, str]:
    """`os.path.split`: the part before the last `/` (trailing slashes dropped, `/` kept) and after."""
    cut = path.rfind("/") + 1
    head, tail = path[:cut], path[cut:]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    return head, tail


def dirname(path: str) -> str:
    """`os.path.dirname`."""
    return split(path)[0]


def basename(path: str) -> str:
    """`os.path.basename`."""
    return path[path.rfind("/") + 1 :]


def lexists(path: str) -> bool:
    """Is there anything at `path` (a dangling link counts), as os.path.lexists answers."""
    try:
        posix.lstat(path)
    except (OSError, ValueError):
        return False
    return True


def is_dir(path: str) -> bool:
    """`os.path.isdir`: a directory, or a link to one."""
    try:
        return S_ISDIR(posix.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def make_dirs(path: str, mode: int = 0o777) -> None:
    """`os.makedirs(path, mode, exist_ok=True)`: every missing dir on the way created with `mode`.

    An existing path that is not a directory is the FileExistsError os.makedirs raises."""
    try:
        posix.mkdir(path, mode)
    except FileNotFoundError:
        parent = dirname(path)
        if not parent or parent == path:
            raise
        make_dirs(parent, mode)
        try:
            posix.mkdir(path, mode)
        except FileExistsError:
            pass  # made meanwhile by another process
    except FileExistsError:
        if not is_dir(path):
            raise


def real_path(path: str) -> str:
    """`os.path.realpath` of an absolute path: every symlink on the way resolved.

    Linux names an open file's real path in /proc; a missing file is its dir's real path and its
    name (a frozen module's `__file__` names no file). Elsewhere, for a relative path or a dangling
    link, os.path answers."""
    try:
        fd = posix.open(path, posix.O_PATH | posix.O_CLOEXEC)
    except FileNotFoundError:
        head, tail = split(path)
        if head.startswith("/") and head != path and tail and not lexists(path):
            return join(real_path(head), tail)
        fd = None
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            resolved = posix.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            resolved = ""
        finally:
            posix.close(fd)
        if resolved.startswith("/") and not resolved.endswith(" (deleted)"):
            return resolved
    import os.path

    return os.path.realpath(path)

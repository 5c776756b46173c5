"""Reading the files agent CLIs write (transcripts, session records), safely and within bounds.

The CLIs' adapters (relay.agents) say where their files are and what a line means; this module
holds the rules every such read obeys, so they hold in one place: read-only; listings filter by
mtime with `stat` alone before any file is opened; a file is read only as far as needed, never
past `READ_LIMIT_BYTES`; a file swapped for a FIFO or a symlink between that `stat` and the open is
skipped, never waited on or followed.

Real files are why the limit is large: Claude Code 2.1 writes `cwd` after the message on each
line, so a big first prompt or `file-history-snapshot` pushes the first `cwd` far past 64 KiB,
and Codex's first line (`session_meta`, holding the whole system prompt) is ~23 KB and growing.

Imported by `send` (through the adapters' liveness checks) and the MCP server: pathlib, typing and
orjson are imported only where a function needs them.
"""

import os
import stat

from relay.util.env import usable_env

TYPE_CHECKING = False  # typing and pathlib stay off the send path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

READ_LIMIT_BYTES = 8 * 1024 * 1024
_CHUNK = 256 * 1024


def config_root(explicit: str, config: str, default_config: str, leaf: str) -> "Path":
    """$<explicit>, else ${<config>:-~/<default_config>}/<leaf>: where a CLI keeps a kind of file."""
    from pathlib import Path

    chosen = usable_env(explicit)
    return Path(chosen) if chosen else config_home(config, default_config) / leaf


def config_home(config: str, default_config: str) -> "Path":
    """${<config>:-~/<default_config>}: where a CLI keeps its settings and state."""
    from pathlib import Path

    base = usable_env(config)
    return Path(base) if base else Path.home() / default_config


# ---------------------------------------------------------------- listing them


def scan_dir(directory: "Path | str") -> "list[os.DirEntry[str]]":
    """The entries of a directory; none when it cannot be read."""
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError:
        return []


def fresh_mtime(entry: "os.DirEntry[str]", since: float) -> float | None:
    """The file's mtime when it is a regular file modified since `since`, else None."""
    try:
        if not entry.is_file(follow_symlinks=False):
            return None
        mtime = entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return None
    return mtime if mtime >= since else None


def uuid_files(directory: str, since: float) -> "Iterator[tuple[str, str, float]]":
    """(id, path, mtime) of the regular files `<uuid>.jsonl` directly in `directory` changed since
    `since`: the transcripts of CLIs that name a session's file after its id."""
    from relay.domain.ids import is_uuid

    for entry in scan_dir(directory):
        stem = entry.name[:-6] if entry.name.endswith(".jsonl") else ""
        if not is_uuid(stem):
            continue
        mtime = fresh_mtime(entry, since)
        if mtime is not None:
            yield stem, entry.path, mtime


# ---------------------------------------------------------------- reading one


def open_regular(path: str) -> int | None:
    """A read-only fd for `path` when it is (still) a regular file, else None.

    The file was filtered by a `stat` of its name, but anyone who can write the directory may swap
    it for a FIFO (whose open would block for ever) or a symlink before it is opened. So: never
    follow a symlink, never block on open, and check what was really opened.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    if not regular:
        os.close(fd)
        return None
    return fd


def bounded_lines(path: str, limit: int = READ_LIMIT_BYTES) -> "Iterator[bytes]":
    """The file's lines, stopping once `limit` bytes have been read (a cut-off line is dropped).
    Anything that is not a regular file when opened (FIFO, device, symlink) has no lines."""
    fd = open_regular(path)
    if fd is None:
        return
    try:
        partial = bytearray()  # grows in place, so one huge line costs linear time
        remaining = limit
        while remaining > 0:
            try:
                chunk = os.read(fd, min(_CHUNK, remaining))
            except OSError:
                return
            if not chunk:
                break
            remaining -= len(chunk)
            first_end = chunk.find(b"\n")
            if first_end < 0:
                partial += chunk
                continue
            partial += chunk[:first_end]
            yield bytes(partial)
            *lines, last = chunk[first_end + 1 :].split(b"\n")
            yield from lines
            partial = bytearray(last)
        if remaining > 0 and partial:
            yield bytes(partial)
    finally:
        os.close(fd)


def first_line(path: str) -> bytes | None:
    """The first non-blank line within the read limit (a rollout's `session_meta`), if any."""
    for line in bounded_lines(path):
        if line.strip():
            return line
    return None


def json_object(line: bytes) -> "dict[str, Any] | None":
    import orjson  # a discover or a fallback lookup, never an ordinary send

    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def read_small(path: str, limit: int) -> bytes | None:
    """The content of a regular file of at most `limit` bytes; None for anything else (never
    blocks on a FIFO)."""
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        if os.fstat(fd).st_size > limit:
            return None
        return os.read(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_tail(path: str, size: int) -> bytes | None:
    """The last `size` bytes of a file (all of a shorter one); None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            handle.seek(max(0, end - size))
            return handle.read(size)
    except OSError:
        return None

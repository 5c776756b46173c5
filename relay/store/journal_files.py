"""The journal of the file store: `<home>/journal/<YYYY-MM-DD>.jsonl`, one JSON event a line (docs/journal.md).

One file per UTC day, so keeping N days is removing whole files. Each event is appended with one
write(2) on a descriptor opened O_APPEND, and a line is at most MAX_EVENT_BYTES: writers in many
processes never interleave inside a line, and no lock is taken (the hook pays one open and one
write). The dir is 0700 and the files 0600, created so and checked like every store file (never
written through a symlink or a hard link, never another user's).

A reader's position is a cursor `<YYYY-MM-DD>:<byte offset>`: the end of the last whole line it
read. A line still being written (no newline yet) is left for the next read.

Loaded only by the paths that write or read the journal, never by a hook with nothing to deliver.
"""

import posix
import time

from relay.store import fileio
from relay.util import jsonlite, paths

DIR = "journal"
SUFFIX = ".jsonl"
# A line never exceeds this: a body too long for it is cut (relay's own bodies are far smaller).
MAX_EVENT_BYTES = 64 * 1024
# How much of a day file one read takes in; a cursor resumes where it stopped.
READ_CHUNK = 4 << 20
DAY_SECONDS = 86400


def day_of(ts: str) -> str:
    """The UTC day an event's ISO time falls on (its file's stem)."""
    return ts[:10]


def _is_day(stem: str) -> bool:
    return len(stem) == 10 and stem[4] == "-" and stem[7] == "-" and stem.replace("-", "").isdigit()


def days(home: str) -> list[str]:
    """The days that have a journal file, oldest first."""
    try:
        names = posix.listdir(paths.join(home, DIR))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(n[: -len(SUFFIX)] for n in names if n.endswith(SUFFIX) and _is_day(n[: -len(SUFFIX)]))


def _line(event: dict[str, object]) -> bytes:
    return jsonlite.dumps(event).encode("utf-8", "replace") + b"\n"


def encode(event: dict[str, object]) -> bytes:
    """The event's line (with its newline), at most MAX_EVENT_BYTES: a body too long is shortened
    (saying so); an event too big even without its body keeps only its short fields."""
    line = _line(event)
    if len(line) <= MAX_EVENT_BYTES:
        return line
    body = str(event.get("body") or "")
    keep = len(body) * (MAX_EVENT_BYTES - 1024) // len(line)  # about what fits, however the body escapes
    while keep > 0:
        line = _line(dict(event, body=f"{body[:keep]} [... {len(body) - keep} more characters not journaled]"))
        if len(line) <= MAX_EVENT_BYTES:
            return line
        keep //= 2
    short = {key: str(event[key])[:200] for key in ("ts", "event", "id", "from", "to", "thread") if event.get(key)}
    return _line({**short, "detail": "too large to journal"})


def append(home: str, events: "tuple[dict[str, object], ...]") -> None:
    """Append events to their days' files, one write per file (creating the 0700 dir and 0600 files)."""
    directory = paths.join(home, DIR)
    fileio.ensure_private_dir(home, allow_symlink=True, is_home=True)
    fileio.ensure_private_dir(directory)
    lines: dict[str, list[bytes]] = {}
    for event in events:
        lines.setdefault(day_of(str(event.get("ts") or "")), []).append(encode(event))
    for day, day_lines in lines.items():
        fd = fileio.open_regular(paths.join(directory, day + SUFFIX), posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT)
        try:
            posix.write(fd, b"".join(day_lines))  # one write(2) of whole lines: O_APPEND keeps writers apart
        finally:
            posix.close(fd)


def _parse_cursor(cursor: str | None) -> tuple[str, int]:
    if cursor:
        day, _, offset = cursor.partition(":")
        if _is_day(day) and offset.isdigit():
            return day, int(offset)
    return "", 0


def read(home: str, cursor: str | None, since: float | None) -> tuple[list[dict[str, object]], str | None]:
    """Every whole event after `cursor` (from the first day on or after `since` without one), oldest
    first, and the cursor after the last of them (the given one when there is nothing new)."""
    start_day, start_offset = _parse_cursor(cursor)
    floor = time.strftime("%Y-%m-%d", time.gmtime(since)) if since is not None else ""
    events: list[dict[str, object]] = []
    end = cursor
    for day in days(home):
        if day < start_day or day < floor:
            continue
        offset = start_offset if day == start_day else 0
        path = paths.join(home, DIR, day + SUFFIX)
        while True:
            data = _read_from(path, offset)
            whole = data[: data.rfind(b"\n") + 1]
            for raw in whole.split(b"\n"):
                if raw.strip():
                    try:
                        value = jsonlite.loads(raw)
                    except ValueError:
                        continue  # a line torn by a crash, or planted: skipped, never fatal
                    if isinstance(value, dict):
                        events.append(value)
            offset += len(whole)
            end = f"{day}:{offset}"
            if len(data) < READ_CHUNK or not whole:
                break
    return events, end


def _read_from(path: str, offset: int) -> bytes:
    try:
        fd = fileio.open_regular(path, posix.O_RDONLY)
    except (FileNotFoundError, fileio.UnsafeFile):
        return b""
    try:
        return posix.pread(fd, READ_CHUNK, offset)
    finally:
        posix.close(fd)


def prune(home: str, keep_days: int, now: float) -> int:
    """Remove the day files older than the last `keep_days` UTC days (all of them for 0); how many went."""
    oldest_kept = time.strftime("%Y-%m-%d", time.gmtime(now - (keep_days - 1) * DAY_SECONDS)) if keep_days else "~"
    removed = 0
    for day in days(home):
        if day < oldest_kept:
            fileio.remove(paths.join(home, DIR, day + SUFFIX))
            removed += 1
    return removed

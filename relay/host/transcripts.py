"""The agent CLIs' transcript files: where they live, how to list them, what to read from one.

Every read of a Claude Code transcript or a Codex rollout goes through here, so the rules hold in
one place: read-only; listings filter by mtime with `stat` alone before any file is opened; a file
is read only as far as needed, never past `READ_LIMIT_BYTES` (a rollout's tail: `_TAIL_BYTES`); a
file swapped for a FIFO or a symlink between that `stat` and the open is skipped, never waited on
or followed; a session id is taken only when it is a UUID. A cwd comes from the file's content,
never from Claude's lossy directory names.

- Claude Code: `${CLAUDE_CONFIG_DIR:-~/.claude}/projects/<encoded dir>/<uuid>.jsonl`.
- Codex: `${CODEX_HOME:-~/.codex}/sessions/YYYY/MM/DD/rollout-<timestamp>-<uuid>.jsonl`, whose
  first line is a `session_meta` event (id, cwd, source).

Real files are why the limit is large: Claude Code 2.1 writes `cwd` after the message on each
line, so a big first prompt or `file-history-snapshot` pushes the first `cwd` far past 64 KiB,
and Codex's first line (`session_meta`, holding the whole system prompt) is ~23 KB and growing.

Imported by `send` (relay.host.liveness, relay.usecases.codex_queue) and the MCP server: pathlib, typing and
orjson are imported only where a function needs them.
"""

import os
import stat

from relay.domain.ids import is_uuid
from relay.util import jsonlite
from relay.util.env import usable_env

TYPE_CHECKING = False  # typing and pathlib stay off the send path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

READ_LIMIT_BYTES = 8 * 1024 * 1024
_CHUNK = 256 * 1024
# Enough of a rollout's end to hold the current turn's start event; a turn's events are small.
_TAIL_BYTES = 256 * 1024
_STARTED = b'"type":"task_started"'
_ENDED = (b'"type":"task_complete"', b'"type":"turn_aborted"')


# ---------------------------------------------------------------- where they live


def _root(explicit: str, config: str, default_config: str, leaf: str) -> "Path":
    """$<explicit>, else ${<config>:-~/<default_config>}/<leaf>."""
    from pathlib import Path

    chosen = usable_env(explicit)
    if chosen:
        return Path(chosen)
    base = usable_env(config)
    return (Path(base) if base else Path.home() / default_config) / leaf


def claude_root() -> "Path":
    """$RELAY_CLAUDE_PROJECTS, else ${CLAUDE_CONFIG_DIR:-~/.claude}/projects."""
    return _root("RELAY_CLAUDE_PROJECTS", "CLAUDE_CONFIG_DIR", ".claude", "projects")


def codex_root() -> "Path":
    """$RELAY_CODEX_SESSIONS, else ${CODEX_HOME:-~/.codex}/sessions."""
    return _root("RELAY_CODEX_SESSIONS", "CODEX_HOME", ".codex", "sessions")


def codex_home_of(rollout: str) -> str | None:
    """The CODEX_HOME a live rollout belongs to: <home>/sessions/YYYY/MM/DD/rollout-*.jsonl."""
    sessions = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(rollout))))
    if os.path.basename(sessions) != "sessions":
        return None
    return os.path.dirname(sessions)


def rollout_id(path: str) -> str | None:
    """The session id (lower case) in a rollout's file name, rollout-<timestamp>-<uuid>.jsonl."""
    base = os.path.basename(path)
    if not (base.startswith("rollout-") and base.endswith(".jsonl")):
        return None
    candidate = base[:-6][-36:]
    return candidate.lower() if is_uuid(candidate) else None


# ---------------------------------------------------------------- listing them


def _scan(directory: "Path | str") -> "list[os.DirEntry[str]]":
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError:
        return []


def _fresh(entry: "os.DirEntry[str]", since: float) -> float | None:
    """The file's mtime when it is a regular file modified since `since`, else None."""
    try:
        if not entry.is_file(follow_symlinks=False):
            return None
        mtime = entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return None
    return mtime if mtime >= since else None


def claude_files(root: "Path", since: float) -> "Iterator[tuple[str, str, float]]":
    """(id, path, mtime) of `<root>/<dir>/<uuid>.jsonl` changed since `since`.

    Only one level deep, so sub-agent transcripts under `<uuid>/subagents/` are never seen, and
    the uuid file-name rule drops the older `agent-<hex>.jsonl` side files.
    """
    for project in _scan(root):
        if not project.is_dir(follow_symlinks=False):
            continue
        for entry in _scan(project.path):
            stem = entry.name[:-6] if entry.name.endswith(".jsonl") else ""
            if not is_uuid(stem):
                continue
            mtime = _fresh(entry, since)
            if mtime is not None:
                yield stem, entry.path, mtime


def codex_files(root: "Path", since: float) -> "Iterator[tuple[str, float]]":
    """(path, mtime) of `rollout-*.jsonl` at any depth under `root` changed since `since`.

    `codex exec resume` appends to the original file, so an old date directory can hold a live
    session: every directory is walked. Archived sessions are not sessions.
    """
    pending = [str(root)]
    while pending:
        for entry in _scan(pending.pop()):
            if entry.is_dir(follow_symlinks=False):
                if entry.name != "archived_sessions":
                    pending.append(entry.path)
            elif entry.name.startswith("rollout-") and entry.name.endswith(".jsonl"):
                mtime = _fresh(entry, since)
                if mtime is not None:
                    yield entry.path, mtime


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


def _first_line(path: str) -> bytes | None:
    """The first non-blank line within the read limit (a rollout's `session_meta`), if any."""
    for line in bounded_lines(path):
        if line.strip():
            return line
    return None


def _json_object(line: bytes) -> "dict[str, Any] | None":
    import orjson  # a discover or a fallback lookup, never an ordinary send

    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class Sidechain(Exception):
    """The transcript belongs to a sub-agent, not a session."""


def claude_cwd(path: str) -> str | None:
    """The first `cwd` in a Claude transcript; raises Sidechain for a sub-agent's file."""
    for line in bounded_lines(path):
        if b'"cwd"' not in line and b'"isSidechain"' not in line:
            continue
        record = _json_object(line)
        if record is None:
            continue
        if record.get("isSidechain") is True:
            raise Sidechain
        cwd = record.get("cwd")
        if isinstance(cwd, str) and cwd:
            return cwd
    return None


def codex_meta(path: str) -> tuple[str | None, str | None]:
    """(id, cwd) from a Codex rollout's first non-blank line, a `session_meta` event.

    The id is as written (callers check that it is a UUID)."""
    line = _first_line(path)
    if line is None:
        return None, None
    record = _json_object(line)
    payload = record.get("payload") if record and record.get("type") == "session_meta" else None
    if not isinstance(payload, dict):
        return None, None
    found = payload.get("id") or payload.get("session_id")
    cwd = payload.get("cwd")
    return (found if isinstance(found, str) else None), (cwd if isinstance(cwd, str) and cwd else None)


def codex_is_subagent(path: str | None) -> bool:
    """True when the rollout's first line says a sub-agent thread (its payload's `source` is an
    object, where a session's is a string such as "exec")."""
    line = _first_line(path) if path else None
    if line is None:
        return False
    try:
        record = jsonlite.loads(line)
    except ValueError:
        return False
    payload = record.get("payload") if isinstance(record, dict) else None
    return isinstance(payload, dict) and isinstance(payload.get("source"), dict)


def turn_in_progress(rollout: str) -> bool:
    """Does the rollout's tail show a turn that started and has not ended? Unreadable: no.

    Codex 0.169 appends an `event_msg` of type `task_started` when a turn begins and
    `task_complete` (or `turn_aborted`) when it ends; the last `_TAIL_BYTES` tell it cheaply."""
    try:
        with open(rollout, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read(_TAIL_BYTES)
    except OSError:
        return False
    started = tail.rfind(_STARTED)
    return started >= 0 and all(tail.rfind(ended) < started for ended in _ENDED)

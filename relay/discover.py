"""Finding sessions that are running now, from the agent CLIs' own transcript stores.

Read-only and bounded: files are filtered by mtime with `stat` alone before any is opened, and
each opened file is read only until its cwd is found, never past `READ_LIMIT_BYTES`. A file
swapped for a FIFO or a symlink between that `stat` and the open is skipped, never waited on. The cwd
comes from the file's content, never from Claude's lossy directory names.

Real files are why the limit is large: Claude Code 2.1 writes `cwd` after the message on each
line, so a big first prompt or `file-history-snapshot` pushes the first `cwd` far past 64 KiB,
and Codex's first line (`session_meta`, holding the whole system prompt) is ~23 KB and growing.
"""

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from relay.clock import iso_from_epoch
from relay.ids import is_uuid
from relay.liveness import live_claude_sessions, live_codex_sessions, rollout_id
from relay.paths import usable_env
from relay.store import Registry

READ_LIMIT_BYTES = 8 * 1024 * 1024
_CHUNK = 256 * 1024
DEFAULT_WITHIN_MIN = 60.0
DEFAULT_LIMIT = 50

Row = dict[str, Any]


def _root(explicit: str, config: str, default_config: str, leaf: str) -> Path:
    """$<explicit>, else ${<config>:-~/<default_config>}/<leaf>."""
    chosen = usable_env(explicit)
    if chosen:
        return Path(chosen)
    base = usable_env(config)
    return (Path(base) if base else Path.home() / default_config) / leaf


def claude_root() -> Path:
    """$RELAY_CLAUDE_PROJECTS, else ${CLAUDE_CONFIG_DIR:-~/.claude}/projects."""
    return _root("RELAY_CLAUDE_PROJECTS", "CLAUDE_CONFIG_DIR", ".claude", "projects")


def codex_root() -> Path:
    """$RELAY_CODEX_SESSIONS, else ${CODEX_HOME:-~/.codex}/sessions."""
    return _root("RELAY_CODEX_SESSIONS", "CODEX_HOME", ".codex", "sessions")


def _scan(directory: Path | str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError:
        return []


def _fresh(entry: os.DirEntry[str], since: float) -> float | None:
    """The file's mtime when it is a regular file modified since `since`, else None."""
    try:
        if not entry.is_file(follow_symlinks=False):
            return None
        mtime = entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return None
    return mtime if mtime >= since else None


def claude_files(root: Path, since: float) -> Iterator[tuple[str, str, float]]:
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


def codex_files(root: Path, since: float) -> Iterator[tuple[str, float]]:
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


def _open_regular(path: str) -> int | None:
    """A read-only fd for `path` when it is (still) a regular file, else None.

    The file was filtered by a `stat` of its name, but anyone who can write the directory may swap
    it for a FIFO (whose open would block for ever) or a symlink before it is opened. So: never
    follow a symlink, never block on open, and check what was really opened.
    """
    import stat

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


def bounded_lines(path: str, limit: int = READ_LIMIT_BYTES) -> Iterator[bytes]:
    """The file's lines, stopping once `limit` bytes have been read (a cut-off line is dropped).
    Anything that is not a regular file when opened (FIFO, device, symlink) has no lines."""
    fd = _open_regular(path)
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


def _json_object(line: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class _Sidechain(Exception):
    """The transcript belongs to a sub-agent, not a session."""


def claude_cwd(path: str) -> str | None:
    """The first `cwd` in a Claude transcript; raises _Sidechain for a sub-agent's file."""
    for line in bounded_lines(path):
        if b'"cwd"' not in line and b'"isSidechain"' not in line:
            continue
        record = _json_object(line)
        if record is None:
            continue
        if record.get("isSidechain") is True:
            raise _Sidechain
        cwd = record.get("cwd")
        if isinstance(cwd, str) and cwd:
            return cwd
    return None


def codex_meta(path: str) -> tuple[str | None, str | None]:
    """(id, cwd) from a Codex rollout's first non-blank line, a `session_meta` event."""
    for line in bounded_lines(path):
        if not line.strip():
            continue
        record = _json_object(line)
        payload = record.get("payload") if record and record.get("type") == "session_meta" else None
        if not isinstance(payload, dict):
            return None, None
        found = payload.get("id") or payload.get("session_id")
        cwd = payload.get("cwd")
        return (found if isinstance(found, str) else None), (cwd if isinstance(cwd, str) and cwd else None)
    return None, None


# relay.gc reads rollout ids under this name.
_codex_id_from_name = rollout_id


def discover(
    registry: Registry,
    within_min: float = DEFAULT_WITHIN_MIN,
    tool: str | None = None,
    exclude: str | None = None,
    cwd_first: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[Row]:
    """Sessions whose transcript changed in the last `within_min` minutes, newest first.

    One row per id (the newest file wins); rows whose cwd is `cwd_first` sort first. `live` is
    asked of the CLIs' own process state (relay.liveness), never of the mtime: a finished
    `claude -p` wrote its transcript a second ago and is not running. Each CLI is asked once, and
    only when it has rows; a registered session whose SessionEnd was seen (`endedAt`) is not live.
    """
    now = time.time()
    since = now - within_min * 60
    exclude = exclude.lower() if exclude else None
    found: dict[str, Row] = {}

    def add(kind: str, session_id: str | None, cwd: str | None, mtime: float) -> None:
        if not is_uuid(session_id):
            return
        session_id = session_id.lower()
        if session_id == exclude:
            return
        known = found.get(session_id)
        if known is not None and known["_mtime"] >= mtime:
            return
        entry = registry.agents.get(session_id)
        age = max(0.0, now - mtime)
        found[session_id] = {
            "tool": kind,
            "id": session_id,
            "cwd": cwd,
            "name": entry.get("name") if entry else None,
            "registered": entry is not None,
            "lastActivity": iso_from_epoch(mtime),
            "ageSec": int(age),
            "live": False,
            "_ended": bool(entry and entry.get("endedAt")),
            "_mtime": mtime,
        }

    if tool in (None, "claude"):
        for session_id, path, mtime in claude_files(claude_root(), since):
            try:
                add("claude", session_id, claude_cwd(path), mtime)
            except _Sidechain:
                continue
    if tool in (None, "codex"):
        for path, mtime in codex_files(codex_root(), since):
            codex_id, cwd = codex_meta(path)
            add("codex", codex_id if is_uuid(codex_id) else rollout_id(path), cwd, mtime)

    rows = sorted(found.values(), key=lambda r: r["_mtime"], reverse=True)
    if cwd_first:
        rows.sort(key=lambda r: r["cwd"] != cwd_first)
    rows = rows[:limit]
    _mark_live(rows)
    for row in rows:
        del row["_mtime"], row["_ended"]
    return rows


def _mark_live(rows: list[Row]) -> None:
    """Set each row's `live`, with one pass over each CLI's signals that has rows to answer."""
    tools = {row["tool"] for row in rows if not row["_ended"]}
    live = {
        "claude": live_claude_sessions() if "claude" in tools else set(),
        "codex": live_codex_sessions() if "codex" in tools else set(),
    }
    for row in rows:
        row["live"] = not row["_ended"] and row["id"] in live[row["tool"]]

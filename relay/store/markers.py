"""A project dir's marker, read without the store class: which session last registered that dir;
and the check of a session's start that reads it (unchanged_start).

An MCP server that no CLI tells its session id (no CLAUDE_CODE_SESSION_ID, no Codex `_meta`)
asks this at its first request, before it needs anything else of the store. Loading
relay.store.files (and its lock, base, clock, ... modules) for these one or two small reads was
over a tenth of the server's start-up instructions, so the reads live here and `relay.store.files.Store` reads markers
through the same functions: one rule for both (the store imports this module where it reads a
marker, so a hook that reads none does not load it). Writing a marker stays in the store (it takes
the store lock).

Written against relay.store.glance, without `os`: the hook's SessionStart of a registered session
asks unchanged_start here and, when it need write nothing, loads neither `os` nor the store
(docs/startup.md).
"""

import time

from relay.store import glance
from relay.store.layout import dir_digest, marker_name

TYPE_CHECKING = False  # typing stays off the hook's import path; only mypy reads these
if TYPE_CHECKING:
    from relay.store.base import Registration


def parse_marker(raw: bytes | None) -> tuple[str | None, str | None]:
    """(session id, dir) of a marker's bytes; the dir is None for a 0.1 marker ("<id>\\n")."""
    if raw is None:
        return None, None
    text = raw.decode("utf-8", "surrogateescape")
    first, _, rest = text.partition("\n")
    rest = rest[:-1] if rest.endswith("\n") else rest
    return first.strip() or None, rest or None


def hashed_marker_name(directory: str) -> str:
    """The marker name of a dir whose encoded name another dir already holds."""
    return f"{marker_name(directory)[:183]}-{dir_digest(directory)}"


def read_marker(home: str, name: str) -> tuple[str | None, str | None]:
    """(id, dir) of the marker file `name` under `home`; a planted symlink or FIFO reads as no marker."""
    return parse_marker(marker_bytes(glance.in_store(home, "markers", name)))


def marker_bytes(path: str) -> bytes | None:
    """The bytes of the marker file at `path`; a planted link or FIFO reads as none (a write
    replaces it atomically, never follows it)."""
    try:
        return glance.read_file(path)
    except glance.UnsafeFile:
        return None


def marker_change(home: str, directory: str, session_id: str) -> tuple[str, bytes] | None:
    """The marker file of `directory` and what it must hold to name `session_id`; None when it
    holds that already. Each file is read once; the store writes the change under its lock."""
    content = f"{session_id}\n{directory}\n".encode("utf-8", "surrogateescape")
    path = glance.in_store(home, "markers", marker_name(directory))
    current = marker_bytes(path)
    held_by, held_dir = parse_marker(current)
    if held_by is not None and held_dir is not None and held_dir != directory:
        path = glance.in_store(home, "markers", hashed_marker_name(directory))  # another dir encodes to the same name
        current = marker_bytes(path)
    return None if current == content else (path, content)


def marked_session(home: str, directory: str) -> str | None:
    """The session id the marker for `directory` names, if any; `home` is already checked
    (relay.store.fileio.home_exists). A 0.1 marker (no dir line) counts for the dir its name
    encodes; a dir whose encoded name another dir holds has its marker under the hashed name."""
    held_by, held_dir = read_marker(home, marker_name(directory))
    if held_by is not None and held_dir in (None, directory):
        return held_by
    held_by, held_dir = read_marker(home, hashed_marker_name(directory))
    return held_by if held_dir == directory else None


def marker_at(home: str, directory: str) -> str | None:
    """The session id the marker for `directory` names in the store at `home`; None when there is
    no store or no such marker."""
    return marked_session(home, directory) if glance.home_exists(home) else None


def unchanged_start(home: str, session_id: str, change: "Registration") -> "dict[str, object] | None":
    """The stored entry when the start `change` (of `session_id`, a checked id) need write nothing:
    the entry would change in nothing but a recent lastSeen (Registration.only_refreshes) and the
    dir's marker names the session already; None when anything is to be written, and the store
    then takes its lock and writes (relay.store.files.Store.record_start, which asks this first).

    A resume, /clear or compaction is such a start, and skipping it spares the start its lock, its
    directory checks and the entry's temp file, fsync and rename; answered here, the hook's start
    also loads neither `os` nor the store. It reads without the lock: entries and markers are
    replaced whole by rename, so each read is of one version, and a start that writes nothing is
    the same as one ordered just before any writer that races it. No store yet, a store still to
    be migrated from registry.json, or an entry that cannot be used as it is (glance.stored_entry)
    takes the writing path."""
    if not glance.home_exists(home) or glance.lexists(glance.in_store(home, "registry.json")):
        return None
    entry = glance.stored_entry(home, session_id)
    if entry is None or not change.only_refreshes(entry, time.time()):
        return None
    if marker_change(home, str(change.directory), session_id) is not None:
        return None
    return entry

"""A project dir's marker, read without the store class: which session last registered that dir.

An MCP server that no CLI tells its session id (no CLAUDE_CODE_SESSION_ID, no Codex `_meta`)
asks this at its first request, before it needs anything else of the store. Loading
relay.store.files (and its lock, base, clock, ... modules) for these one or two small reads was
over a tenth of the server's start-up instructions, so the reads live here and `relay.store.files.Store` reads markers
through the same functions: one rule for both (the store imports this module where it reads a
marker, so a hook that reads none does not load it). Writing a marker stays in the store (it takes
the store lock).
"""

import os

from relay.store import fileio
from relay.store.layout import dir_digest, marker_name


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
    try:
        return parse_marker(fileio.read_file(os.path.join(home, "markers", name)))
    except fileio.UnsafeFile:
        return None, None


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
    return marked_session(home, directory) if fileio.home_exists(home) else None

"""OpenCode: everything relay knows about this one agent CLI (docs/agents/opencode.md).

- Hooks: OpenCode has no command hooks; its plugins are JavaScript run inside its own process.
  relay's plugin (`opencode-plugin/` in the clone, installed with `opencode plugin -g <clone>/opencode-plugin`)
  runs `launcher hook opencode` with one JSON event on stdin per OpenCode hook, named after that
  hook (EVENTS), and reads back `{"text": ...}` (hook_output): the plugin puts that text where
  the model reads it (a text part of the prompt, the end of a tool's output, a new turn).
- Which session an MCP server serves: OpenCode starts one MCP server per directory, shared by all
  of that directory's sessions, and tells it nothing of the session calling a tool. So before a
  bus tool runs, the plugin sends `tool.execute.before` and relay points the directory's marker at
  that session (moment `Focus`); the bus reads the marker (relay.usecases.identity).
- Sessions: rows of the `session` table in OpenCode's SQLite database
  (`${XDG_DATA_HOME:-~/.local/share}/opencode/opencode.db`), read only, never locked.
- Live: a running OpenCode process whose current directory is the session's, and the session is
  the newest top-level one of that directory.
- Wake: `opencode run --session <id> --format json -- <prompt>`; an open idle session is woken by
  the plugin itself (`relay hook watch opencode` hands it the mail).
"""

import os

TYPE_CHECKING = False  # typing and sqlite stay off the hook's path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from relay.agents.adapter_protocol import Finding
    from relay.host.procinfo import ProcInfo
    from relay.store.contract import StoreAPI

NAME = "opencode"

ANSWER_NOTE = None  # an OpenCode model has no messaging tool of its own to mistake for relay's `send`

# The plugin's hook name -> relay's moment; `Focus` only points the directory's marker at the session.
EVENTS = {
    "session.created": "SessionStart",
    "chat.message": "UserPromptSubmit",
    "tool.execute.before": "Focus",
    "tool.execute.after": "PostToolUse",
    "session.idle": "Stop",
    "session.deleted": "SessionEnd",
}

# Where the plugin lives in the clone, and the config key OpenCode lists plugins under.
PLUGIN_DIR = "opencode-plugin"

# How many sessions one look at the database reads at most (discover and gc stay bounded).
MAX_ROWS = 5000
# How long a read waits for OpenCode's writer before it reads the file as it is.
BUSY_MS = 200


def hook_output(moment: str, text: str) -> dict[str, object]:
    """The plugin's answer: the text it puts in front of the model at `moment` (the plugin knows where)."""
    return {"text": text}


def wake_argv(session_id: str, prompt: str) -> list[str]:
    """The argv that resumes `session_id` headless with `prompt` (relay's nudge) as its one input."""
    return ["opencode", "run", "--session", session_id, "--format", "json", "--", prompt]


# ---------------------------------------------------------------- its database (discover, gc)


def database() -> "Path":
    """$RELAY_OPENCODE_DB, else ${XDG_DATA_HOME:-~/.local/share}/opencode/opencode.db."""
    from pathlib import Path

    from relay.util.env import usable_env

    chosen = usable_env("RELAY_OPENCODE_DB")
    if chosen:
        return Path(chosen)
    data = usable_env("XDG_DATA_HOME")
    return (Path(data) if data else Path.home() / ".local" / "share") / "opencode" / "opencode.db"


def _rows(query: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
    """The rows of a read-only query on OpenCode's database; [] when there is none or it cannot be read.

    Opened read only through a `file:` URI; when OpenCode holds a lock the file is read as it is on
    disk (`immutable=1`), so relay never waits on, nor writes to, another program's database."""
    import sqlite3
    from urllib.parse import quote

    path = database()
    if not path.is_file():
        return []
    base = "file:" + quote(str(path))
    for mode in ("?mode=ro", "?mode=ro&immutable=1"):
        try:
            with sqlite3.connect(base + mode, uri=True, timeout=BUSY_MS / 1000) as con:
                return con.execute(query, args).fetchmany(MAX_ROWS)
        except sqlite3.Error:
            continue
    return []


_SESSIONS = (
    "SELECT id, directory, time_updated FROM session"
    " WHERE parent_id IS NULL AND time_archived IS NULL AND time_updated >= ?"
    " ORDER BY time_updated DESC LIMIT ?"
)


def _sessions(since: float) -> "Iterator[tuple[str, str | None, float]]":
    """(id, directory, last activity in seconds) of each top-level session updated since `since`."""
    for found, directory, updated in _rows(_SESSIONS, (int(since * 1000), MAX_ROWS)):
        if isinstance(found, str) and isinstance(updated, (int, float)):
            yield found, (directory if isinstance(directory, str) and directory else None), updated / 1000


def recent_sessions(since: float) -> "Iterator[tuple[str | None, str | None, float]]":
    """(id, cwd, last activity) of each session updated since `since` (sub-agents' sessions left out)."""
    yield from _sessions(since)


def transcript_times() -> "Iterator[tuple[str, float]]":
    """(id, last activity) of every session in OpenCode's database (at most MAX_ROWS, newest first)."""
    for found, _, updated in _sessions(0.0):
        yield found, updated


# ---------------------------------------------------------------- its processes


def is_opencode(info: "ProcInfo") -> bool:
    """True for OpenCode's own process (the `opencode` binary, not the npm package's node wrapper)."""
    name = info.name.lower()
    return name == "opencode" or name.startswith("opencode-")


def live_sessions() -> set[str]:
    """Ids of the sessions running now: per directory an OpenCode process works in, the newest
    top-level session of that directory. OpenCode writes no per-session lock or pid file."""
    from relay.host import procinfo

    dirs = {procinfo.process_cwd(pid) for pid in procinfo.matching_pids(is_opencode)}
    dirs.discard(None)
    if not dirs:
        return set()
    live: set[str] = set()
    seen: set[str] = set()
    for found, directory, _ in _sessions(0.0):  # newest first
        if directory is not None and directory in dirs and directory not in seen:
            seen.add(directory)
            live.add(found)
    return live


def is_live(session_id: str) -> bool:
    """Is `session_id` the session an OpenCode process works on now (live_sessions)?"""
    return session_id in live_sessions()


# ---------------------------------------------------------------- relay doctor: is the plugin installed so it works?


def config_dir() -> "Path":
    """${XDG_CONFIG_HOME:-~/.config}/opencode: where `opencode plugin -g` records plugins."""
    from pathlib import Path

    from relay.util.env import usable_env

    base = usable_env("XDG_CONFIG_HOME")
    return (Path(base) if base else Path.home() / ".config") / "opencode"


def _without_comments(text: str) -> str:
    """JSON with comments (OpenCode's opencode.jsonc) as plain JSON: `//` and `/* */` comments
    outside strings dropped, and commas before a closing bracket."""
    out: list[str] = []
    i, n, in_string = 0, len(text), False
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        else:
            out.append(ch)
        i += 1
    import re

    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


def installed_plugins() -> "tuple[list[str], Path | None]":
    """The plugins OpenCode's global config lists, and the file they were read from (None: no config)."""
    from relay.agents.install_files import read_small
    from relay.util import jsonlite

    for name in ("opencode.jsonc", "opencode.json", "config.json"):
        path = config_dir() / name
        data = read_small(path) if path.is_file() else None
        if data is None:
            continue
        try:
            config = jsonlite.loads(_without_comments(data.decode("utf-8", "replace")))
        except ValueError:
            return [], path
        listed = config.get("plugin") if isinstance(config, dict) else None
        return [str(each) for each in listed if isinstance(each, str)] if isinstance(listed, list) else [], path
    return [], None


def doctor_findings(store: "StoreAPI", root: "Path | None") -> "list[Finding]":
    """Is relay's plugin listed in OpenCode's global config, and is it this checkout's?"""
    from shutil import which

    plugins, path = installed_plugins()
    ours = [p for p in plugins if os.path.basename(p.rstrip("/")) == PLUGIN_DIR]
    fix = f"opencode plugin -g {root / PLUGIN_DIR}" if root is not None else ""
    if not ours:
        if path is None and which("opencode") is None:
            return [("PASS", "OpenCode: not installed here, nothing to check", "")]
        where = str(path) if path is not None else str(config_dir())
        return [("WARN", f"OpenCode: relay's plugin is not listed in {where}: its sessions get no mail", fix)]
    if root is None:
        return [("PASS", f"OpenCode: relay's plugin is listed ({ours[0]})", "")]
    mine = os.path.realpath(root / PLUGIN_DIR)
    if any(os.path.realpath(p.removeprefix("file://")) == mine for p in ours):
        return [("PASS", f"OpenCode: runs this checkout's plugin ({mine})", "")]
    return [("WARN", f"OpenCode: its relay plugin is {ours[0]}, not this checkout's {mine}", fix)]

"""Claude Code: everything relay knows about this one agent CLI.

- Hooks: the plugin's hooks/hooks.json names the five events relay serves; they are Claude's own
  names (relay.agents.hook_protocol), and so is the shape of the hook's answer.
- Transcripts: `${CLAUDE_CONFIG_DIR:-~/.claude}/projects/<encoded dir>/<uuid>.jsonl`; the cwd is read
  from the content, never from the lossy directory name; sub-agents' files are not sessions.
- Live: Claude Code keeps `$CLAUDE_CONFIG_DIR/sessions/<pid>.json` (`{"pid", "sessionId", "cwd",
  "procStart", ...}`) only while that session's process runs. A session is live when such a file
  names it, its pid is alive, and that process is Claude Code (a leftover file whose pid died, or
  was reused by another program, does not count). A transcript's mtime is no liveness signal.
- Wake: `claude -p --resume <id>` with the options below, the prompt the last argument after `--`.

Everything read here is read-only and best effort: what cannot be read counts as not there.
"""

import os

from relay.agents.hook_protocol import EVENTS, hook_output
from relay.domain.ids import is_uuid
from relay.host import procinfo, transcripts
from relay.util import jsonlite
from relay.util.env import env_value

TYPE_CHECKING = False  # `send` asks whether its recipient runs: typing stays off that path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["EVENTS", "hook_output"]

NAME = "claude"

# A real sessions/<pid>.json is a few hundred bytes.
_MAX_SESSION_FILE = 64 * 1024
# Names the Claude Code process goes by: the npm wrapper's native binary is `claude.exe`, the
# native installer's a version number behind a `claude` link; both set their title to `claude`.
_CLAUDE_NAMES = ("claude", "claude.exe")

# Claude names a plugin's MCP tools mcp__plugin_<plugin>_<server>__<tool>; relay's server is `bus`.
BUS_RULE = "mcp__plugin_session-relay_bus"

# Fixed options of the woken Claude, tried against the real Claude Code 2.1.197:
# - `claude -p` denies MCP tools nobody allowed; the server-wide rule lets the woken session call every
#   tool of the plugin's bus (`inbox` to read, `send` to answer) and nothing else.
# - In `-p` mode Claude connects MCP servers in the background, so a bus that starts slowly (a loaded
#   machine, a cold start) is missing from the first model request. MCP_CONNECTION_NONBLOCKING=0 makes
#   Claude wait for its servers first, but only MCP_CONNECT_TIMEOUT_MS (default 5 s) long.
WAKE_OPTIONS: tuple[str, ...] = (
    "--allowedTools",
    BUS_RULE,
    "--settings",
    '{"env":{"MCP_CONNECTION_NONBLOCKING":"0","MCP_CONNECT_TIMEOUT_MS":"30000"}}',
)


def wake_argv(session_id: str, prompt: str) -> list[str]:
    """The argv that resumes `session_id` headless with `prompt` (relay's nudge) as its one input."""
    return ["claude", "-p", "--resume", session_id, "--output-format", "json", *WAKE_OPTIONS, "--", prompt]


# ---------------------------------------------------------------- transcripts (discover, gc)


def projects_root() -> "Path":
    """$RELAY_CLAUDE_PROJECTS, else ${CLAUDE_CONFIG_DIR:-~/.claude}/projects."""
    return transcripts.config_root("RELAY_CLAUDE_PROJECTS", "CLAUDE_CONFIG_DIR", ".claude", "projects")


def transcript_files(root: "Path", since: float) -> "Iterator[tuple[str, str, float]]":
    """(id, path, mtime) of `<root>/<dir>/<uuid>.jsonl` changed since `since`.

    Only one level deep, so sub-agent transcripts under `<uuid>/subagents/` are never seen, and
    the uuid file-name rule drops the older `agent-<hex>.jsonl` side files.
    """
    for project in transcripts.scan_dir(root):
        if not project.is_dir(follow_symlinks=False):
            continue
        for entry in transcripts.scan_dir(project.path):
            stem = entry.name[:-6] if entry.name.endswith(".jsonl") else ""
            if not is_uuid(stem):
                continue
            mtime = transcripts.fresh_mtime(entry, since)
            if mtime is not None:
                yield stem, entry.path, mtime


class Sidechain(Exception):
    """The transcript belongs to a sub-agent, not a session."""


def transcript_cwd(path: str) -> str | None:
    """The first `cwd` in a Claude transcript; raises Sidechain for a sub-agent's file."""
    for line in transcripts.bounded_lines(path):
        if b'"cwd"' not in line and b'"isSidechain"' not in line:
            continue
        record = transcripts.json_object(line)
        if record is None:
            continue
        if record.get("isSidechain") is True:
            raise Sidechain
        cwd = record.get("cwd")
        if isinstance(cwd, str) and cwd:
            return cwd
    return None


def recent_sessions(since: float) -> "Iterator[tuple[str, str | None, float]]":
    """(id as written, cwd, last activity) of each session whose transcript changed since `since`."""
    for session_id, path, mtime in transcript_files(projects_root(), since):
        try:
            yield session_id, transcript_cwd(path), mtime
        except Sidechain:
            continue


def transcript_times() -> "Iterator[tuple[str, float]]":
    """(id as written, mtime) of every transcript on this machine, without opening one."""
    for session_id, _, mtime in transcript_files(projects_root(), 0.0):
        yield session_id, mtime


# ---------------------------------------------------------------- is it running now?


def sessions_dir() -> str:
    """Where Claude Code lists its running sessions."""
    config = env_value("CLAUDE_CONFIG_DIR") or os.path.expanduser("~/.claude")
    return os.path.join(config, "sessions")


def _records(only: str | None = None) -> "Iterator[dict]":
    """The sessions/<pid>.json records (only those naming `only`, when given), each read once."""
    directory = sessions_dir()
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not name.endswith(".json"):
            continue
        raw = transcripts.read_small(os.path.join(directory, name), _MAX_SESSION_FILE)
        if raw is None:
            continue
        try:
            record = jsonlite.loads(raw)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        named = record.get("sessionId")
        if isinstance(named, str) and is_uuid(named) and (only is None or named.lower() == only):
            yield record


def is_claude_process(pid: int) -> bool:
    """True when `pid` is a running Claude Code: its executable, argv[0] or title is `claude`, or a
    node running Claude Code's npm `cli.js`."""
    info = procinfo.process_info(pid)
    if info is None:
        return False
    argv = procinfo.command_line(pid)
    names = {info.name, procinfo.title(pid), os.path.basename(argv[0]) if argv else None}
    if any(name in _CLAUDE_NAMES for name in names if name):
        return True
    return any("claude-code" in word and word.endswith((".js", ".cjs", ".mjs")) for word in argv[1:3])


def _same_process(pid: int, record: dict) -> bool:
    """False when the record says when its process started and the pid now is a newer process."""
    started = record.get("procStart")
    if not isinstance(started, str | int) or not procinfo._has_proc():  # only Linux's start token compares
        return True
    return procinfo.same_process(pid, str(started))


def live_sessions(only: str | None = None) -> set[str]:
    """Ids (lower case) of the sessions a running Claude Code process has open, from one read of
    the sessions dir; `only` limits the work to the records naming that id."""
    live: set[str] = set()
    for record in _records(only):
        pid = record.get("pid")
        if type(pid) is int and pid > 0 and is_claude_process(pid) and _same_process(pid, record):
            live.add(record["sessionId"].lower())
    return live


def is_live(session_id: str) -> bool:
    """A running Claude Code process has `session_id` (lower case) open."""
    return session_id in live_sessions(session_id)

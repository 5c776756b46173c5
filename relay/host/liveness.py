"""Is a session running right now? Asked of the agent CLIs' own process state, never of mtimes.

A transcript's mtime is no liveness signal (a finished `claude -p` looks busy for minutes), so:

- Claude Code keeps `$CLAUDE_CONFIG_DIR/sessions/<pid>.json` (default `~/.claude/sessions`;
  `{"pid", "sessionId", "cwd", "procStart", ...}`) only while that session's process lives. A
  session is live when such a file names it, its pid is alive, and that process is Claude Code
  (so a leftover file whose pid died, or was reused by another program, does not count).
- Codex holds its rollout file (`rollout-<ts>-<id>.jsonl`) open while the session runs: live
  when a `codex` process has it open.

Everything here is read-only and best effort: what cannot be read counts as not running. Planted
files (FIFOs, symlinks, huge files) in the sessions dir are skipped without blocking.
"""

import os

from relay.domain.ids import is_uuid
from relay.host import procinfo
from relay.host.transcripts import open_regular, rollout_id
from relay.util import jsonlite
from relay.util.env import env_value

# A real sessions/<pid>.json is a few hundred bytes.
_MAX_SESSION_FILE = 64 * 1024
# Names the Claude Code process goes by: the npm wrapper's native binary is `claude.exe`, the
# native installer's a version number behind a `claude` link; both set their title to `claude`.
_CLAUDE_NAMES = ("claude", "claude.exe")

TYPE_CHECKING = False  # `send` asks whether its recipient runs: typing stays off that path
if TYPE_CHECKING:
    from collections.abc import Iterator


def claude_sessions_dir() -> str:
    """Where Claude Code lists its running sessions."""
    config = env_value("CLAUDE_CONFIG_DIR") or os.path.expanduser("~/.claude")
    return os.path.join(config, "sessions")


def _read_small_regular(path: str) -> bytes | None:
    """The content of a small regular file; None for anything else (never blocks on a FIFO)."""
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        if os.fstat(fd).st_size > _MAX_SESSION_FILE:
            return None
        return os.read(fd, _MAX_SESSION_FILE + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _claude_records(only: str | None = None) -> "Iterator[dict]":
    """The sessions/<pid>.json records (only those naming `only`, when given), each read once."""
    directory = claude_sessions_dir()
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not name.endswith(".json"):
            continue
        raw = _read_small_regular(os.path.join(directory, name))
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


def live_claude_sessions(only: str | None = None) -> set[str]:
    """Ids (lower case) of the sessions a running Claude Code process has open, from one read of
    the sessions dir; `only` limits the work to the records naming that id."""
    live: set[str] = set()
    for record in _claude_records(only):
        pid = record.get("pid")
        if type(pid) is int and pid > 0 and is_claude_process(pid) and _same_process(pid, record):
            live.add(record["sessionId"].lower())
    return live


def claude_is_live(session_id: str) -> bool:
    """A running Claude Code process has `session_id` open."""
    return session_id in live_claude_sessions(session_id)


def _open_rollouts() -> "Iterator[tuple[int, str, str]]":
    """(pid, rollout path, session id) for every rollout a running Codex process holds open."""
    for pid in procinfo.codex_pids():
        for path in procinfo.open_files(pid):
            found = rollout_id(path)
            if found:
                yield pid, path, found


def live_codex_sessions() -> set[str]:
    """Ids (lower case) of the sessions whose rollout a running Codex process holds open, from one
    scan of the processes."""
    return {found for _, _, found in _open_rollouts()}


def codex_hosts(session_id: str) -> list[tuple[int, list[str], str]]:
    """(pid, argv, rollout path) of each running Codex process holding `session_id`'s rollout open:
    the process that hosts the session (the TUI's app-server daemon, a `--no-daemon` TUI, or a
    `codex exec` run), for callers that must know which kind it is."""
    wanted = session_id.lower()
    return [(pid, procinfo.command_line(pid), path) for pid, path, found in _open_rollouts() if found == wanted]


def codex_is_live(session_id: str) -> bool:
    """A running Codex process holds `session_id`'s rollout file open."""
    return session_id in live_codex_sessions()


def live_sessions(tool: object = None) -> set[str]:
    """Ids (lower case) of every session running now: one pass over each CLI's signals, for
    callers that ask about many sessions at once (discover). `tool` as for `is_live`."""
    live: set[str] = set()
    if tool != "codex":
        live |= live_claude_sessions()
    if tool != "claude":
        live |= live_codex_sessions()
    return live


def is_live(session_id: object, tool: object = None) -> bool:
    """Is `session_id` running now in its CLI? `tool` "claude" or "codex" asks only that CLI; any
    other value asks both. Not a UUID: never live."""
    if not is_uuid(session_id):
        return False
    canonical = str(session_id).lower()
    if tool == "claude":
        return claude_is_live(canonical)
    if tool == "codex":
        return codex_is_live(canonical)
    return claude_is_live(canonical) or codex_is_live(canonical)

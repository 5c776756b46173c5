"""Which Codex session is this MCP server serving?

Codex (0.169) gives its MCP servers no session id in the environment and, for a plugin server, not
even the project dir (the server starts in the plugin's cache dir and `${...}` values arrive
literally). Two things do identify the session, and were checked against the real Codex CLI:

1. **Per tool call** (exact): every `tools/call` Codex sends carries `params._meta` =
   `{"sessionId": <id>, "threadId": <id>, "x-codex-turn-metadata": {"session_id": <id>,
   "thread_id": <id>, ...}, ...}`. `sessionId` is the id `codex exec` prints, the rollout's id and
   the hook's `session_id`. One Codex process can host several threads (`/new`, app-server), so
   this is read on every call, never cached.
2. **Process ancestry** (fallback, for a call without `_meta`): the server's nearest ancestor named
   `codex` is the Codex process that spawned it, and that process keeps its session files open:
   `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<ts>-<id>.jsonl` and
   `$CODEX_HOME/thread-writer-locks/<id>.lock` — already when it spawns its MCP servers, and whether
   or not the user has trusted the plugin's hooks. Linux reads /proc, macOS asks `lsof`
   (see `relay.host.procinfo`).

The project dir is the `cwd` in the session's rollout (`session_meta`), else the Codex process's
current directory.

RELAY_NO_ANCESTRY=1 turns the ancestry lookup off: a test suite run from inside a Codex session
would otherwise see that session as the one of every bus it starts.
"""

import os

from relay.domain.ids import is_uuid
from relay.host import procinfo
from relay.host.transcripts import codex_is_subagent, codex_meta, rollout_id
from relay.util.values import Record


class CodexSession(Record):
    """A Codex session id, its project dir when known, and how both were found."""

    __slots__ = ("cwd", "session_id", "source")
    session_id: str
    cwd: str | None
    source: str

    def __init__(self, session_id: str, cwd: str | None, source: str) -> None:
        self._fields(session_id=session_id, cwd=cwd, source=source)


def _writer_lock_id(path: str) -> str | None:
    """The session id of a Codex writer lock, .../thread-writer-locks/<uuid>.lock."""
    folder, base = os.path.split(path)
    candidate = base.removesuffix(".lock")
    if os.path.basename(folder) != "thread-writer-locks" or candidate == base or not is_uuid(candidate):
        return None
    return candidate.lower()


def id_from_meta(meta: object) -> str | None:
    """The session id in a Codex `tools/call` `_meta` object, or None when there is none.

    Looks at `sessionId`, then `threadId`, then `x-codex-turn-metadata.session_id` / `thread_id`;
    only a UUID is accepted (anything else could be planted text).
    """
    if not isinstance(meta, dict):  # decoded JSON: an object is a dict
        return None
    turn = meta.get("x-codex-turn-metadata")
    turn = turn if isinstance(turn, dict) else {}
    for value in (
        meta.get("sessionId"),
        meta.get("threadId"),
        turn.get("session_id"),
        turn.get("thread_id"),
    ):
        if is_uuid(value):
            return str(value).lower()
    return None


def open_sessions(pid: int) -> dict[str, str | None]:
    """Session ids whose rollout or writer lock `pid` holds open -> the rollout path (or None)."""
    found: dict[str, str | None] = {}
    for path in sorted(procinfo.open_files(pid)):
        rollout = rollout_id(path)
        if rollout:
            found[rollout] = path
            continue
        lock = _writer_lock_id(path)
        if lock:
            found.setdefault(lock, None)
    return found


def _rollout_cwd(path: str | None) -> str | None:
    if not path:
        return None
    _, cwd = codex_meta(path)
    return cwd


_MY_CODEX: list[procinfo.ProcInfo | None] = []


def _my_codex() -> procinfo.ProcInfo | None:
    """This process's Codex ancestor, looked up once: a process's ancestry does not change while
    its parent lives (and an MCP server ends with its client). Saves the `ps` walk per tool call
    on macOS."""
    if not _MY_CODEX:
        _MY_CODEX.append(procinfo.codex_ancestor())
    return _MY_CODEX[0]


def _codex_of(pid: int | None) -> procinfo.ProcInfo | None:
    if os.environ.get("RELAY_NO_ANCESTRY"):
        return None
    return _my_codex() if pid is None else procinfo.codex_ancestor(pid)


def from_ancestor(pid: int | None = None) -> CodexSession | None:
    """The session of the nearest Codex ancestor of `pid` (default: this process), if one is clear.

    When the Codex process holds several sessions open (sub-agents), the one that is not a
    sub-agent wins; if that still leaves more than one, the answer is None rather than a guess.
    """
    codex = _codex_of(pid)
    if codex is None:
        return None
    sessions = open_sessions(codex.pid)
    if len(sessions) > 1:
        sessions = {sid: path for sid, path in sessions.items() if not codex_is_subagent(path)}
    if len(sessions) != 1:
        return None
    [(session_id, path)] = sessions.items()
    cwd = _rollout_cwd(path) or procinfo.process_cwd(codex.pid)
    return CodexSession(session_id, cwd, f"session files held open by codex pid {codex.pid}")


def resolve(meta: object = None, pid: int | None = None) -> CodexSession | None:
    """The Codex session this server serves: from the call's `_meta`, else from its ancestry.

    `meta` is the `params._meta` of the current `tools/call` (None outside a call). The cwd is
    filled from the Codex ancestor when it has that session's rollout open, else its current dir.
    """
    session_id = id_from_meta(meta)
    if session_id is None:
        return from_ancestor(pid)
    codex = _codex_of(pid)
    cwd = None
    if codex is not None:
        path = open_sessions(codex.pid).get(session_id)
        cwd = _rollout_cwd(path) or procinfo.process_cwd(codex.pid)
    return CodexSession(session_id, cwd, "Codex tools/call _meta.sessionId")

"""Which Codex session an MCP server serves (how it is found: relay.agents.codex's docstring).

Every MCP server asks this at its start (relay.usecases.identity), whichever CLI started it: from a
tool call's `_meta`, else from the nearest `codex` ancestor process and the session files it holds
open. Outside Codex the answer is "none" after one walk up the process tree, so this, with the
rollout's name and first line it reads, lives apart from the Codex adapter, whose discover, wake,
doctor and hook code such a server never runs. The adapter re-exports these names.
"""

import os

from relay.domain.ids import is_uuid
from relay.util.values import Record

TYPE_CHECKING = False  # typing stays off the MCP server's start
if TYPE_CHECKING:
    from relay.host.procinfo import ProcInfo

# A binary taken straight from a GitHub release keeps its target-triple name.
_TRIPLE_ENDINGS = ("-musl", "-gnu", "-darwin")


def is_codex(info: "ProcInfo") -> bool:
    """True for the Codex CLI's native process (not its `node` npm wrapper).

    The npm and Homebrew installs run a binary named `codex`; a binary taken straight from a
    GitHub release keeps its target-triple name (`codex-x86_64-unknown-linux-musl`).
    """
    name = info.name.lower().removesuffix(".exe")
    return name == "codex" or (name.startswith("codex-") and name.endswith(_TRIPLE_ENDINGS))


def codex_ancestor(pid: int | None = None) -> "ProcInfo | None":
    """The nearest ancestor of `pid` (default: this process) that is a Codex CLI process."""
    from relay.host import procinfo

    return procinfo.nearest_ancestor(is_codex, pid)


# ---------------------------------------------------------------- its rollout: name and first line


def rollout_id(path: str) -> str | None:
    """The session id (lower case) in a rollout's file name, rollout-<timestamp>-<uuid>.jsonl."""
    base = os.path.basename(path)
    if not (base.startswith("rollout-") and base.endswith(".jsonl")):
        return None
    candidate = base[:-6][-36:]
    return candidate.lower() if is_uuid(candidate) else None


def session_meta(path: str) -> tuple[str | None, str | None]:
    """(id, cwd) from a Codex rollout's first non-blank line, a `session_meta` event.

    The id is as written (callers check that it is a UUID)."""
    from relay.host import transcripts

    line = transcripts.first_line(path)
    if line is None:
        return None, None
    record = transcripts.json_object(line)
    payload = record.get("payload") if record and record.get("type") == "session_meta" else None
    if not isinstance(payload, dict):
        return None, None
    found = payload.get("id") or payload.get("session_id")
    cwd = payload.get("cwd")
    return (found if isinstance(found, str) else None), (cwd if isinstance(cwd, str) and cwd else None)


def is_subagent(path: str | None) -> bool:
    """True when the rollout's first line says a sub-agent thread (its payload's `source` is an
    object, where a session's is a string such as "exec")."""
    from relay.host import transcripts

    line = transcripts.first_line(path) if path else None
    if line is None:
        return False
    from relay.util import jsonlite

    try:
        record = jsonlite.loads(line)
    except ValueError:
        return False
    payload = record.get("payload") if isinstance(record, dict) else None
    return isinstance(payload, dict) and isinstance(payload.get("source"), dict)


# ---------------------------------------------------------------- which session an MCP server serves


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
    from relay.host import procinfo

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
    _, cwd = session_meta(path)
    return cwd


_MY_CODEX: "list[ProcInfo | None]" = []


def _my_codex() -> "ProcInfo | None":
    """This process's Codex ancestor, looked up once: a process's ancestry does not change while
    its parent lives (and an MCP server ends with its client). Saves the `ps` walk per tool call
    on macOS."""
    if not _MY_CODEX:
        _MY_CODEX.append(codex_ancestor())
    return _MY_CODEX[0]


def _codex_of(pid: int | None) -> "ProcInfo | None":
    if os.environ.get("RELAY_NO_ANCESTRY"):
        return None
    return _my_codex() if pid is None else codex_ancestor(pid)


def from_ancestor(pid: int | None = None) -> CodexSession | None:
    """The session of the nearest Codex ancestor of `pid` (default: this process), if one is clear.

    When the Codex process holds several sessions open (sub-agents), the one that is not a
    sub-agent wins; if that still leaves more than one, the answer is None rather than a guess.
    """
    from relay.host import procinfo

    codex = _codex_of(pid)
    if codex is None:
        return None
    sessions = open_sessions(codex.pid)
    if len(sessions) > 1:
        sessions = {sid: path for sid, path in sessions.items() if not is_subagent(path)}
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
    from relay.host import procinfo

    session_id = id_from_meta(meta)
    if session_id is None:
        return from_ancestor(pid)
    codex = _codex_of(pid)
    cwd = None
    if codex is not None:
        path = open_sessions(codex.pid).get(session_id)
        cwd = _rollout_cwd(path) or procinfo.process_cwd(codex.pid)
    return CodexSession(session_id, cwd, "Codex tools/call _meta.sessionId")

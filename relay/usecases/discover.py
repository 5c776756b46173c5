"""Finding sessions that are running now, from the agent CLIs' own transcript stores.

Each agent CLI's adapter (relay.agents) lists and reads its own transcripts (bounded, read-only, no
symlinks); this module turns them into rows: one per session id, newest first, with its registration and whether
its CLI says it runs now.
"""

import time
from typing import Any

from relay.agents import adapter, adapters
from relay.domain.ids import is_session_id, require_uuid
from relay.usecases.fence import session_view
from relay.util.clock import iso_from_epoch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from relay.store.contract import RegistryAPI

DEFAULT_WITHIN_MIN = 60.0
DEFAULT_LIMIT = 50

Row = dict[str, Any]


def discover(
    registry: "RegistryAPI",
    within_min: float = DEFAULT_WITHIN_MIN,
    tool: str | None = None,
    exclude: str | None = None,
    cwd_first: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[Row]:
    """Sessions whose transcript changed in the last `within_min` minutes, newest first.

    One row per id (the newest file wins); rows whose cwd is `cwd_first` sort first. `live` is
    asked of the CLIs' own process state (relay.agents), never of the mtime: a finished
    `claude -p` wrote its transcript a second ago and is not running. Each CLI is asked once, and
    only when it has rows; a registered session whose SessionEnd was seen (`endedAt`) is not live.
    """
    now = time.time()
    since = now - within_min * 60
    exclude = require_uuid(exclude) if is_session_id(exclude) else None
    found: dict[str, Row] = {}

    def add(kind: str, session_id: str | None, cwd: str | None, mtime: float) -> None:
        if not is_session_id(session_id):
            return
        session_id = require_uuid(session_id)
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

    for agent in adapters():
        if tool not in (None, agent.NAME):
            continue
        for session_id, cwd, mtime in agent.recent_sessions(since):
            add(agent.NAME, session_id, cwd, mtime)

    rows = sorted(found.values(), key=lambda r: r["_mtime"], reverse=True)
    if cwd_first:
        rows.sort(key=lambda r: r["cwd"] != cwd_first)
    rows = rows[:limit]
    _mark_live(rows)
    for row in rows:
        del row["_mtime"], row["_ended"]
    return [session_view(row) for row in rows]


def _mark_live(rows: list[Row]) -> None:
    """Set each row's `live`, with one pass over each CLI's signals that has rows to answer."""
    tools = {row["tool"] for row in rows if not row["_ended"]}
    live = {tool: adapter(tool).live_sessions() for tool in tools}
    for row in rows:
        row["live"] = not row["_ended"] and row["id"] in live.get(row["tool"], ())

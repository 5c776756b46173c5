"""Which session is this process serving, and from which project dir?

The MCP server has to know "me" to send, take mail and whoami. Claude Code tells its MCP servers
through CLAUDE_CODE_SESSION_ID, Qwen Code through QWEN_CODE_SESSION_ID; Codex names it in each tool
call's `_meta`, and the Codex process that started the server holds that session's rollout file
open. Otherwise the project dir is found from the environment (values that are empty or still hold
an unexpanded `${...}` are ignored: Codex does not substitute variables) and the session is the one
whose hook last wrote that dir's marker.
"""

import os

from relay.domain.ids import SessionId, is_session_id, is_uuid, require_uuid
from relay.util.env import usable_env
from relay.util.values import Record

TYPE_CHECKING = False  # typing stays off the import path; only mypy reads this
if TYPE_CHECKING:
    from relay.store.contract import StoreAPI


class Identity(Record):
    """The session this process speaks for (None when unknown) and how that was decided."""

    __slots__ = ("project_dir", "session_id", "source", "tool")
    session_id: SessionId | None
    project_dir: str
    source: str
    tool: str | None

    def __init__(self, session_id: SessionId | None, project_dir: str, source: str, tool: str | None = None) -> None:
        self._fields(session_id=session_id, project_dir=project_dir, source=source, tool=tool)


def project_dir() -> str:
    """$RELAY_PROJECT_DIR, else $CLAUDE_PROJECT_DIR, else the current directory."""
    return usable_env("RELAY_PROJECT_DIR") or usable_env("CLAUDE_PROJECT_DIR") or os.getcwd()


def current_session(store: "StoreAPI", meta: object = None) -> Identity:
    """Decide which session this process serves.

    `meta` is the `params._meta` of the tool call being answered: Codex names its session there
    (see `relay.agents.codex`), and one Codex process can host several sessions over time.
    """
    from relay.agents import codex_session  # not the whole Codex adapter: most servers run outside Codex

    directory = project_dir()
    claimed = usable_env("CLAUDE_CODE_SESSION_ID")
    if is_uuid(claimed):
        return Identity(require_uuid(claimed), directory, "CLAUDE_CODE_SESSION_ID", "claude")
    claimed = usable_env("QWEN_CODE_SESSION_ID")  # Qwen Code starts its MCP servers with its session's id
    if is_uuid(claimed):
        return Identity(require_uuid(claimed), directory, "QWEN_CODE_SESSION_ID", "qwen")
    served = codex_session.resolve(meta)
    if served is not None:
        return Identity(require_uuid(served.session_id), served.cwd or directory, served.source, "codex")
    marked = store.marker(directory)
    if is_session_id(marked):
        return Identity(require_uuid(marked), directory, f"marker for {directory}")
    return Identity(None, directory, "none")

"""Names follow the project (docs/discovery.md, docs/cli.md): a session that starts in a project whose name is
held by an earlier session of the same CLI that no longer runs takes the name over, with the mail
sent to that name and not yet read.

The hook asks only when its start gave the session a numbered name (`api-2` in a project named
`api`, relay.domain.ids.numbered_in_dir): every other start, a renamed session's too, pays
nothing for this, not even this module's import. One function makes the move, so whatever must
happen at a rename (its journal entry) happens in one place.
"""

from relay.domain.ids import SessionId, dir_name, numbered_in_dir, require_uuid
from relay.store.files import Entry
from relay.util.values import Record

TYPE_CHECKING = False  # typing stays off the import path; only mypy reads this
if TYPE_CHECKING:
    from relay.store.contract import StoreAPI


class Renamed(Record):
    """A name that moved: from the session `holder` to `taker`, with the ids of the mail that moved."""

    __slots__ = ("holder", "moved", "name", "taker")
    name: str
    holder: SessionId
    taker: SessionId
    moved: tuple[str, ...]

    def __init__(self, name: str, holder: SessionId, taker: SessionId, moved: tuple[str, ...]) -> None:
        self._fields(name=name, holder=holder, taker=taker, moved=moved)


def follow_project(store: "StoreAPI", entry: Entry) -> Renamed | None:
    """Give the session `entry` (just started) its project's name when the session holding it ran
    in the same dir with the same CLI and is not running now (its SessionEnd was seen, or no
    process of its CLI runs it). The old session keeps its id and loses the name; the mail sent to
    the name and not yet taken moves along (relay.store.base.StoreBase.move_name), mail sent to
    its id stays. None when nothing moved."""
    if not numbered_in_dir(entry.get("name"), entry.get("dir")):
        return None
    directory, tool = str(entry["dir"]), entry.get("tool")
    holder = store.registry().resolve(dir_name(directory))
    if holder is None or holder.get("id") == entry["id"] or not isinstance(holder.get("name"), str):
        return None
    if holder.get("dir") != directory or holder.get("tool") != tool or _running(store, holder):
        return None
    name, old, new = str(holder["name"]), require_uuid(holder["id"]), require_uuid(entry["id"])
    moved = store.move_name(name, old, new)
    if moved is None:
        return None  # another start took it first
    from relay.usecases import journal

    journal.renamed(store, name, old, new, len(moved))
    return Renamed(name, old, new, tuple(moved))


def _running(store: "StoreAPI", holder: Entry) -> bool:
    """Is the holder running now? Not once its SessionEnd was seen; otherwise its CLI decides
    (relay.agents.is_live). A session on another host (a shared store) counts as running: this
    host cannot see its processes."""
    if holder.get("endedAt"):
        return False
    if not store.on_this_host(holder):
        return True
    from relay.agents import is_live

    return is_live(holder["id"], holder.get("tool"))

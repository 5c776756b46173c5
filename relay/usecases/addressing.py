"""Session operations shared by the hook, the MCP server and the CLI."""

from relay.domain.ids import (
    AGENT_CLIS,
    PREFIX_RULE,
    SessionId,
    is_id_prefix,
    is_session_id,
    is_uuid,
    looks_like_id,
    name_key,
    prefix_digits,
    require_uuid,
)
from relay.store.files import Entry, Message
from relay.usecases.launcher import launcher_command, shell_quote
from relay.util.errors import RelayError
from relay.util.textsafe import one_line

TYPE_CHECKING = False  # typing stays off the import path; only mypy reads this
if TYPE_CHECKING:
    from relay.store.contract import RegistryAPI, StoreAPI

_FIND_HINT = (
    "call `roster` (CLI: `relay list`) for registered sessions, or `discover` (CLI: `relay discover`) "
    "for running ones, and use a name or id from it"
)


def lookup(registry: "RegistryAPI", target: str) -> Entry | None:
    """The registered session `target` names: an exact id, then a name (as written, else ignoring
    case), then the one known id it starts (ids.is_id_prefix: at least 8 hex digits). The one rule
    for finding a registered session, so every face (CLI TO/WHO/--from, MCP `to`) agrees. A target
    that reads as an id or its start (ids.looks_like_id) is only ever an id: no name can take mail
    meant for an id prefix, even one planted in the registry before names were checked for it. An
    ambiguous prefix is an error listing the candidates."""
    if is_session_id(target):
        return registry.agents.get(target) or registry.agents.get(target.lower())
    if looks_like_id(target):
        return _by_prefix(registry, target) if is_id_prefix(target) else None
    return registry.resolve(target)


def by_name(target: str, entry: Entry) -> bool:
    """Was `entry` found by its name (not by its id or an id prefix)? Mail so addressed follows the
    name when another session of the project takes it over (relay.usecases.names)."""
    name = entry.get("name")
    return not looks_like_id(target) and isinstance(name, str) and name_key(name) == name_key(target)


def _by_prefix(registry: "RegistryAPI", prefix: str) -> Entry | None:
    """The registered session whose id starts with `prefix`; None when none does, an error when several do."""
    found = [_known(registry, i) for i in registry.ids_starting(prefix)]
    if len(found) > 1:
        shown = ", ".join(f"{e['id']} ({one_line(str(e.get('name') or 'no name'))})" for e in found[:10])
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        raise RelayError(
            f"the id prefix {prefix!r} matches {len(found)} sessions: {shown}{more}; give more of the id, or a name"
        )
    return found[0] if found else None


def _known(registry: "RegistryAPI", session_id: str) -> Entry:
    """The entry of a known id; one only a name is bound to (a 0.1 store) gets a stub entry."""
    entry = registry.agents.get(session_id)
    if entry is not None:
        return entry
    name = next((n for n, bound in registry.names.items() if bound == session_id), None)
    return {"id": session_id, "dir": None, "name": name, "tool": None}


def resolve(store: "StoreAPI", target: str) -> Entry:
    """A registered session (lookup: id, name, id prefix), then any whole id (a discovered session
    not yet registered)."""
    if not isinstance(target, str) or not target:
        raise RelayError("no recipient given: name a session or give its id (see roster / discover)")
    registry = store.registry()
    entry = lookup(registry, target)
    if entry is None and is_session_id(target):
        entry = {"id": require_uuid(target), "dir": None, "name": None, "tool": None}
    if entry is not None:
        return entry
    if is_id_prefix(target):
        raise RelayError(f"no registered session id starts with {target!r}: {_FIND_HINT}")
    guess = did_you_mean(registry, target)
    if prefix_digits(target):
        raise RelayError(
            f"no session named {target!r}{guess}, and it is too short for an id: {PREFIX_RULE}; {_FIND_HINT}"
        )
    raise RelayError(f"no session named {target!r}{guess}: {_FIND_HINT}")


def did_you_mean(registry: "RegistryAPI", target: str) -> str:
    """` (did you mean a, b?)` naming the registered names closest to a name that matched none
    (at most three, closest first), or "" when none is close."""
    import difflib  # only on this error's path

    names = sorted({str(n) for n in registry.names} | {str(e["name"]) for e in registry.entries() if e.get("name")})
    keys = {name_key(n): n for n in names}
    close = difflib.get_close_matches(name_key(target), list(keys), n=3, cutoff=0.6)
    close += [k for k in keys if len(target) >= 3 and name_key(target) in k and k not in close][: 3 - len(close)]
    if not close:
        return ""
    return f" (did you mean {', '.join(one_line(keys[k]) for k in close)}?)"


def session_id_of(store: "StoreAPI", value: object, what: str = "session id") -> SessionId:
    """The whole session id an id argument (`--id`, MCP `id`) stands for: a whole id as given
    (lower-cased; it need not be registered), or the one registered id it is a prefix of."""
    if is_session_id(value):
        return require_uuid(value, what)
    if is_id_prefix(value):
        entry = _by_prefix(store.registry(), value)
        if entry is None:
            raise RelayError(
                f"no registered session id starts with {value!r}: give the whole {what} "
                "(`relay discover` shows the ids of running sessions)"
            )
        return require_uuid(entry["id"], what)  # read back from the registry: checked as it enters
    if prefix_digits(value):
        raise RelayError(f"invalid {what} {value!r}: too short; {PREFIX_RULE}")
    return require_uuid(value, what)


def seen_by(store: "StoreAPI", message_id: object, viewer: str | None, with_state: bool = False) -> Message | None:
    """The receipt of a message (with `state` too: StoreAPI.message_state) when `viewer` may see it.

    `viewer` is a session id, or None for the user at the command line. A session sees only what
    it sent or received; the user sees everything in their store."""
    if not is_uuid(message_id):
        return None
    receipt = store.message_state(message_id) if with_state else store.receipt(message_id)
    if receipt is None:
        return None
    parties = (str(receipt.get("from")).lower(), str(receipt.get("to")).lower())
    return receipt if viewer is None or viewer.lower() in parties else None


def message_id_of(store: "StoreAPI", value: str, viewer: str | None) -> str:
    """The whole message id `value` stands for: a whole id (lower-cased), or the one message
    `viewer` may see (seen_by; None: the user, who sees all) whose id it starts.
    Anything else is returned as given, for the caller to refuse as an unknown message."""
    if is_uuid(value):
        return value.lower()
    if is_id_prefix(value):
        seen = [r for r in (seen_by(store, i, viewer) for i in store.receipt_ids(value)) if r is not None]
        if len(seen) > 1:
            shown = ", ".join(f"{r['id']} (to {one_line(str(r.get('toName') or r.get('to')))})" for r in seen[:10])
            more = f" and {len(seen) - 10} more" if len(seen) > 10 else ""
            raise RelayError(
                f"the id prefix {value!r} matches {len(seen)} messages: {shown}{more}; give more of the id"
            )
        if not seen:
            raise RelayError(
                f"no message id starts with {value!r}: use an id `send` returned (or one from your own mail)"
            )
        return str(seen[0]["id"])
    if prefix_digits(value):
        raise RelayError(f"invalid message id {value!r}: too short; {PREFIX_RULE}")
    return value


def wake_hint(entry: Entry) -> str:
    """The command that rings the doorbell of `entry`, every word shell-quoted.

    A name planted by hand with a line break or control character in it would still run as quoted,
    but could forge or garble the lines around it: such a session is named by its id instead.
    """
    launcher = launcher_command()
    name = entry.get("name")
    shown = name if isinstance(name, str) and name and one_line(name) == name else entry["id"]
    target = shell_quote(str(shown))
    if entry.get("dir") and entry.get("tool"):
        return f"If it is idle, wake it so it reads the mail: {launcher} wake {target}"
    return (
        f"If it is idle, wake it: {launcher} wake --id {shell_quote(str(entry['id']))} --dir <its project dir> "
        f"--tool <{'|'.join(AGENT_CLIS)}> (discover shows each session's tool)"
    )

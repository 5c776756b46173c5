"""`relay doctor`: the store's facts (relay.store.Store.facts) in words a person can act on.

Every finding is reported, never just the first; nothing is changed.
"""

import os

from relay.store import Store
from relay.textsafe import one_line

_PROBLEMS = {
    "foreign": "{path} belongs to uid {detail}, not to you: relay refuses it; remove it (or use a store of your own)",
    "loose-mode": "{path} is readable by others (mode {detail}); run: chmod go-rwx {path}",
    "shared-home": "{path} is writable by group or others (mode {detail}): relay refuses to use it and never "
    "chmods it; point AGENT_RELAY_HOME at a private directory",
    "symlink": "{path} is a symlink (to {detail}): relay never follows it; remove it",
    "not-regular": "{path} is a {detail}, not what the store expects: relay sets it aside or replaces it; remove it",
    "hard-links": "{path} has {detail} hard links: relay never writes through it; remove it",
    "unparseable": "{path}: {detail} does not parse; relay sets unreadable parts aside, inspect it",
    "quarantine": "kept in quarantine, inspect and remove by hand: {path}",
    "over-quota": "{path} holds {detail} bytes, more than RELAY_MAILBOX_MAX: sends to it are refused until it is read",
    "unreadable": "{path} cannot be read: {detail}",
    "lock-busy": "the store lock is held by another process right now (normal while one works)",
    "lock-error": "the store lock: {detail}",
}


def _words(kind: str, path: str, detail: str) -> tuple[str, str]:
    if kind == "no-store":
        return "ok", f"no store yet at {path} (it is created by the first session start)"
    if kind == "store":
        return "ok", f"store at {path}"
    if kind == "lock-free":
        return "ok", "the store lock is free"
    if kind == "registry":
        agents, names = detail.split()
        return "ok", f"registry: {agents} session(s), {names} name(s)"
    if kind == "unparseable" and detail == "registry":
        return "problem", f"registry.json does not parse ({path}); the next change will move it to quarantine/"
    if kind == "in-flight":
        session = os.path.basename(path).removesuffix(".jsonl")
        return "problem", f"{detail} message(s) for {session} in flight ({path}): the next take delivers them again"
    template = _PROBLEMS.get(kind, "{path}: {detail}")
    return "problem", template.format(path=path, detail=detail)


def report(store: Store) -> list[tuple[str, str]]:
    """(status, one line) for every fact; status is "ok" or "problem"."""
    return [(status, one_line(text)) for status, text in (_words(*fact) for fact in store.facts())]

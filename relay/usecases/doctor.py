"""`relay doctor`: the store's facts (relay.store.files.Store.facts) and the installation's checks
(relay.usecases.install_check) in words a person can act on.

Every line starts PASS, WARN or FAIL, says what was checked and, when it is not PASS, the command
that fixes it where one exists. Every finding is reported, never just the first; nothing is
changed. The exit code is 1 when any line is FAIL, else 0 (WARN lines do not fail).
"""

from __future__ import annotations

import os
from shlex import quote

from relay.util.textsafe import one_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from relay.agents.adapter_protocol import Finding
    from relay.store.contract import StoreAPI

_KINDS = {"fifo": "FIFO", "dir": "directory", "file": "plain file", "other": "socket or device"}

# code -> (status, words, fix); {path} and {detail} are filled in, {qpath} is the path shell-quoted.
_STORE_WORDS = {
    "foreign": ("FAIL", "{path} belongs to uid {detail}, not to you: relay refuses it (use a store of your own)", ""),
    "loose-mode": ("FAIL", "{path} is readable by others (mode {detail})", "chmod go-rwx {qpath}"),
    "shared-home": (
        "FAIL",
        "{path} is writable by group or others (mode {detail}): relay refuses to use it and never chmods it; "
        "point AGENT_RELAY_HOME at a private directory",
        "",
    ),
    "symlink": ("FAIL", "{path} is a symlink (to {detail}): relay never follows it", "rm -- {qpath}"),
    "not-regular": ("FAIL", "{path} is a {kind}, not what the store expects: relay sets it aside", "rm -r -- {qpath}"),
    "hard-links": ("FAIL", "{path} has {detail} hard links: relay never writes through it", "rm -- {qpath}"),
    "bad-registry": ("FAIL", "registry.json does not parse ({path}); the next change moves it to quarantine/", ""),
    "bad-entry": ("FAIL", "{path}: registry entry does not parse; the next change moves it to quarantine/", ""),
    "bad-marker": ("FAIL", "{path}: marker does not parse; relay ignores it", "rm -- {qpath}"),
    "bad-lines": ("FAIL", "{path}: {detail} line(s) does not parse; relay sets unreadable parts aside", ""),
    "quarantine": ("FAIL", "kept in quarantine, inspect it, then remove it: {path}", "rm -r -- {qpath}"),
    "over-quota": (
        "FAIL",
        "{path} holds {detail} bytes, more than RELAY_MAILBOX_MAX: sends to it are refused until it is read",
        "",
    ),
    "unreadable": ("FAIL", "{path} cannot be read: {detail}", ""),
    "set-aside": (
        "FAIL",
        "mail of session {detail} was set aside unread in the Redis list {path} (an entry larger than "
        "RELAY_MAILBOX_MAX, or not relay's): never delivered; inspect it, then remove it",
        'redis-cli -u "$AGENT_RELAY_URL" DEL {qpath}',
    ),
    "lock-busy": ("FAIL", "the store lock is held by another process right now (normal while one works)", ""),
    "lock-error": ("FAIL", "the store lock: {detail}", ""),
    "unreachable": ("FAIL", "the store at {path} does not answer: {detail}", ""),
    "cannot-create": (
        "FAIL",
        "the store cannot be created at {path}: {detail}; no session can register or get mail "
        "(point AGENT_RELAY_HOME at a writable directory of your own)",
        "",
    ),
    "not-writable": (
        "FAIL",
        "the store at {path} cannot be written: {detail}; no session can register or get mail "
        "(free disk space, or point AGENT_RELAY_HOME at a writable directory of your own)",
        "",
    ),
}


def store_finding(code: str, path: str, detail: str) -> Finding:
    """One store fact (relay.store.files.Store.facts) as (status, words, fix command or "")."""
    if code == "no-store":
        return "PASS", f"store: none yet at {path} (the first session start creates it)", ""
    if code == "store":
        return "PASS", f"store at {path}", ""
    if code == "lock-free":
        return "PASS", "store lock: free", ""
    if code == "registry":
        agents, names = detail.split()
        return "PASS", f"registry: {agents} session(s), {names} name(s)", ""
    if code == "in-flight":
        session = os.path.basename(path).removesuffix(".jsonl")
        return "FAIL", f"{detail} message(s) for {session} in flight ({path}): the next take delivers them again", ""
    status, words, fix = _STORE_WORDS.get(code, ("FAIL", "{path}: " + code + " {detail}", ""))
    fields = {"path": path, "detail": detail, "qpath": quote(path), "kind": _KINDS.get(detail, detail)}
    return status, words.format(**fields), fix.format(**fields)


def report(store: StoreAPI) -> list[Finding]:
    """Every finding, the store's first, then the installation's; each on one line."""
    from relay.usecases.install_check import installation

    found = [store_finding(*fact) for fact in store.facts()]
    found.extend(installation(store))
    return [(status, one_line(text), one_line(fix)) for status, text, fix in found]


def line(finding: Finding) -> str:
    """`STATUS  what was checked[; fix: COMMAND]`."""
    status, text, fix = finding
    return f"{status}  {text}" + (f"; fix: {fix}" if fix else "")


def main(store: StoreAPI) -> int:
    """Print every finding; 1 when any is FAIL, else 0."""
    findings = report(store)
    for finding in findings:
        print(line(finding))
    return 1 if any(status == "FAIL" for status, _, _ in findings) else 0

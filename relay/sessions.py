"""Session operations shared by the hook, the MCP server and the CLI."""

import os

from relay.errors import RelayError
from relay.ids import is_uuid
from relay.paths import usable_env
from relay.store import Entry, Store
from relay.textsafe import one_line


def resolve(store: Store, target: str) -> Entry:
    """A registered id, then a name, then any UUID (a discovered session not yet registered)."""
    if not isinstance(target, str) or not target:
        raise RelayError("no recipient given: name a session or give its id (see roster / discover)")
    registry = store.registry()
    entry = registry.resolve(target)
    if entry is None and is_uuid(target):
        canonical = target.lower()
        entry = registry.resolve(canonical) or {"id": canonical, "dir": None, "name": None, "tool": None}
    if entry is not None:
        return entry
    raise RelayError(
        f"no session named {target!r}: call `roster` (CLI: `relay list`) for registered sessions, "
        "or `discover` (CLI: `relay discover`) for running ones, and use a name or id from it"
    )


# Characters no POSIX shell (nor zsh, where a leading `=` or `%` means something) gives a meaning
# to, in any position of a word.
_SHELL_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@+:,./_-")


def shell_quote(word: str) -> str:
    """`word` as one POSIX shell word that stands for itself (the hook's path: no shlex, no re).

    Plain words stay as they are so hints read naturally; anything else goes in single quotes,
    inside which a shell expands nothing, with each `'` written as `'\\''`.
    """
    if word and all(ch in _SHELL_PLAIN for ch in word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def launcher_command() -> str:
    """How a user or model should invoke relay from a shell, for hints: ready to paste into a shell.

    The launcher exports RELAY_LAUNCHER; a plugin host exports CLAUDE_PLUGIN_ROOT; a source
    checkout has the launcher next to the package. A path with a space or `$` in it is quoted.
    """
    exported = usable_env("RELAY_LAUNCHER")
    if exported:
        return shell_quote(exported)
    for root in (usable_env("CLAUDE_PLUGIN_ROOT"), os.path.dirname(os.path.dirname(os.path.realpath(__file__)))):
        if root and os.access(os.path.join(root, "launcher"), os.X_OK):
            return shell_quote(os.path.join(root, "launcher"))
    return "relay"


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
        "--tool <claude|codex> (discover shows both)"
    )

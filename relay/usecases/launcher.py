"""How a person or a model should run relay from a shell: the command every hint names.

Hints are pasted into shells, so every word here comes out as one shell word that stands for
itself, without shlex or re (the hook renders hints).
"""

import posix

from relay.util import paths
from relay.util.env import launcher_path, usable_env

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
    exported = launcher_path()
    if exported:
        return shell_quote(exported)
    for root in (usable_env("CLAUDE_PLUGIN_ROOT"), _checkout()):
        if root and posix.access(paths.join(root, "launcher"), posix.X_OK):
            return shell_quote(paths.join(root, "launcher"))
    return "relay"


def _checkout() -> str:
    """The directory above the relay package: a source checkout keeps the launcher there."""
    here = paths.real_path(__file__)  # <checkout>/relay/usecases/launcher.py
    return paths.dirname(paths.dirname(paths.dirname(here)))

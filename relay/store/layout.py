"""Where the store lives and how session ids and dirs become file names.

Only names are computed here; `relay.store.files` is the one module that touches the files. Paths are
plain strings on the hook's path: importing pathlib costs milliseconds of every session start.
"""

from relay.util.env import env_value, home_dir


class _DashOthers(dict[int, int]):
    """A str.translate table keeping `kept` characters and turning every other one into '-'
    (what re.sub with a negated class did, without importing re on the hook's path)."""

    def __init__(self, kept: str) -> None:
        super().__init__((ord(ch), ord(ch)) for ch in kept)

    def __missing__(self, key: int) -> int:
        return ord("-")


_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_NOT_ALNUM = _DashOthers(_ALNUM)
_NOT_MAILBOX_SAFE = _DashOthers(_ALNUM + "._-")

# Most file systems cap a name at 255 bytes; longer encoded dirs are shortened with a hash so
# that two long dirs never share a marker. Shorter ones keep Claude Code's exact scheme.
_MAX_FILE_NAME = 200


def relay_home() -> str:
    """The store directory: $AGENT_RELAY_HOME, else $SESSION_RELAY_HOME, else ~/.agent-relay."""
    chosen = env_value("AGENT_RELAY_HOME") or env_value("SESSION_RELAY_HOME") or "~/.agent-relay"
    return expand_user(chosen)


def expand_user(path: str) -> str:
    """`os.path.expanduser(path)`, without importing os where $HOME says it: a leading `~` or `~/`
    becomes $HOME. `~user/...`, and `~` with no $HOME (the password database is asked then), are
    left to os.path."""
    if not path.startswith("~"):
        return path
    home = home_dir()
    if home is None or (len(path) > 1 and path[1] != "/"):
        import os.path

        return os.path.expanduser(path)
    return (home.rstrip("/") + path[1:]) or "/"


def marker_name(directory: str) -> str:
    """The marker file name for a project dir: every char outside [A-Za-z0-9] becomes '-'."""
    encoded = directory.translate(_NOT_ALNUM)
    if len(encoded) <= _MAX_FILE_NAME:
        return encoded
    return f"{encoded[: _MAX_FILE_NAME - 17]}-{dir_digest(directory)}"  # rare: only for very long dirs


def sha256_hex(text: str) -> str:
    """The sha256 of `text` (UTF-8, surrogates kept) in hex.

    CPython's own built-in sha256 (`_sha256`; `_sha2` from 3.12 on) gives the same digest as
    hashlib's, which loads OpenSSL first: ~10 M instructions, a third of an MCP server's start, for
    one short hash. hashlib stays the fallback for a Python built without them."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ImportError:
            from hashlib import sha256
    return sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def dir_digest(directory: str) -> str:
    """16 hex digits of the dir's sha256: what tells apart dirs whose encoded names collide."""
    return sha256_hex(directory)[:16]


def mailbox_name(session_id: str) -> str:
    """The mailbox file name for an id: every char outside [A-Za-z0-9._-] becomes '-'."""
    return session_id.translate(_NOT_MAILBOX_SAFE) + ".jsonl"

"""Reading relay's settings from the environment: one place that says what counts as set.

The environment is read from `posix.environ`, the dict `os.environ` wraps (writes through
`os.environ` land in it too): the hook's quick path and `--version` never import `os`, whose
import is a large share of a frozen start (docs/startup.md). Its bytes are decoded as `os.environ`
decodes them: the file system encoding with surrogateescape.
"""

import posix
import sys


def env_value(name: str) -> str | None:
    """An environment variable, with an empty value counting as unset."""
    value = posix.environ.get(name.encode(sys.getfilesystemencoding(), "surrogateescape"))
    return value.decode(sys.getfilesystemencoding(), "surrogateescape") if value else None


def home_dir() -> str | None:
    """$HOME as `os.path.expanduser` reads it (set but empty counts); None when it is not set."""
    value = posix.environ.get(b"HOME")
    return None if value is None else value.decode(sys.getfilesystemencoding(), "surrogateescape")


def usable_env(name: str) -> str | None:
    """An environment value that was really set: non-empty and with no unexpanded `${`.

    Codex passes `${VAR}` in a plugin's MCP config through literally, so such a value is unset.
    """
    value = env_value(name)
    if value is None or "${" in value:
        return None
    return value


def launcher_path() -> str | None:
    """The real path of the launcher relay was started through (RELAY_LAUNCHER); None without one.

    The launcher exports its path made absolute but, to start no process, leaves a symlinked
    directory named in it unresolved; relay resolves it here, only where it names the launcher.
    A relative value is not a launcher's (it would mean another file in every other directory)."""
    value = usable_env("RELAY_LAUNCHER")
    if value is None or not value.startswith("/"):
        return None
    from relay.util.paths import real_path

    return real_path(value)


def whole_number_env(name: str, default: int, least: int = 0) -> int:
    """Setting `name` as a whole number >= `least`; `default` when unset or empty.

    Every numeric setting is read here, so each refuses a bad value the same way: a one-line error
    naming it (a typo must not quietly become the default, or an unlimited budget)."""
    from relay.util.errors import RelayError

    raw = env_value(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 9 or int(raw) < least:
        raise RelayError(f"{name} must be a whole number >= {least}, not {raw[:40]!r}; fix or unset it")
    return int(raw)

"""Reading relay's settings from the environment: one place that says what counts as set."""

import os


def env_value(name: str) -> str | None:
    """An environment variable, with an empty value counting as unset."""
    value = os.environ.get(name)
    return value or None


def usable_env(name: str) -> str | None:
    """An environment value that was really set: non-empty and with no unexpanded `${`.

    Codex passes `${VAR}` in a plugin's MCP config through literally, so such a value is unset.
    """
    value = env_value(name)
    if value is None or "${" in value:
        return None
    return value

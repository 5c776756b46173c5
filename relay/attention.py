"""The attention policy (SPEC §12): which mail each hook event may put in front of a model.

A recipient chooses how often it wants to be interrupted: `now` (at every event, even between
tool calls), `turn` (the default: before a prompt, at the end of a turn and while idle; between
tool calls only mail its sender marked urgent) or `start` (only at session start and when it
calls `inbox` itself, as relay 0.1 did). This module is the one place that rule is written.
"""

from relay.errors import RelayError

DELIVER_MODES = ("now", "turn", "start")
DEFAULT_MODE = "turn"

# What an event may deliver: every message, only urgent ones, or nothing.
ALL = "all"
URGENT = "urgent"
NOTHING = "nothing"

# The hook events that deliver, and the rule for each mode. SessionStart always delivers (§5).
_RULES = {
    "SessionStart": {"now": ALL, "turn": ALL, "start": ALL},
    "UserPromptSubmit": {"now": ALL, "turn": ALL, "start": NOTHING},
    "PostToolUse": {"now": ALL, "turn": URGENT, "start": NOTHING},
    "Stop": {"now": ALL, "turn": ALL, "start": NOTHING},
    "Idle": {"now": ALL, "turn": ALL, "start": NOTHING},  # the asyncRewake watcher
}


def check_mode(mode: object) -> str:
    """`mode` when it is a deliver mode; otherwise a one-line error naming the choices."""
    if mode not in DELIVER_MODES:
        raise RelayError(f"invalid deliver mode {mode!r}: use one of {', '.join(DELIVER_MODES)}")
    return str(mode)


def mode_of(entry: dict[str, object] | None) -> str:
    """A registry entry's mode; an entry without one (or with a planted bad one) gets the default."""
    mode = (entry or {}).get("deliver")
    return mode if isinstance(mode, str) and mode in DELIVER_MODES else DEFAULT_MODE


def shown_with_mode(entry: dict[str, object]) -> dict[str, object]:
    """A copy of a registry entry with its effective `deliver` mode filled in, for whoami/roster/list."""
    return {**entry, "deliver": mode_of(entry)}


def selection(event: str, mode: str) -> str:
    """ALL, URGENT or NOTHING: what `event` delivers to a recipient in `mode`."""
    return _RULES[event][mode]


def is_urgent(message: dict[str, object]) -> bool:
    """Did the sender mark this message urgent? Only a JSON `true` counts."""
    return message.get("urgent") is True

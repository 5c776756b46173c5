"""The attention policy (docs/delivery.md): which mail each hook event may put in front of a model.

A recipient chooses how often it wants to be interrupted: `now` (at every event, even between
tool calls), `turn` (the default: before a prompt, at the end of a turn and while idle; between
tool calls only mail its sender marked urgent) or `start` (only at session start and when it
calls `inbox` itself, as relay 0.1 did). This module is the one place that rule is written.
"""

from relay.util.errors import RelayError

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


# How every prompt relay itself gives a session begins (the doorbell's and the Codex nudge's): a
# turn that starts with it was started by relay, not by the session's user.
NUDGE_OPENING = "You have session-relay mail."

# Turns relay may start by itself (idle watcher, Codex nudge) in a session whose user has not
# prompted it since: two agents answering each other would otherwise wake each other forever.
DEFAULT_MAX_AUTO_WAKES = 5


def max_auto_wakes() -> int:
    """RELAY_MAX_AUTO_WAKES, default 5; a value that is not a whole number >= 0 is an error."""
    from relay.util.env import whole_number_env

    return whole_number_env("RELAY_MAX_AUTO_WAKES", DEFAULT_MAX_AUTO_WAKES)


# Claude Code starts the turn of an asyncRewake hook that exited 2 (relay's idle watcher) with a
# prompt that begins with this and quotes the hook's stderr, which is relay's fenced mail text.
_REWAKE_OPENING = "<task-notification>"
MAIL_HEADER_END = "arrived from other sessions."  # the end of the fenced text's first line (relay.usecases.fence)


def started_by_relay(prompt: object) -> bool:
    """Is this UserPromptSubmit prompt one relay started (the doorbell's or the Codex nudge, or a
    Claude rewake carrying the watcher's mail), so not the user at the keyboard?"""
    if not isinstance(prompt, str):
        return False
    if prompt.startswith(NUDGE_OPENING):
        return True
    return prompt.startswith(_REWAKE_OPENING) and "session-relay: " in prompt and MAIL_HEADER_END in prompt

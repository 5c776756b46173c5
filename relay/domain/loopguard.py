"""How many wakes deep a message is (docs/wake.md): the loop guard's counter.

A person or a script starts at 0. `relay wake` runs its session with RELAY_HOPS=n+1, n being the
largest `hops` of the mail it rings for, and mail sent from inside that run (its MCP server, the
CLI) carries that count. Two agents that wake each other raise it every round until the doorbell
refuses at RELAY_MAX_HOPS, so the loop ends with a person instead of a bill.
"""

import os

from relay.util.errors import RelayError

DEFAULT_MAX_HOPS = 6


def whole_number(name: str, raw: str) -> int:
    """The value of setting `name` when `raw` is a whole number >= 0; else a one-line error."""
    if not raw.isdigit() or len(raw) > 9:
        raise RelayError(f"{name} must be a whole number >= 0, not {raw[:40]!r}; fix or unset it")
    return int(raw)


def inherited_hops() -> int:
    """RELAY_HOPS of this process (set by a wake), 0 when unset: what mail sent from here carries."""
    raw = os.environ.get("RELAY_HOPS") or ""
    return whole_number("RELAY_HOPS", raw) if raw else 0


def max_hops() -> int:
    """RELAY_MAX_HOPS, default 6: mail this many hops deep never rings the doorbell."""
    raw = os.environ.get("RELAY_MAX_HOPS") or ""
    return whole_number("RELAY_MAX_HOPS", raw) if raw else DEFAULT_MAX_HOPS


def hops_of(message: dict[str, object]) -> int:
    """A stored message's hops: 0 when missing or not a whole number (0.1 mail, a planted line)."""
    value = message.get("hops")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

"""How many wakes deep a message is (docs/wake.md): the loop guard's counter.

A person or a script starts at 0. `relay wake` runs its session with RELAY_HOPS=n+1, n being the
largest `hops` of the mail it rings for, and mail sent from inside that run (its MCP server, the
CLI) carries that count. Two agents that wake each other raise it every round until the doorbell
refuses at RELAY_MAX_HOPS, so the loop ends with a person instead of a bill.
"""

from relay.util.env import whole_number_env

DEFAULT_MAX_HOPS = 6


def inherited_hops() -> int:
    """RELAY_HOPS of this process (set by a wake), 0 when unset: what mail sent from here carries."""
    return whole_number_env("RELAY_HOPS", 0)


def hops_of(message: dict[str, object]) -> int:
    """A stored message's hops: 0 when missing or not a whole number (0.1 mail, a planted line)."""
    value = message.get("hops")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

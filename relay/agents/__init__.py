"""The agent CLIs relay serves, one adapter module each (relay.agents.claude, relay.agents.codex, ...).

An adapter holds all relay knows of one CLI: its hook events and answer shape, where its
transcripts are and what they say (discover, gc), how to tell a session runs now, how to resume
one headless (wake), how the plugin is installed in it and what `relay doctor` checks there
(relay.agents.adapter_protocol lists the names each must define). This registry maps a tool name
(relay.domain.ids.AGENT_CLIS) to its adapter and imports only the adapters a caller asks for: the
hook loads one, never all. A new CLI is one adapter module, its branch in `adapter` and its name
in AGENT_CLIS.
"""

from relay.domain.ids import AGENT_CLIS, is_session_id, require_uuid

TYPE_CHECKING = False  # typing stays off the hook's path
if TYPE_CHECKING:
    from collections.abc import Callable

    from relay.agents.adapter_protocol import Adapter


def adapter(tool: str) -> "Adapter":
    """The adapter module of `tool` (one of AGENT_CLIS); KeyError for any other name.

    Typed with the Adapter Protocol, so mypy checks each module returned here against it: a new
    CLI is one adapter module and one branch here."""
    if tool == "claude":
        from relay.agents import claude

        return claude
    if tool == "codex":
        from relay.agents import codex

        return codex
    if tool == "qwen":
        from relay.agents import qwen

        return qwen
    if tool == "gemini":
        from relay.agents import gemini

        return gemini
    if tool == "opencode":
        from relay.agents import opencode

        return opencode
    raise KeyError(tool)


# The CLIs whose adapters take relay.agents.hook_protocol's event table as it is, with no moment_of
# of their own (tests/agents hold the two together): the hook names their events without loading
# the whole adapter, which it needs only when it has mail to show.
_PLAIN_HOOK_PROTOCOL = ("claude", "codex")


def hook_moment(tool: str, event: dict) -> str | None:
    """relay's moment (SessionStart, ..., SessionEnd) of a hook event of `tool`'s CLI; None for an
    event the hook does not serve. An event without `hook_event_name` is a SessionStart (0.1's hook
    saw only those)."""
    raw = event.get("hook_event_name", "SessionStart")
    if tool in _PLAIN_HOOK_PROTOCOL:
        from relay.agents.hook_protocol import EVENTS

        return EVENTS.get(raw) if isinstance(raw, str) else None
    agent = adapter(tool)
    refine = getattr(agent, "moment_of", None)  # a CLI whose event names do not say the moment alone
    if refine is not None:
        return refine(event)
    return agent.EVENTS.get(raw) if isinstance(raw, str) else None


def answer_shape(tool: str) -> "tuple[str | None, Callable[[str, str], dict[str, object]]]":
    """What the hook needs of `tool`'s adapter to show mail: its ANSWER_NOTE and its hook_output.

    For Claude and Codex both come from relay.agents.hook_protocol, so delivering mail to them does
    not load the whole adapter (transcripts, liveness, doctor checks: ~1 M instructions of a start)."""
    if tool in _PLAIN_HOOK_PROTOCOL:
        from relay.agents import hook_protocol

        return hook_protocol.ANSWER_NOTES[tool], hook_protocol.hook_output
    agent = adapter(tool)
    return agent.ANSWER_NOTE, agent.hook_output


def adapters(tool: object = None) -> "list[Adapter]":
    """The adapter of `tool` when it names one, else every adapter."""
    return [adapter(name) for name in AGENT_CLIS if tool in (None, name) or tool not in AGENT_CLIS]


def live_sessions(tool: object = None) -> set[str]:
    """Ids (lower case) of every session running now: one pass over each CLI's signals, for
    callers that ask about many sessions at once (discover). `tool` as for `is_live`."""
    live: set[str] = set()
    for each in adapters(tool):
        live |= each.live_sessions()
    return live


def is_live(session_id: object, tool: object = None) -> bool:
    """Is `session_id` running now in its CLI? A `tool` of AGENT_CLIS asks only that CLI; any
    other value asks them all. Not a session id: never live."""
    if not is_session_id(session_id):
        return False
    canonical = require_uuid(session_id)
    return any(each.is_live(canonical) for each in adapters(tool))

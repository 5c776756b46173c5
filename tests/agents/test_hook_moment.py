"""relay.agents.hook_moment: the hook names an event's moment without loading a whole adapter for
the CLIs that speak Claude's hook protocol as it is, and gets the same answer as the adapter."""

import pytest

from relay import agents
from relay.agents import adapter, answer_shape, hook_moment, hook_protocol
from relay.domain.ids import AGENT_CLIS

EVENT_NAMES = sorted({name for tool in AGENT_CLIS for name in adapter(tool).EVENTS} | {"Notification", "", "x"})


def _adapters_answer(tool: str, event: dict) -> str | None:
    """The moment as the adapter module itself tells it (its moment_of, else its table)."""
    agent = adapter(tool)
    refine = getattr(agent, "moment_of", None)
    if refine is not None:
        return refine(event)
    raw = event.get("hook_event_name", "SessionStart")
    return agent.EVENTS.get(raw) if isinstance(raw, str) else None


@pytest.mark.parametrize("tool", AGENT_CLIS)
@pytest.mark.parametrize("name", [*EVENT_NAMES, None, 7])
def test_hook_moment_is_the_adapters_answer(tool, name):
    event = {"session_id": "x", "prompt": "hi", "submitted_prompt": "hi"}
    if name is not None:
        event["hook_event_name"] = name
    assert hook_moment(tool, event) == _adapters_answer(tool, event)


@pytest.mark.parametrize("tool", agents._PLAIN_HOOK_PROTOCOL)
def test_the_shortcut_holds_only_for_plain_hook_protocol_adapters(tool):
    """The CLIs the hook names without their adapter take Claude's table as it is, and refine nothing."""
    agent = adapter(tool)
    assert agent.EVENTS is hook_protocol.EVENTS
    assert getattr(agent, "moment_of", None) is None


@pytest.mark.parametrize("tool", AGENT_CLIS)
@pytest.mark.parametrize("moment", ["SessionStart", "UserPromptSubmit", "PostToolUse", "Stop"])
def test_the_answer_shape_is_the_adapters(tool, moment):
    """The hook shows mail with answer_shape, which spares Claude and Codex their adapters' import:
    the same note, and the same answer at every moment, as the adapter module itself gives."""
    note, hook_output = answer_shape(tool)
    agent = adapter(tool)
    assert note == agent.ANSWER_NOTE
    assert hook_output(moment, "some mail") == agent.hook_output(moment, "some mail")


def test_an_unknown_tool_is_refused():
    with pytest.raises(KeyError):
        hook_moment("vim", {"hook_event_name": "Stop"})

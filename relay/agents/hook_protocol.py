"""The hook protocol Claude Code defined and Codex adopted: event names and the answer's shape.

Both CLIs run `relay hook [codex]` with a JSON event on stdin whose `hook_event_name` is one of
relay's five moments under the same name, and both read the answer below from stdout. A CLI
with other names or another answer gets its own table in its adapter.

What each of these CLIs tells its model beside relay's `send` (ANSWER_NOTES) lives here too, so the
hook shows mail to them without loading either adapter (relay.agents.answer_shape).
"""

# The CLI's event name -> relay's moment; any other event is ignored.
EVENTS = {
    "SessionStart": "SessionStart",
    "UserPromptSubmit": "UserPromptSubmit",
    "PostToolUse": "PostToolUse",
    "Stop": "Stop",
    "SessionEnd": "SessionEnd",
}

# Each CLI's ANSWER_NOTE (relay.agents.adapter_protocol); its adapter takes it from here.
ANSWER_NOTES = {
    # Claude Code (2.1.224+) has a SendMessage tool of its own that reaches other Claude sessions only and
    # knows nothing of relay's replyTo: wherever a Claude model reads how to answer, it is told so.
    "claude": "Claude's SendMessage cannot reach non-Claude sessions",
    "codex": None,  # a Codex model has no messaging tool of its own to mistake for relay's `send`
}


def hook_output(moment: str, text: str) -> dict[str, object]:
    """The hook's answer that puts `text` in front of the model at `moment`.

    At Stop the turn goes on with the text as its next input (Codex refuses hookSpecificOutput there)."""
    if moment == "Stop":
        return {"decision": "block", "reason": text}
    return {"hookSpecificOutput": {"hookEventName": moment, "additionalContext": text}}

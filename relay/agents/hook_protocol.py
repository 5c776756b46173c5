"""The hook protocol Claude Code defined and Codex adopted: event names and the answer's shape.

Both CLIs run `relay hook [codex]` with a JSON event on stdin whose `hook_event_name` is one of
relay's five moments under the same name, and both read the answer below from stdout. A CLI
with other names or another answer gets its own table in its adapter.
"""

# The CLI's event name -> relay's moment; any other event is ignored.
EVENTS = {
    "SessionStart": "SessionStart",
    "UserPromptSubmit": "UserPromptSubmit",
    "PostToolUse": "PostToolUse",
    "Stop": "Stop",
    "SessionEnd": "SessionEnd",
}


def hook_output(moment: str, text: str) -> dict[str, object]:
    """The hook's answer that puts `text` in front of the model at `moment`.

    At Stop the turn goes on with the text as its next input (Codex refuses hookSpecificOutput there)."""
    if moment == "Stop":
        return {"decision": "block", "reason": text}
    return {"hookSpecificOutput": {"hookEventName": moment, "additionalContext": text}}

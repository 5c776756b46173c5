"""What the benchmark scripts share: the checkout, the variables a sandbox must not inherit, the
store's mailbox line format and the client side of one MCP session.

Written here once so that a change to the store's format or the MCP handshake is made in one
place, and every benchmark keeps measuring what relay really reads.
"""

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# relay's own variables and the CLIs' hints: a sandbox sets what it needs and inherits none.
SCRUBBED = (
    "AGENT_RELAY_HOME",
    "SESSION_RELAY_HOME",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_PROJECT_DIR",
    "CLAUDE_PLUGIN_ROOT",
    "CLAUDE_CONFIG_DIR",
    "CLAUDECODE",
    "CODEX_HOME",
    "RELAY_PROJECT_DIR",
    "RELAY_CLAUDE_PROJECTS",
    "RELAY_CODEX_SESSIONS",
    "RELAY_LAUNCHER",
    "RELAY_TEST_KILL_AT",
)

# One MCP session's client side: initialize, initialized, tools/list and a whoami call.
MCP_FRAMES = (
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "0"},
        },
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}},
)


def mailbox_line(message_id: str, ts: str, recipient: str, body: str, from_name: str) -> str:
    """One queued message as the store writes it in `mailbox/<recipient>.jsonl` (sent from the CLI,
    so no sender id), with its newline."""
    message = {
        "id": message_id,
        "ts": ts,
        "from": None,
        "fromName": from_name,
        "to": recipient,
        "toName": None,
        "body": body,
    }
    return json.dumps(message) + "\n"

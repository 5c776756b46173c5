"""The names of the tools relay's MCP server offers, known below the server itself.

`relay doctor` must know them to tell whether a woken Claude may call each one (a permission rule
names a tool), without importing the server's schemas from the layer above. The server's tool list
(relay.faces.mcp_tools.TOOLS) must name exactly these, in this order; a test holds the two together.
"""

# The server's name in the plugin's MCP configs (.mcp.json, .codex-mcp.json).
SERVER = "bus"
TOOL_NAMES = ("whoami", "register", "roster", "send", "inbox", "discover", "status", "wait")

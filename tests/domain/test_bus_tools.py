"""The bus's tool names are written twice: in the server's schemas (relay.faces.mcp_tools) and
below it, for `relay doctor` (relay.domain.bus_tools). They must stay the same list."""

from relay.domain.bus_tools import TOOL_NAMES
from relay.faces.mcp_tools import TOOLS


def test_the_server_offers_exactly_the_tools_doctor_checks() -> None:
    assert tuple(tool["name"] for tool in TOOLS) == TOOL_NAMES

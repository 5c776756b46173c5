"""The store owner's ceilings for the loop guard: `<home>/config.json` (docs/wake.md).

An agent controls its own environment, so a limit read only from RELAY_MAX_HOPS or RELAY_WAKE_BUDGET
is a limit the agent can lift. A number in this file is a ceiling the environment can only lower.
The file is read like every store file: the user's own regular file, never through a symlink.
"""

import os

from relay.store import fileio
from relay.store.layout import relay_home
from relay.util import jsonlite
from relay.util.errors import RelayError

CONFIG_FILE = "config.json"
# The settings config.json may hold, each a whole number >= 0, and the variable it caps.
CEILINGS = {"maxHops": "RELAY_MAX_HOPS", "wakeBudget": "RELAY_WAKE_BUDGET"}


def owner_limits() -> dict[str, int]:
    """The ceilings config.json sets (none when there is no such file); a one-line error naming the
    file when it is not the user's plain file or not a JSON object of whole numbers."""
    path = os.path.join(relay_home(), CONFIG_FILE)
    try:
        raw = fileio.read_file(path)
    except RelayError as err:
        raise RelayError(f"session-relay: cannot use {path}: {err}") from None
    if raw is None:
        return {}
    try:
        data = jsonlite.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise RelayError(f"session-relay: {path} is not a JSON object; fix it (keys: {', '.join(CEILINGS)})")
    limits = {}
    for key, value in data.items():
        if key not in CEILINGS:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RelayError(f"session-relay: {key} in {path} must be a whole number >= 0, not {value!r}")
        limits[key] = value
    return limits

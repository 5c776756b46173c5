"""The error types every face turns into one clear line.

A `RelayError` is a problem the user can fix (unknown session, missing dir, lock busy): exit 1.
A `UsageError` is a malformed command line: exit 2. `NoReply` (exit 4) ends a wait that ran out of
time, `WakeRefused` (exit 75, EX_TEMPFAIL) a doorbell that must not ring now. All carry a message
that says what is wrong and what to do, so the CLI, the hook and the MCP server can show it as-is.
"""


class RelayError(Exception):
    """A failure the user can act on; `str(err)` is the whole one-line message."""

    exit_code = 1


class UsageError(RelayError):
    """The command line itself is wrong."""

    exit_code = 2


class NoReply(RelayError):
    """A bounded wait for a reply ran out of time; the question stays queued."""

    exit_code = 4


class WakeRefused(RelayError):
    """The doorbell would harm the session or feed a loop (docs/wake.md); retrying later may work."""

    exit_code = 75


def describe_os_error(err: OSError) -> str:
    """One line for an OSError that got past the store's own checks (which raise RelayError)."""
    where = f" ({err.filename})" if err.filename else ""
    return f"session-relay: {err.strerror or err}{where}"


class StoreUnreachable(RelayError):
    """The shared store did not answer (a stall, a restart, the network): worth retrying later, as
    a long-lived server does; a short command reports it and exits 1 like any RelayError."""


class LockBusy(RelayError):
    """Another process held the store lock past the deadline."""

    def __init__(self) -> None:
        super().__init__("session-relay: lock busy (held > 3s)")

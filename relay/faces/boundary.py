"""What every face shares at its edge: one way to write a line on stderr, one way an error ends
a run, and the switch a face that lives for a whole session flips.

A face (the CLI, the hook, the watcher, the MCP server, the doorbell server) reports each problem
as one terminal-safe line: a RelayError says what to do and carries its exit code, an OSError is
described in words, and anything unexpected leaves its traceback in `<home>/error.log`, which the
line names. No contextlib here: the hook's start-up must not pay for it.
"""

import sys

from relay.util.errors import RelayError, describe_os_error


def say(prefix: str, message: str) -> None:
    """`prefix message` as one line on stderr; the message may quote planted paths or names, so it
    is made terminal-safe first."""
    from relay.util.textsafe import one_line

    sys.stderr.write(f"{prefix}{one_line(message)}\n")
    sys.stderr.flush()


def described(where: str, err: Exception) -> tuple[str, int]:
    """The one line and exit code an error ends a run of face `where` with (1 unless a RelayError
    carries its own); an unexpected error's traceback goes to the error log."""
    if isinstance(err, RelayError):
        return str(err), err.exit_code
    if isinstance(err, OSError):
        return describe_os_error(err), 1
    from relay.store import errorlog

    return errorlog.unexpected(where, err), 1


def long_lived() -> None:
    """A face that runs for a whole session: the garbage collector `python -m relay` turned off
    for start-up goes back on. What start-up allocated (modules, functions, their constants: tens of
    thousands of objects, none of them garbage) all sits in the youngest generation then, so the
    first collection, due within the MCP server's first requests, walked every one of them: they
    are frozen out of the collector's reach first."""
    import gc

    gc.freeze()
    gc.enable()

"""A test-only switch that kills the process at a named step of a store operation.

Crash-safety tests set RELAY_TEST_KILL_AT=<step> to prove that dying at exactly that point
loses nothing. When the variable is unset (always, outside tests) `checkpoint` does nothing.
"""

import posix

from relay.util.env import env_value

_KILL_AT = env_value("RELAY_TEST_KILL_AT")


def checkpoint(step: str) -> None:
    """Die with SIGKILL, as a crash would, when the test switch names this step; with
    `<step>:TERM` send this process SIGTERM instead (as a hook stopping the idle watcher does)."""
    if _KILL_AT is not None and _KILL_AT.partition(":TERM")[0] == step:
        import signal  # only under the test switch: every store operation imports this module

        posix.kill(posix.getpid(), signal.SIGTERM if _KILL_AT.endswith(":TERM") else signal.SIGKILL)

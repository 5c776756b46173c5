"""`python -m relay` (and the frozen binary) run the same entry point as the `relay` script.

When the command is done nothing is left to clean up (files are closed, locks are released by
the kernel), so the process ends at once instead of tearing the interpreter down: a few
milliseconds saved at every hook run. For the same reason the cyclic garbage collector is off
while a short-lived command starts (its imports allocate thousands of objects, none garbage);
the long-lived faces (bus, demo, the idle watcher) turn it back on (relay.faces.cli.long_lived).
It ends through `posix._exit`: `os` is not imported by `--version` or by the hook with nothing to
deliver, and importing it costs a frozen start millions of instructions (docs/startup.md).
"""

import gc

gc.disable()

import posix  # noqa: E402 - after gc.disable(), on purpose
import sys  # noqa: E402

from relay.faces.cli import main  # noqa: E402

code = main()
try:
    sys.stdout.flush()
    sys.stderr.flush()
except OSError:
    pass  # a reader that went away: nothing more to tell it
posix._exit(code)

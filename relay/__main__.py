"""`python -m relay` (and the frozen binary) run the same entry point as the `relay` script.

When the command is done nothing is left to clean up (files are closed, locks are released by
the kernel), so the process ends at once instead of tearing the interpreter down: a few
milliseconds saved at every session start, where the hook runs.
"""

import contextlib
import os
import sys

from relay.cli import main

code = main()
with contextlib.suppress(OSError):
    sys.stdout.flush()
    sys.stderr.flush()
os._exit(code)

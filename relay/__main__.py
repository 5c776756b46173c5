"""`python -m relay` (and the frozen binary) run the same entry point as the `relay` script.

When the command is done nothing is left to clean up (files are closed, locks are released by
the kernel), so the process ends at once instead of tearing the interpreter down: a few
milliseconds saved at every session start, where the hook runs.
"""

import os
import sys

from relay.cli import main

code = main()
try:
    sys.stdout.flush()
    sys.stderr.flush()
except OSError:
    pass  # a reader that went away: nothing more to tell it
os._exit(code)

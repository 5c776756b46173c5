"""`python -m relay` runs the same entry point as the `relay` console script."""

from relay.cli import main

raise SystemExit(main())

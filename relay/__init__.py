"""session-relay: a local message bus between AI coding sessions."""

__version__ = "0.2.0"

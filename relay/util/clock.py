"""Timestamps in the store's format: ISO-8601 UTC with milliseconds, e.g. 2026-07-01T12:34:56.789Z."""

import time


def iso_from_epoch(seconds: float) -> str:
    """Format a Unix time the way every store field does."""
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def now_iso() -> str:
    """The current time in store format."""
    return iso_from_epoch(time.time())

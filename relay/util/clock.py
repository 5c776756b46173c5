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


def epoch_from_iso(text: object) -> float | None:
    """The Unix time of a store timestamp (as now_iso writes it); None for anything else. Parsed by
    hand: time.strptime imports re, which every short-lived command would pay for."""
    if not isinstance(text, str) or len(text) < 20 or text[19] not in ".Z" or text[-1] != "Z":
        return None
    parts = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
    if (text[4], text[7], text[10], text[13], text[16]) != ("-", "-", "T", ":", ":") or not all(
        p.isdigit() and p.isascii() for p in parts
    ):
        return None
    year, month, day, hour, minute, second = (int(p) for p in parts)
    fraction = text[20:-1]
    if not 1 <= month <= 12 or not (fraction.isdigit() or not fraction):
        return None
    # days since 1970-01-01 of a proleptic Gregorian date (the civil-from-days inverse)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second + (float("0." + fraction) if fraction else 0.0)


def ago(seconds: float) -> str:
    """A span of time back from now, in the largest whole unit: `42s ago`, `5m ago`, `3h ago`, `2d ago`."""
    span = max(0, int(seconds))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if span >= size:
            return f"{span // size}{unit} ago"
    return f"{span}s ago"

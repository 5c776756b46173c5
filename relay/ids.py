"""Validation of session ids and session names.

Both CLIs mint UUIDs. An id that reaches a file name or another program's argv must be one, so
that a planted, flag-shaped id such as `--config=evil` can never become an option of `claude`.
"""

import os
import re

from relay.errors import RelayError

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

MAX_NAME_CHARS = 64


def is_uuid(value: object) -> bool:
    """True for a canonical 8-4-4-4-12 hex UUID string (any version, any case)."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def new_uuid4() -> str:
    """A random (version 4) UUID, without importing the uuid module on the hot path."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def require_uuid(value: object, what: str = "session id") -> str:
    """The id in canonical (lower-case) form when `value` is a UUID, else an error saying what a
    valid id looks like. Both CLIs mint lower-case ids; an upper-case spelling of the same id must
    reach the same mailbox, so every id is lowered where it enters."""
    if not is_uuid(value):
        raise RelayError(
            f"invalid {what} {value!r}: expected a UUID like "
            "123e4567-e89b-12d3-a456-426614174000 (see `relay discover` or `relay list`)"
        )
    return value.lower()  # type: ignore[union-attr]


def check_name(name: object) -> str:
    """Return a usable session name or raise.

    Names are shown to models and typed on command lines, so they must be short, printable, must
    not look like a flag, and must not look like an id (targets resolve ids before names).
    """
    if not isinstance(name, str) or not name.strip():
        raise RelayError("invalid name: give a non-empty name such as `backend`")
    if name != name.strip():
        raise RelayError(f"invalid name {name!r}: no leading or trailing spaces")
    if len(name) > MAX_NAME_CHARS:
        raise RelayError(f"invalid name: at most {MAX_NAME_CHARS} characters")
    if any(ch < " " or ch == "\x7f" for ch in name):
        raise RelayError(f"invalid name {name!r}: no control characters or newlines")
    if name.startswith("-"):
        raise RelayError(f"invalid name {name!r}: a name cannot start with '-'")
    if is_uuid(name):
        raise RelayError(f"invalid name {name!r}: a name cannot be a UUID")
    return name

"""JSON in and out for the faces that talk to other programs (the MCP server, CLI output).

Both ways go through relay.util.jsonlite (CPython's C scanner and encoder: the MCP server starts with
every session, and importing orjson would cost more than all its frames take to parse), with the
standard library for the rare rest: NaN and Infinity refused, over-long integers read, text that
is not valid Unicode escaped instead of crashing.

Output never carries a character that drives a terminal or reorders text (C1 controls, DEL, bidi
overrides, Unicode line separators): the encoder already escapes C0 controls such as ESC and BEL, and
the rest are written as `\\uXXXX` escapes too. That is the same JSON value, byte for byte safe to
print, whoever planted the text.
"""

from __future__ import annotations

from relay.util import jsonlite
from relay.util.textsafe import one_line

TYPE_CHECKING = False  # only mypy needs these; a short-lived command must not import them
if TYPE_CHECKING:
    import re
    from typing import Any


class TooDeep(ValueError):
    """Valid-looking JSON nested deeper than either parser goes (about 1000 levels)."""


_UNSAFE: list[re.Pattern[bytes]] = []


def _unsafe_pattern() -> re.Pattern[bytes]:
    """Built on first need (a few ms, and re's import): most output is plain ASCII and never needs it."""
    if _UNSAFE:
        return _UNSAFE[0]
    import re

    # Every non-ASCII character that one_line() would escape, as its UTF-8 bytes, plus DEL. Inside
    # JSON text such characters can only stand in a string, where an escape means the same thing.
    # One one_line() call over all candidates, split back apart (an escape never holds a space).
    candidates = [chr(code) for code in range(0x7F, 0x2070)]
    shown = one_line(" ".join(candidates)).split(" ")
    unsafe = [ch for ch, out in zip(candidates, shown, strict=True) if ch != out]
    _UNSAFE.append(re.compile(b"|".join(re.escape(ch.encode()) for ch in unsafe)))
    return _UNSAFE[0]


def _escape(match: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(match.group().decode())


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _int(text: str) -> int | float:
    """A JSON integer; one too long for Python's int conversion limit becomes +-inf (like 1e400)."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def decode(line: bytes) -> Any:
    """Parse one JSON text, with CPython's C scanner (relay.util.jsonlite: nothing to import) first.

    What it refuses, and any text that could hold NaN or Infinity (not JSON, though Python's parsers
    take them), goes to the standard parser, which refuses those constants and reads an integer
    beyond Python's digit limit as +-inf, so valid JSON always gets an answer. ValueError when
    `line` is not JSON; TooDeep when it nests deeper than the parsers go.
    """
    try:
        if b"NaN" not in line and b"Infinity" not in line:
            try:
                return jsonlite.loads(line)
            except ValueError:
                pass  # not JSON, or an integer too long for int(): the standard parser decides
        import json

        return json.loads(line, parse_constant=_no_constants, parse_int=_int)
    except RecursionError:
        raise TooDeep("nested too deep to read") from None


def encode(value: Any, pretty: bool = False) -> bytes:
    """Serialise one JSON value (CPython's C encoder: no import to pay for); text that is not valid
    Unicode (lone surrogates) is \\u-escaped, and so is every character that could drive a terminal."""
    try:
        data = jsonlite.dumps(value, 2 if pretty else None).encode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError):
        import json

        # allow_nan=False: ValueError rather than `Infinity`, which is not JSON
        data = json.dumps(value, ensure_ascii=True, indent=2 if pretty else None, allow_nan=False).encode()
    if data.isascii() and b"\x7f" not in data:
        return data
    return _unsafe_pattern().sub(_escape, data)

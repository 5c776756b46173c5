"""JSON in and out for the faces that talk to other programs (the MCP server, CLI output).

orjson is fast but stricter than JSON itself: it refuses lone surrogate escapes and numbers beyond
double range on input, and lone surrogates on output. Those rare cases fall back to the standard
library, so valid JSON always gets an answer and odd text is escaped instead of crashing.

Output never carries a character that drives a terminal or reorders text (C1 controls, DEL, bidi
overrides, Unicode line separators): orjson already escapes C0 controls such as ESC and BEL, and
the rest are written as `\\uXXXX` escapes too. That is the same JSON value, byte for byte safe to
print, whoever planted the text.
"""

import functools
import re
from typing import Any

import orjson

from relay.textsafe import one_line


class TooDeep(ValueError):
    """Valid-looking JSON nested deeper than either parser goes (about 1000 levels)."""


@functools.cache
def _unsafe_pattern() -> re.Pattern[bytes]:
    """Built on first need (a few ms): most output is plain ASCII and never needs it."""
    # Every non-ASCII character that one_line() would escape, as its UTF-8 bytes, plus DEL. Inside
    # JSON text such characters can only stand in a string, where an escape means the same thing.
    # One one_line() call over all candidates, split back apart (an escape never holds a space).
    candidates = [chr(code) for code in range(0x7F, 0x2070)]
    shown = one_line(" ".join(candidates)).split(" ")
    unsafe = [ch for ch, out in zip(candidates, shown, strict=True) if ch != out]
    return re.compile(b"|".join(re.escape(ch.encode()) for ch in unsafe))


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
    """Parse one JSON text. orjson refuses some valid JSON (lone surrogate escapes, numbers beyond
    double range); the standard parser takes those, so such a request still gets its answer.

    ValueError when `line` is not JSON (NaN and Infinity are not); TooDeep when it nests too deep.
    """
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as strict:
        import json

        try:
            return json.loads(line, parse_constant=_no_constants, parse_int=_int)
        except RecursionError:
            raise TooDeep(f"nested too deep to read ({strict})") from None


def encode(value: Any, pretty: bool = False) -> bytes:
    """Serialise one JSON value; text orjson cannot encode (lone surrogates) is \\u-escaped, and so is
    every character that could drive a terminal."""
    try:
        data = orjson.dumps(value, option=orjson.OPT_INDENT_2 if pretty else 0)
    except TypeError:
        import json

        # allow_nan=False: ValueError rather than `Infinity`, which is not JSON
        data = json.dumps(value, ensure_ascii=True, indent=2 if pretty else None, allow_nan=False).encode()
    if data.isascii() and b"\x7f" not in data:
        return data
    return _unsafe_pattern().sub(_escape, data)

"""JSON in and out, on CPython's C scanner and encoder alone: the one JSON module of relay.

The `json` package imports `re` (and with it `enum`, `functools`, `collections`) before it parses
a byte, which is most of a hook's start-up; its C accelerator `_json` imports nothing. `loads` and
`dumps` give the same results as `json.loads` and `json.dumps(..., ensure_ascii=False)` with the
separators relay uses (tests/util/test_jsonlite.py compares them on generated documents): the store and
the hook use them. orjson is used in one place only, relay.host.transcripts, which parses whole
agent transcripts for `discover`: there its parse is about a third faster (measured: 93 us against
133 us for a 40 KB transcript line), which pays for its import (about 35 ms) over megabytes of
lines. Everywhere else that import would cost more than all the JSON a run parses, so it is not
imported here (the MCP server starts with every session; the hook with every prompt).

`decode` and `encode` are for what faces exchange with other programs (the MCP server, CLI output):
`decode` refuses NaN and Infinity and reads over-long integers, and `encode` escapes text that is
not valid Unicode and every character that drives a terminal or reorders text (C1 controls, DEL,
bidi overrides, Unicode line separators) as `\\uXXXX`: the same JSON value, byte for byte safe to
print, whoever planted the text. The standard `json` package is imported only for the rare rest.
"""

import _json

TYPE_CHECKING = False  # only mypy needs these; a short-lived command must not import them
if TYPE_CHECKING:
    import re
    from typing import Any

_WHITESPACE = " \t\n\r"


def _constant(name: str) -> float:
    return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


class _Context:
    """What `_json.make_scanner` reads from a decoder: json.JSONDecoder's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # it reads a decoder's attributes only


def loads(data: bytes | str) -> object:
    """Parse one JSON document (bytes must be UTF-8); ValueError when it is not one."""
    if isinstance(data, bytes | bytearray):
        text = bytes(data[3:] if data[:3] == b"\xef\xbb\xbf" else data).decode("utf-8")  # a BOM: as json.loads
    else:
        text = data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except (StopIteration, SystemError):
        # The C scanner builds its error from json.decoder only when that is already imported
        # (SystemError otherwise): a bad document is parsed again by json for the exact error.
        return _json_loads(text)
    if text[end:].strip(_WHITESPACE):
        return _json_loads(text)
    return value


def _json_loads(text: str) -> object:
    import json

    return json.loads(text)


def _refuse(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# allow_nan=False: NaN and infinities are not JSON; ValueError rather than writing `NaN`.
_encode = _json.make_encoder({}, _refuse, _json.encode_basestring, None, ":", ",", False, False, False)


def dumps(value: object, indent: int | None = None) -> str:
    """`value` as JSON text, non-ASCII kept as is: compact, or with `indent` spaces per level
    (the `indent=N` layout of json.dumps, `": "` after keys)."""
    if indent is None:
        return "".join(_encode(value, 0))
    return _pretty(value, indent, 0)


def _pretty(value: object, indent: int, level: int) -> str:
    inner = "\n" + " " * (indent * (level + 1))
    if isinstance(value, dict) and value:
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"keys must be str, not {type(key).__name__}")
            items.append(f"{_json.encode_basestring(key)}: {_pretty(item, indent, level + 1)}")
        return "{" + inner + ("," + inner).join(items) + "\n" + " " * (indent * level) + "}"
    if isinstance(value, list | tuple) and value:
        parts = [_pretty(item, indent, level + 1) for item in value]
        return "[" + inner + ("," + inner).join(parts) + "\n" + " " * (indent * level) + "]"
    return "".join(_encode(value, 0))


class TooDeep(ValueError):
    """Valid-looking JSON nested deeper than either parser goes (about 1000 levels)."""


_UNSAFE: "list[re.Pattern[bytes]]" = []


def _unsafe_pattern() -> "re.Pattern[bytes]":
    """Built on first need (a few ms, and re's import): most output is plain ASCII and never needs it."""
    if _UNSAFE:
        return _UNSAFE[0]
    import re

    from relay.util.textsafe import one_line

    # Every non-ASCII character that one_line() would escape, as its UTF-8 bytes, plus DEL. Inside
    # JSON text such characters can only stand in a string, where an escape means the same thing.
    # One one_line() call over all candidates, split back apart (an escape never holds a space).
    candidates = [chr(code) for code in range(0x7F, 0x2070)]
    shown = one_line(" ".join(candidates)).split(" ")
    unsafe = [ch for ch, out in zip(candidates, shown, strict=True) if ch != out]
    _UNSAFE.append(re.compile(b"|".join(re.escape(ch.encode()) for ch in unsafe)))
    return _UNSAFE[0]


def _escape(match: "re.Match[bytes]") -> bytes:
    return b"\\u%04x" % ord(match.group().decode())


def _no_constants(name: str) -> "Any":
    raise ValueError(f"{name} is not JSON")


def _int(text: str) -> int | float:
    """A JSON integer; one too long for Python's int conversion limit becomes +-inf (like 1e400)."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def decode(line: bytes) -> "Any":
    """Parse one JSON text, with CPython's C scanner (nothing to import) first.

    What it refuses, and any text that could hold NaN or Infinity (not JSON, though Python's parsers
    take them), goes to the standard parser, which refuses those constants and reads an integer
    beyond Python's digit limit as +-inf, so valid JSON always gets an answer. ValueError when
    `line` is not JSON; TooDeep when it nests deeper than the parsers go.
    """
    try:
        if b"NaN" not in line and b"Infinity" not in line:
            try:
                return loads(line)
            except ValueError:
                pass  # not JSON, or an integer too long for int(): the standard parser decides
        import json

        return json.loads(line, parse_constant=_no_constants, parse_int=_int)
    except RecursionError:
        raise TooDeep("nested too deep to read") from None


def encode(value: "Any", pretty: bool = False) -> bytes:
    """Serialise one JSON value (CPython's C encoder: no import to pay for); text that is not valid
    Unicode (lone surrogates) is \\u-escaped, and so is every character that could drive a terminal."""
    try:
        data = dumps(value, 2 if pretty else None).encode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError):
        import json

        # allow_nan=False: ValueError rather than `Infinity`, which is not JSON
        data = json.dumps(value, ensure_ascii=True, indent=2 if pretty else None, allow_nan=False).encode()
    if data.isascii() and b"\x7f" not in data:
        return data
    return _unsafe_pattern().sub(_escape, data)

"""JSON for the short-lived paths (hook, store, CLI), on CPython's C scanner and encoder alone.

The `json` package imports `re` (and with it `enum`, `functools`, `collections`) before it parses
a byte, which is most of a hook's start-up; its C accelerator `_json` imports nothing. `loads` and
`dumps` here give the same results as `json.loads` and `json.dumps(..., ensure_ascii=False)` with
the separators relay uses (tests/test_jsonlite.py compares them on generated documents).
"""

import _json

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

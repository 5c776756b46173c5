"""JSON in and out for the faces that talk to other programs (the MCP server, CLI output).

orjson is fast but stricter than JSON itself: it refuses lone surrogate escapes and numbers beyond
double range on input, and lone surrogates on output. Those rare cases fall back to the standard
library, so valid JSON always gets an answer and odd text is escaped instead of crashing.
"""

from typing import Any

import orjson


def decode(line: bytes) -> Any:
    """Parse one JSON text. orjson refuses some valid JSON (lone surrogate escapes, numbers beyond
    double range); the standard parser takes those, so such a request still gets its answer."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as strict:
        import json

        try:
            return json.loads(line)
        except RecursionError:
            raise strict from None  # nesting too deep for either parser: not worth answering


def encode(value: Any, pretty: bool = False) -> bytes:
    """Serialise one JSON value; text orjson cannot encode (lone surrogates) is \\u-escaped."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 if pretty else 0)
    except TypeError:
        import json

        return json.dumps(value, ensure_ascii=True, indent=2 if pretty else None).encode()

"""Checking tool arguments against the JSON Schemas the MCP server advertises.

Only the keywords the tools use are supported: type, properties, required,
additionalProperties (false), enum, minLength, maxLength, pattern, exclusiveMinimum, minimum,
maximum. The first
violation is reported with the field's name so the model can fix its call.
"""

from __future__ import annotations

from relay.domain.ids import NAME_CHARS, NAME_PATTERN, SESSION_ID_PATTERN, UUID_PATTERN, is_session_id, is_uuid

TYPE_CHECKING = False  # only mypy needs typing: the MCP server starts with every session
if TYPE_CHECKING:
    from typing import Any

    Schema = dict[str, Any]


def _is_name(value: str) -> bool:
    return 0 < len(value) <= 64 and all(ch in NAME_CHARS for ch in value)


# The patterns relay's own schemas advertise, checked by the code that checks them everywhere else
# (tests/faces/test_mcp_schema.py holds each equal to its pattern); any other pattern goes to `re`.
_KNOWN_PATTERNS = {UUID_PATTERN: is_uuid, SESSION_ID_PATTERN: is_session_id, NAME_PATTERN: _is_name}

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
}


def _type_ok(value: Any, expected: str) -> bool:
    if expected in ("number", "integer") and isinstance(value, bool):
        return False  # JSON true is not a number, although Python's bool is an int
    return isinstance(value, _TYPES[expected])


def violation(schema: Schema, arguments: Any) -> str | None:
    """A one-line description of the first violation, or None when `arguments` fit."""
    if not isinstance(arguments, dict):
        return "arguments must be a JSON object"
    properties: dict[str, Schema] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in arguments:
            return f"`{name}` is required"
    if schema.get("additionalProperties") is False:
        for name in arguments:
            if name not in properties:
                allowed = ", ".join(f"`{p}`" for p in properties) or "none"
                return f"unknown argument `{name}` (allowed: {allowed})"
    for name, value in arguments.items():
        problem = _field_violation(properties[name], value) if name in properties else None
        if problem:
            return f"`{name}` {problem}"
    return None


def _matches(pattern: str, value: str) -> bool:
    """JSON Schema `pattern` (a search, where a final `$` means the end of the string)."""
    known = _KNOWN_PATTERNS.get(pattern)
    if known is not None:
        return known(value)
    import re

    # In Python a final `$` also matches before a final newline: JSON Schema's means the very end.
    return re.search(re.sub(r"(?<!\\)\$$", r"\\Z", pattern), value) is not None


def _field_violation(spec: Schema, value: Any) -> str | None:
    expected = spec.get("type")
    if expected and not _type_ok(value, expected):
        return f"must be a {expected}, got {type(value).__name__ if value is not None else 'null'}"
    if "enum" in spec and value not in spec["enum"]:
        return "must be one of " + ", ".join(repr(v) for v in spec["enum"])
    if isinstance(value, str):
        if len(value) < spec.get("minLength", 0):
            return (
                "must not be empty" if spec.get("minLength") == 1 else f"needs at least {spec['minLength']} characters"
            )
        if "maxLength" in spec and len(value) > spec["maxLength"]:
            return f"must be at most {spec['maxLength']} characters"
        if "pattern" in spec and not _matches(spec["pattern"], value):
            return f"does not match {spec['pattern']}"
    if "exclusiveMinimum" in spec and isinstance(value, int | float) and not value > spec["exclusiveMinimum"]:
        return f"must be greater than {spec['exclusiveMinimum']}"
    if "minimum" in spec and isinstance(value, int | float) and not value >= spec["minimum"]:
        return f"must be at least {spec['minimum']}"
    if "maximum" in spec and isinstance(value, int | float) and not value <= spec["maximum"]:
        return f"must be at most {spec['maximum']}"
    return None

"""relay.faces.mcp_schema.violation: tool arguments checked against the advertised JSON Schemas."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.domain.ids import AGENT_CLIS
from relay.faces.mcp_schema import violation
from relay.faces.mcp_tools import TOOLS

SCHEMAS = {tool["name"]: tool["inputSchema"] for tool in TOOLS}
UUID = "123e4567-e89b-12d3-a456-426614174000"

KITCHEN_SINK = {
    "type": "object",
    "properties": {
        "s": {"type": "string", "minLength": 2, "maxLength": 4},
        "one": {"type": "string", "minLength": 1},
        "n": {"type": "number", "exclusiveMinimum": 0},
        "i": {"type": "integer"},
        "b": {"type": "boolean"},
        "o": {"type": "object"},
        "e": {"type": "string", "enum": ["a", "b"]},
        "p": {"type": "string", "pattern": "^ab+c$"},
        "free": {},
    },
    "required": ["s"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("whoami", {}),
        ("roster", {}),
        ("inbox", {}),
        ("register", {"name": "backend"}),
        ("register", {"name": "x" * 64, "id": UUID, "dir": "/a/b"}),
        ("register", {"name": "n", "id": UUID.upper()}),
        ("send", {"to": "bob", "body": "hi"}),
        ("send", {"to": UUID, "body": "ü ✓ \n"}),
        ("discover", {}),
        ("discover", {"activeWithinMin": 1}),
        ("discover", {"activeWithinMin": 0.001}),
        ("discover", {"activeWithinMin": 1e300, "tool": "codex"}),
        ("discover", {"tool": "claude"}),
    ],
)
def test_good_arguments_fit(tool, arguments):
    assert violation(SCHEMAS[tool], arguments) is None


@pytest.mark.parametrize("arguments", [None, [], "x", 1, True, [{"name": "x"}]])
def test_arguments_must_be_an_object(arguments):
    for schema in SCHEMAS.values():
        assert violation(schema, arguments) == "arguments must be a JSON object"


@pytest.mark.parametrize(
    ("tool", "arguments", "field"),
    [
        ("register", {}, "name"),
        ("register", {"id": UUID}, "name"),
        ("send", {}, "to"),
        ("send", {"body": "x"}, "to"),
        ("send", {"to": "x"}, "body"),
    ],
)
def test_missing_required_names_the_field(tool, arguments, field):
    assert violation(SCHEMAS[tool], arguments) == f"`{field}` is required"


@pytest.mark.parametrize("tool", ["whoami", "roster", "inbox"])
def test_no_argument_tools_refuse_any_argument(tool):
    problem = violation(SCHEMAS[tool], {"x": 1})
    assert problem == "unknown argument `x` (allowed: none)"


def test_unknown_argument_lists_the_allowed_ones():
    assert violation(SCHEMAS["send"], {"to": "a", "body": "b", "cc": "c"}) == (
        "unknown argument `cc` (allowed: `to`, `body`, `replyTo`, `expectsReply`, `urgent`)"
    )
    assert "`since`" in violation(SCHEMAS["discover"], {"since": 1})


def test_required_is_reported_before_unknown_and_types():
    assert violation(SCHEMAS["send"], {"to": 5, "cc": 1}) == "`body` is required"
    assert violation(SCHEMAS["send"], {"to": 5, "body": "x", "cc": 1}).startswith("unknown argument `cc`")


@pytest.mark.parametrize(
    ("value", "got"),
    [(5, "int"), (1.5, "float"), (True, "bool"), (None, "null"), ([], "list"), ({}, "dict")],
)
def test_wrong_type_for_a_string(value, got):
    assert violation(SCHEMAS["send"], {"to": value, "body": "b"}) == f"`to` must be a string, got {got}"


@pytest.mark.parametrize("value", [True, False])
def test_bool_is_not_a_number_or_an_integer(value):
    assert violation(SCHEMAS["discover"], {"activeWithinMin": value}) == "`activeWithinMin` must be a number, got bool"
    assert violation(KITCHEN_SINK, {"s": "ab", "i": value}) == "`i` must be a integer, got bool"
    assert violation(KITCHEN_SINK, {"s": "ab", "b": value}) is None


def test_number_integer_boolean_object_types():
    assert violation(KITCHEN_SINK, {"s": "ab", "n": 3}) is None
    assert violation(KITCHEN_SINK, {"s": "ab", "n": 3.25}) is None
    assert violation(KITCHEN_SINK, {"s": "ab", "n": "3"}) == "`n` must be a number, got str"
    assert violation(KITCHEN_SINK, {"s": "ab", "n": None}) == "`n` must be a number, got null"
    assert violation(KITCHEN_SINK, {"s": "ab", "i": 3}) is None
    assert violation(KITCHEN_SINK, {"s": "ab", "i": 3.5}) == "`i` must be a integer, got float"
    assert violation(KITCHEN_SINK, {"s": "ab", "b": 0}) == "`b` must be a boolean, got int"
    assert violation(KITCHEN_SINK, {"s": "ab", "o": {"x": [1]}}) is None
    assert violation(KITCHEN_SINK, {"s": "ab", "o": []}) == "`o` must be a object, got list"
    assert violation(KITCHEN_SINK, {"s": "ab", "free": object()}) is None  # no constraints


@pytest.mark.parametrize("value", [0, -1, -0.5, 0.0, -1e300])
def test_exclusive_minimum(value):
    assert violation(SCHEMAS["discover"], {"activeWithinMin": value}) == "`activeWithinMin` must be greater than 0"


@pytest.mark.parametrize("value", ["aider", "Claude", "", "claude ", None, 1])
def test_enum_violation_names_the_field(value):
    problem = violation(SCHEMAS["discover"], {"tool": value})
    assert problem is not None and problem.startswith("`tool` ")
    if isinstance(value, str):
        assert problem == "`tool` must be one of " + ", ".join(repr(tool) for tool in AGENT_CLIS)


def test_string_lengths():
    assert violation(KITCHEN_SINK, {"s": "a"}) == "`s` needs at least 2 characters"
    assert violation(KITCHEN_SINK, {"s": "abcde"}) == "`s` must be at most 4 characters"
    assert violation(KITCHEN_SINK, {"s": "abcd"}) is None
    assert violation(KITCHEN_SINK, {"s": "ab", "one": ""}) == "`one` must not be empty"
    assert violation(SCHEMAS["register"], {"name": ""}) == "`name` must not be empty"
    assert violation(SCHEMAS["register"], {"name": "x" * 65}) == "`name` must be at most 64 characters"
    assert violation(KITCHEN_SINK, {"s": "éééé"}) is None  # characters, not bytes
    assert violation(SCHEMAS["register"], {"name": "x" * 64}) is None
    assert violation(SCHEMAS["register"], {"name": "é"}) == "`name` does not match ^[A-Za-z0-9._-]{1,64}$"
    assert violation(SCHEMAS["send"], {"to": "", "body": "b"}) == "`to` must not be empty"
    assert violation(SCHEMAS["send"], {"to": "a", "body": ""}) == "`body` must not be empty"


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-a-uuid",
        "--config=evil",
        UUID[:-1],
        UUID + "0",
        "x" + UUID,
        UUID.replace("-", ""),
        "{" + UUID + "}",
        "",
        UUID.replace("a", "g"),
    ],
)
def test_pattern_violation_names_the_field(bad_id):
    problem = violation(SCHEMAS["register"], {"name": "x", "id": bad_id})
    assert problem is not None and problem.startswith("`id` "), problem


@pytest.mark.parametrize("bad_id", [UUID + "\n", UUID + "\r\n", "\n" + UUID])
def test_pattern_anchors_do_not_allow_a_trailing_newline(bad_id):
    """JSON Schema patterns are ECMA-262: `$` is the end of the string, not 'before a final newline'."""
    problem = violation(SCHEMAS["register"], {"name": "x", "id": bad_id})
    assert problem is not None and problem.startswith("`id` "), problem


def test_pattern_is_a_search_not_a_full_match_without_anchors():
    assert violation(KITCHEN_SINK, {"s": "ab", "p": "abbbc"}) is None
    assert violation(KITCHEN_SINK, {"s": "ab", "p": "ac"}) == "`p` does not match ^ab+c$"
    unanchored = {"type": "object", "properties": {"q": {"type": "string", "pattern": "b+"}}}
    assert violation(unanchored, {"q": "abba"}) is None
    assert violation(unanchored, {"q": "aaa"}) == "`q` does not match b+"


def test_first_violation_is_reported_in_argument_order():
    assert violation(KITCHEN_SINK, {"s": "ab", "n": "x", "i": "y"}) == "`n` must be a number, got str"
    assert violation(KITCHEN_SINK, {"i": "y", "s": "ab", "n": "x"}) == "`i` must be a integer, got str"


def test_without_additional_properties_false_extras_are_allowed():
    open_schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert violation(open_schema, {"a": "x", "b": 1}) is None
    assert violation({}, {"anything": [1, 2]}) is None


def test_every_advertised_schema_only_uses_supported_keywords():
    supported_top = {"type", "properties", "required", "additionalProperties"}
    supported_field = {
        "type",
        "enum",
        "minLength",
        "maxLength",
        "pattern",
        "exclusiveMinimum",
        "minimum",
        "maximum",
        "default",
        "description",
    }
    for name, schema in SCHEMAS.items():
        assert set(schema) <= supported_top, name
        assert schema["additionalProperties"] is False, name
        for field in schema["properties"].values():
            assert set(field) <= supported_field, (name, field)
        assert set(schema.get("required", [])) <= set(schema["properties"]), name


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0123456789abcdefABCDEFg-._ \n/é", max_size=70),
        st.uuids().map(str),
        st.uuids().map(lambda u: str(u).upper() + "\n"),
        st.text(alphabet="abcXYZ019._-", min_size=60, max_size=70),
    )
)
def test_known_patterns_are_checked_exactly_as_their_regex(value):
    """relay's own patterns (ids, names) are checked without importing re: the same answers."""
    import re

    from relay.domain.ids import NAME_PATTERN, UUID_PATTERN
    from relay.faces.mcp_schema import _matches

    for pattern in (UUID_PATTERN, NAME_PATTERN):
        expected = re.search(re.sub(r"(?<!\\)\$$", r"\\Z", pattern), value) is not None
        assert _matches(pattern, value) == expected, (pattern, value)

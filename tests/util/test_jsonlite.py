"""relay.util.jsonlite must read and write exactly what the json module does, for the store's documents."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.util import jsonlite

# JSON values as the store holds them: any text (lone surrogates aside), ints, finite floats.
text = st.text(st.characters(blacklist_categories=("Cs",)))
leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text
documents = st.recursive(leaf, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5))


@settings(max_examples=400, deadline=None)
@given(documents)
def test_dumps_matches_json_compact_and_indented(value):
    assert jsonlite.dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert jsonlite.dumps(value, 2) == json.dumps(value, ensure_ascii=False, indent=2, separators=(",", ": "))


@settings(max_examples=400, deadline=None)
@given(documents, st.sampled_from(["", " ", "\n", " \t\r\n"]))
def test_loads_matches_json(value, space):
    encoded = space + json.dumps(value, ensure_ascii=False) + space
    assert jsonlite.loads(encoded) == value
    assert jsonlite.loads(encoded.encode("utf-8")) == value


@pytest.mark.parametrize(
    "bad",
    [b"", b" ", b"{", b'{"a": 1', b'{"a":', b'"abc', b"[1,]", b"{} x", b"\xff", b"nul", b'{"a" 1}', "{\ud800}"],
)
def test_bad_documents_raise_value_error_like_json(bad):
    with pytest.raises(ValueError) as ours:
        jsonlite.loads(bad)
    with pytest.raises(ValueError) as theirs:
        json.loads(bad)
    assert type(ours.value) is type(theirs.value)


def test_constants_bom_and_unserialisable():
    assert math.isnan(jsonlite.loads("NaN"))  # as json.loads
    assert jsonlite.loads(b"\xef\xbb\xbf[1]") == [1]
    with pytest.raises(TypeError):
        jsonlite.dumps({"x": object()})
    with pytest.raises(TypeError):
        jsonlite.dumps({1: 2}, 2)

"""The msgpack/cty value codec: round trips, unknowns, refined unknowns, type errors."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokendrop_provider.plugin import codec
from tokendrop_provider.types import BOOL, NUMBER, STRING, UNKNOWN, ListOf, MapOf, ObjectOf, SetOf, Unknown

OBJ = ObjectOf((("name", STRING), ("count", NUMBER), ("on", BOOL), ("tags", MapOf(STRING)),
                ("ids", SetOf(STRING)), ("nested", ObjectOf((("path", STRING), ("field", STRING))))))

strings = st.text(max_size=40)
values = st.fixed_dictionaries({
    "name": st.none() | strings,
    "count": st.none() | st.integers(min_value=-(2**62), max_value=2**62),
    "on": st.none() | st.booleans(),
    "tags": st.none() | st.dictionaries(strings, strings, max_size=5),
    "ids": st.none() | st.lists(strings, max_size=5, unique=True),
    "nested": st.none() | st.fixed_dictionaries({"path": st.none() | strings, "field": st.none() | strings}),
})


@given(values)
def test_round_trip(value):
    decoded = codec.decode(codec.encode(value, OBJ))
    expected = dict(value)
    if expected["tags"] is not None:
        expected["tags"] = dict(sorted(expected["tags"].items()))
    assert decoded == expected


@given(st.sampled_from(["name", "count", "on", "tags", "ids", "nested"]))
def test_unknown_anywhere_round_trips(attribute):
    value = {k: None for k, _ in OBJ.attributes}
    value[attribute] = UNKNOWN
    decoded = codec.decode(codec.encode(value, OBJ))
    assert isinstance(decoded[attribute], Unknown)


def test_unknown_is_extension_zero():
    raw = codec.encode(UNKNOWN, STRING)
    assert msgpack.unpackb(raw) == msgpack.ExtType(0, b"\x00")


def test_refined_unknown_round_trips_unchanged():
    refinements = msgpack.packb({1: True, 2: "apool-"})  # "not null", "has prefix" in cty's encoding
    raw = msgpack.packb(msgpack.ExtType(12, refinements))
    decoded = codec.decode(raw)
    assert isinstance(decoded, Unknown) and decoded.refinements == refinements
    assert codec.encode(decoded, STRING) == raw


def test_objects_carry_every_attribute_in_sorted_order():
    raw = codec.encode({"name": "x"}, ObjectOf((("zeta", STRING), ("name", STRING))))
    assert list(msgpack.unpackb(raw).items()) == [("name", "x"), ("zeta", None)]


def test_python_sets_are_encoded_in_a_stable_order():
    assert codec.encode({"b", "a", "c"}, SetOf(STRING)) == codec.encode(["a", "b", "c"], SetOf(STRING))


def test_integral_floats_become_integers():
    assert msgpack.unpackb(codec.encode(3.0, NUMBER)) == 3
    assert isinstance(msgpack.unpackb(codec.encode(3.0, NUMBER)), int)


@pytest.mark.parametrize(("value", "cty_type", "message"), [
    ({"nope": 1}, ObjectOf((("name", STRING),)), "unexpected attributes"),
    ("x", NUMBER, "expected a number"),
    (True, STRING, "expected a string"),
    ("x", ListOf(STRING), "expected a list"),
    ({"a": 1}, ObjectOf((("a", BOOL),)), "a: expected a bool"),
    ({"nested": {"path": True}}, OBJ, r"^nested\.path: expected a string"),
    ([{"a": True}, {"a": 1}], ListOf(ObjectOf((("a", BOOL),))), r"^\[1\]\.a: expected a bool"),
    ({"tags": {"k": None, "x": []}}, OBJ, r"^tags\.x: expected a string, got list"),
])
def test_type_errors_name_the_path(value, cty_type, message):
    with pytest.raises(codec.CodecError, match=message):
        codec.encode(value, cty_type)


def test_empty_payload_is_null():
    assert codec.decode(b"") is None


def test_unsupported_extension_is_an_error():
    with pytest.raises(codec.CodecError):
        codec.decode(msgpack.packb(msgpack.ExtType(7, b"x")))


def test_an_encoder_is_reusable_and_independent_of_earlier_values():
    encoder = codec.Encoder(OBJ)
    first = {"name": "a", "ids": ["x"], "tags": {"k": "v"}}
    with pytest.raises(codec.CodecError):
        encoder({"name": [1]})
    assert encoder(first) == encoder(dict(first)) == codec.encode(first, OBJ)

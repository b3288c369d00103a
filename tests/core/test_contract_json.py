"""Contract values as JSON (core.contract_json): what the node, the SDK and the CLI all read and write."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.contract_json import JsonTooLarge, value_from_json, value_to_json
from core.contract_values import INT_MAX, INT_MIN, MAX_DEPTH

scalars = (
    st.integers(INT_MIN, INT_MAX)
    | st.binary(max_size=64)
    | st.text(max_size=32)
    | st.booleans()
    | st.none()
    | st.sampled_from(["0x", "0x01", "0Xab", "0xnothex"])
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=20)


@given(values)
def test_every_value_survives_json_and_back(value: Any) -> None:
    written = value_to_json(value)
    assert value_from_json(json.loads(json.dumps(written))) == value


def test_the_forms_are_the_documented_ones() -> None:
    assert value_to_json([1, b"\x01\xff", "text", "0xabc", True, None]) == [
        1,
        "0x01ff",
        "text",
        {"str": "0xabc"},
        True,
        None,
    ]
    assert value_to_json({"a": b"\x02"}) == [["a", "0x02"]]  # a map (a call's result only): [key, value] pairs
    assert value_from_json("0X0a") == b"\n"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("0x123", "even number of digits"),
        ("0xzz", "non-hex"),
        ("\ud800", "lone surrogate"),
        ({"str": 1}, "contract values are"),
        (1.5, "contract values are"),
        ({"a": 1}, "contract values are"),
    ],
)
def test_what_is_not_a_value_is_refused_saying_why(bad: Any, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        value_from_json(bad)


def test_arguments_nest_at_most_as_deep_as_values_may() -> None:
    nested: list[Any] = []
    for _ in range(MAX_DEPTH - 1):
        nested = [nested]
    assert value_from_json(nested) == nested
    with pytest.raises(ValueError, match="nest at most"):
        value_from_json([nested])


def test_a_bounded_result_stops_at_its_bounds_and_only_then() -> None:
    rows = [b"x" * 1000] * 10  # about 20 kB of JSON
    assert value_to_json(rows, max_bytes=30_000) == ["0x" + "78" * 1000] * 10
    with pytest.raises(JsonTooLarge, match="over 10,000 bytes"):
        value_to_json(rows, max_bytes=10_000)
    deep: list[Any] = [1]
    for _ in range(5):
        deep = [deep]
    assert value_to_json(deep, max_bytes=10_000, max_depth=6) == deep
    with pytest.raises(JsonTooLarge, match="nests more than 5 lists deep"):
        value_to_json(deep, max_bytes=10_000, max_depth=5)
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(JsonTooLarge):
        value_to_json(cyclic, max_bytes=10_000)

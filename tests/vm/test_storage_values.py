"""Stored values on the hot path give exactly what core/contract_values.py gives, and a value handed
out is the caller's own: changing it (a list in it included) never changes a later read."""

from __future__ import annotations

from typing import Any

import pytest

from core.contract_values import decode_stored, encode_value
from vm import storage_values
from vm.storage_values import flat_wire, pack, stored_value

VALUES: list[Any] = [
    None,
    True,
    7,
    -(1 << 63),
    (1 << 64) - 1,
    1 << 70,
    b"\x01" * 20,
    "tuned",
    [],
    [2, 10_000, 3600, 0, 0, [], 1_000, ["base"], True],  # an offer: nested
    [1, 0, 5],  # a licence: flat
    [[b"\x02" * 20, 5_000], [b"\x03" * 20, 3_000]],  # owners: nested
    [[[1]], [2, [3, [4]]]],
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_a_stored_value_reads_back_as_the_general_decoder_gives_it(value: Any) -> None:
    raw = encode_value(value)
    for _ in range(2):  # decoded, then from the cache
        assert stored_value(raw) == decode_stored(raw) == value


@pytest.mark.parametrize("value", [v for v in VALUES if type(v) is list], ids=repr)
def test_a_read_value_is_a_copy_down_to_its_innermost_list(value: Any) -> None:
    raw = encode_value(value)
    first = stored_value(raw)
    _scribble(first)
    assert stored_value(raw) == value


def _scribble(value: list[Any]) -> None:
    for item in value:
        if type(item) is list:
            _scribble(item)
    value.append("changed")


def test_a_value_larger_than_the_cache_takes_is_decoded_each_time_and_still_copied() -> None:
    value = [[b"\x00" * 600], [b"\x01" * 600]]
    raw = encode_value(value)
    assert len(raw) > storage_values.CACHE_MAX_BYTES
    first = stored_value(raw)
    first[0].append(1)
    assert stored_value(raw) == value
    assert raw not in storage_values._DECODED


@pytest.mark.parametrize("value", [v for v in VALUES if v != 1 << 70], ids=repr)
def test_the_short_encoding_is_the_general_one(value: Any) -> None:
    wire = flat_wire(value)
    if wire is not None:
        assert pack(wire) == encode_value(value)

"""Stored values on the hot path give exactly what core/contract_values.py gives, and a value handed
out is the caller's own: changing it (a list in it included) never changes a later read."""

from __future__ import annotations

from typing import Any

import pytest

from core.contract_values import decode_stored, encode_value
from vm import storage_values
from vm.bytecode import StorageKind
from vm.contracts import CallContext, ContractHost, storage_key
from vm.state import StateView
from vm.storage_values import flat_wire, list_key, pack, stored_value

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


KEYS: list[Any] = [
    ["tuned", 1],
    ["tuned", 2, b"\x05" * 20],
    [1],
    [True],  # equal to [1] in Python, not on the chain
    ["1"],
    [b"1"],
    [],
    [-(1 << 63)],
    [(1 << 64) - 1],
    [1 << 64],  # past 64 bits: the general encoding
    ["x" * 5000],  # past the short-string bound
    [None],
    [[1]],
    list(range(9)),  # longer than the remembered keys
    "tuned",
    7,
]


class _Nothing:
    def get(self, key: bytes) -> bytes | None:
        return None


@pytest.mark.parametrize("key", KEYS, ids=repr)
def test_a_map_key_names_the_state_key_the_general_encoding_names(key: Any) -> None:
    host = ContractHost(StateView(_Nothing()), CallContext(b"\x01" * 20, 1, 0), b"\x0c" * 20, b"\x01" * 20, 0)
    for _ in range(2):  # encoded, then remembered
        assert host._key(3, StorageKind.MAP, key) == storage_key(b"\x0c" * 20, 3, key, StorageKind.MAP)


def test_keys_equal_in_python_but_not_on_the_chain_are_told_apart() -> None:
    assert list_key([1]) == encode_value([1])
    assert list_key([True]) is None  # a bool takes the general path
    assert list_key(["1"]) == encode_value(["1"]) != list_key([b"1"]) == encode_value([b"1"])
    assert list_key([1]) == encode_value([1])

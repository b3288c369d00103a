"""Contract storage on the hot path: map keys encoded in one step, stored values decoded once.

Both give exactly what core/contract_values.py gives (the encoding is consensus: it names state
keys and is hashed into the state root); they only do less work for the common cases:

- `flat_wire` and `pack`: a string, or a flat list of strings, 64-bit ints, bytes, bools and None
  (the map keys contracts use, e.g. `offers[model, number]`, and many of their values) goes
  straight to its wire form and through one reused packer. Anything else takes the general path
  (`check_storable`, `encode_value`), so every refusal keeps its fault;
- `list_key`: the encoding of a map key that is a list of strings, ints and bytes is remembered
  by its items (the same keys come back in every call);
- `stored_value`: the decoded value of stored bytes is remembered by those bytes (a pure
  function of them, so it cannot differ between nodes) and handed out as a fresh copy, since
  a contract may change a list it read before writing it back.
"""

from __future__ import annotations

import threading
from typing import Any, Final

import msgpack

from core.contract_values import (
    MAX_LIST,
    MAX_VALUE_BYTES,
    T_BOOL,
    T_BYTES,
    T_INT,
    T_LIST,
    T_NONE,
    T_STR,
    decode_stored,
)

_I64_MIN, _U64_MAX = -(1 << 63), (1 << 64) - 1
_SHORT_STR = MAX_VALUE_BYTES // 4  # at most 4 UTF-8 bytes a character: within the limit for sure
CACHE_ENTRIES: Final = 16_384  # dropped whole when full (cheaper than LRU upkeep)
CACHE_MAX_BYTES: Final = 1024  # larger values are decoded each time: the cache holds at most ~16 MB
_DECODED: dict[bytes, tuple[Any, bool]] = {}  # stored bytes -> (decoded value, a list without lists)
KEY_MAX_ITEMS: Final = 8  # longer list keys take the general path
_KEYS: dict[tuple[Any, ...], bytes] = {}  # the items of a list key -> its encoding (see `list_key`)
_local = threading.local()  # one packer per thread: a packer keeps a buffer between calls


def pack(wire: Any) -> bytes:
    """`core.codec.encode(wire)`, without building a packer for each call."""
    try:
        packer: msgpack.Packer = _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(use_bin_type=True)
    return packer.pack(wire)


def flat_wire(value: Any) -> list[Any] | None:
    """The wire form of a common key or value that is valid for sure; None: take the general path."""
    kind = type(value)
    if kind is str:
        return [T_STR, value] if len(value) <= _SHORT_STR else None
    if kind is not list or len(value) > MAX_LIST:
        return _scalar_wire(value)
    items: list[Any] = []
    append = items.append
    for item in value:
        kind = type(item)
        if kind is int:  # `_scalar_wire`, inline for the kinds lists hold most
            if not _I64_MIN <= item <= _U64_MAX:
                return None
            append([T_INT, item])
        elif kind is str:
            if len(item) > _SHORT_STR:
                return None
            append([T_STR, item])
        else:
            wire = _scalar_wire(item)
            if wire is None:
                return None
            append(wire)
    return [T_LIST, items]


def list_key(value: list[Any]) -> bytes | None:
    """`pack(flat_wire(value))` of a map key that is a list of short strings, 64-bit ints and bytes (what
    `offers[model, number]` and the like build), remembered by its items; None: not such a key.

    Two such keys have equal items exactly when they encode alike: the kinds are checked exactly (a bool
    is not an int here, though `True == 1`), and a string never equals bytes or an int."""
    if len(value) > KEY_MAX_ITEMS:
        return None
    for item in value:
        kind = type(item)
        if kind is str:
            if len(item) > _SHORT_STR:
                return None
        elif kind is int:
            if not _I64_MIN <= item <= _U64_MAX:
                return None
        elif kind is not bytes or len(item) > MAX_VALUE_BYTES:
            return None
    items = tuple(value)
    raw = _KEYS.get(items)
    if raw is None:
        raw = pack([T_LIST, [[T_STR if type(i) is str else T_INT if type(i) is int else T_BYTES, i] for i in value]])
        if len(raw) <= CACHE_MAX_BYTES:
            if len(_KEYS) >= CACHE_ENTRIES:
                _KEYS.clear()
            _KEYS[items] = raw
    return raw


def _scalar_wire(value: Any) -> list[Any] | None:
    kind = type(value)
    if kind is str:
        return [T_STR, value] if len(value) <= _SHORT_STR else None
    if kind is int:
        return [T_INT, value] if _I64_MIN <= value <= _U64_MAX else None
    if kind is bytes:
        return [T_BYTES, value] if len(value) <= MAX_VALUE_BYTES else None
    if kind is bool:
        return [T_BOOL, value]
    if value is None:
        return [T_NONE]
    return None


def stored_value(raw: bytes) -> Any:
    """`decode_stored(raw)`, as a value the caller may change."""
    entry = _DECODED.get(raw)
    if entry is None:
        value = decode_stored(raw)
        # A list that holds no list is copied whole by `list.copy`; a nested one item by item.
        entry = (value, type(value) is list and not any(type(item) is list for item in value))
        if len(raw) <= CACHE_MAX_BYTES:
            if len(_DECODED) >= CACHE_ENTRIES:
                _DECODED.clear()
            _DECODED[raw] = entry
    value, flat = entry
    if type(value) is not list:
        return value
    return value.copy() if flat else fresh(value)


def fresh(value: list[Any]) -> list[Any]:
    """A copy of a decoded list and of every list in it (the other values are immutable)."""
    return [fresh(item) if type(item) is list else item for item in value]

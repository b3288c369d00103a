"""Contract values and their canonical encoding (storage, call arguments, results).

A value is an int (256-bit, signed), bytes, str, bool, None, or a list of values; memory-only
dicts exist while a call runs but are never stored or passed between contracts. Each value
encodes as a tagged array in canonical msgpack, so 256-bit integers survive a format whose
integers stop at 64 bits, and no two values share an encoding.

Limits: bytes and str at most `MAX_VALUE_BYTES`, lists at most `MAX_LIST` items, nesting at
most `MAX_DEPTH` levels.
"""

from __future__ import annotations

from typing import Any

from core import codec
from core.errors import DecodeError

INT_BITS = 256
INT_MIN = -(1 << (INT_BITS - 1))
INT_MAX = (1 << (INT_BITS - 1)) - 1
MAX_VALUE_BYTES = 64 * 1024
MAX_LIST = 4096
MAX_DEPTH = 8
VALUE_LIMITS = codec.Limits(
    max_bytes=4 * 1024 * 1024,
    max_bin_len=MAX_VALUE_BYTES,
    max_str_len=MAX_VALUE_BYTES,
    max_array_len=MAX_LIST,
    max_depth=2 * MAX_DEPTH + 2,
)

T_INT, T_BIGINT, T_BYTES, T_STR, T_BOOL, T_NONE, T_LIST = range(7)
_I64_MIN, _U64_MAX = -(1 << 63), (1 << 64) - 1


class BadValue(DecodeError):
    """A value that cannot be stored or passed: wrong type, too large, or nested too deeply."""


def to_wire(value: Any, depth: int = 0) -> list[Any]:
    kind = type(value)
    if kind is bool:
        return [T_BOOL, value]
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise BadValue(f"integer {value} is outside the 256-bit range")
        if _I64_MIN <= value <= _U64_MAX:
            return [T_INT, value]
        return [T_BIGINT, value.to_bytes(32, "big", signed=True)]
    if kind is bytes:
        _check_size(value)
        return [T_BYTES, value]
    if kind is str:
        _check_size(value.encode())
        return [T_STR, value]
    if value is None:
        return [T_NONE]
    if kind is list:
        if len(value) > MAX_LIST or depth >= MAX_DEPTH:
            raise BadValue(f"lists hold at most {MAX_LIST} items, nested at most {MAX_DEPTH} deep")
        return [T_LIST, [to_wire(item, depth + 1) for item in value]]
    raise BadValue(f"a {kind.__name__} cannot be stored or passed between contracts")


def from_wire(wire: Any, depth: int = 0) -> Any:
    if not isinstance(wire, list) or not wire or type(wire[0]) is not int:
        raise BadValue("value: expected [type, ...]")
    tag = wire[0]
    if tag == T_NONE and len(wire) == 1:
        return None
    if len(wire) != 2:
        raise BadValue("value: expected [type, payload]")
    payload = wire[1]
    if tag == T_INT and type(payload) is int:
        return payload
    if tag == T_BIGINT and type(payload) is bytes and len(payload) == 32:
        number = int.from_bytes(payload, "big", signed=True)
        if _I64_MIN <= number <= _U64_MAX:
            raise BadValue("value: a small integer in the big-integer form (not canonical)")
        return number
    if tag == T_BYTES and type(payload) is bytes:
        return payload
    if tag == T_STR and type(payload) is str:
        return payload
    if tag == T_BOOL and type(payload) is bool:
        return payload
    if tag == T_LIST and isinstance(payload, list) and depth < MAX_DEPTH:
        return [from_wire(item, depth + 1) for item in payload]
    raise BadValue(f"value: type {tag} with this payload is not a value")


def encode_value(value: Any) -> bytes:
    kind = type(value)
    if kind is str and len(value) <= MAX_VALUE_BYTES // 4:  # the common map key, without the walk
        return codec.encode([T_STR, value])
    return codec.encode(to_wire(value))


def encode_call(function: str, args: list[Any]) -> bytes:
    """The data of a CALL transaction: `[function name, [arguments]]`, each argument a value as above
    (what `vm.contract_tx` runs; its rules for bad data are there)."""
    return codec.encode([function, [to_wire(a) for a in args]])


def decode_value(raw: bytes) -> Any:
    try:
        return from_wire(codec.decode(raw, limits=VALUE_LIMITS))
    except BadValue:
        raise
    except DecodeError as exc:
        raise BadValue(f"value does not decode: {exc}") from exc


def decode_stored(raw: bytes) -> Any:
    """A value read back from contract storage: it was written by `encode_value` into this node's
    own state (or state verified against a state root), so it is only unpacked, not re-checked."""
    return from_wire(codec.decode_trusted(raw))


def _check_size(data: bytes) -> None:
    if len(data) > MAX_VALUE_BYTES:
        raise BadValue(f"bytes and strings are limited to {MAX_VALUE_BYTES} bytes")

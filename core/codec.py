"""Canonical MessagePack: one value, one encoding, one hash.

Hashed and signed objects encode as a msgpack array whose first element is a type tag
(docs/decisions.md). `encode` always yields the shortest msgpack form (the packer's own rules);
`decode` of untrusted bytes enforces size limits, rejects trailing bytes, floats,
extension types and (unless allowed) maps, and rejects any byte string that is not
exactly what `encode` would produce for the decoded value.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from core.errors import DecodeError, EncodingTooLarge, NonCanonicalEncoding

Value = int | bytes | str | bool | None | list["Value"] | dict[Any, "Value"]
# What `encode` takes: a Value, or lists, tuples and dicts of narrower element types (a list of
# bytes is not a `list[Value]` to a type checker: lists are invariant). msgpack packs tuples as arrays.
Encodable = int | bytes | str | bool | None | Sequence["Encodable"] | Mapping[Any, "Encodable"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied while decoding untrusted bytes."""

    max_bytes: int = 16 * 1024 * 1024
    max_bin_len: int = 8 * 1024 * 1024
    max_str_len: int = 64 * 1024
    max_array_len: int = 200_000
    max_map_len: int = 1024
    max_depth: int = 16


DEFAULT_LIMITS = Limits()
_SCALARS = (int, bytes, str, bool, type(None))


class _Packers(threading.local):
    """One msgpack packer per thread: `msgpack.packb` builds a packer on every call (about as long
    as packing a receipt), and a packer's buffer must not be shared between threads."""

    def __init__(self) -> None:
        self.pack = msgpack.Packer(use_bin_type=True).pack


_packers = _Packers()


def encode(value: Encodable) -> bytes:
    """The canonical encoding of `value` (ints, bytes, str, bool, None, lists; maps if allowed)."""
    return _packers.pack(value)


def _reject_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack extension type {code} is not allowed")


def decode(data: bytes, *, limits: Limits = DEFAULT_LIMITS, allow_maps: bool = False, check_types: bool = True) -> Any:
    """Decode untrusted canonical msgpack; raise a `DecodeError` subtype if it is anything else.

    `check_types=False` skips the walk that rejects floats, maps and deep nesting, for callers
    that check the type of every element themselves (a transaction's fixed fields): the
    canonical re-encoding check still runs.
    """
    if len(data) > limits.max_bytes:
        raise EncodingTooLarge(f"encoding of {len(data)} bytes exceeds the limit of {limits.max_bytes}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_reject_ext,
            max_bin_len=limits.max_bin_len,
            max_str_len=limits.max_str_len,
            max_array_len=limits.max_array_len,
            max_map_len=limits.max_map_len if allow_maps else 0,
            max_ext_len=0,
        )
    except msgpack.ExtraData as exc:
        raise DecodeError("trailing bytes after the encoded value") from exc
    except msgpack.exceptions.StackError as exc:
        raise EncodingTooLarge("encoding nested too deeply") from exc
    except DecodeError:
        raise
    except ValueError as exc:
        # msgpack reports size-limit breaches, truncation and bad UTF-8 as ValueError.
        message = str(exc)
        if "exceeds max_ext_len" in message:
            raise DecodeError("msgpack extension types are not allowed") from exc
        if "exceeds max_map_len" in message and not allow_maps:
            raise DecodeError("maps are not allowed in canonical encodings") from exc
        if " exceeds max_" in message:
            raise EncodingTooLarge(f"encoding over a size limit: {exc}") from exc
        raise DecodeError(f"malformed msgpack: {exc}") from exc
    except Exception as exc:  # msgpack raises assorted types on garbage
        raise DecodeError(f"malformed msgpack: {exc.__class__.__name__}: {exc}") from exc
    if check_types:
        _check_types(value, limits.max_depth, allow_maps)
    if encode(value) != data:
        raise NonCanonicalEncoding("bytes are not the canonical encoding of their value")
    return value


def decode_trusted(data: bytes) -> Any:
    """Unpack bytes this node encoded itself with `encode` (its own state), without re-checking them."""
    return msgpack.unpackb(data, raw=False, use_list=True)


def _check_types(value: Any, max_depth: int, allow_maps: bool) -> None:
    """Reject floats (and maps where not allowed) anywhere, and nesting beyond `max_depth`."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, _SCALARS):
            continue
        if depth >= max_depth:
            raise EncodingTooLarge(f"encoding nested deeper than {max_depth} levels")
        if isinstance(item, list):
            for child in item:
                if not isinstance(child, _SCALARS):
                    stack.append((child, depth + 1))
        elif isinstance(item, dict) and allow_maps:
            for key, child in item.items():
                stack.append((key, depth + 1))
                stack.append((child, depth + 1))
        elif isinstance(item, float):
            raise DecodeError("floats are not allowed in canonical encodings")
        else:
            raise DecodeError(f"values of type {type(item).__name__} are not allowed here")


def expect_list(value: Any, tag: int, length: int, what: str) -> list[Any]:
    """Check that a decoded value is `[tag, ...]` with exactly `length` elements."""
    if not isinstance(value, list) or len(value) != length:
        raise DecodeError(f"{what}: expected an array of {length} elements")
    if value[0] != tag or type(value[0]) is not int:
        raise DecodeError(f"{what}: wrong type tag {value[0]!r}, expected {tag}")
    return value


def expect_bytes(value: Any, what: str, size: int | None = None, max_size: int | None = None) -> bytes:
    if type(value) is not bytes:
        raise DecodeError(f"{what}: expected bytes, got {type(value).__name__}")
    if size is not None and len(value) != size:
        raise DecodeError(f"{what}: expected {size} bytes, got {len(value)}")
    if max_size is not None and len(value) > max_size:
        raise DecodeError(f"{what}: at most {max_size} bytes allowed, got {len(value)}")
    return value


def expect_uint(value: Any, what: str, bits: int = 64) -> int:
    if type(value) is not int or value < 0 or value >> bits:
        raise DecodeError(f"{what}: expected an unsigned {bits}-bit integer, got {value!r}")
    return value


def expect_str(value: Any, what: str, max_len: int = 256) -> str:
    if type(value) is not str or len(value) > max_len:
        raise DecodeError(f"{what}: expected a string of at most {max_len} characters")
    return value

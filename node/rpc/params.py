"""Parsers for JSON-RPC parameters: each takes a JSON value and returns what a handler needs,
or raises ValueError saying what was expected."""

from __future__ import annotations

import re
from typing import Any

from core.keys import parse_address

BLOCK_TAGS = ("latest", "earliest", "pending", "finalized", "safe")


def address(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected a 0x-prefixed 20-byte hex address")
    return parse_address(value)


def hash32(value: Any) -> bytes:
    raw = data(value)
    if len(raw) != 32:
        raise ValueError(f"expected a 0x-prefixed 32-byte hex hash, got {len(raw)} bytes")
    return raw


def data(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith(("0x", "0X")) or len(value) % 2:
        raise ValueError("expected 0x-prefixed hex data with an even number of digits")
    try:
        return bytes.fromhex(value[2:])
    except ValueError as exc:
        raise ValueError("expected 0x-prefixed hex data (found a non-hex character)") from exc


QUANTITY_BITS = 256
_HEX_QUANTITY = re.compile(rf"0x[0-9a-fA-F]{{1,{QUANTITY_BITS // 4}}}")


def quantity(value: Any) -> int:
    """An Ethereum QUANTITY (0x-prefixed hex digits, nothing else) or a plain non-negative JSON integer;
    either at most 256 bits, so that no number a client sends is costly to convert or print."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0 and value.bit_length() <= QUANTITY_BITS:
        return value
    if isinstance(value, str) and _HEX_QUANTITY.fullmatch(value):
        return int(value, 16)
    raise ValueError(f"expected a non-negative integer or 0x-prefixed hex quantity of at most {QUANTITY_BITS} bits")


def block_ref(value: Any) -> str | int:
    """A block number (quantity) or one of the tags latest, earliest, pending, finalized, safe."""
    if isinstance(value, str) and value in BLOCK_TAGS:
        return value
    try:
        return quantity(value)
    except ValueError:
        raise ValueError(f"expected a block number or one of {', '.join(BLOCK_TAGS)}") from None


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def raw_txs(value: Any) -> list[bytes]:
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty array of 0x-prefixed signed transactions")
    if len(value) > 10_000:
        raise ValueError("at most 10000 transactions per call")
    return [data(v) for v in value]


def limit(value: Any) -> int:
    n = quantity(value)
    if not 1 <= n <= 1000:
        raise ValueError("expected a count from 1 to 1000")
    return n

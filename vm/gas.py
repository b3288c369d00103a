"""Gas: the price of each thing a transaction asks the chain to do."""

from __future__ import annotations

TX_BASE = 21_000
TX_DATA_BYTE = 16


def intrinsic_gas(data: bytes) -> int:
    """Gas every transaction pays before it does anything: a base plus its payload bytes."""
    return TX_BASE + TX_DATA_BYTE * len(data)

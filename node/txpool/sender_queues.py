"""Each sender's pending transactions, and the choices the mempool makes across senders by gas price.

Rules:
- a sender's queue holds consecutive nonces `low` .. `low + len - 1`; entries leave from the
  bottom (committed) or the top (evicted, invalidated), so the bounds stay O(1) to read;
- a block takes transactions best gas price first (the earlier arrival first at equal prices),
  each sender's in nonce order; one that does not fit the gas (or encoded bytes) left is skipped
  with its sender's later nonces (they would leave a gap), which stay pending;
- a full pool makes room for a transaction by evicting the cheapest last transactions of other
  senders, and only if each of them pays less than it; otherwise nothing is evicted.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass

from core.transaction import Transaction


@dataclass(slots=True)
class PendingEntry:
    tx: Transaction
    arrival_ms: int
    seq: int  # arrival order in the pool


class SenderQueue:
    """One sender's pending transactions, by nonce."""

    __slots__ = ("cost", "entries", "low")

    def __init__(self, low: int) -> None:
        self.entries: dict[int, PendingEntry] = {}  # nonce -> entry
        self.cost = 0  # sum of value + max fee of the entries
        self.low = low

    def lowest(self) -> int:
        return self.low

    def highest(self) -> int:
        return self.low + len(self.entries) - 1


def select_for_block(
    senders: Mapping[bytes, SenderQueue], max_txs: int, max_gas: int, max_bytes: int
) -> list[Transaction]:
    """Up to `max_txs` transactions within `max_gas` and `max_bytes`, as the module docstring says."""
    heap: list[tuple[int, int, bytes, int]] = []
    for sender, queue in senders.items():
        nonce = queue.lowest()
        entry = queue.entries[nonce]
        heap.append((-entry.tx.gas_price, entry.seq, sender, nonce))
    heapq.heapify(heap)
    chosen: list[Transaction] = []
    gas = size = 0
    while heap and len(chosen) < max_txs:
        _, _, sender, nonce = heapq.heappop(heap)
        queue = senders[sender]
        tx = queue.entries[nonce].tx
        if gas + tx.gas_limit > max_gas or size + len(tx.encoded) > max_bytes:
            continue
        gas += tx.gas_limit
        size += len(tx.encoded)
        chosen.append(tx)
        following = queue.entries.get(nonce + 1)
        if following is not None:
            heapq.heappush(heap, (-following.tx.gas_price, following.seq, sender, nonce + 1))
    return chosen


def cheapest_tails(
    senders: Mapping[bytes, SenderQueue],
    tx: Transaction,
    sender: bytes,
    count: int,
    used: int,
    max_txs: int,
    max_bytes: int,
) -> list[tuple[bytes, int]] | None:
    """The (sender, nonce) of each transaction of another sender than `tx`'s to evict so that `tx` fits
    a pool holding `count` transactions of `used` bytes; None if it cannot fit (a victim would pay as
    much as it)."""
    size = len(tx.encoded)
    # A scan over the senders' tails. Rare (the pool is sized for bursts), so a scan beats keeping
    # an index of tails up to date on every admission.
    tails = {s: q.highest() for s, q in senders.items() if s != sender}
    victims: list[tuple[bytes, int]] = []
    while count >= max_txs or used + size > max_bytes:
        best: tuple[int, bytes, int] | None = None
        for victim_sender, nonce in tails.items():
            entry = senders[victim_sender].entries.get(nonce)
            if entry is not None and (best is None or entry.tx.gas_price < best[0]):
                best = (entry.tx.gas_price, victim_sender, nonce)
        if best is None or best[0] >= tx.gas_price:
            return None
        _, victim_sender, victim_nonce = best
        victims.append((victim_sender, victim_nonce))
        tails[victim_sender] = victim_nonce - 1
        count -= 1
        used -= len(senders[victim_sender].entries[victim_nonce].tx.encoded)
    return victims

"""Why transactions left the mempool without being committed: a bounded record, read by `tx_get`.

A node that admitted a transaction (`tx_send` answered its hash) either commits it or says why
it did not. Every way a pending transaction leaves the mempool other than by being committed is
recorded here, with the reason, the time and, where there is one, the transaction that caused it
(the replacement, the better-paying newcomer, the evicted earlier nonce, the committed one that
used the nonce).

Rules:
- the record is bounded: the last `capacity` evictions are kept, the oldest forgotten first;
- a transaction admitted again (sent anew after its eviction) loses its record: it is pending;
- records live in memory, like the mempool they describe (see docs/decisions.md: a restarted
  node knows neither what was pending on it nor what it evicted).
"""

from __future__ import annotations

import enum
from collections import Counter, OrderedDict
from dataclasses import dataclass, replace

MAX_MESSAGE = 300  # characters of an error message kept: the reason stays readable, the record small


class EvictionReason(enum.StrEnum):
    """Why a pending transaction left the mempool uncommitted (the `reason` that `tx_get` reports)."""

    REPLACED = "replaced"  # the sender sent the same nonce again at a higher gas price
    POOL_FULL = "pool_full"  # the pool was full and a better-paying transaction took its place
    EXPIRED = "expired"  # pending for longer than the mempool's time-to-live
    INVALID = "invalid"  # executing it for a block failed an inclusion rule (the message says which)
    NONCE_USED = "nonce_used"  # another transaction of the sender with the same nonce was committed
    EARLIER_EVICTED = "earlier_evicted"  # an earlier nonce of the sender left, so this one can never be next


@dataclass(frozen=True, slots=True)
class Eviction:
    """One transaction that left the mempool uncommitted."""

    tx_hash: bytes
    sender: bytes
    nonce: int
    reason: EvictionReason
    message: str  # what happened, in words
    at_ms: int  # wall-clock milliseconds when it left
    by: bytes | None = None  # the transaction that caused it, if one did


class EvictionLog:
    """The last `capacity` evictions by transaction hash, with a count per reason since start."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._records: OrderedDict[bytes, Eviction] = OrderedDict()
        self.counts: Counter[EvictionReason] = Counter()

    def record(self, eviction: Eviction) -> None:
        if len(eviction.message) > MAX_MESSAGE:
            eviction = replace(eviction, message=eviction.message[: MAX_MESSAGE - 1] + "…")
        self._records[eviction.tx_hash] = eviction
        self._records.move_to_end(eviction.tx_hash)
        self.counts[eviction.reason] += 1
        while len(self._records) > self.capacity:
            self._records.popitem(last=False)

    def forget(self, tx_hash: bytes) -> None:
        """The transaction is pending again (sent anew): it is no longer evicted."""
        self._records.pop(tx_hash, None)

    def get(self, tx_hash: bytes) -> Eviction | None:
        return self._records.get(tx_hash)

    def __len__(self) -> int:
        return len(self._records)

"""The nonces of signed reads a node granted within their window, so that none is granted twice.

A signed read (`core.read_request`) is good while its timestamp is within the window of the
node's clock; its nonce must be remembered until then (its *expiry*). Memory is bounded: at
most `max_entries` nonces in all and `per_account` per account.

- An account at its own bound is refused (429) until its nonces expire: it reads too fast.
- When all `max_entries` are taken, the next nonce does not wait: the oldest nonce of the account
  holding the most is forgotten, and that account's *floor* rises to the forgotten nonce's
  expiry. Reads of that account expiring no later than its floor are refused (429, sign it
  anew). So a replay is always refused: its nonce is remembered, or it lies below its
  account's floor.

Refusing every new read once the cache is full would let anyone shut out all owners and
licensees: upload a private artifact of one's own, own its model with 16 accounts and read it
about 550 times a second (a 2-core machine grants 2,700). The accounts that flood crowd out
only themselves now; an honest reader is forgotten only if it holds as many nonces as the
heaviest account, and then only its own earlier reads are refused.
"""

from __future__ import annotations

import heapq

MAX_NONCES = 65_536  # signed reads remembered at once (each for at most 2 x WINDOW_MS)
MAX_NONCES_PER_ACCOUNT = 4_096


class ReplayCache:
    def __init__(self, max_entries: int = MAX_NONCES, per_account: int = MAX_NONCES_PER_ACCOUNT) -> None:
        self.max_entries = max_entries
        self.per_account = per_account
        self._nonces: dict[bytes, dict[bytes, int]] = {}  # account -> nonce -> expiry, oldest first
        self._size = 0
        self._heap: list[tuple[int, bytes, bytes]] = []  # (expiry, account, nonce); stale ones skipped
        self._counts: dict[int, dict[bytes, None]] = {}  # number of nonces -> the accounts holding that many
        self._most = 0  # the largest of those numbers
        self._floors: dict[bytes, int] = {}  # account -> the latest expiry of its nonces forgotten early
        self._sweep_floors_at = max(16, max_entries // 4)  # floors are swept of passed ones at this many
        self.forgotten = 0  # nonces forgotten before their expiry (the cache was full)

    def __len__(self) -> int:
        return self._size

    def floors(self) -> int:
        return len(self._floors)

    def seen(self, account: bytes, nonce: bytes, now_ms: int) -> bool:
        self._prune(now_ms)
        return nonce in self._nonces.get(account, ())

    def below_floor(self, account: bytes, expires_ms: int) -> bool:
        """Whether a read of `account` expiring then may be one whose nonce was forgotten."""
        return expires_ms <= self._floors.get(account, -1)

    def room_for(self, account: bytes) -> bool:
        """False if `account` holds its share already, or (never in practice) too many accounts have floors."""
        held = len(self._nonces.get(account, ()))
        return held < self.per_account and len(self._floors) < self.max_entries

    def add(self, account: bytes, nonce: bytes, expires_ms: int) -> None:
        if self._size >= self.max_entries:
            self._forget_one()
        mine = self._nonces.setdefault(account, {})
        self._move(account, len(mine), len(mine) + 1)
        mine[nonce] = expires_ms
        self._size += 1
        heapq.heappush(self._heap, (expires_ms, account, nonce))
        if len(self._heap) > 2 * self._size + 1024:  # entries forgotten early linger in the heap: rebuild
            self._heap = [(e, a, n) for e, a, n in self._heap if self._nonces.get(a, {}).get(n) == e]
            heapq.heapify(self._heap)

    def _forget_one(self) -> None:
        """Forget the oldest nonce of the account holding the most, and raise that account's floor."""
        account = next(iter(self._counts[self._most]))
        mine = self._nonces[account]
        nonce = next(iter(mine))
        expires = self._remove(account, nonce)
        self._floors[account] = max(self._floors.get(account, expires), expires)
        self.forgotten += 1  # its heap entry stays until it expires or the heap is rebuilt

    def _remove(self, account: bytes, nonce: bytes) -> int:
        mine = self._nonces[account]
        expires = mine.pop(nonce)
        self._size -= 1
        self._move(account, len(mine) + 1, len(mine))
        if not mine:
            del self._nonces[account]
        return expires

    def _move(self, account: bytes, old: int, new: int) -> None:
        """Keep `_counts` and `_most` right as `account` goes from holding `old` nonces to `new`."""
        if old:
            bucket = self._counts[old]
            del bucket[account]
            if not bucket:
                del self._counts[old]
        if new:
            self._counts.setdefault(new, {})[account] = None
            self._most = max(self._most, new)
        while self._most and self._most not in self._counts:
            self._most -= 1

    def _prune(self, now_ms: int) -> None:
        while self._heap and self._heap[0][0] < now_ms:
            expires, account, nonce = heapq.heappop(self._heap)
            if self._nonces.get(account, {}).get(nonce) == expires:
                self._remove(account, nonce)
        if len(self._floors) >= self._sweep_floors_at:  # amortized: at most once per doubling
            self._floors = {a: f for a, f in self._floors.items() if f >= now_ms}
            self._sweep_floors_at = max(16, self.max_entries // 4, 2 * len(self._floors))


__all__ = ["MAX_NONCES", "MAX_NONCES_PER_ACCOUNT", "ReplayCache"]

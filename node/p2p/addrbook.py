"""Addresses to dial, with reconnect backoff.

Rules:
- An entry is `host:port` plus the node key if known (from a `key@host:port` bootnode,
  peer exchange, or a past handshake). Bootnodes and addresses added by hand are
  persistent; peer-exchange ones are forgotten after `max_failures` failed dials in a row,
  and new ones are not taken once the book holds `max_entries`.
- After a failed dial the next attempt waits `min(backoff_max, backoff_initial * 2^(n-1))`
  for the n-th failure in a row, scaled by a random 0.75..1.0 (so restarted peers are not
  hit by everyone at once). A refusal that will not change soon (wrong chain, banned, not on
  the allow-list, wrong key) waits `backoff_max` at once. A connection that lasted less than
  `stable_after` seconds counts as a failure when it ends; a longer one resets the count.
- An address found to be this node itself is never dialed again.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass


@dataclass
class AddressEntry:
    host: str
    port: int
    node_key: bytes | None = None
    persistent: bool = False
    failures: int = 0
    next_attempt: float = 0.0
    last_error: str = ""
    busy: bool = False  # dialing, or connected through this entry
    connected_at: float = 0.0
    is_self: bool = False

    def __str__(self) -> str:
        return (f"{self.node_key.hex()[:12]}@" if self.node_key else "") + f"{self.host}:{self.port}"


class AddressBook:
    def __init__(
        self,
        *,
        backoff_initial: float,
        backoff_max: float,
        max_failures: int,
        max_entries: int,
        stable_after: float = 10.0,
    ) -> None:
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.max_failures, self.max_entries, self.stable_after = max_failures, max_entries, stable_after
        self._entries: dict[tuple[str, int], AddressEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[AddressEntry]:
        return list(self._entries.values())

    def get(self, host: str, port: int) -> AddressEntry | None:
        return self._entries.get((host, port))

    def add(
        self, host: str, port: int, node_key: bytes | None = None, *, persistent: bool = False
    ) -> AddressEntry | None:
        """Add or update an entry; None if the book is full (persistent entries always fit)."""
        entry = self._entries.get((host, port))
        if entry is None:
            if not persistent and len(self._entries) >= self.max_entries:
                return None
            entry = self._entries[(host, port)] = AddressEntry(host, port, node_key, persistent)
        else:
            if node_key is not None and (persistent or not entry.persistent):
                entry.node_key = node_key  # peer exchange does not override what the operator said
            entry.persistent = entry.persistent or persistent
        return entry

    def due(self, now: float) -> list[AddressEntry]:
        """Entries that may be dialed now, fewest failures first."""
        ready = [e for e in self._entries.values() if not e.busy and not e.is_self and e.next_attempt <= now]
        ready.sort(key=lambda e: (not e.persistent, e.failures))
        return ready

    def next_due(self, now: float) -> float | None:
        """Seconds until the next entry becomes due (None if none is waiting)."""
        waiting = [e.next_attempt for e in self._entries.values() if not e.busy and not e.is_self]
        return max(0.0, min(waiting) - now) if waiting else None

    def _backoff(self, failures: int) -> float:
        delay = min(self.backoff_max, self.backoff_initial * 2.0 ** max(0, failures - 1))
        return delay * random.uniform(0.75, 1.0)

    def dial_started(self, entry: AddressEntry) -> None:
        entry.busy = True

    def dial_succeeded(self, entry: AddressEntry, node_key: bytes) -> None:
        entry.node_key = entry.node_key or node_key
        entry.connected_at = time.monotonic()
        entry.last_error = ""

    def dial_failed(self, entry: AddressEntry, error: str, *, lasting: bool = False) -> None:
        entry.busy = False
        entry.failures += 1
        entry.last_error = error
        delay = self.backoff_max if lasting else self._backoff(entry.failures)
        entry.next_attempt = time.monotonic() + delay
        if not entry.persistent and entry.failures >= self.max_failures:
            self._entries.pop((entry.host, entry.port), None)

    def disconnected(self, entry: AddressEntry, reason: str) -> None:
        lasted = time.monotonic() - entry.connected_at
        if lasted >= self.stable_after:
            entry.busy = False
            entry.failures = 0
            entry.last_error = reason
            entry.next_attempt = time.monotonic() + self._backoff(1)
        else:
            self.dial_failed(entry, reason)

    def mark_self(self, entry: AddressEntry) -> None:
        entry.busy = False
        entry.is_self = True

"""Per-peer rate limits, scores and the ban list.

Rules:
- A peer's score starts at 0 and recovers towards 0 at `recovery_per_s`. Each protocol
  violation subtracts its penalty (malformed 25, unknown type 10, unsolicited 10, over the
  rate limit 5, oversized: everything). At or below the threshold (-100 by default) the
  peer is disconnected and its node key and IP are banned for `ban_seconds`.
- The rate limit is two token buckets per peer: messages/s and bytes/s, each with a burst.
  A frame that finds either bucket short is dropped unprocessed and costs a penalty.
- The ban list holds node keys and IPs until their expiry (monotonic clock); an expired
  entry is as if it never existed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K")  # what a ban is of: a node key or an IP


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; starts full."""

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = burst
        self._last = clock()

    def take(self, amount: float = 1.0) -> bool:
        """Take `amount` tokens if there are that many; False (and nothing taken) otherwise."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= amount:
            self._tokens -= amount
            return True
        return False


class RateLimiter:
    """Messages/s and bytes/s buckets of one peer."""

    __slots__ = ("bytes", "messages")

    def __init__(self, messages_per_s: float, messages_burst: float, bytes_per_s: float, bytes_burst: float) -> None:
        self.messages = TokenBucket(messages_per_s, messages_burst)
        self.bytes = TokenBucket(bytes_per_s, bytes_burst)

    def allow(self, size: int) -> bool:
        return self.messages.take(1.0) and self.bytes.take(float(size))


class Score:
    """A peer's standing: 0 is neutral, lower is worse, recovers towards 0 over time."""

    __slots__ = ("_clock", "_last", "_value", "recovery_per_s", "threshold")

    def __init__(
        self, threshold: float = -100.0, recovery_per_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold, self.recovery_per_s, self._clock = threshold, recovery_per_s, clock
        self._value = 0.0
        self._last = clock()

    @property
    def value(self) -> float:
        now = self._clock()
        self._value = min(0.0, self._value + (now - self._last) * self.recovery_per_s)
        self._last = now
        return self._value

    def penalize(self, amount: float) -> bool:
        """Subtract `amount`; True if the score is now at or below the ban threshold."""
        self._value = self.value - amount
        return self._value <= self.threshold


class BanList:
    """Banned node keys and IPs with expiry times."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._keys: dict[bytes, float] = {}
        self._ips: dict[str, float] = {}

    def ban(self, *, node_key: bytes | None = None, ip: str | None = None, seconds: float) -> None:
        until = self._clock() + seconds
        if node_key is not None:
            self._keys[node_key] = max(until, self._keys.get(node_key, 0.0))
        if ip is not None:
            self._ips[ip] = max(until, self._ips.get(ip, 0.0))

    def _active(self, table: dict[K, float], item: K) -> bool:
        until = table.get(item)
        if until is None:
            return False
        if until <= self._clock():
            del table[item]
            return False
        return True

    def key_banned(self, node_key: bytes) -> bool:
        return self._active(self._keys, node_key)

    def ip_banned(self, ip: str) -> bool:
        return self._active(self._ips, ip)

    def remaining(self, *, node_key: bytes | None = None, ip: str | None = None) -> float:
        """Seconds left on the longer of the key's and the IP's bans (0 if neither)."""
        now = self._clock()
        ends = [self._keys.get(node_key, 0.0) if node_key else 0.0, self._ips.get(ip, 0.0) if ip else 0.0]
        return max(0.0, max(ends) - now)

    def __len__(self) -> int:
        now = self._clock()
        return sum(1 for t in self._keys.values() if t > now) + sum(1 for t in self._ips.values() if t > now)

"""Whether a connection is alive: pings, their pongs, and a watchdog on arriving frames.

Rules:
- a Ping every `ping_interval`; no Pong within `ping_timeout` ends the connection; a Pong that
  answers no Ping is unsolicited;
- a watchdog (one timer per peer, not two per frame) ends it when no complete frame arrived for
  `idle_timeout` (by default two ping intervals and a ping timeout), which also bounds a frame
  body that trickles in;
- neither blames the peer while our reader is blocked on a full receive queue: the pong may be
  waiting unread, and the peer is not idle, we are.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Iterator

from node.p2p.config import P2PConfig
from node.p2p.errors import Reason, UnsolicitedMessage
from node.p2p.messages import ping_frame


class Keepalive:
    """The liveness of one peer's connection; `offer` queues a frame to it, `close(code, reason)` ends it."""

    def __init__(
        self,
        config: P2PConfig,
        offer: Callable[[bytes], bool],
        close: Callable[[str, str], None],
        closing: Callable[[], bool],
    ) -> None:
        self.rtt: float | None = None  # of the last ping answered
        self._config = config
        self._offer, self._close, self._closing = offer, close, closing
        self._ping_nonce: int | None = None
        self._pong = asyncio.Event()
        self._reader_blocked = False
        self._last_frame = time.monotonic()
        self._idle_limit = config.idle_timeout or 2 * config.ping_interval + config.ping_timeout

    def frame_arrived(self) -> None:
        self._last_frame = time.monotonic()

    @contextlib.contextmanager
    def reader_blocked(self) -> Iterator[None]:
        """While our reader waits for room in a full receive queue: the peer is not to blame."""
        self._reader_blocked = True
        try:
            yield
        finally:
            self._reader_blocked = False
            self._last_frame = time.monotonic()

    def pong(self, nonce: int) -> None:
        if nonce != self._ping_nonce:
            raise UnsolicitedMessage("pong without a matching ping")
        self._ping_nonce = None
        self._pong.set()

    async def pings(self) -> None:
        """Ping every `ping_interval` until the connection closes (or ends it for a missing pong)."""
        config = self._config
        while not self._closing():
            await asyncio.sleep(config.ping_interval)
            nonce = secrets.randbits(64)
            self._ping_nonce = nonce
            self._pong.clear()
            started = time.monotonic()
            if not self._offer(ping_frame(nonce)):
                return
            while not self._pong.is_set():
                try:
                    async with asyncio.timeout(config.ping_timeout):
                        await self._pong.wait()
                except TimeoutError:
                    if self._reader_blocked:  # our reader is stuck: the pong may be waiting unread
                        continue
                    self._close(Reason.PING_TIMEOUT, f"no pong within {config.ping_timeout} s")
                    return
            self.rtt = time.monotonic() - started

    async def watchdog(self) -> None:
        """End the connection when no complete frame arrived for the idle limit."""
        tick = min(1.0, self._idle_limit / 4)
        while not self._closing():
            await asyncio.sleep(tick)
            if not self._reader_blocked and time.monotonic() - self._last_frame > self._idle_limit:
                self._close(Reason.TIMEOUT, f"no complete frame for {self._idle_limit:g} s")
                return

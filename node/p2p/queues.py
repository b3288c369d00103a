"""A bounded FIFO of encoded frames, filled by one task and drained by another.

Rules: bounded by frame count and by bytes (a single frame larger than the byte bound is
accepted into an empty queue, so no legal frame is stuck forever). `try_put` never waits;
`put` waits for room (up to a timeout, or for ever with None). `force` bypasses the bounds
(for the goodbye frame). After `close`, `get_batch` hands out what is queued and then [];
`clear` drops what is queued.

A queue may have an urgent lane (`urgent` tells which frames belong to it): urgent frames
are handed out before every bulk frame queued, in their own order. The bounds are shared.

Each peer has a send queue (drained by its writer task, urgent lane for consensus messages)
and two receive queues, urgent and bulk (each drained by its own dispatcher task).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from node.p2p.errors import PeerClosed

BATCH_BYTES = 1024 * 1024


class FrameQueue:
    def __init__(self, max_frames: int, max_bytes: int, urgent: Callable[[bytes], bool] | None = None) -> None:
        self.max_frames, self.max_bytes = max_frames, max_bytes
        self._frames: deque[bytes] = deque()
        self._urgent: deque[bytes] = deque()
        self._is_urgent = urgent
        self._bytes = 0
        self._closed = False
        self._ready = asyncio.Event()
        self._space = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._frames) + len(self._urgent)

    def try_put(self, frame: bytes, *, force: bool = False) -> bool:
        """Queue `frame` if there is room (or `force`); raises `PeerClosed` after `close`."""
        if self._closed:
            raise PeerClosed("the connection is closing")
        if not force and len(self) and (len(self) >= self.max_frames or self._bytes + len(frame) > self.max_bytes):
            return False
        urgent = self._is_urgent is not None and self._is_urgent(frame)
        (self._urgent if urgent else self._frames).append(frame)
        self._bytes += len(frame)
        self._ready.set()
        return True

    async def put(self, frame: bytes, timeout: float | None) -> bool:
        """Queue `frame`, waiting up to `timeout` s for room; False if there was none."""
        if self.try_put(frame):
            return True
        try:
            async with asyncio.timeout(timeout):
                while not self.try_put(frame):
                    self._space.clear()
                    await self._space.wait()
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self._closed = True
        self._ready.set()
        self._space.set()

    def clear(self) -> None:
        self._frames.clear()
        self._urgent.clear()
        self._bytes = 0
        self._space.set()

    async def get_batch(self, max_bytes: int = BATCH_BYTES) -> list[bytes]:
        """The next frames (at least one, about `max_bytes` at most); [] once closed and empty."""
        while not len(self):
            if self._closed:
                return []
            self._ready.clear()
            await self._ready.wait()
        batch: list[bytes] = []
        size = 0
        for lane in (self._urgent, self._frames):
            while lane and (not batch or size + len(lane[0]) <= max_bytes):
                frame = lane.popleft()
                batch.append(frame)
                size += len(frame)
        self._bytes -= size
        self._space.set()
        return batch

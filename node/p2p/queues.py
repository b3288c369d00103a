"""A bounded FIFO of encoded frames, filled by one task and drained by another.

Rules: bounded by frame count and by bytes (a single frame larger than the byte bound is
accepted into an empty queue, so no legal frame is stuck forever). `try_put` never waits;
`put` waits for room (up to a timeout, or for ever with None). `force` bypasses the bounds
(for the goodbye frame). After `close`, `get_batch` hands out what is queued and then [];
`clear` drops what is queued.

Each peer has two: the send queue (drained by its writer task) and the receive queue
(frames for handlers, drained by its dispatcher task).
"""

from __future__ import annotations

import asyncio
from collections import deque

from node.p2p.errors import PeerClosed

BATCH_BYTES = 1024 * 1024


class FrameQueue:
    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames, self.max_bytes = max_frames, max_bytes
        self._frames: deque[bytes] = deque()
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
        return len(self._frames)

    def try_put(self, frame: bytes, *, force: bool = False) -> bool:
        """Queue `frame` if there is room (or `force`); raises `PeerClosed` after `close`."""
        if self._closed:
            raise PeerClosed("the connection is closing")
        if not force and self._frames and (
            len(self._frames) >= self.max_frames or self._bytes + len(frame) > self.max_bytes
        ):
            return False
        self._frames.append(frame)
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
        self._bytes = 0
        self._space.set()

    async def get_batch(self, max_bytes: int = BATCH_BYTES) -> list[bytes]:
        """The next frames (at least one, about `max_bytes` at most); [] once closed and empty."""
        while not self._frames:
            if self._closed:
                return []
            self._ready.clear()
            await self._ready.wait()
        batch: list[bytes] = []
        size = 0
        while self._frames and (not batch or size + len(self._frames[0]) <= max_bytes):
            frame = self._frames.popleft()
            batch.append(frame)
            size += len(frame)
        self._bytes -= size
        self._space.set()
        return batch

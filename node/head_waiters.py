"""Long polls on the head (`chain_waitForHeight`, the waits of `tx_wait`): each is answered when the
head reaches its height, at its timeout, or at once when the node stops (so none holds up a
shutdown)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class HeadWaiters:
    def __init__(self, head_height: Callable[[], int]) -> None:
        self._head_height = head_height
        self._moved = asyncio.Condition()
        self._stopping = False

    async def wait_for_height(self, height: int, timeout: float) -> bool:
        """True once the head reaches `height`; False on timeout or when the node is stopping."""
        async with self._moved:
            try:
                await asyncio.wait_for(
                    self._moved.wait_for(lambda: self._stopping or self._head_height() >= height), timeout
                )
            except TimeoutError:
                return False
        return self._head_height() >= height

    async def head_moved(self) -> None:
        async with self._moved:
            self._moved.notify_all()

    async def release(self) -> None:
        """The node is stopping: every wait answers now, and later ones at once."""
        self._stopping = True
        async with self._moved:
            self._moved.notify_all()

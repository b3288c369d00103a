"""How late the event loop runs: the measure of "nothing blocks the loop".

A task asks to wake every `interval` seconds and records how much later than asked it woke:
the time something else held the loop (a handler that computes instead of awaiting) or held
the interpreter lock (threads). The node exports it in /metrics as a histogram and as the
largest lag since start.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import Histogram


class LoopLag:
    def __init__(self, histogram: Histogram, interval: float = 0.02) -> None:
        self.histogram = histogram
        self.interval = interval
        self.max_s = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - asked)
            self.histogram.observe(lag)
            self.max_s = max(self.max_s, lag)

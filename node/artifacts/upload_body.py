"""The pace of an upload body: a blocking reader for the ingest thread that the loop holds to a minimum rate.

Rules (`UploadLimits`): an upload body must keep arriving, with no gap longer than
`idle_timeout_s`, and after the first `grace_s` seconds at least `min_bytes_s` bytes a second on
average. A body that breaks either rule ends the read with `UploadTooSlow` (a TimeoutError),
so a client sending a byte a second cannot hold an ingest thread for longer than `grace_s`
(plus the idle timeout). `max_uploads` bounds how many bodies are read at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import IO

from aiohttp import web


@dataclass(frozen=True)
class UploadLimits:
    """How much of the node uploads may hold, and how slowly a body may arrive (see the module docstring)."""

    max_uploads: int = 4
    idle_timeout_s: float = 15.0
    min_bytes_s: int = 16 * 1024
    grace_s: float = 10.0


class UploadTooSlow(TimeoutError):
    """The body stopped arriving, or arrived below the minimum rate."""


class BodyReader(IO[bytes]):
    """A blocking file-like view of a request body, for the ingest thread: each read asks the loop for
    the next piece, and the loop holds the body to the pace `UploadLimits` sets."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop, limits: UploadLimits) -> None:
        self._content = request.content
        self._loop = loop
        self._limits = limits
        self._started = loop.time()
        self.received = 0

    def read(self, n: int = -1) -> bytes:
        size = n if n and n > 0 else 1 << 20
        future = asyncio.run_coroutine_threadsafe(self._next(size), self._loop)
        # The loop side has its own deadline; this one only guards against a loop that stopped.
        data = future.result(self._limits.idle_timeout_s + 5.0)
        self.received += len(data)
        return data

    async def _next(self, size: int) -> bytes:
        """Up to `size` bytes of the body, within the idle timeout and the minimum average rate."""
        limits = self._limits
        elapsed = self._loop.time() - self._started
        # By when the bytes so far must be followed by more, for the average to stay at the minimum rate.
        rate_left = limits.grace_s + self.received / limits.min_bytes_s - elapsed
        wait = min(limits.idle_timeout_s, rate_left)
        try:
            if wait <= 0:
                raise TimeoutError
            async with asyncio.timeout(wait):
                return await self._content.read(size)
        except TimeoutError:
            if rate_left <= limits.idle_timeout_s:
                raise UploadTooSlow(
                    f"the body arrived at {self.received / max(elapsed, 1e-9):.0f} bytes/s, below "
                    f"the minimum of {limits.min_bytes_s} bytes/s"
                ) from None
            raise UploadTooSlow(f"no byte of the body came for {limits.idle_timeout_s:g} s") from None

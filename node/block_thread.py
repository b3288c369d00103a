"""The one thread that executes and commits blocks, and the lock that makes a commit one step with
the head check before it.

Execution is CPU work and a commit an fsynced write: both run off the event loop, one at a time,
on this thread (the event loop keeps answering RPC and peers meanwhile). Consensus and block sync
both commit blocks: each checks, under `commit_lock`, that the block still extends the head before
it writes it. `writing_height` is the height consensus decided and is writing now (sync need not
fetch it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class BlockThread:
    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="block")
        self.commit_lock = asyncio.Lock()
        self.writing_height: int | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the block thread, after whatever it runs now."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def shutdown(self) -> None:
        """Wait for the work under way (a commit in progress is written whole), then end the thread."""
        self.executor.shutdown(wait=True)

"""Where read-only contract calls run: a few threads of their own, bounded in number per client and
in all, so a free call can never hold the event loop or the block thread.

Rules:
- a call runs on one of `threads` dedicated threads, never on the event loop (which keeps
  answering every other request) and never on the block thread (which keeps producing blocks);
- at most `max_in_flight` calls run or wait at once, at most `max_per_client` of them from
  one client address; one more is refused at once with `CallsBusy` (-32096), which says which
  limit was hit and what to do;
- a call's slot is given back when its thread is done, not when its client goes away, so
  disconnecting does not let a client run more at once;
- each call carries its own gas cap and deadline (vm.interpreter.Deadline), so a thread is
  never held longer than the time budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from core.errors import AichainError

T = TypeVar("T")


class CallsBusy(AichainError):
    """Too many read-only calls at once, from this client or in all: retry when one has answered."""

    rpc_code = -32096


class ReadOnlyCalls:
    def __init__(self, threads: int, max_in_flight: int, max_per_client: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc-call")
        self.max_in_flight = max_in_flight
        self.max_per_client = max_per_client
        self.in_flight = 0
        self._by_client: dict[str, int] = {}
        self._closed = False
        self.outcomes: dict[str, int] = {}  # for /metrics: answered, failed, busy

    async def run(self, client: str, job: Callable[[], T]) -> T:
        """Run `job` on a call thread for `client`, or raise `CallsBusy` at once if a limit is reached."""
        if self._closed:
            raise CallsBusy("the node is stopping: no new read-only calls")
        if self.in_flight >= self.max_in_flight:
            self.count("busy")
            raise CallsBusy(
                f"{self.in_flight} read-only calls are running or waiting on this node, its limit "
                "([rpc] call_max_in_flight): retry in a moment"
            )
        mine = self._by_client.get(client, 0)
        if mine >= self.max_per_client:
            self.count("busy")
            raise CallsBusy(
                f"this client already has {mine} read-only calls running or waiting, the limit per client "
                "([rpc] call_max_per_client): send the next when one has answered"
            )
        self.in_flight += 1
        self._by_client[client] = mine + 1
        future = asyncio.get_running_loop().run_in_executor(self._pool, job)
        future.add_done_callback(lambda done: self._release(client, done))
        return await asyncio.shield(future)  # a client that goes away does not free the thread early

    def _release(self, client: str, done: asyncio.Future[Any]) -> None:
        self.in_flight -= 1
        left = self._by_client[client] - 1
        if left:
            self._by_client[client] = left
        else:
            del self._by_client[client]
        if not done.cancelled():
            done.exception()  # retrieved here: its client may have stopped waiting for it

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    async def close(self) -> None:
        """Refuse new calls and wait for the running ones (each ends within its time budget)."""
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)

"""Where read-only contract calls run: a few threads of their own, shared fairly between clients and
bounded in number, so a free call can never hold the event loop or the block thread.

Rules:
- a call runs on one of `threads` dedicated threads, never on the event loop (which keeps
  answering every other request) and never on the block thread (which keeps producing blocks);
- a client runs at most `per_client` calls at once; its further calls wait their turn, first
  come first served, within their own time budget (an SDK may send a dozen views at once);
- at most `queued_per_client` calls of one client, and `max_in_flight` of all clients, run or
  wait at once: one more is refused at once with `CallsBusy` (-32096), which names the limit;
- a call's place is given back when its thread is done, not when its client goes away, so
  hanging up does not let a client run more at once;
- each call carries its own gas cap and deadline (vm.interpreter.Deadline): no thread is held
  past the time budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from core.errors import AichainError

T = TypeVar("T")


class CallsBusy(AichainError):
    """Too many read-only calls at once, from this client or in all: retry when some have answered."""

    rpc_code = -32096


@dataclass
class _Client:
    turns: asyncio.Semaphore  # calls this client may run at once
    in_flight: int = 0  # running or waiting


class ReadOnlyCalls:
    def __init__(self, threads: int, per_client: int, queued_per_client: int, max_in_flight: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc-call")
        self.per_client = per_client
        self.queued_per_client = queued_per_client
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._clients: dict[str, _Client] = {}
        self._closed = False
        self.outcomes: dict[str, int] = {}  # for /metrics: answered, failed, busy

    def counts(self) -> dict[str, int]:
        """What /metrics shows of the calls: in flight, and each outcome."""
        return {"in_flight": self.in_flight, **self.outcomes}

    async def run(self, client: str, job: Callable[[], T]) -> T:
        """Run `job` on a call thread in `client`'s turn, or raise `CallsBusy` at once if a bound is reached."""
        if self._closed:
            raise CallsBusy("the node is stopping: no new read-only calls")
        if self.in_flight >= self.max_in_flight:
            self.count("busy")
            raise CallsBusy(
                f"{self.in_flight} read-only calls are running or waiting on this node, its limit "
                "([rpc] call_max_in_flight): retry in a moment"
            )
        entry = self._clients.get(client)
        if entry is None:
            entry = self._clients[client] = _Client(asyncio.Semaphore(self.per_client))
        if entry.in_flight >= self.queued_per_client:
            self.count("busy")
            raise CallsBusy(
                f"this client already has {entry.in_flight} read-only calls running or waiting, the limit per "
                "client ([rpc] call_max_queued_per_client): send more when some have answered"
            )
        entry.in_flight += 1
        self.in_flight += 1
        try:
            await entry.turns.acquire()
        except BaseException:  # cancelled while waiting its turn: it never ran
            self._leave(client, entry)
            raise
        try:
            future = asyncio.get_running_loop().run_in_executor(self._pool, job)
        except BaseException:  # the pool refused it (shutting down)
            entry.turns.release()
            self._leave(client, entry)
            raise
        future.add_done_callback(lambda done: self._finished(client, entry, done))
        return await asyncio.shield(future)  # a client that goes away does not free the thread early

    def _finished(self, client: str, entry: _Client, done: asyncio.Future[Any]) -> None:
        entry.turns.release()
        self._leave(client, entry)
        if not done.cancelled():
            done.exception()  # retrieved here: its client may have stopped waiting for it

    def _leave(self, client: str, entry: _Client) -> None:
        entry.in_flight -= 1
        self.in_flight -= 1
        if entry.in_flight == 0 and self._clients.get(client) is entry:
            del self._clients[client]

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    async def close(self) -> None:
        """Refuse new calls and wait for the running ones (each ends within its time budget)."""
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)

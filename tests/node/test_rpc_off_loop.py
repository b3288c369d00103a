"""Reads that wait for a block's commit wait on a thread, never on the event loop.

A commit holds the chain's commit lock while its batch is written and fsynced (tens to hundreds
of milliseconds for a full block on a loaded machine). A proof read on the event loop would
hold every other RPC answer, P2P message and consensus step for that long.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from core.keys import PrivateKey, address_hex
from node.bench.tps import start_bench_node
from node.bench.workload import bench_genesis

HOLD_S = 0.5


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("state_getAccount", [address_hex(bytes(20))]),
        ("contract_getStorage", ["0x" + "00" * 19 + "a1", "version_count", "no-such-model"]),
    ],
)
async def test_a_read_waiting_for_a_commit_does_not_hold_the_event_loop(
    tmp_path: Path, method: str, params: list
) -> None:
    validator = PrivateKey.generate()
    node = await start_bench_node(tmp_path / "node", bench_genesis(validator, 1), validator)
    try:
        lock = node.chain._commit_lock
        released = threading.Event()

        def hold() -> None:  # as a commit on the block thread does
            with lock:
                released.wait(HOLD_S)

        holder = threading.Thread(target=hold)
        lock_taken = threading.Event()
        holder.start()
        while not lock.locked():
            await asyncio.sleep(0.001)
        lock_taken.set()
        gaps: list[float] = []

        async def tick() -> None:
            last = time.monotonic()
            while not released.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        async with aiohttp.ClientSession() as session:
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            request = asyncio.create_task(session.post(node.rpc_url, json=body))
            await asyncio.sleep(HOLD_S)
            released.set()
            response = await request
            answer = await response.json()
        await ticker
        holder.join()
        assert "result" in answer or answer["error"]["code"] != -32603, answer
        assert max(gaps) < 0.2, f"the event loop stood still {max(gaps):.2f} s while {method} waited for the commit"
    finally:
        await node.stop()

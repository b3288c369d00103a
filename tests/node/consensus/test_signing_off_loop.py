"""A validator's signatures are recorded off the event loop.

Before a signature leaves, the signer writes what it signed and fsyncs it (node/consensus/signer.py).
On a busy disk that fsync took up to 1.1 s; made on the event loop, it held every P2P message,
RPC answer and timer of the validator for as long, once per proposal and vote.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from core.keys import PrivateKey
from node.bench.tps import start_bench_node
from node.bench.workload import bench_genesis

DISK_S = 0.3  # a slow fsync, well over the 100 ms a client or peer may see the loop held


async def test_a_slow_signing_record_does_not_hold_the_event_loop(tmp_path: Path) -> None:
    validator = PrivateKey.generate()
    node = await start_bench_node(tmp_path / "node", bench_genesis(validator, 1), validator)
    try:
        signer = node.driver.signer
        assert signer is not None
        record = signer._store
        recorded: list[int] = []

        def on_a_slow_disk(signed: object) -> None:  # the record as a slow disk writes it
            time.sleep(DISK_S)
            record(signed)  # type: ignore[arg-type]
            recorded.append(signed.height)  # type: ignore[attr-defined]

        signer._store = on_a_slow_disk  # type: ignore[method-assign]
        start_height = node.chain.head.height
        gaps: list[float] = []
        last = time.monotonic()
        deadline = last + 30
        while node.chain.head.height < start_height + 2:
            assert time.monotonic() < deadline, "the validator stopped deciding blocks"
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
        assert len(recorded) >= 4, recorded  # the prevotes and precommits of two heights went through it
        assert max(gaps) < DISK_S * 0.6, f"the event loop stood still {max(gaps):.2f} s while a signature was recorded"
    finally:
        await node.stop()

"""Block time that adapts to the load (node/consensus/next_height.py), on a 4-validator testnet of
real processes: blocks one empty-block interval apart when idle, one block time apart under a
light load, and faster than the block time once a block's worth of transactions is pending."""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path
from typing import Any

from core.keys import address_hex
from tests.integration.support import DEV_KEY, batch, raw, transfer
from tests.integration.testnet_support import CHAIN_ID, Testnet, wait_for

BLOCK_TIME_MS = 2000
EMPTY_MS = 4000
BUSY_INTERVAL_MS = 200
BUSY_TXS = 40


def _send_steadily(net: Testnet, nonce: int, per_tick: int, seconds: float) -> tuple[int, int, int]:
    """Send `per_tick` transfers every 0.1 s to node0 for `seconds`; (first height, last height, next nonce)."""
    first = net.height(0)
    recipient = b"\x42" * 20
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        txs = [transfer(DEV_KEY, recipient, 1, nonce + i, chain_id=CHAIN_ID) for i in range(per_tick)]
        nonce += per_tick
        answers = batch(net.nodes[0].rpc_url, [("tx_send", [raw(tx)]) for tx in txs])
        assert all("result" in a for a in answers), answers
        time.sleep(0.1)
    last_hash = "0x" + txs[-1].hash.hex()
    receipt = net.call(0, "tx_wait", last_hash, 30)
    assert receipt is not None, "the last transfer was finalized"
    return first + 1, int(receipt["block_height"]), nonce


def _median_gap_ms(blocks: list[dict[str, Any]]) -> float:
    return statistics.median(b["timestamp_ms"] - a["timestamp_ms"] for a, b in itertools.pairwise(blocks))


def _shape(blocks: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
    return [(b["height"], b["timestamp_ms"] % 100_000, b["tx_count"]) for b in blocks]


def test_blocks_come_faster_than_the_block_time_under_load_and_at_it_otherwise(tmp_path: Path) -> None:
    with Testnet(
        tmp_path, validators=4, block_time_ms=BLOCK_TIME_MS, empty_block_interval_ms=EMPTY_MS, start=False
    ) as net:
        for node in net.nodes:
            with (node.dir / "node.toml").open("a") as toml:
                toml.write(f"\n[consensus]\nbusy_interval_ms = {BUSY_INTERVAL_MS}\nbusy_txs = {BUSY_TXS}\n")
        net.start(*range(4))
        net.wait_height(range(4), 1, 30)
        nonce = int(net.call(0, "state_getAccount", address_hex(DEV_KEY.address))["pending_nonce"])

        # Idle: empty blocks one empty-block interval apart.
        start = net.height(0)
        net.wait_height([0], start + 3, 4 * EMPTY_MS / 1000)
        idle = net.blocks(0, start + 1, start + 3)
        assert all(b["tx_count"] == 0 for b in idle)
        assert _median_gap_ms(idle) >= 0.9 * EMPTY_MS, _shape(idle)

        # A light load (10 transfers/s, fewer than BUSY_TXS per block time): one block per block time.
        first, last, nonce = _send_steadily(net, nonce, 1, 8.0)
        light = [b for b in net.blocks(0, first, last) if b["tx_count"]]
        assert len(light) >= 3, _shape(light)
        assert _median_gap_ms(light) >= 0.8 * BLOCK_TIME_MS, _shape(light)

        # Under load (300 transfers/s, a block's worth pending at each commit): blocks come one busy
        # interval apart or as fast as heights are decided, well within the block time.
        first, last, nonce = _send_steadily(net, nonce, 30, 6.0)
        loaded = net.blocks(0, first, last)
        assert len(loaded) >= 6, _shape(loaded)
        assert _median_gap_ms(loaded) <= 0.5 * BLOCK_TIME_MS, _shape(loaded)
        assert min(b["timestamp_ms"] - a["timestamp_ms"] for a, b in itertools.pairwise(loaded)) > 0

        # The load is gone: back to one empty block per empty-block interval.
        wait_for(lambda: all(net.call(i, "node_status")["mempool_txs"] == 0 for i in range(4)), 30, "mempools to empty")
        start = net.height(0)
        net.wait_height([0], start + 2, 3 * EMPTY_MS / 1000)
        after = net.blocks(0, start + 1, start + 2)
        assert after[1]["timestamp_ms"] - after[0]["timestamp_ms"] >= 0.9 * EMPTY_MS, _shape(after)
        net.assert_same_chain(range(4))

"""The proposer executes transactions while the next block is not due (node/consensus/prebuild.py), on a real node."""

from __future__ import annotations

import itertools
import re
import time
import urllib.request
from pathlib import Path

from tests.harness import NodeProcess
from tests.integration.support import DEV_KEY, batch, pending_nonce, raw, transfer

BLOCK_TIME_MS = 400


def _prebuilt(node: NodeProcess) -> float:
    with urllib.request.urlopen(node.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(r'^aichain_blocks_proposed_total\{how="prebuilt"\} (\S+)$', text, re.MULTILINE)
    return 0.0 if match is None else float(match.group(1))


def test_blocks_are_prebuilt_under_a_steady_light_load_and_come_one_block_time_apart(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, block_time_ms=BLOCK_TIME_MS)
    with node:
        nonce = pending_nonce(node, DEV_KEY.address)
        start_height = node.rpc.call("chain_head")["height"]
        recipient = b"\x42" * 20
        sent = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:  # a steady trickle: a few transfers every 50 ms
            txs = [transfer(DEV_KEY, recipient, 1, nonce + i) for i in range(5)]
            nonce += len(txs)
            answers = batch(node.url, [("tx_send", [raw(tx)]) for tx in txs])
            assert all("result" in a for a in answers), answers
            sent += txs
            time.sleep(0.05)
        last = sent[-1]
        assert node.rpc.call("tx_wait", "0x" + last.hash.hex(), 30) is not None
        head = node.rpc.call("chain_head")["height"]
        blocks = [node.rpc.call("chain_getBlockByHeight", h, False) for h in range(start_height, head + 1)]
        included = sum(b["tx_count"] for b in blocks)
        assert included == len(sent), "every transfer is included exactly once"
        assert _prebuilt(node) >= 3, node.log()
        # A light load (about 100 transfers/s, fewer than the busy count per block) gets a block per
        # block time, not a flood of small blocks; each block's time is when its building began.
        stamps = [b["timestamp_ms"] for b in blocks if b["tx_count"]]
        assert all(b > a for a, b in itertools.pairwise(stamps))
        gaps = sorted(b - a for a, b in itertools.pairwise(stamps))
        assert gaps[len(gaps) // 2] >= 0.8 * BLOCK_TIME_MS, [
            (b["height"], b["timestamp_ms"], b["tx_count"]) for b in blocks
        ]
        assert stamps[-1] <= time.time() * 1000, "never ahead of the clock"

"""The proposer executes transactions while the block time runs (node/consensus/prebuild.py), on a real node."""

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


def test_blocks_are_prebuilt_under_steady_load_and_keep_their_due_time(tmp_path: Path) -> None:
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
        # A prebuilt block carries the time it was due: exactly one block time after its parent.
        on_time = [
            b
            for a, b in itertools.pairwise(blocks)
            if b["tx_count"] and b["timestamp_ms"] - a["timestamp_ms"] == BLOCK_TIME_MS
        ]
        assert len(on_time) >= 3, [(b["height"], b["timestamp_ms"], b["tx_count"]) for b in blocks]

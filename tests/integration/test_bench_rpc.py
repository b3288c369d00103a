"""`bench tps` through JSON-RPC: a real validator process, transfers sent from another process.

A short real run with tiny parameters: the figure is measured from finalized blocks, every
transfer sent was accepted, and neither the node nor the sender outlives the run.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from core.transaction import Transaction
from node import testnet
from node.bench.rpc_tps import request_bodies, run_rpc_tps
from node.bench.workload import signed_transfers


def test_each_connection_sends_its_senders_in_nonce_order() -> None:
    senders, batch = 40, 10
    raws = signed_transfers(senders, 3, [bytes(20)], chain_id=7791)
    bodies = request_bodies(raws, senders, 2, batch)
    seen: dict[bytes, tuple[int, int]] = {}  # sender -> (connection, last nonce)
    total = 0
    for connection, own in enumerate(bodies):
        for body in own:
            request = json.loads(body)
            assert request["method"] == "tx_sendBatch" and len(request["params"][0]) == batch
            for raw in request["params"][0]:
                tx = Transaction.decode(bytes.fromhex(raw[2:]))
                previous = seen.get(tx.sender, (connection, -1))
                assert previous == (connection, tx.nonce - 1)  # same connection, next nonce
                seen[tx.sender] = (connection, tx.nonce)
                total += 1
    assert total == len(raws) == senders * 3


def test_a_short_run_through_json_rpc_from_another_process(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []
    start_node = testnet.start_node

    def recording(node: testnet.TestnetNode, extra: list[str] | None = None) -> int:
        started.append(start_node(node, extra))
        return started[-1]

    monkeypatch.setattr(testnet, "start_node", recording)
    # 250 ms blocks: a few blocks fall in the short window even on a loaded machine. The workload is
    # sized from rate_hint; it must outlast the window on a fast one (a node drains 800 tx/s worth of
    # transfers within the warm-up, and a window without load found too few blocks).
    figures = run_rpc_tps(duration=3.0, rate_hint=4000.0, senders=200, block_time_ms=250, warmup=1.0, batch=100)
    assert figures.tps > 0 and figures.committed > 0 and figures.blocks >= 1
    assert figures.refused == 0 and figures.accepted >= figures.committed
    assert figures.full_blocks == 0 and figures.batch == 100
    assert not multiprocessing.active_children()  # the sender process
    assert len(started) == 1  # the validator process, stopped
    assert not Path(f"/proc/{started[0]}").exists() or os.waitpid(started[0], os.WNOHANG) != (0, 0)


def test_senders_are_rounded_to_whole_batches() -> None:
    with pytest.raises(ValueError):
        request_bodies(signed_transfers(15, 1, [bytes(20)]), 15, 2, 10)

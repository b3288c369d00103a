"""Transaction gossip batches (node/txpool/gossip.py): bounded by count and bytes; a failed batch is survived."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from core.keys import PrivateKey
from core.transaction import Transaction, TxKind
from node.metrics import NodeMetrics
from node.p2p import Peer
from node.txpool.gossip import TXS, TxGossip, batches
from tests.p2p.support import Cluster, connected, wait_until


@given(st.lists(st.integers(0, 300), max_size=60), st.integers(1, 7), st.integers(1, 900))
def test_batches_keep_order_and_both_bounds(sizes: list[int], max_count: int, max_bytes: int) -> None:
    raws = [bytes([i % 256]) * size for i, size in enumerate(sizes)]
    out = list(batches(raws, max_count, max_bytes))
    assert [raw for batch in out for raw in batch] == raws
    for batch in out:
        assert 1 <= len(batch) <= max_count
        assert len(batch) == 1 or sum(map(len, batch)) <= max_bytes  # a larger item goes alone


def tx_with(data_size: int, nonce: int) -> Transaction:
    key = PrivateKey.generate()
    return Transaction(
        7, key.public_key, nonce, 10**6, 1, TxKind.TRANSFER, b"\x01" * 20, 0, random.randbytes(data_size)
    ).signed_by(key)


async def refuse_all(txs: object) -> list[Any]:
    raise AssertionError("this test only sends")


async def test_a_batch_that_cannot_go_out_is_counted_and_gossip_goes_on(cluster: Cluster) -> None:
    """A transaction larger than the frame limit (1 KiB here) cannot be sent: its batch fails, is
    logged and counted, and the next batch still reaches the peer (before: the flusher task died)."""
    a = await cluster.start(max_frame_size=1024)
    b = await cluster.start(max_frame_size=1024)
    got: list[Any] = []

    async def on_txs(peer: Peer, payload: Any) -> None:
        got.append(payload)

    b.register(TXS, on_txs)
    metrics = NodeMetrics()
    gossip = TxGossip(a, metrics, knows=lambda tx_hash: False, admit=refuse_all, order=object())
    await a.connect("127.0.0.1", b.listen_port)
    await wait_until(lambda: connected(a, b), what="a-b")
    gossip.start()
    try:
        too_big, small = tx_with(2000, 0), tx_with(10, 1)
        gossip.announce([too_big])
        await asyncio.sleep(0.1)
        gossip.announce([small])
        await wait_until(lambda: got == [[TXS, [small.encoded]]], what="the batch after the failed one")
        assert metrics.tx_gossip_failures._value.get() == 1
    finally:
        await gossip.stop()

"""Admission on a real node: copies of a transaction that arrive together are verified once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.errors import AlreadyKnown
from core.keys import PrivateKey
from core.transaction import Transaction
from node.bench.tps import start_bench_node
from node.bench.workload import bench_genesis, signed_transfers

SENDERS = 100


async def test_copies_arriving_together_are_verified_once(tmp_path: Path) -> None:
    validator = PrivateKey.generate()
    node = await start_bench_node(tmp_path / "node", bench_genesis(validator, SENDERS), validator)
    try:
        raws = signed_transfers(SENDERS, 2, [bytes(20)])
        # Three peers gossip the same batch at once (as on a 4-node network), each as its own objects.
        copies = [[Transaction.decode(raw) for raw in raws] for _ in range(3)]
        results = await asyncio.gather(*(node.admission.submit_many(txs) for txs in copies))

        admitted = [r for batch in results for r in batch if isinstance(r, bytes)]
        duplicates = [r for batch in results for r in batch if isinstance(r, AlreadyKnown)]
        assert sorted(admitted) == sorted(Transaction.decode(raw).hash for raw in raws)
        assert len(duplicates) == 2 * len(raws)
        assert node.metrics.signatures_verified._value.get() == len(raws)
        assert all(node.admission.knows_encoding(raw) for raw in raws)
        assert not node.admission.knows_encoding(signed_transfers(1, 3, [bytes(20)])[-1])

        # A late copy is known from the mempool: refused without a signature check.
        again = await node.admission.submit_many([Transaction.decode(raws[0])])
        assert isinstance(again[0], AlreadyKnown)
        assert node.metrics.signatures_verified._value.get() == len(raws)
    finally:
        await node.stop()


async def test_admissions_take_effect_in_arrival_order(tmp_path: Path) -> None:
    """A sender's nonce 0 in a big gossip batch (verified on threads) and its nonce 1 in a small batch
    right behind it (verified at once): the mempool must see nonce 0 first, not refuse nonce 1 as a gap."""
    validator = PrivateKey.generate()
    node = await start_bench_node(tmp_path / "node", bench_genesis(validator, SENDERS), validator)
    try:
        raws = signed_transfers(SENDERS, 2, [bytes(20)])  # nonce-major: every nonce 0, then every nonce 1
        first = [Transaction.decode(raw) for raw in raws[:SENDERS]]
        follower = Transaction.decode(raws[SENDERS])  # sender 0's nonce 1
        assert (follower.sender_address, follower.nonce) == (first[0].sender_address, 1)
        big, small = await asyncio.gather(node.admission.submit_many(first), node.admission.submit_many([follower]))
        assert all(isinstance(r, bytes) for r in big)
        assert small == [follower.hash], small
        assert node.mempool.pending_nonce(follower.sender_address) == 2
    finally:
        await node.stop()


async def test_a_journal_record_dated_ahead_of_the_clock_is_readmitted_as_arriving_now(tmp_path: Path) -> None:
    """A damaged record (or a clock stepped back) must not make a transaction that never expires."""
    from node.txpool.admission import now_ms
    from node.txpool.journal import JournalRecord

    validator = PrivateKey.generate()
    node = await start_bench_node(tmp_path / "node", bench_genesis(validator, 1), validator)
    try:
        raw = signed_transfers(1, 1, [bytes(20)])[0]
        far = now_ms() + 10 * 365 * 86_400_000
        admitted = await node.admission.readmit([JournalRecord(far, raw)], node.mempool.limits.ttl_ms)
        assert [tx.encoded for tx in admitted] == [raw]
        ((arrival, _),) = node.mempool.records()
        assert arrival <= now_ms()
    finally:
        await node.stop()


async def test_a_copy_of_a_committed_transaction_is_known_until_it_is_old(tmp_path: Path) -> None:
    """Gossip copies that arrive after the block holding them are dropped unread (not decoded,
    not looked up in the transaction index), for the newest `COMMITTED_KEPT` transactions."""
    from node.txpool import admission as admission_module

    validator = PrivateKey.generate()
    node = await start_bench_node(tmp_path / "node", bench_genesis(validator, SENDERS), validator)
    try:
        raws = signed_transfers(SENDERS, 1, [bytes(20)])
        await node.admission.submit_many([Transaction.decode(raw) for raw in raws])
        height = node.chain.head.height
        await node.head_waiters.wait_for_height(height + 1, 30.0)
        while len(node.mempool):
            await node.head_waiters.wait_for_height(node.chain.head.height + 1, 30.0)
        assert not any(node.mempool.holds_encoding(raw) for raw in raws)  # they left the mempool ...
        assert all(node.admission.knows_encoding(raw) for raw in raws)  # ... and are still known

        # Only the newest are kept: older encodings are forgotten first.
        newer = [Transaction.decode(raw) for raw in signed_transfers(SENDERS, 3, [b"\x01" * 20])[SENDERS:]]
        kept = admission_module.COMMITTED_KEPT
        try:
            admission_module.COMMITTED_KEPT = len(newer)
            node.admission.block_committed(newer)
        finally:
            admission_module.COMMITTED_KEPT = kept
        assert not any(node.admission.knows_encoding(raw) for raw in raws)
        assert all(node.admission.knows_encoding(tx.encoded) for tx in newer)
    finally:
        await node.stop()

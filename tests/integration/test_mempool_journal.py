"""A node killed with kill -9 right after acknowledging transactions still commits them.

The mempool is memory; its journal (`node.txpool.journal`) is what a restarted node admits again.
Each test acknowledges transactions on a dev node whose next block is a minute away, kills it
before that block, and restarts it.
"""

from __future__ import annotations

from pathlib import Path

from tests.harness import NodeProcess
from tests.integration.support import fund, pending_nonce, send_and_wait, transfer
from tests.integration.testnet_support import metric, wait_for

SLOW_BLOCKS_MS = 60_000  # the next block is due a minute after the last: nothing commits meanwhile


def test_acknowledged_transactions_survive_a_kill_9_and_commit_after_the_restart(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, block_time_ms=200)
    with node:
        sender = fund(node, 10**12)
        node.stop()
        node.block_time_ms = SLOW_BLOCKS_MS
        node.start()
        txs = [transfer(sender, bytes(20), 1 + n, n) for n in range(5)]
        for tx in txs:
            assert node.rpc.send(tx) == "0x" + tx.hash.hex()  # acknowledged
        node.kill()

        node.start()
        for tx in txs:
            found = node.rpc.call("tx_get", "0x" + tx.hash.hex())
            assert found is not None and found["status"] == "pending", found
        assert pending_nonce(node, sender.address) == len(txs)
        # The journal was compacted on the way back in: it holds what is pending, not every admission since.
        assert metric(node.url, "aichain_mempool_journal_compactions_total") >= 1

        node.stop()
        node.block_time_ms = 200  # restart with quick blocks: everything acknowledged commits, once
        node.start()
        for tx in txs:
            receipt = node.rpc.call("tx_wait", "0x" + tx.hash.hex(), 30)
            assert receipt is not None and receipt["status"] == "success", receipt


def test_what_was_committed_does_not_come_back(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, block_time_ms=200)
    with node:
        key = fund(node, 10**12)
        committed = [transfer(key, bytes(20), 7 + n, n) for n in range(3)]
        for tx in committed:
            send_and_wait(node, tx)
        node.kill()
        node.start()
        assert node.rpc.call("node_status")["mempool_txs"] == 0  # journaled, but committed: left out
        wait_for(lambda: metric(node.url, "aichain_mempool_journal_bytes") == 0, 10, "the journal to be compacted")
        send_and_wait(node, transfer(key, bytes(20), 99, 3))  # and the node goes on


def test_an_evicted_transaction_stays_evicted_and_what_took_its_nonce_survives(tmp_path: Path) -> None:
    """A transaction the node evicted (here: the pool was full) does not come back from the journal
    after a crash; the transaction its sender sent in its place, at the same nonce and acknowledged
    after the eviction, is the one pending after the restart (it used to be refused as an
    under-priced replacement of the resurrected one, so an acknowledged transaction was lost)."""
    node = NodeProcess(tmp_path, block_time_ms=200)
    with node:
        s, t, u = (fund(node, 10**12) for _ in range(3))
        node.stop()
        node.block_time_ms = SLOW_BLOCKS_MS
        node.env["AICHAIN_MEMPOOL_MAX_TXS"] = "2"
        node.start()
        first = transfer(s, bytes(20), 1, 0, gas_price=100)
        node.rpc.send(first)
        node.rpc.send(transfer(t, bytes(20), 1, 0, gas_price=101))
        node.rpc.send(transfer(u, bytes(20), 1, 0, gas_price=102))  # the pool is full: `first` makes room
        evicted = node.rpc.call("tx_get", "0x" + first.hash.hex())
        assert evicted["status"] == "evicted" and evicted["reason"] == "pool_full", evicted
        instead = transfer(s, bytes.fromhex("ab" * 20), 2, 0, gas_price=103)  # the sender sends nonce 0 anew
        assert node.rpc.send(instead) == "0x" + instead.hash.hex()  # acknowledged
        node.kill()

        del node.env["AICHAIN_MEMPOOL_MAX_TXS"]
        node.start()
        got = node.rpc.call("tx_get", "0x" + instead.hash.hex())
        assert got is not None and got["status"] == "pending", got
        back = node.rpc.call("tx_get", "0x" + first.hash.hex())
        assert back is None or back["status"] != "pending", back

"""Transaction gossip on real nodes: batches bounded by bytes as well as count, a flusher that survives.

A node gossips the transactions it admits in batches (node/network.py). A batch of large
transactions over the 16 MiB frame limit made the broadcast raise and ended the gossip task for
good, silently: from then on the node passed no transaction on. Here a full node that cannot
propose gets 20 MB of the largest transactions in one call; only gossip can bring them to the
validator, so each being committed shows they crossed.
"""

from __future__ import annotations

from pathlib import Path

from core.keys import PrivateKey, address_hex
from core.transaction import MAX_TX_DATA, Transaction, TxKind
from tests.harness import Rpc
from tests.integration.support import DEV_KEY, batch, raw, transfer
from tests.integration.testnet_support import CHAIN_ID, Testnet, wait_for
from vm.gas import intrinsic_gas

RECIPIENT = b"\x42" * 20
LARGE_DATA = bytes(range(256)) * (MAX_TX_DATA // 256)
BIG_BODY = 64 * 1024 * 1024  # node1 takes 20 MB in one tx_sendBatch (the default is 5 MiB a request)


def large(key: PrivateKey, nonce: int) -> Transaction:
    gas = intrinsic_gas(LARGE_DATA)
    tx = Transaction(CHAIN_ID, key.public_key, nonce, gas, 1, TxKind.TRANSFER, RECIPIENT, 0, LARGE_DATA)
    return tx.signed_by(key)


def test_a_batch_of_large_transactions_over_the_frame_limit_reaches_the_validator(tmp_path: Path) -> None:
    with Testnet(tmp_path, validators=1, full_nodes=1, start=False) as net:
        toml = net.nodes[1].dir / "node.toml"
        toml.write_text(toml.read_text().replace("[rpc]\n", f"[rpc]\nmax_body_bytes = {BIG_BODY}\n"))
        net.start(0, 1)
        wait_for(lambda: net.call(1, "node_status")["peers"] == 1, 20, "the two nodes to connect")
        sender = PrivateKey.generate()
        funding = transfer(DEV_KEY, sender.address, 10**15, 0, chain_id=CHAIN_ID)
        assert net.rpc(0).call("tx_wait", net.rpc(0).send(funding), 30) is not None
        txs = [large(sender, n) for n in range(150)]  # 150 x 131 KB = 19.7 MB: more than a frame carries
        assert sum(len(tx.encoded) for tx in txs) > 16 * 1024 * 1024
        (answer,) = batch(net.nodes[1].rpc_url, [("tx_sendBatch", [[raw(tx) for tx in txs]])], timeout=120)
        assert all("hash" in outcome for outcome in answer["result"]), answer["result"][:3]
        # The validator commits them all; it never saw them but from node1's gossip.
        last = Rpc(net.nodes[0].rpc_url, timeout=70).call("tx_wait", "0x" + txs[-1].hash.hex(), 60)
        assert last is not None and last["status"] == "success", net.log_tail(net.nodes[1])
        # And gossip goes on: a small transaction sent to node1 later is committed too.
        after = transfer(sender, RECIPIENT, 1, len(txs), chain_id=CHAIN_ID)
        net.rpc(1).send(after)
        assert net.rpc(0).call("tx_wait", "0x" + after.hash.hex(), 30) is not None
        account = net.call(0, "state_getAccount", address_hex(sender.address))
        assert account["nonce"] == len(txs) + 1

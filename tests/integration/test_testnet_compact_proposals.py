"""A 4-validator testnet of real processes finalizes blocks full of transactions with compact proposals:
each validator rebuilds peers' blocks from its mempool (fetching what it lacks), and no proposal
travels as a full block but to repair a peer that lacks it."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from core.keys import PrivateKey, address_hex
from tests.integration.support import DEV_KEY, transfer
from tests.integration.testnet_support import CHAIN_ID, Testnet, metric

TXS = 300


def _sample(rpc_url: str, line_start: str) -> float:
    with urllib.request.urlopen(rpc_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def test_four_validators_finalize_full_blocks_with_compact_proposals(tmp_path: Path) -> None:
    with Testnet(tmp_path, validators=4) as net:
        net.wait_height(range(4), 2, 30)
        senders = [PrivateKey.generate() for _ in range(4)]
        nonce = int(net.call(0, "state_getAccount", address_hex(DEV_KEY.address))["pending_nonce"])
        funding = [transfer(DEV_KEY, k.address, 10**12, nonce + n, chain_id=CHAIN_ID) for n, k in enumerate(senders)]
        for tx in funding:
            net.rpc(0).send(tx)
        funded = net.call(0, "tx_wait", "0x" + funding[-1].hash.hex(), 8)
        assert funded is not None, "funding not committed"
        net.wait_height(range(4), funded["block_height"], 30)
        recipient = PrivateKey.generate().address
        per_sender = TXS // 4
        txs = [transfer(k, recipient, 1, n, chain_id=CHAIN_ID) for k in senders for n in range(per_sender)]
        for i in range(4):  # each sender's to its own node: proposers hold some that peers lack yet
            batch = txs[i * per_sender : (i + 1) * per_sender]
            net.call(i, "tx_sendBatch", ["0x" + tx.encoded.hex() for tx in batch])
        receipts = [
            net.call((i + 1) % 4, "tx_wait", "0x" + txs[(i + 1) * per_sender - 1].hash.hex(), 8) for i in range(4)
        ]
        assert all(r is not None and r["status"] == "success" for r in receipts), receipts
        receipt = max(receipts, key=lambda r: r["block_height"])
        top = receipt["block_height"] + 1
        net.wait_height(range(4), top, 30)
        compared = net.assert_same_chain(range(4))
        assert compared >= top
        included = sum(len(block["transactions"]) for block in net.blocks(0, 1, compared))
        assert included >= TXS
        for node in net.nodes[:4]:
            rebuilt = metric(node.rpc_url, "aichain_compact_proposals_total")
            unavailable = _sample(node.rpc_url, 'aichain_compact_proposals_total{outcome="unavailable"}')
            assert rebuilt >= 1 and unavailable == 0, f"{node.name}: {rebuilt} compact proposals, {unavailable} lost"
            # Full blocks go only to a peer that announces it still lacks the proposal (vote gossip's
            # repair: a peer that connected late, or that could not rebuild): rarely.
            full = _sample(node.rpc_url, 'aichain_p2p_messages_total{direction="out",type="17"}')
            compact = _sample(node.rpc_url, 'aichain_p2p_messages_total{direction="out",type="28"}')
            assert compact >= 1 and full <= compact / 10, f"{node.name}: {full} full, {compact} compact proposals"

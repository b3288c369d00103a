"""A node that syncs blocks full of transactions keeps its event loop free: it decodes them on a worker thread.

Block sync decoded each answer's blocks (up to 8 MiB, tens of thousands of transactions none of
which the syncing node has seen) on the event loop, in one stretch: two blocks of 10,000 transfers
held it 152 ms.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.keys import PrivateKey
from tests.integration.p2p_attack import Target
from tests.integration.support import DEV_KEY, batch, post, raw
from tests.integration.testnet_support import CHAIN_ID, Testnet, wait_for
from tests.integration.tx_mutants import transfer
from tests.node_health import stall_lines


def test_a_late_node_syncs_blocks_of_thousands_of_transactions_without_a_stall(tmp_path: Path) -> None:
    with Testnet(tmp_path, validators=1, full_nodes=1, block_time_ms=2000) as net:
        senders = [PrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(20)]
        funding = [transfer(DEV_KEY, CHAIN_ID, n, value=10**13, to=key.address) for n, key in enumerate(senders)]
        assert all("result" in a for a in batch(net.nodes[0].rpc_url, [("tx_send", [raw(t)]) for t in funding]))
        assert net.rpc(0).call("tx_wait", "0x" + funding[-1].hash.hex(), 30) is not None
        txs = [transfer(key, CHAIN_ID, n) for n in range(1000) for key in senders]  # 20,000, in one or two blocks
        for start in (0, 10_000):
            body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tx_sendBatch",
                    "params": [[raw(tx) for tx in txs[start : start + 10_000]]],
                }
            )
            assert all("hash" in r for r in post(net.nodes[0].rpc_url, body, timeout=60).json()["result"])
        assert net.rpc(0).call("tx_wait", "0x" + txs[-1].hash.hex(), 30) is not None
        top = net.height(0)
        net.start(1)
        wait_for(lambda: net.height(1) >= top, 60, f"node1 to sync to {top}")
        late = Target.of(net.nodes[1])
        assert late.metric("aichain_sync_blocks_imported_total") >= 2
        assert not stall_lines(late.log()), stall_lines(late.log())
        assert late.health().blocked_max_s < 0.1
        net.assert_same_chain([0, 1], up_to=top)

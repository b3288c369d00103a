"""Licence purchases executed in blocks on a single validator, through the node's real path.

Set-up (not measured): a parent model "base" with one owner, a model "tuned" with three
owners whose version 2 derives from base, and an offer on it with a 10% upstream royalty.
Then buyers send pre-signed `buy` calls to the licensing system contract (each buyer buys,
then renews) through admission (Ed25519 on two threads) into blocks executed and committed
to LevelDB; the figure is purchases in blocks per second. Every purchase is checked to have
succeeded: the upstream owner's income must equal purchases x the royalty of one.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.genesis import ChainParams
from core.keys import PrivateKey
from core.receipt import STATUS_SUCCESS
from core.transaction import Transaction, TxKind
from node.bench.tps import _drive
from node.bench.workload import BENCH_CHAIN_ID, account_key, bench_genesis, signed_calls
from node.config import NodeConfig, P2PConfig, RpcConfig
from vm.contract_tx import encode_call
from vm.system import LICENSING, MODELS

PRICE = 10_000
UPSTREAM_BPS = 1_000
ROYALTY = PRICE * UPSTREAM_BPS // 10_000  # what the upstream owner earns per purchase
BUY_GAS = 200_000
OWNERS = 4  # account_key(0..2): the three owners of "tuned"; account_key(3): the owner of "base"


def setup_calls() -> list[Transaction]:
    """Register the models, publish the derived version and make the offer (one tx each, in order)."""
    a, b, c, up = (account_key(i) for i in range(OWNERS))
    steps: list[tuple[PrivateKey, bytes, str, list[Any]]] = [
        (up, MODELS, "register_model", ["base", b"\x01" * 32, "onnx", b"", [[up.address, 10_000]]]),
        (a, MODELS, "register_model",
         ["tuned", b"\x02" * 32, "onnx", b"", [[a.address, 5_000], [b.address, 3_000], [c.address, 2_000]]]),
        (b, MODELS, "publish_version", ["tuned", b"\x03" * 32, [["base", 1]], []]),
        (c, LICENSING, "make_offer", ["tuned", 2, PRICE, 3600, 0, 0, [], UPSTREAM_BPS]),
    ]  # fmt: skip
    calls = [(key, Transaction(BENCH_CHAIN_ID, key.public_key, 0, 1_000_000, 1, TxKind.CALL, to, 0,
                               encode_call(function, args))) for key, to, function, args in steps]  # fmt: skip
    return [tx.signed_by(key) for key, tx in calls]


async def _run(
    datadir: Path, buyers: int, raws: list[bytes], duration: float, block_time_ms: int, rate_hint: int
) -> dict[str, Any]:
    from node.node import Node
    from vm.state import StateView

    validator = PrivateKey.generate()
    params = ChainParams(block_time_ms=block_time_ms, max_block_txs=20_000, block_gas_limit=20_000 * BUY_GAS)
    genesis = bench_genesis(validator, OWNERS + buyers, params=params)
    datadir.mkdir(parents=True, exist_ok=True)
    genesis.save(datadir / "genesis.json")
    config = replace(NodeConfig(datadir=datadir), rpc=RpcConfig(port=0), p2p=P2PConfig(enabled=False))
    node = Node(config, validator_key=validator)
    await node.start()
    try:
        for tx in setup_calls():  # one by one: each needs the one before it in the state
            results = await node.submit_many([tx])
            if not isinstance(results[0], bytes):
                raise RuntimeError(f"set-up transaction refused: {results[0]}")
            while (where := node.chain.blocks.tx_location(tx.hash)) is None:
                await node.wait_for_height(node.chain.head.height + 1, 5.0)
            receipt = node.chain.blocks.receipt(*where)
            if receipt is None or receipt.status != STATUS_SUCCESS:
                raise RuntimeError(f"set-up transaction failed: {receipt}")
        upstream = account_key(OWNERS - 1).address
        before = StateView(node.chain.state).account(upstream).balance
        set_up_height = node.chain.head.height
        backlog = max(4_000, 4 * rate_hint * block_time_ms // 1000)
        result = await _drive(node, raws, duration, batch=1000, backlog=backlog)
        # Wait for what is still in the mempool, then count the purchases that succeeded.
        deadline = time.monotonic() + 30
        while len(node.mempool) and time.monotonic() < deadline:
            await node.wait_for_height(node.chain.head.height + 1, 5.0)
        earned = StateView(node.chain.state).account(upstream).balance - before
        result["succeeded"] = earned // ROYALTY
        registry = node.metrics.registry
        for how in ("prebuilt", "built"):
            result[how] = registry.get_sample_value("aichain_blocks_proposed_total", {"how": how}) or 0
        blocks = (node.chain.blocks.block(h) for h in range(set_up_height + 1, node.chain.head.height + 1))
        result["included"] = sum(block.header.tx_count for block in blocks if block is not None)
        return result
    finally:
        await node.stop()


def measure_purchases(duration: float = 20.0, buyers: int = 2000, rate_hint: int = 4000,
                      block_time_ms: int = 1000) -> dict[str, Any]:  # fmt: skip
    """Purchases per second in blocks, and the checks that every one of them succeeded."""
    per_buyer = max(1, int(rate_hint * (duration + 3) / buyers) + 1)
    keys = range(OWNERS, OWNERS + buyers)
    started = time.perf_counter()
    raws = signed_calls(keys, per_buyer, LICENSING, PRICE, encode_call("buy", ["tuned", 1]), BUY_GAS)
    signing_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="aichain-bench-licences-") as tmp:
        result = asyncio.run(_run(Path(tmp), buyers, raws, duration, block_time_ms, rate_hint))
    result["signing_s"] = signing_s
    result["presigned"] = len(raws)
    return result

"""Licence purchases executed in blocks on a single validator.

Set-up (not measured): a parent model "base" with one owner, a model "tuned" with three
owners whose version 2 derives from base, and an offer on it with a 10% upstream royalty.
Buyers then send pre-signed `buy` calls to the licensing system contract (each buyer buys,
then renews). Two measurements:

- in blocks (`measure_block_execution`): the validator's block path on its LevelDB chain:
  blocks of purchases executed, state-rooted and committed (fsynced), one after another;
  signatures were checked at admission, as for any block this validator builds;
- end to end (`measure_purchases`): a running single-validator node, the purchases arriving
  through admission (decoding, Ed25519 on two threads, nonce and balance rules).

Both check that every purchase succeeded: the upstream owner's income must equal the number
of purchases times the royalty of one.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from core.contract_values import encode_call
from core.genesis import ChainParams
from core.keys import PrivateKey
from core.receipt import STATUS_SUCCESS
from core.system_addresses import LICENSING, MODELS
from core.transaction import Transaction, TxKind
from node.bench.tps import _drive, start_bench_node
from node.bench.workload import BENCH_CHAIN_ID, account_key, bench_genesis, signed_calls

PRICE = 10_000
UPSTREAM_BPS = 1_000
ROYALTY = PRICE * UPSTREAM_BPS // 10_000  # what the upstream owner earns per purchase
BUY_GAS = 500_000  # a purchase uses about 340,000
OWNERS = 4  # account_key(0..2): the three owners of "tuned"; account_key(3): the owner of "base"


def setup_calls() -> list[Transaction]:
    """Register the models, publish the derived version and make the offer (one tx each, in order)."""
    a, b, c, up = (account_key(i) for i in range(OWNERS))
    steps: list[tuple[PrivateKey, bytes, str, list[Any]]] = [
        (up, MODELS, "register_model", ["base", b"\x01" * 32, "onnx", b"", [[up.address, 10_000]]]),
        (
            a,
            MODELS,
            "register_model",
            ["tuned", b"\x02" * 32, "onnx", b"", [[a.address, 5_000], [b.address, 3_000], [c.address, 2_000]]],
        ),
        (b, MODELS, "publish_version", ["tuned", b"\x03" * 32, [["base", 1]], []]),
        (c, LICENSING, "make_offer", ["tuned", 2, PRICE, 3600, 0, 0, [], UPSTREAM_BPS]),
    ]
    calls = [
        (
            key,
            Transaction(
                BENCH_CHAIN_ID, key.public_key, 0, 2_000_000, 1, TxKind.CALL, to, 0, encode_call(function, args)
            ),
        )
        for key, to, function, args in steps
    ]
    return [tx.signed_by(key) for key, tx in calls]


async def _run(
    datadir: Path, buyers: int, raws: list[bytes], duration: float, block_time_ms: int, rate_hint: int
) -> dict[str, Any]:
    from vm.state import StateView

    validator = PrivateKey.generate()
    params = ChainParams(block_time_ms=block_time_ms, max_block_txs=20_000, block_gas_limit=20_000 * BUY_GAS)
    genesis = bench_genesis(validator, OWNERS + buyers, params=params)
    node = await start_bench_node(datadir, genesis, validator)
    try:
        for tx in setup_calls():  # one by one: each needs the one before it in the state
            results = await node.admission.submit_many([tx])
            if not isinstance(results[0], bytes):
                raise RuntimeError(f"set-up transaction refused: {results[0]}")
            while (where := node.chain.blocks.tx_location(tx.hash)) is None:
                await node.head_waiters.wait_for_height(node.chain.head.height + 1, 5.0)
            receipt = node.chain.blocks.receipt(*where)
            if receipt is None or receipt.status != STATUS_SUCCESS:
                raise RuntimeError(f"set-up transaction failed: {receipt}")
        upstream = account_key(OWNERS - 1).address
        before = StateView(node.chain.state).account(upstream).balance
        set_up_height = node.chain.head.height
        batch = max(50, min(1000, rate_hint * block_time_ms // 4000))  # a few submissions per block
        backlog = max(2 * batch, 4 * rate_hint * block_time_ms // 1000)
        result = await _drive(node, raws, duration, batch=batch, backlog=backlog)
        # Wait for what is still in the mempool, then count the purchases that succeeded.
        deadline = time.monotonic() + 30
        while len(node.mempool) and time.monotonic() < deadline:
            await node.head_waiters.wait_for_height(node.chain.head.height + 1, 5.0)
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


def measure_block_execution(blocks: int = 6, block_txs: int = 2000) -> dict[str, Any]:
    """Purchases per second executed, rooted and committed in blocks of `block_txs` (the median block)."""
    from consensus.single import single_validator_commit
    from node.chain import Chain
    from storage.kv import KeyValueStore

    validator = PrivateKey.generate()
    params = ChainParams(max_block_txs=block_txs, block_gas_limit=block_txs * BUY_GAS)
    genesis = bench_genesis(validator, OWNERS + block_txs, params=params)
    raws = signed_calls(
        range(OWNERS, OWNERS + block_txs), blocks, LICENSING, PRICE, encode_call("buy", ["tuned", 1]), BUY_GAS
    )
    purchases = [Transaction.decode(raw) for raw in raws]
    upstream = account_key(OWNERS - 1).address
    with tempfile.TemporaryDirectory(prefix="aichain-bench-licences-") as tmp:
        kv = KeyValueStore(Path(tmp) / "chaindata", cache_mb=64)
        try:
            chain = Chain(kv, genesis)

            def build_and_commit(txs: list[Transaction]) -> None:
                pending = chain.build(txs, validator.address, chain.head.timestamp_ms + 1000)
                header = pending.block.header
                chain.commit(pending, single_validator_commit(validator, genesis.validators, genesis.chain_id, header))

            build_and_commit(setup_calls())
            before = chain.account(upstream).balance
            seconds = []
            for b in range(blocks):
                started = time.perf_counter()
                build_and_commit(purchases[b * block_txs : (b + 1) * block_txs])
                seconds.append(time.perf_counter() - started)
            succeeded = (chain.account(upstream).balance - before) // ROYALTY
            gas_per_purchase = chain.head.gas_used // max(1, chain.head.tx_count)
        finally:
            kv.close()
    return {
        "rate": block_txs / statistics.median(seconds),
        "block_s": seconds,
        "succeeded": succeeded,
        "purchases": blocks * block_txs,
        "gas_per_purchase": gas_per_purchase,
    }


def measure_purchases(
    duration: float = 20.0, buyers: int = 2000, rate_hint: int = 4000, block_time_ms: int = 1000
) -> dict[str, Any]:
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

"""`bench tps`: sustained transfers per second through the node's real path.

Path measured: decode the signed bytes → mempool admission (stateless checks, Ed25519
verification on two threads, nonce/balance rules) → block production (execution, state
root) → an fsynced LevelDB batch per block. The number printed beside it is one core's
Ed25519 verifications per second, measured in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.genesis import ChainParams, Genesis
from core.keys import PrivateKey
from core.transaction import Transaction
from node.bench import limits
from node.bench.report import Report
from node.bench.workload import bench_genesis, signed_transfers
from node.config import NodeConfig, P2PConfig, RpcConfig
from node.process_tuning import tune_gc, tune_malloc

if TYPE_CHECKING:
    from node.node import Node


async def start_bench_node(datadir: Path, genesis: Genesis, validator: PrivateKey) -> Node:
    """A started single-validator node in this process: no P2P, RPC on a free port."""
    from node.node import Node

    datadir.mkdir(parents=True, exist_ok=True)
    genesis.save(datadir / "genesis.json")
    config = replace(NodeConfig(datadir=datadir), rpc=RpcConfig(port=0), p2p=P2PConfig(enabled=False))
    node = Node(config, validator_key=validator)
    await node.start()
    tune_gc()  # as `aichain-node start` does: the figures are those of a node's process
    tune_malloc()
    return node


async def _run_node(
    datadir: Path,
    raws: list[bytes],
    genesis_params: ChainParams,
    duration: float,
    batch: int,
    backlog: int,
    validator: PrivateKey,
    senders: int,
) -> dict[str, float]:
    genesis = bench_genesis(validator, senders, params=genesis_params)
    node = await start_bench_node(datadir, genesis, validator)
    try:
        return await _drive(node, raws, duration, batch, backlog)
    finally:
        await node.stop()


async def _drive(node: object, raws: list[bytes], duration: float, batch: int, backlog: int) -> dict[str, float]:
    from node.node import Node

    assert isinstance(node, Node)
    rejected = 0
    cursor = 0
    done = asyncio.Event()

    async def feed() -> None:
        nonlocal cursor, rejected
        while cursor < len(raws) and not done.is_set():
            if len(node.mempool) >= backlog:
                await asyncio.sleep(0.005)
                continue
            chunk = raws[cursor : cursor + batch]
            cursor += len(chunk)
            txs = [Transaction.decode(raw) for raw in chunk]
            results = await node.admission.submit_many(txs)
            rejected += sum(1 for r in results if not isinstance(r, bytes))
            await asyncio.sleep(0)

    feeder = asyncio.create_task(feed())
    start_height = node.chain.head.height
    observations: list[tuple[float, int, int]] = []  # (time, height, txs in block)
    first_tx_time: float | None = None
    deadline = None
    try:
        while True:
            await node.head_waiters.wait_for_height(node.chain.head.height + 1, 5.0)
            now = time.perf_counter()
            head = node.chain.head
            if head.height == start_height:
                continue
            if head.tx_count and first_tx_time is None:
                first_tx_time = now
                deadline = now + duration
            if first_tx_time is not None:
                observations.append((now, head.height, head.tx_count))
            if deadline is not None and now >= deadline:
                break
            if cursor >= len(raws) and (len(observations) >= 3 or len(node.mempool) == 0):
                # Ran out: the window ends here, before blocks that only drain the mempool
                # would lower the figure (the report says the window was short).
                break
    finally:
        done.set()
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
    # Sustained rate: transactions of every block after the first, over the time since the first.
    if len(observations) < 2:
        raise RuntimeError("too few blocks to measure; give a longer --duration or more transactions")
    elapsed = observations[-1][0] - observations[0][0]
    committed = sum(o[2] for o in observations[1:])
    sizes = [o[2] for o in observations[1:]]
    intervals = [b[0] - a[0] for a, b in itertools.pairwise(observations)]
    return {
        "tps": committed / elapsed,
        "committed": committed,
        "elapsed": elapsed,
        "blocks": len(observations) - 1,
        "median_block_txs": statistics.median(sizes),
        "median_interval_s": statistics.median(intervals),
        "rejected": rejected,
        "exhausted": float(cursor >= len(raws)),
        "full_blocks": sum(1 for size in sizes if size >= node.chain.params.max_block_txs),
    }


PILOT_S = 5.0  # seconds of the quick run that sizes the workload
MARGIN = 1.6  # the workload is sized for this many times the quick run's rate (noisy on a shared machine)


def _per_sender(rate: float, seconds: float, senders: int) -> int:
    return max(1, int(rate * seconds / senders) + 1)


def run_tps(
    duration: float = 30.0,
    senders: int = 2000,
    rate_hint: int = 12000,
    block_time_ms: int = 1000,
    batch: int = 2000,
    datadir: Path | None = None,
    rpc_duration: float = 20.0,
) -> Report:
    """The in-process figure, then (unless rpc_duration is 0) the figure through JSON-RPC.

    The pre-signed workload is sized from a quick run first (PILOT_S s on a node of its own, its
    workload sized by `rate_hint`): MARGIN times what it finalized (twice that if it ran out)
    over the measured window and a few seconds, so that the measurement does not run out. The
    JSON-RPC workload is sized from the in-process figure (node/bench/rpc_tps.py).
    """
    report = Report("aichain-node bench tps: transfers finalized per second (single validator)")
    verify_rate = limits.ed25519_verifications_per_s()
    openssl_rate = limits.ed25519_openssl_verifications_per_s()
    recipients = [bytes([i % 256, i // 256]) + bytes(18) for i in range(5000)]
    max_block_txs = 50_000
    params = ChainParams(
        block_time_ms=block_time_ms, max_block_txs=max_block_txs, block_gas_limit=max_block_txs * 21_000
    )
    validator = PrivateKey.generate()
    with tempfile.TemporaryDirectory(prefix="aichain-bench-", dir=datadir) as tmp:
        pilot_raws = signed_transfers(senders, _per_sender(rate_hint, PILOT_S + 3, senders), recipients)
        backlog = max(2 * batch, 4 * rate_hint * block_time_ms // 1000)
        pilot = asyncio.run(
            _run_node(Path(tmp) / "pilot", pilot_raws, params, PILOT_S, batch, backlog, validator, senders)
        )
        estimate = pilot["tps"] * MARGIN * (2.0 if pilot["exhausted"] else 1.0)
        started = time.perf_counter()
        raws = signed_transfers(senders, _per_sender(estimate, duration + 3, senders), recipients)
        signing_s = time.perf_counter() - started
        backlog = max(2 * batch, int(4 * estimate * block_time_ms / 1000))
        result = asyncio.run(_run_node(Path(tmp) / "node", raws, params, duration, batch, backlog, validator, senders))
    report.add(
        "transfers finalized /s (sustained)",
        result["tps"],
        "tx/s",
        "Ed25519 verifications/s, one core (libsodium)",
        verify_rate,
        target=">= 12000 tx/s",
    )
    report.add("Ed25519 verifications/s (OpenSSL)", openssl_rate, "verify/s")
    block_cap = max_block_txs * 1000 / block_time_ms
    report.notes.update(
        {
            "measured over": f"{result['elapsed']:.1f} s: {int(result['committed'])} txs",
            "blocks": int(result["blocks"]),
            "median txs per block": int(result["median_block_txs"]),
            "median block interval": f"{result['median_interval_s']:.3f} s (target {block_time_ms / 1000:.3f} s)",
            "block limit": f"{max_block_txs} txs per block, {block_cap:,.0f} tx/s at the target interval; "
            f"{int(result['full_blocks'])} blocks were full",
            "rejected at admission": int(result["rejected"]),
            "pre-signed": f"{len(raws)} txs from {senders} senders in {signing_s:.1f} s (not measured), "
            f"sized from a {PILOT_S:g} s run at {pilot['tps']:,.0f} tx/s",
            "ran out of pre-signed txs": (
                f"yes: the window ended there, after {result['elapsed']:.1f} of {duration:g} s"
                if result["exhausted"]
                else "no"
            ),
        }
    )
    if rpc_duration > 0:
        _rpc_figure(report, result["tps"], rpc_duration, senders, block_time_ms, verify_rate)
    return report


def _rpc_figure(
    report: Report, in_process: float, duration: float, senders: int, block_time_ms: int, verify_rate: float
) -> None:
    from node.bench.rpc_tps import run_rpc_tps

    rpc = run_rpc_tps(duration, in_process, senders, block_time_ms)
    report.add(
        "  through JSON-RPC from another process",
        rpc.tps,
        "tx/s",
        "Ed25519 verifications/s, one core (libsodium)",
        verify_rate,
        target=">= 9000 tx/s",
    )
    report.notes["JSON-RPC"] = (
        f"an aichain-node validator process; a separate process posts tx_sendBatch ({rpc.batch} txs) on 2 "
        f"connections; {rpc.committed} txs in {rpc.blocks} blocks over {rpc.window_s:.1f} s; "
        f"{rpc.accepted} of {rpc.presigned} pre-signed accepted, {rpc.refused} refused; {rpc.full_blocks} blocks full; "
        f"ran out of pre-signed txs: {rpc.ran_out}; {rpc.tps / in_process:.2f}x the in-process figure"
    )

"""`bench state`: block execution and state root over a large state, and proof serving.

Builds a chain whose genesis holds `accounts` accounts, then times, at that size:
- building a block of `block_txs` transfers: execution and the new state root (the proposer's
  path; signatures were verified at admission);
- executing the same block as a validator would (checks included, signatures cached);
- committing it (one fsynced LevelDB batch);
- serving an account with its proof, and verifying a proof.
Beside them: SHA-256 hashes/s and LevelDB random reads/s measured in the same run.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from consensus.single import single_validator_commit
from core.genesis import ChainParams
from core.keys import PrivateKey
from core.transaction import Transaction, TxKind
from node.bench import limits
from node.bench.report import Report
from node.bench.workload import account_key, bench_genesis
from node.chain import Chain
from storage import keys
from storage.kv import KeyValueStore
from storage.state_proof import verify_proof
from vm.account import account_key as state_key
from vm.gas import TX_BASE


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_state(
    accounts: int = 1_000_000, block_txs: int = 10_000, proofs: int = 2000, datadir: Path | None = None
) -> Report:
    report = Report(f"aichain-node bench state: {accounts:,} accounts, {block_txs:,}-transfer block")
    rng = random.Random(7)
    validator = PrivateKey.generate()
    senders = min(block_txs, accounts)
    extra = [os.urandom(20) for _ in range(accounts - senders)]
    genesis = bench_genesis(
        validator,
        senders,
        extra,
        ChainParams(max_block_txs=max(block_txs, 20_000), block_gas_limit=block_txs * TX_BASE * 2),
    )
    everyone = [a for a, _ in genesis.allocations]
    with tempfile.TemporaryDirectory(prefix="aichain-bench-", dir=datadir) as tmp:
        kv = KeyValueStore(Path(tmp) / "chaindata", cache_mb=256)
        try:
            started = time.perf_counter()
            chain = Chain(kv, genesis)
            load_s = time.perf_counter() - started
            txs = []
            for i in range(senders):
                key = account_key(i)
                to = everyone[rng.randrange(len(everyone))]
                txs.append(
                    Transaction(genesis.chain_id, key.public_key, 0, TX_BASE, 1, TxKind.TRANSFER, to, 5, b"").signed_by(
                        key
                    )
                )
            chain.tree.warm()
            build_s = _median_time(lambda: chain.build(txs, validator.address, 0), 3)
            pending = chain.build(txs, validator.address, 0)
            verified = {tx.hash for tx in txs}
            execute_s = _median_time(lambda: chain.execute(pending.block, None, verified), 3)
            commit = single_validator_commit(validator, genesis.validators, genesis.chain_id, pending.block.header)
            started = time.perf_counter()
            chain.commit(pending, commit)
            commit_s = time.perf_counter() - started
            sample = rng.sample(everyone, min(proofs, len(everyone)))
            serve = []
            checked = 0
            for address in sample:
                started = time.perf_counter()
                header, value, proof = chain.prove_account(address)
                serve.append(time.perf_counter() - started)
                checked += verify_proof(header.state_root, state_key(address), value, proof)
            started = time.perf_counter()
            for address in sample[:500]:
                header, value, proof = chain.prove_account(address)
                verify_proof(header.state_root, state_key(address), value, proof)
            kv_reads = _kv_reads_per_s(kv, rng, everyone)
        finally:
            kv.close()
    serve.sort()
    sha_rate = limits.sha256_small_per_s()
    report.add("block build: execute + state root", build_s * 1000, "ms", target="< 1000 ms")
    report.add("block validation: checks + execute + root", execute_s * 1000, "ms")
    report.add("block commit (fsynced batch)", commit_s * 1000, "ms")
    report.add("transfers executed+rooted /s", block_txs / build_s, "tx/s", "SHA-256 (64 B)/s one core", sha_rate)
    report.add("proof served, median", statistics.median(serve) * 1e6, "µs", target="< 1000 µs")
    report.add(
        "proof served, p99", serve[int(len(serve) * 0.99) - 1] * 1e6, "µs", "LevelDB random read µs", 1e6 / kv_reads
    )
    report.notes["proofs verified"] = f"{checked}/{len(sample)}"
    report.notes["genesis state load (1 batch)"] = f"{load_s:.1f} s"
    report.notes["LevelDB random reads/s"] = f"{kv_reads:,.0f}"
    return report


def _kv_reads_per_s(kv: KeyValueStore, rng: random.Random, addresses: list[bytes]) -> float:
    sample = [keys.STATE + state_key(a) for a in rng.sample(addresses, min(20_000, len(addresses)))]
    started = time.perf_counter()
    for key in sample:
        kv.get(key)
    return len(sample) / (time.perf_counter() - started)

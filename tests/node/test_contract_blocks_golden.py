"""Contract-heavy blocks keep their exact consensus results: state roots, receipts, gas and events.

Blocks of system-contract calls (licence purchases and renewals, metered offers with deposits,
usage charged from escrow, calls that revert, malformed data) are built and committed on a
LevelDB chain, and replayed by a second node through `Chain.execute`. Every header hash (it
covers the state root, the receipts root and the gas used) is folded into one digest that must
equal the one recorded: a faster interpreter, storage path or call path must not move it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from consensus.single import single_validator_commit
from core.contract_values import encode_call
from core.genesis import ChainParams
from core.hashing import sha256
from core.keys import PrivateKey
from core.receipt import STATUS_FAILED, STATUS_SUCCESS
from core.system_addresses import LICENSING, MODELS
from core.transaction import Transaction, TxKind
from node.bench.licences import PRICE, setup_calls
from node.bench.workload import BENCH_CHAIN_ID, account_key, bench_genesis
from node.chain import Chain
from storage.kv import KeyValueStore

GOLDEN = "86f9514d4ec16236630047b8a0a10a4d07b6949b7c76038adaa5aeb96161eb4a"
OWNERS = 4  # as node/bench/licences.py: account_key(0..2) own "tuned", account_key(3) owns "base"
BUYERS = 12  # account_key(OWNERS + BUYERS) sends the odd calls
GAS = 2_000_000
VALIDATOR = PrivateKey.from_seed(b"\x07" * 32)


Step = tuple[int, bytes, str, list[Any], int]  # account index, contract, function ("": malformed), args, value


def _steps() -> list[list[Step]]:
    """Blocks of calls, after the bench's set-up: licence purchases with every outcome."""
    plain = [OWNERS + i for i in range(8)]
    metered = [OWNERS + 8 + i for i in range(4)]
    last = OWNERS + BUYERS
    first: list[Step] = [
        (2, LICENSING, "make_offer", ["tuned", 2, 500, 60, 7, 3, [], 2_500], 0),  # offer 2: metered, 3 seats
        (1, MODELS, "publish_version", ["base", b"\x04" * 32, [], []], 0),  # refused: not an owner of base
        *[(i, LICENSING, "buy", ["tuned", 1], PRICE) for i in plain],
        (plain[1], LICENSING, "buy", ["tuned", 1], PRICE - 1),  # underpaid
        (plain[3], LICENSING, "buy", ["tuned", 9], PRICE),  # no such offer
        (last, LICENSING, "", [], 0),  # call data that does not decode
    ]
    second: list[Step] = [
        *[(i, LICENSING, "buy", ["tuned", 1], PRICE) for i in plain[:6]],  # renewals
        *[(i, LICENSING, "buy", ["tuned", 2], 500 + 70) for i in metered],  # the fourth finds no seat
        (metered[0], LICENSING, "top_up", ["tuned", 2], 35),
    ]
    third: list[Step] = [
        (metered[0], LICENSING, "report_usage", ["tuned", 2, 4], 0),  # 28 units released to the owners
        (metered[1], LICENSING, "report_usage", ["tuned", 2, 20], 0),  # more than the deposit covers
        (metered[2], LICENSING, "end_licence", ["tuned", 2], 0),
        (last, LICENSING, "buy", ["tuned", 1], PRICE + 5),  # a deposit on an unmetered offer
        (2, LICENSING, "withdraw_offer", ["tuned", 1], 0),
        (plain[7], LICENSING, "buy", ["tuned", 1], PRICE),  # withdrawn
    ]
    return [first, second, third]


def _signed(blocks: list[list[Step]]) -> list[list[Transaction]]:
    nonces = dict.fromkeys(range(OWNERS), 0)  # the last nonce used: the set-up used 0 of each owner
    out = []
    for steps in blocks:
        txs = []
        for index, to, function, args, value in steps:
            key = account_key(index)
            nonce = nonces[index] = nonces.get(index, -1) + 1
            data = encode_call(function, args) if function else b"\xc1"
            tx = Transaction(BENCH_CHAIN_ID, key.public_key, nonce, GAS, 1, TxKind.CALL, to, value, data)
            txs.append(tx.signed_by(key))
        out.append(txs)
    return out


def test_contract_blocks_keep_their_state_roots_receipts_and_gas(tmp_path: Path) -> None:
    params = ChainParams(max_block_txs=100, block_gas_limit=100 * GAS)
    genesis = bench_genesis(VALIDATOR, OWNERS + BUYERS + 1, params=params)
    builder_kv = KeyValueStore(tmp_path / "builder", cache_mb=8)
    replica_kv = KeyValueStore(tmp_path / "replica", cache_mb=8)
    try:
        builder, replica = Chain(builder_kv, genesis), Chain(replica_kv, genesis)
        digest = b""
        statuses = []
        for txs in [setup_calls(), *_signed(_steps())]:
            pending = builder.build(txs, VALIDATOR.address, builder.head.timestamp_ms + 1000)
            header = pending.block.header
            assert header.tx_count == len(txs), pending.dropped
            commit = single_validator_commit(VALIDATOR, genesis.validators, genesis.chain_id, header)
            builder.commit(pending, commit)
            replayed = replica.execute(pending.block, now_ms=header.timestamp_ms)
            assert replayed.receipts == pending.receipts
            replica.commit(replayed, commit)
            digest = sha256(digest + header.hash)
            statuses.append([r.status for r in pending.receipts])
    finally:
        builder_kv.close()
        replica_kv.close()
    assert STATUS_FAILED in statuses[1] and STATUS_SUCCESS in statuses[3]  # both outcomes are covered
    assert digest.hex() == GOLDEN, digest.hex()


if __name__ == "__main__":  # prints the digest to record
    with tempfile.TemporaryDirectory() as tmp:
        try:
            test_contract_blocks_keep_their_state_roots_receipts_and_gas(Path(tmp))
        except AssertionError as exc:
            print(exc)

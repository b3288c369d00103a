"""Blocks of transfers keep their exact consensus results and their exact bytes on disk.

Transfer blocks with every outcome (to existing and new accounts, to oneself, a zero value to a
new address, no recipient, a recipient balance that would overflow, call data, a refund, several
nonces of one sender, and candidates the proposer drops or skips) are built and committed on a
LevelDB chain, and replayed by a second node through `Chain.execute`. Every header hash (it covers
the transactions root, the state root, the receipts root and the gas used) is folded into one
digest, then every key and value the replica stored (blocks, receipts, indices, flat state, state
tree): it must equal the one recorded. A faster execution, root or commit path must not move it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from consensus.single import single_validator_commit
from core.genesis import ChainParams, Genesis
from core.hashing import sha256
from core.keys import PrivateKey
from core.receipt import STATUS_FAILED, STATUS_SUCCESS
from core.transaction import Transaction, TxKind
from core.units import U64_MAX
from core.validators import Validator, ValidatorSet
from node.chain import Chain
from storage.kv import KeyValueStore

GOLDEN = "e579e07dafa0cd26bd66fdb38ed729b93b345e295772ce5ad110c63cfd442688"
CHAIN_ID = 777
VALIDATOR = PrivateKey.from_seed(b"\x09" * 32)
SENDERS = [PrivateKey.from_seed(sha256(b"golden sender %d" % i)) for i in range(60)]
RICH = PrivateKey.from_seed(b"\x0a" * 32)  # holds nearly 2^64 - 1: a transfer to it overflows
POOR = PrivateKey.from_seed(b"\x0b" * 32)  # cannot pay a fee
T0 = 1_767_225_600_000


def _genesis() -> Genesis:
    allocations = {k.address: 10**12 + i for i, k in enumerate(SENDERS)}
    allocations[RICH.address] = U64_MAX - 10
    allocations[POOR.address] = 1_000
    allocations[VALIDATOR.address] = 5
    return Genesis(
        chain_id=CHAIN_ID,
        chain_name="golden-transfers",
        timestamp_ms=T0,
        validators=ValidatorSet((Validator(VALIDATOR.public_key, 1),)),
        allocations=tuple(sorted(allocations.items())),
        params=ChainParams(min_gas_price=1, block_gas_limit=50_000_000, max_block_txs=1_000, block_reward=1_000),
    )


def _tx(
    key: PrivateKey, nonce: int, to: bytes, value: int, *, gas: int = 21_000, price: int = 1, data: bytes = b""
) -> Transaction:
    return Transaction(CHAIN_ID, key.public_key, nonce, gas, price, TxKind.TRANSFER, to, value, data).signed_by(key)


def _blocks() -> list[list[Transaction]]:
    new = [sha256(b"golden new %d" % i)[:20] for i in range(80)]
    first = [_tx(k, 0, SENDERS[(i * 7 + 1) % len(SENDERS)].address, 1_000 + i) for i, k in enumerate(SENDERS[:30])]
    first += [
        _tx(SENDERS[30], 0, SENDERS[30].address, 99),  # to oneself
        _tx(SENDERS[31], 0, new[0], 0),  # a zero value to a new address: nothing stored for it
        _tx(SENDERS[32], 0, b"", 5),  # no recipient: fails, the fee is paid
        _tx(SENDERS[33], 0, RICH.address, 11),  # the recipient's balance would overflow: fails
        _tx(SENDERS[34], 0, new[1], 77, gas=40_000, price=3),  # unused gas refunded
        _tx(SENDERS[35], 0, new[2], 1, gas=30_000, data=b"memo" * 10),  # call data costs intrinsic gas
        _tx(SENDERS[36], 0, new[3], 10),
        _tx(SENDERS[36], 1, new[3], 20),  # a sender's next nonce in the same block
        _tx(SENDERS[36], 2, new[4], 30),
        _tx(POOR, 0, new[5], 1),  # cannot pay the fee: the proposer drops it
        _tx(SENDERS[37], 5, new[6], 1),  # a nonce gap: skipped
    ]
    second = [_tx(k, 1, new[(i * 3) % 40 + 7], 500 + i) for i, k in enumerate(SENDERS[:40])]
    second += [_tx(SENDERS[36], 3, SENDERS[0].address, 1), _tx(RICH, 0, SENDERS[1].address, 10**9)]
    third = [
        _tx(k, 2 if i < 40 else 0, new[i + 5] if i < 75 else SENDERS[i % 7].address, 3 + i)
        for i, k in enumerate(SENDERS)
    ]
    return [first, second, third]


def _contents(kv: KeyValueStore) -> list[tuple[bytes, bytes]]:
    return list(kv.iterate(b""))


def test_transfer_blocks_keep_their_roots_receipts_and_stored_bytes(tmp_path: Path) -> None:
    genesis = _genesis()
    builder_kv = KeyValueStore(tmp_path / "builder", cache_mb=8)
    replica_kv = KeyValueStore(tmp_path / "replica", cache_mb=8)
    try:
        builder, replica = Chain(builder_kv, genesis), Chain(replica_kv, genesis)
        digest = b""
        statuses: list[int] = []
        dropped = 0
        for txs in _blocks():
            pending = builder.build(txs, VALIDATOR.address, builder.head.timestamp_ms + 1000)
            header = pending.block.header
            dropped += len(pending.dropped)
            commit = single_validator_commit(VALIDATOR, genesis.validators, genesis.chain_id, header)
            builder.commit(pending, commit)
            replayed = replica.execute(pending.block, now_ms=header.timestamp_ms)
            assert replayed.receipts == pending.receipts
            assert replayed.changes == pending.changes
            replica.commit(replayed, commit)
            digest = sha256(digest + header.hash)
            statuses += [r.status for r in pending.receipts]
        stored = _contents(replica_kv)
        assert stored == _contents(builder_kv)
        for key, value in stored:
            digest = sha256(digest + sha256(key) + sha256(value))
    finally:
        builder_kv.close()
        replica_kv.close()
    assert dropped == 1 and statuses.count(STATUS_FAILED) == 2 and STATUS_SUCCESS in statuses
    assert digest.hex() == GOLDEN, digest.hex()


if __name__ == "__main__":  # prints the digest to record
    with tempfile.TemporaryDirectory() as tmp:
        try:
            test_transfer_blocks_keep_their_roots_receipts_and_stored_bytes(Path(tmp))
        except AssertionError as exc:
            print(exc)

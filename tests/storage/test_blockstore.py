"""The block store keeps the newest blocks decoded: the same blocks as stored, only the newest few."""

from __future__ import annotations

from pathlib import Path

from core.block import Block, Commit, Header
from core.hashing import ZERO_HASH
from core.keys import PrivateKey
from core.receipt import STATUS_SUCCESS, Receipt
from core.transaction import Transaction, TxKind
from storage.blockstore import RECENT_BLOCKS, RECENT_TXS, BlockStore
from storage.kv import KeyValueStore

KEY = PrivateKey.from_seed(b"\x05" * 32)


def block_at(height: int, txs: int = 1) -> Block:
    body = Transaction(9, b"", height, 21_000, 1, int(TxKind.TRANSFER), b"\x02" * 20, height, b"").signed_by(KEY)
    header = Header(9, height, 1000 + height, ZERO_HASH, KEY.address, ZERO_HASH, ZERO_HASH, ZERO_HASH, ZERO_HASH,
                    ZERO_HASH, ZERO_HASH, ZERO_HASH, 0, 0)  # fmt: skip
    return Block(header, (body,) * txs, None)


def write(store: BlockStore, kv: KeyValueStore, block: Block) -> None:
    with kv.batch(sync=False) as batch:
        store.stage_block(
            batch,
            block,
            [Receipt(tx.hash, STATUS_SUCCESS, 21_000) for tx in block.transactions],
            Commit(block.height, 0, block.hash, ()),
        )
    store.remember(block)


def test_the_newest_blocks_are_served_decoded_and_equal_to_what_is_stored(tmp_path: Path) -> None:
    kv = KeyValueStore(tmp_path / "db")
    try:
        store = BlockStore(kv)
        blocks = [block_at(h) for h in range(1, RECENT_BLOCKS + 6)]
        for block in blocks:
            write(store, kv, block)
        newest = blocks[-RECENT_BLOCKS:]
        assert all(store.block(b.height) is b for b in newest)  # kept: no decoding
        older = blocks[:-RECENT_BLOCKS]
        assert all(store.block(b.height) is not b and store.block(b.height) == b for b in older)  # read back
        reopened = BlockStore(kv)  # after a restart everything comes from disk, the same blocks
        assert [reopened.block(b.height) for b in blocks] == blocks
        assert store.block(RECENT_BLOCKS + 6) is None
    finally:
        kv.close()


def test_heights_that_jump_keep_only_the_newest_few(tmp_path: Path) -> None:
    kv = KeyValueStore(tmp_path / "db")
    try:
        store = BlockStore(kv)
        for height in [*range(1, RECENT_BLOCKS + 1), 100, 200, 300]:
            store.remember(block_at(height))
        assert len(store._recent) == RECENT_BLOCKS and min(store._recent) == 4
    finally:
        kv.close()


def test_blocks_of_many_transactions_are_kept_fewer_the_newest_always(tmp_path: Path) -> None:
    kv = KeyValueStore(tmp_path / "db")
    try:
        store = BlockStore(kv)
        big = RECENT_TXS // 3 + 1
        for height in range(1, 6):
            store.remember(block_at(height, big))
        assert sorted(store._recent) == [4, 5]  # three would hold over RECENT_TXS
        store.remember(block_at(6, RECENT_TXS * 2))
        assert sorted(store._recent) == [6]
    finally:
        kv.close()

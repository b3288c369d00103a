"""The block store: blocks, their commits, receipts, and the indices that find them.

`stage_block` puts everything a new block brings into the caller's write batch, head
pointer included, so the block becomes visible all at once or not at all.

The last `RECENT_BLOCKS` blocks written (fewer if they hold over `RECENT_TXS` transactions,
about 10 MB; the newest always) are kept decoded (`remember`, once their batch is
durable): what clients, peers and the explorer ask for most is the newest blocks, and decoding
one of thousands of transactions costs milliseconds each time. A height's block never changes
once written, so what is kept cannot go stale.
"""

from __future__ import annotations

from core.block import Block, Commit
from core.receipt import Receipt
from storage import keys
from storage.kv import KeyValueStore, WriteBatch

RECENT_BLOCKS = 8
RECENT_TXS = 20_000


class BlockStore:
    def __init__(self, kv: KeyValueStore) -> None:
        self._kv = kv
        self._recent: dict[int, Block] = {}  # height -> the block written there, the newest few

    def head(self) -> tuple[int, bytes] | None:
        """(height, hash) of the last committed block, or None before genesis."""
        raw = self._kv.get(keys.HEAD)
        if raw is None:
            return None
        return int.from_bytes(raw[:8], "big"), raw[8:]

    def block_bytes(self, height: int) -> bytes | None:
        return self._kv.get(keys.block_key(height))

    def block(self, height: int) -> Block | None:
        kept = self._recent.get(height)
        if kept is not None:
            return kept
        raw = self.block_bytes(height)
        return None if raw is None else Block.decode(raw)

    def remember(self, block: Block) -> None:
        """Keep a block whose write is durable, decoded, among the newest few."""
        recent = self._recent
        recent[block.height] = block
        # one writer (under the commit lock); readers only get()
        while len(recent) > RECENT_BLOCKS or (
            len(recent) > 1 and sum(len(b.transactions) for b in recent.values()) > RECENT_TXS
        ):
            del recent[min(recent)]

    def height_of(self, block_hash: bytes) -> int | None:
        raw = self._kv.get(keys.block_hash_key(block_hash))
        return None if raw is None else int.from_bytes(raw, "big")

    def commit(self, height: int) -> Commit | None:
        raw = self._kv.get(keys.commit_key(height))
        return None if raw is None else Commit.decode(raw)

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        raw = self._kv.get(keys.tx_index_key(tx_hash))
        if raw is None:
            return None
        return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")

    def receipt(self, height: int, index: int) -> Receipt | None:
        raw = self._kv.get(keys.receipt_key(height, index))
        return None if raw is None else Receipt.decode(raw)

    def stage_block(
        self, batch: WriteBatch, block: Block, receipts: list[Receipt], commit: Commit, *, encoded: bytes | None = None
    ) -> None:
        """Put the block, its commit, receipts, indices and the new head into `batch`."""
        height = block.height
        h8 = keys.u64(height)
        batch.put(keys.block_key(height), encoded if encoded is not None else block.encode())
        batch.put(keys.commit_key(height), commit.encode())
        batch.put(keys.block_hash_key(block.hash), h8)
        for index, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
            i4 = index.to_bytes(4, "big")
            batch.put(keys.TX_INDEX + tx.hash, h8 + i4)
            batch.put(keys.RECEIPT + h8 + i4, receipt.encode())
        batch.put(keys.HEAD, h8 + block.hash)

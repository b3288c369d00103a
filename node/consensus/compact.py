"""Compact proposals on the wire: a proposal with its block's header and transaction hashes, and the
request and answer that fetch the transactions a validator lacks.

Message types (application range of `node.p2p.messages`):

- 28 `[28, proposal, header, last_commit | nil, [evidence, ...], tx hashes, [[index, tx], ...]]`
  (`COMPACT_PROPOSAL`): `tx hashes` is one byte string, the SHA-256 of each transaction's
  encoding in block order (32 bytes each, exactly `header.tx_count` of them); the last array
  carries the transactions the sender believes the receiver lacks (prefilled), by strictly
  increasing index, each matching its hash.
- 29 `[29, height, block_hash, [index, ...]]` (`GET_TXS`): the transactions at these indices
  (strictly increasing, at most `MAX_BLOCK_TXS`) of the proposal block `block_hash` of `height`.
- 30 `[30, block_hash, [tx, ...] | nil]` (`BLOCK_TXS`): the answer, a prefix of what was asked
  (in the order asked, at most `MAX_ANSWER_BYTES` of encodings; the asker asks again for the
  rest), or nil: the block is not held.

Rules are checked here as decoding rules (a violation is a `DecodeError`); what a valid message
means for consensus is `node.consensus.compact_relay`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core import codec
from core.block import MAX_BLOCK_TXS, Block, Commit, Header
from core.errors import DecodeError
from core.hashing import HASH_SIZE, sha256
from core.proposal import Proposal
from core.transaction import MAX_TX_BYTES, Transaction

COMPACT_PROPOSAL, GET_TXS, BLOCK_TXS = 28, 29, 30
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # of transaction encodings in one BLOCK_TXS answer
MAX_EVIDENCE_BYTES = 4096  # one evidence item, as in a block


@dataclass(frozen=True, slots=True)
class CompactProposal:
    """A signed proposal and its block, the transactions named by hash (some carried along)."""

    proposal: Proposal
    header: Header
    last_commit: Commit | None
    evidence: tuple[bytes, ...]
    tx_hashes: bytes  # 32 bytes per transaction, in block order
    prefilled: tuple[tuple[int, bytes], ...] = ()  # (index, encoding), strictly increasing indices

    @classmethod
    def of(cls, proposal: Proposal, block: Block, prefill: Sequence[int] = ()) -> CompactProposal:
        txs = block.transactions
        return cls(
            proposal,
            block.header,
            block.last_commit,
            block.evidence,
            b"".join(tx.hash for tx in txs),
            tuple((i, txs[i].encoded) for i in sorted(set(prefill))),
        )

    @property
    def key(self) -> bytes:
        """What identifies this message for de-duplication: the signed proposal and the hash list
        (the list is not signed: a relay may alter it, and a correct copy must still get through)."""
        return sha256(self.proposal.signature + self.tx_hashes)

    def tx_hash(self, index: int) -> bytes:
        return self.tx_hashes[index * HASH_SIZE : (index + 1) * HASH_SIZE]

    def __len__(self) -> int:
        return len(self.tx_hashes) // HASH_SIZE

    def transactions(
        self, known: Callable[[bytes], Transaction | None], also: Callable[[bytes], Transaction | None]
    ) -> tuple[list[Transaction | None], list[int], list[int]]:
        """The block's transactions from `known` (hash -> decoded transaction), from `also` for those
        `known` lacks, and the prefilled ones; the indices of those still missing (None in the list),
        and of the prefilled ones decoded here."""
        hashes = self.tx_hashes
        wanted = [hashes[i : i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE)]
        txs: list[Transaction | None] = list(map(known, wanted))  # no Python frame per hash but the lookup's
        for index in [index for index, tx in enumerate(txs) if tx is None]:
            txs[index] = also(wanted[index])
        decoded = []
        for index, raw in self.prefilled:
            if txs[index] is None:  # carried along, and not known here: decoded once, now
                txs[index] = Transaction.decode(raw)
                decoded.append(index)
        return txs, [index for index, tx in enumerate(txs) if tx is None], decoded

    def to_wire(self) -> list[codec.Value]:
        return [
            COMPACT_PROPOSAL,
            self.proposal.to_wire(),
            self.header.to_wire(),
            None if self.last_commit is None else self.last_commit.to_wire(),
            list(self.evidence),
            self.tx_hashes,
            [[index, raw] for index, raw in self.prefilled],
        ]

    @classmethod
    def from_wire(cls, value: object) -> CompactProposal:
        i = codec.expect_list(value, COMPACT_PROPOSAL, 7, "compact proposal")
        header = Header.from_wire(i[2])
        if not isinstance(i[4], list) or not isinstance(i[6], list):
            raise DecodeError("compact proposal: evidence and prefilled transactions are arrays")
        hashes = codec.expect_bytes(i[5], "compact proposal tx hashes", max_size=MAX_BLOCK_TXS * HASH_SIZE)
        if len(hashes) != header.tx_count * HASH_SIZE:
            raise DecodeError(f"compact proposal: {len(hashes)} bytes of hashes for {header.tx_count} transactions")
        prefilled = []
        last = -1
        for entry in i[6]:
            if not isinstance(entry, list) or len(entry) != 2:
                raise DecodeError("compact proposal: expected [index, tx] prefilled transactions")
            index = codec.expect_uint(entry[0], "prefilled index", bits=32)
            raw = codec.expect_bytes(entry[1], "prefilled tx", max_size=MAX_TX_BYTES)
            if not last < index < header.tx_count:
                raise DecodeError("compact proposal: prefilled indices must increase and name a transaction")
            if sha256(raw) != hashes[index * HASH_SIZE : (index + 1) * HASH_SIZE]:
                raise DecodeError(f"compact proposal: prefilled transaction {index} does not match its hash")
            prefilled.append((index, raw))
            last = index
        return cls(
            Proposal.from_wire(i[1]),
            header,
            None if i[3] is None else Commit.from_wire(i[3]),
            tuple(codec.expect_bytes(e, "evidence", max_size=MAX_EVIDENCE_BYTES) for e in i[4]),
            hashes,
            tuple(prefilled),
        )


@dataclass(frozen=True, slots=True)
class GetTxs:
    """A request for transactions of a proposal block, by index."""

    height: int
    block_hash: bytes
    indices: tuple[int, ...]

    def to_wire(self) -> list[codec.Value]:
        return [GET_TXS, self.height, self.block_hash, list(self.indices)]

    @classmethod
    def from_wire(cls, value: object) -> GetTxs:
        i = codec.expect_list(value, GET_TXS, 4, "transaction request")
        if not isinstance(i[3], list) or not 0 < len(i[3]) <= MAX_BLOCK_TXS:
            raise DecodeError(f"transaction request: expected 1 to {MAX_BLOCK_TXS} indices")
        indices = tuple(codec.expect_uint(x, "transaction index", bits=32) for x in i[3])
        if any(a >= b for a, b in itertools.pairwise(indices)):
            raise DecodeError("transaction request: indices must increase")
        return cls(
            codec.expect_uint(i[1], "transaction request height"),
            codec.expect_bytes(i[2], "transaction request block_hash", HASH_SIZE),
            indices,
        )


@dataclass(frozen=True, slots=True)
class BlockTxs:
    """The answer to `GetTxs`: encodings of a prefix of the indices asked, or None (not held)."""

    block_hash: bytes
    raws: tuple[bytes, ...] | None

    def to_wire(self) -> list[codec.Value]:
        return [BLOCK_TXS, self.block_hash, None if self.raws is None else list(self.raws)]

    @classmethod
    def from_wire(cls, value: object) -> BlockTxs:
        i = codec.expect_list(value, BLOCK_TXS, 3, "transactions answer")
        block_hash = codec.expect_bytes(i[1], "transactions answer block_hash", HASH_SIZE)
        if i[2] is None:
            return cls(block_hash, None)
        if not isinstance(i[2], list) or len(i[2]) > MAX_BLOCK_TXS:
            raise DecodeError(f"transactions answer: expected at most {MAX_BLOCK_TXS} transactions or nil")
        return cls(block_hash, tuple(codec.expect_bytes(r, "answered tx", max_size=MAX_TX_BYTES) for r in i[2]))


def answer(block: Block, indices: Sequence[int], max_bytes: int = MAX_ANSWER_BYTES) -> BlockTxs:
    """The encodings of `block`'s transactions at `indices` (each < its count), as many as fit in
    `max_bytes` (at least one)."""
    raws: list[bytes] = []
    size = 0
    for index in indices:
        raw = block.transactions[index].encoded
        if raws and size + len(raw) > max_bytes:
            break
        raws.append(raw)
        size += len(raw)
    return BlockTxs(block.hash, tuple(raws))


__all__ = [
    "BLOCK_TXS",
    "COMPACT_PROPOSAL",
    "GET_TXS",
    "MAX_ANSWER_BYTES",
    "BlockTxs",
    "CompactProposal",
    "GetTxs",
    "answer",
]

"""Headers, votes, commits and blocks.

A block is final when validators holding more than 2/3 of the voting power precommit its
header hash; those precommits form the block's `Commit`, which is stored with the block
and included in the next block as `last_commit`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from core import codec
from core.errors import DecodeError
from core.hashing import EMPTY_MERKLE_ROOT, HASH_SIZE, ZERO_HASH, merkle_root, sha256
from core.keys import ADDRESS_SIZE, DOMAIN_VOTE, SIGNATURE_SIZE, PrivateKey, verify
from core.transaction import MAX_TX_BYTES, Transaction

HEADER_TAG = 2
VOTE_TAG = 5
COMMIT_TAG = 7
BLOCK_TAG = 8

MAX_BLOCK_BYTES = 32 * 1024 * 1024
MAX_BLOCK_TXS = 50_000
BLOCK_LIMITS = codec.Limits(
    max_bytes=MAX_BLOCK_BYTES, max_bin_len=MAX_TX_BYTES, max_array_len=MAX_BLOCK_TXS, max_depth=5
)


@dataclass(frozen=True, slots=True)
class Header:
    chain_id: int
    height: int
    timestamp_ms: int
    parent_hash: bytes
    proposer: bytes  # address of the proposing validator
    tx_root: bytes
    state_root: bytes  # state after executing this block
    receipts_root: bytes
    validators_hash: bytes
    next_validators_hash: bytes
    last_commit_hash: bytes
    evidence_hash: bytes
    gas_used: int
    tx_count: int
    hash: bytes = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hash", sha256(codec.encode(self.to_wire())))

    def to_wire(self) -> list[codec.Value]:
        return [
            HEADER_TAG,
            self.chain_id,
            self.height,
            self.timestamp_ms,
            self.parent_hash,
            self.proposer,
            self.tx_root,
            self.state_root,
            self.receipts_root,
            self.validators_hash,
            self.next_validators_hash,
            self.last_commit_hash,
            self.evidence_hash,
            self.gas_used,
            self.tx_count,
        ]

    @classmethod
    def from_wire(cls, value: object) -> Header:
        i = codec.expect_list(value, HEADER_TAG, 15, "header")
        h = [codec.expect_bytes(i[k], f"header field {k}", HASH_SIZE) for k in (4, 6, 7, 8, 9, 10, 11, 12)]
        return cls(
            codec.expect_uint(i[1], "header chain_id"),
            codec.expect_uint(i[2], "header height"),
            codec.expect_uint(i[3], "header timestamp_ms"),
            h[0],
            codec.expect_bytes(i[5], "header proposer", ADDRESS_SIZE),
            h[1],
            h[2],
            h[3],
            h[4],
            h[5],
            h[6],
            h[7],
            codec.expect_uint(i[13], "header gas_used"),
            codec.expect_uint(i[14], "header tx_count"),
        )


class VoteType(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


@dataclass(frozen=True, slots=True)
class Vote:
    """A validator's signed prevote or precommit for a block hash (or for nil: empty bytes)."""

    vote_type: int
    height: int
    round: int
    block_hash: bytes
    validator: bytes
    signature: bytes = b""

    def signing_payload(self) -> bytes:
        return codec.encode([VOTE_TAG, self.vote_type, self.height, self.round, self.block_hash, self.validator])

    def signed_by(self, key: PrivateKey, chain_id: int) -> Vote:
        sig = key.sign(DOMAIN_VOTE, chain_id, self.signing_payload())
        return Vote(self.vote_type, self.height, self.round, self.block_hash, self.validator, sig)

    def verify(self, public_key: bytes, chain_id: int) -> bool:
        return verify(public_key, self.signature, DOMAIN_VOTE, chain_id, self.signing_payload())

    def to_wire(self) -> list[codec.Value]:
        return [VOTE_TAG, self.vote_type, self.height, self.round, self.block_hash, self.validator, self.signature]

    @classmethod
    def from_wire(cls, value: object) -> Vote:
        i = codec.expect_list(value, VOTE_TAG, 7, "vote")
        vote_type = codec.expect_uint(i[1], "vote type", bits=8)
        if vote_type not in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            raise DecodeError(f"vote type {vote_type} is unknown")
        block_hash = codec.expect_bytes(i[4], "vote block_hash", max_size=HASH_SIZE)
        if block_hash and len(block_hash) != HASH_SIZE:
            raise DecodeError("vote block_hash: expected 32 bytes or empty (nil)")
        return cls(
            vote_type,
            codec.expect_uint(i[2], "vote height"),
            codec.expect_uint(i[3], "vote round", bits=32),
            block_hash,
            codec.expect_bytes(i[5], "vote validator", ADDRESS_SIZE),
            codec.expect_bytes(i[6], "vote signature", SIGNATURE_SIZE),
        )


@dataclass(frozen=True, slots=True)
class CommitSig:
    validator: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Commit:
    """Precommits for one block hash at one (height, round) from more than 2/3 of the power."""

    height: int
    round: int
    block_hash: bytes
    signatures: tuple[CommitSig, ...]

    def precommit_of(self, sig: CommitSig) -> Vote:
        return Vote(VoteType.PRECOMMIT, self.height, self.round, self.block_hash, sig.validator, sig.signature)

    def to_wire(self) -> list[codec.Value]:
        return [
            COMMIT_TAG,
            self.height,
            self.round,
            self.block_hash,
            [[s.validator, s.signature] for s in self.signatures],
        ]

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    def hash(self) -> bytes:
        return sha256(self.encode())

    @classmethod
    def from_wire(cls, value: object) -> Commit:
        i = codec.expect_list(value, COMMIT_TAG, 5, "commit")
        if not isinstance(i[4], list):
            raise DecodeError("commit signatures: expected an array")
        sigs = []
        for entry in i[4]:
            if not isinstance(entry, list) or len(entry) != 2:
                raise DecodeError("commit signature: expected [validator, signature]")
            sigs.append(
                CommitSig(
                    codec.expect_bytes(entry[0], "commit validator", ADDRESS_SIZE),
                    codec.expect_bytes(entry[1], "commit signature", SIGNATURE_SIZE),
                )
            )
        return cls(
            codec.expect_uint(i[1], "commit height"),
            codec.expect_uint(i[2], "commit round", bits=32),
            codec.expect_bytes(i[3], "commit block_hash", HASH_SIZE),
            tuple(sigs),
        )

    @classmethod
    def decode(cls, raw: bytes) -> Commit:
        return cls.from_wire(codec.decode(raw))


def commit_hash(commit: Commit | None) -> bytes:
    return ZERO_HASH if commit is None else commit.hash()


@dataclass(frozen=True, slots=True)
class Block:
    header: Header
    transactions: tuple[Transaction, ...]
    last_commit: Commit | None  # the commit of the previous block; None only at height 1
    evidence: tuple[bytes, ...] = ()  # encoded evidence items (see consensus)

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height

    def to_wire(self) -> list[codec.Value]:
        return [
            BLOCK_TAG,
            self.header.to_wire(),
            [tx.encoded for tx in self.transactions],
            None if self.last_commit is None else self.last_commit.to_wire(),
            list(self.evidence),
        ]

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    @classmethod
    def from_wire(cls, value: object, known: Callable[[bytes], Transaction | None] | None = None) -> Block:
        """Build from decoded msgpack. Transactions travel as their own canonical encodings;
        `known` (tx hash -> transaction) lets a node reuse ones it already decoded and checked."""
        i = codec.expect_list(value, BLOCK_TAG, 5, "block")
        if not isinstance(i[2], list) or not isinstance(i[4], list):
            raise DecodeError("block: transactions and evidence are arrays")
        return cls(
            Header.from_wire(i[1]),
            tuple(_transaction(raw, known) for raw in i[2]),
            None if i[3] is None else Commit.from_wire(i[3]),
            tuple(codec.expect_bytes(e, "evidence", max_size=4096) for e in i[4]),
        )

    @classmethod
    def decode(cls, raw: bytes, known: Callable[[bytes], Transaction | None] | None = None) -> Block:
        return cls.from_wire(codec.decode(raw, limits=BLOCK_LIMITS), known)


def _transaction(raw: object, known: Callable[[bytes], Transaction | None] | None) -> Transaction:
    raw = codec.expect_bytes(raw, "block transaction", max_size=MAX_TX_BYTES)
    if known is not None:
        tx = known(sha256(raw))
        if tx is not None and tx.encoded == raw:
            return tx
    return Transaction.decode(raw)


def transactions_root(transactions: tuple[Transaction, ...] | list[Transaction]) -> bytes:
    return merkle_root([tx.encoded for tx in transactions])


def evidence_root(evidence: tuple[bytes, ...]) -> bytes:
    return merkle_root(list(evidence)) if evidence else EMPTY_MERKLE_ROOT

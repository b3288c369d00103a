"""Evidence of equivocation: two conflicting signed votes of one validator.

Conflicting means the same validator, height, round and vote type, and different block
hashes (nil counts as a value). Both signatures must verify under that validator's key.
The two votes are kept in canonical order (by block hash), so one misbehaviour has one
encoding and one hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import codec
from core.block import Vote
from core.errors import DecodeError, InvalidBlock
from core.hashing import sha256
from core.validators import ValidatorSet

EVIDENCE_TAG = 12
EVIDENCE_LIMITS = codec.Limits(max_bytes=4096, max_array_len=8, max_depth=3)


@dataclass(frozen=True, slots=True)
class DuplicateVote:
    first: Vote
    second: Vote

    @classmethod
    def of(cls, a: Vote, b: Vote) -> DuplicateVote:
        first, second = sorted((a, b), key=lambda v: v.block_hash)
        return cls(first, second)

    @property
    def validator(self) -> bytes:
        return self.first.validator

    @property
    def height(self) -> int:
        return self.first.height

    def key(self) -> tuple[bytes, int, int, int]:
        return (self.first.validator, self.first.height, self.first.round, self.first.vote_type)

    def encode(self) -> bytes:
        return codec.encode([EVIDENCE_TAG, self.first.to_wire(), self.second.to_wire()])

    def hash(self) -> bytes:
        return sha256(self.encode())

    @classmethod
    def decode(cls, raw: bytes) -> DuplicateVote:
        items = codec.expect_list(codec.decode(raw, limits=EVIDENCE_LIMITS), EVIDENCE_TAG, 3, "evidence")
        evidence = cls(Vote.from_wire(items[1]), Vote.from_wire(items[2]))
        if evidence.first.block_hash >= evidence.second.block_hash:
            raise DecodeError("evidence: votes must differ and be in block-hash order")
        return evidence

    def check(self, validators: ValidatorSet, chain_id: int) -> None:
        """Raise `InvalidBlock` unless this is real equivocation by a member of `validators`."""
        a, b = self.first, self.second
        if (a.validator, a.height, a.round, a.vote_type) != (b.validator, b.height, b.round, b.vote_type):
            raise InvalidBlock("evidence: the two votes are not for the same validator, height, round and type")
        if a.block_hash == b.block_hash:
            raise InvalidBlock("evidence: the two votes agree; that is no equivocation")
        validator = validators.by_address.get(a.validator)
        if validator is None:
            raise InvalidBlock(f"evidence: 0x{a.validator.hex()} is not a validator")
        if not (a.verify(validator.public_key, chain_id) and b.verify(validator.public_key, chain_id)):
            raise InvalidBlock("evidence: a vote signature does not verify")

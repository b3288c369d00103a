"""Proposals: a proposer's signed offer of a block for (height, round).

`pol_round` is the round in which the block got a polka (more than 2/3 prevotes) before,
or -1 if none: the Tendermint algorithm's `validRound`.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import codec
from core.errors import DecodeError
from core.hashing import HASH_SIZE
from core.keys import ADDRESS_SIZE, DOMAIN_PROPOSAL, SIGNATURE_SIZE, PrivateKey, verify

PROPOSAL_TAG = 11


@dataclass(frozen=True, slots=True)
class Proposal:
    height: int
    round: int
    pol_round: int
    block_hash: bytes
    proposer: bytes
    signature: bytes = b""

    def signing_payload(self) -> bytes:
        return codec.encode([PROPOSAL_TAG, self.height, self.round, self.pol_round, self.block_hash, self.proposer])

    def signed_by(self, key: PrivateKey, chain_id: int) -> Proposal:
        sig = key.sign(DOMAIN_PROPOSAL, chain_id, self.signing_payload())
        return Proposal(self.height, self.round, self.pol_round, self.block_hash, self.proposer, sig)

    def verify(self, public_key: bytes, chain_id: int) -> bool:
        return verify(public_key, self.signature, DOMAIN_PROPOSAL, chain_id, self.signing_payload())

    def to_wire(self) -> list[codec.Value]:
        return [PROPOSAL_TAG, self.height, self.round, self.pol_round, self.block_hash, self.proposer, self.signature]

    @classmethod
    def from_wire(cls, value: object) -> Proposal:
        i = codec.expect_list(value, PROPOSAL_TAG, 7, "proposal")
        pol_round = i[3]
        if type(pol_round) is not int or not -1 <= pol_round < 2**32:
            raise DecodeError("proposal pol_round: expected -1 or a round number")
        return cls(
            codec.expect_uint(i[1], "proposal height"),
            codec.expect_uint(i[2], "proposal round", bits=32),
            pol_round,
            codec.expect_bytes(i[4], "proposal block_hash", HASH_SIZE),
            codec.expect_bytes(i[5], "proposal proposer", ADDRESS_SIZE),
            codec.expect_bytes(i[6], "proposal signature", SIGNATURE_SIZE),
        )

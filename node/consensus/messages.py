"""What the consensus driver and the network hand each other: signed proposals and votes.

The driver broadcasts what it signs; the network delivers what peers sent, checked (signature,
height, block). Both sides take these types only and dispatch on them with `match`; anything
else is refused with `UnknownConsensusMessage` (as CometBFT's `msgs.go` refuses a message it does
not recognise), never taken for a vote.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.block import Block, Vote
from core.errors import AichainError
from core.proposal import Proposal

PROPOSAL, VOTE, EVIDENCE = 17, 18, 19  # their P2P message types (node.consensus.reactor)


@dataclass(frozen=True, slots=True)
class SignedProposal:
    """A signed proposal with the block it proposes."""

    proposal: Proposal
    block: Block


@dataclass(frozen=True, slots=True)
class SignedVote:
    """A signed prevote or precommit."""

    vote: Vote


ConsensusMessage = SignedProposal | SignedVote


class UnknownConsensusMessage(AichainError):
    """Something handed to consensus (or to the network by consensus) that is no consensus message."""

    def __init__(self, message: object) -> None:
        super().__init__(f"not a consensus message: {type(message).__name__} (expected SignedProposal or SignedVote)")
        self.refused = message

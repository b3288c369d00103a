"""What flows into and out of the consensus state machine.

The machine (`consensus.tendermint.Tendermint`) does no I/O: the node feeds it *events*
(messages that arrived, timeouts that fired, blocks it built) and carries out the *actions*
it returns (sign and broadcast, build a block, schedule a timeout, commit a block).

Trust boundary: the node delivers only messages whose signatures it verified, and a
proposal together with its block and whether the block is valid (executed against the
head: `valid`). The machine never signs; it asks the node to (`SignVote`,
`SignProposal`), and the node persists what it signs before any signature leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from core.block import Block, Commit, Vote
from core.proposal import Proposal


class Step(IntEnum):
    NEW_HEIGHT = 0  # waiting to start round 0 (block time, or transactions)
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3


# --- events (in) -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProposalReceived:
    """A proposal with a verified signature, its block, and whether that block is valid on our head."""

    proposal: Proposal
    block: Block
    valid: bool


@dataclass(frozen=True, slots=True)
class VoteReceived:
    """A prevote or precommit with a verified signature (our own votes come back this way too)."""

    vote: Vote


@dataclass(frozen=True, slots=True)
class TimeoutFired:
    height: int
    round: int
    step: Step


@dataclass(frozen=True, slots=True)
class BlockBuilt:
    """The node's answer to `BuildBlock`: a valid block for (height, round)."""

    height: int
    round: int
    block: Block


Event = ProposalReceived | VoteReceived | TimeoutFired | BlockBuilt


# --- actions (out) ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuildBlock:
    """We propose at (height, round) and have no valid value: build a block from the mempool."""

    height: int
    round: int


@dataclass(frozen=True, slots=True)
class SignProposal:
    """Sign this (unsigned) proposal and broadcast it with its block; then deliver it back to us."""

    proposal: Proposal
    block: Block


@dataclass(frozen=True, slots=True)
class SignVote:
    """Sign this (unsigned) vote and broadcast it; then deliver it back to us as `VoteReceived`."""

    vote: Vote


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    height: int
    round: int
    step: Step
    seconds: float


@dataclass(frozen=True, slots=True)
class CommitBlock:
    """The block is decided: write it with its commit, then call `start_height` for the next one."""

    block: Block
    commit: Commit


@dataclass(frozen=True, slots=True)
class EvidenceFound:
    """Two conflicting signed votes of one validator at the same (height, round, type)."""

    first: Vote
    second: Vote


Action = BuildBlock | SignProposal | SignVote | ScheduleTimeout | CommitBlock | EvidenceFound


@dataclass(frozen=True, slots=True)
class TimeoutConfig:
    """Timeouts grow linearly per round and are capped, so a long outage never leaves hour-long timers."""

    propose_s: float = 3.0
    propose_delta_s: float = 0.5
    prevote_s: float = 1.0
    prevote_delta_s: float = 0.5
    precommit_s: float = 1.0
    precommit_delta_s: float = 0.5
    cap_s: float = 30.0

    def propose(self, round_: int) -> float:
        return min(self.cap_s, self.propose_s + self.propose_delta_s * round_)

    def prevote(self, round_: int) -> float:
        return min(self.cap_s, self.prevote_s + self.prevote_delta_s * round_)

    def precommit(self, round_: int) -> float:
        return min(self.cap_s, self.precommit_s + self.precommit_delta_s * round_)

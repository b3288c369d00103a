"""The Tendermint consensus algorithm as a pure state machine.

This follows Algorithm 1 of Buchman, Kwon and Milosevic, "The latest gossip on BFT
consensus" (2018). Each rule below names the paper's lines. With n validators, f is the
largest power that can be faulty: "2f+1" means more than 2/3 of the total power, and
"f+1" means more than 1/3 of it.

- StartRound(r) (11-21): the proposer of (h, r) proposes its `validValue` if it has one,
  otherwise a fresh block (`BuildBlock`). Everyone schedules the propose timeout.
- Fresh proposal (22-27): on PROPOSAL(h, r, v, -1) in step propose, prevote id(v) if v is
  valid and we are not locked on another value, else prevote nil.
- Re-proposal (28-33): on PROPOSAL(h, r, v, vr) with 2f+1 PREVOTE(h, vr, id(v)), vr < r,
  prevote id(v) if v is valid and (lockedRound <= vr or lockedValue = v), else nil.
- Any 2f+1 prevotes (34-35): the first time in step prevote, schedule the prevote timeout.
- Polka (36-43): on PROPOSAL(h, r, v) with 2f+1 PREVOTE(h, r, id(v)) and v valid, the first
  time in step >= prevote: if still in prevote, lock v and precommit id(v); always set
  validValue = v and validRound = r.
- Nil polka (44-46): 2f+1 PREVOTE(h, r, nil) in step prevote -> precommit nil.
- Any 2f+1 precommits (47-48): the first time, schedule the precommit timeout.
- Decide (49-54): on a valid v with 2f+1 PRECOMMIT(h, r, id(v)) for any round r, commit v.
- Round skip (55-56): f+1 power sending messages for a round above ours -> StartRound there.
- Timeouts (57-65): propose -> prevote nil; prevote -> precommit nil; precommit -> next round.

Votes count, as in the paper, for the block they name: a validator that equivocates (signs
different votes for one round and type) counts once for each block it named, at most
`MAX_HASHES_PER_VOTER` of them, while "any 2f+1" totals count each validator once. Each
equivocation is reported once as `EvidenceFound`. Every proposal of the round's proposer is
kept (a double-proposer's second block can still be decided); the first one decides our
prevote. A validator restarted in the middle of a height restores its lock (`locked`),
which the node persists with the precommit that created it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consensus.events import (
    Action,
    BlockBuilt,
    BuildBlock,
    CommitBlock,
    Event,
    EvidenceFound,
    ProposalReceived,
    ScheduleTimeout,
    SignProposal,
    SignVote,
    Step,
    TimeoutConfig,
    TimeoutFired,
    VoteReceived,
)
from consensus.proposer import proposer_for
from core.block import Block, Commit, CommitSig, Vote, VoteType
from core.keys import address_hex
from core.proposal import Proposal
from core.validators import ValidatorSet

NIL = b""
MAX_ROUNDS_AHEAD = 1000  # votes further ahead than this are dropped (bounds memory under spam)
MAX_HASHES_PER_VOTER = 3  # distinct blocks one equivocator can be counted for in a round
MAX_PROPOSALS_PER_ROUND = 4


@dataclass
class _VoteSet:
    """One (round, type): each validator's votes by block hash, and the power behind each hash."""

    votes: dict[bytes, dict[bytes, Vote]] = field(default_factory=dict)  # validator -> block hash -> vote
    power: dict[bytes, int] = field(default_factory=dict)
    total: int = 0  # power of distinct validators that voted at all


class Tendermint:
    def __init__(self, chain_id: int, me: bytes | None, timeouts: TimeoutConfig | None = None) -> None:
        self.chain_id = chain_id
        self.me = me
        self.timeouts = timeouts or TimeoutConfig()
        self.height = 0
        self.round = 0
        self.step = Step.NEW_HEIGHT
        self.validators: ValidatorSet | None = None
        self.decided: dict[int, bytes] = {}
        self._reset()

    def _reset(self) -> None:
        self.locked_round = -1
        self.locked_hash: bytes | None = None
        self.valid_round = -1
        self.valid_block: Block | None = None
        self._proposals: dict[int, Proposal] = {}  # the first proposal of each round
        self._proposed: dict[int, set[bytes]] = {}  # every block hash the round's proposer proposed
        self._blocks: dict[bytes, tuple[Block, bool]] = {}  # hash -> (block, valid)
        self._votes: dict[tuple[int, int], _VoteSet] = {}
        self._done: set[tuple[str, int]] = set()  # "first time" rules already taken, per round

    # --- entry points -----------------------------------------------------------------------

    def start_height(
        self, height: int, validators: ValidatorSet, first_round: int = 0, locked: tuple[int, bytes] | None = None
    ) -> list[Action]:
        """Begin deciding `height` with `validators`, at round 0.

        A validator that restarts after signing at this height starts in the last round it
        signed in, or the next one if it precommitted there (`first_round`): rounds may always
        be skipped, and its signer refuses whatever would conflict with what it signed, while
        the steps it had not reached yet (a precommit after its prevote) stay open. Skipping a
        round in which it has not precommitted can stall the height: the others may be waiting
        in it for exactly that precommit. `locked` = (round, block hash) restores its lock, and
        the locked block, once a proposal brings it, its valid value (Algorithm 1 keeps validRound
        >= lockedRound: a proposer that forgot it proposes a fresh block and prevotes nil on it).
        """
        self.height = height
        self.validators = validators
        self._reset()
        if locked is not None:
            self.locked_round, self.locked_hash = locked
        actions: list[Action] = []
        self._start_round(first_round, actions)
        self._evaluate(actions)
        return actions

    def handle(self, event: Event) -> list[Action]:
        actions: list[Action] = []
        if self.validators is None or self.step == Step.NEW_HEIGHT:
            return actions
        if isinstance(event, VoteReceived):
            self._on_vote(event.vote, actions)
        elif isinstance(event, ProposalReceived):
            self._on_proposal(event, actions)
        elif isinstance(event, TimeoutFired):
            self._on_timeout(event, actions)
        elif isinstance(event, BlockBuilt):
            self._on_block_built(event, actions)
        self._evaluate(actions)
        return actions

    # --- events -----------------------------------------------------------------------------

    def _on_vote(self, vote: Vote, actions: list[Action]) -> None:
        assert self.validators is not None
        if vote.height != self.height or vote.round > self.round + MAX_ROUNDS_AHEAD:
            return
        validator = self.validators.by_address.get(vote.validator)
        if validator is None or vote.vote_type not in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            return
        vote_set = self._votes.setdefault((vote.round, vote.vote_type), _VoteSet())
        by_hash = vote_set.votes.get(vote.validator)
        if by_hash is None:
            vote_set.votes[vote.validator] = by_hash = {}
            vote_set.total += validator.power
        elif vote.block_hash in by_hash or len(by_hash) >= MAX_HASHES_PER_VOTER:
            return
        else:
            actions.append(EvidenceFound(next(iter(by_hash.values())), vote))
        by_hash[vote.block_hash] = vote
        vote_set.power[vote.block_hash] = vote_set.power.get(vote.block_hash, 0) + validator.power

    def _on_proposal(self, event: ProposalReceived, actions: list[Action]) -> None:
        assert self.validators is not None
        proposal, block = event.proposal, event.block
        if proposal.height != self.height or block.hash != proposal.block_hash or block.height != self.height:
            return
        if proposal.round > self.round + MAX_ROUNDS_AHEAD or proposal.pol_round >= proposal.round:
            return
        if proposer_for(self.validators, self.height, proposal.round).address != proposal.proposer:
            return
        proposed = self._proposed.setdefault(proposal.round, set())
        if block.hash in proposed or len(proposed) >= MAX_PROPOSALS_PER_ROUND:
            return
        proposed.add(block.hash)
        self._proposals.setdefault(proposal.round, proposal)  # the first one decides our prevote
        known = self._blocks.get(block.hash)
        valid = event.valid or (known is not None and known[1])
        self._blocks[block.hash] = (block, valid)
        if valid and block.hash == self.locked_hash and self.valid_round < self.locked_round:
            # A lock restored after a restart: its block is again the valid value of its round, as
            # when it locked (validRound >= lockedRound), so as proposer it proposes that block.
            self.valid_block, self.valid_round = block, self.locked_round

    def _on_timeout(self, event: TimeoutFired, actions: list[Action]) -> None:
        if event.height != self.height or event.round != self.round:
            return
        if event.step == Step.PROPOSE and self.step == Step.PROPOSE:
            self._vote(VoteType.PREVOTE, NIL, actions)
            self.step = Step.PREVOTE
        elif event.step == Step.PREVOTE and self.step == Step.PREVOTE:
            self._vote(VoteType.PRECOMMIT, NIL, actions)
            self.step = Step.PRECOMMIT
        elif event.step == Step.PRECOMMIT:
            self._start_round(self.round + 1, actions)

    def _on_block_built(self, event: BlockBuilt, actions: list[Action]) -> None:
        if (event.height, event.round) != (self.height, self.round) or self.step != Step.PROPOSE:
            return
        if not self._is_proposer(self.round) or self.round in self._proposals:
            return
        if self.valid_block is not None:  # a restored lock's block became known while it was built (line 15)
            proposal = Proposal(self.height, self.round, self.valid_round, self.valid_block.hash, self._me())
            actions.append(SignProposal(proposal, self.valid_block))
            return
        proposal = Proposal(self.height, self.round, -1, event.block.hash, self._me())
        actions.append(SignProposal(proposal, event.block))

    # --- rules ------------------------------------------------------------------------------

    def _start_round(self, round_: int, actions: list[Action]) -> None:
        self.round = round_
        self.step = Step.PROPOSE
        if self._is_proposer(round_):
            if self.valid_block is not None:
                proposal = Proposal(self.height, round_, self.valid_round, self.valid_block.hash, self._me())
                actions.append(SignProposal(proposal, self.valid_block))
            else:
                actions.append(BuildBlock(self.height, round_))
        actions.append(ScheduleTimeout(self.height, round_, Step.PROPOSE, self.timeouts.propose(round_)))

    def _evaluate(self, actions: list[Action]) -> None:
        """Apply every rule whose guard holds, until none does (the guards are level-triggered)."""
        while self.step != Step.NEW_HEIGHT:
            before = (self.round, self.step, len(actions))
            if self._decide(actions):
                return
            self._skip_round(actions)
            self._rules_of_current_round(actions)
            if (self.round, self.step, len(actions)) == before:
                return

    def _rules_of_current_round(self, actions: list[Action]) -> None:
        r = self.round
        quorum = self._quorum()
        proposal = self._proposals.get(r)
        block, valid = self._blocks.get(proposal.block_hash, (None, False)) if proposal else (None, False)
        prevotes = self._votes.get((r, VoteType.PREVOTE))
        precommits = self._votes.get((r, VoteType.PRECOMMIT))

        if self.step == Step.PROPOSE and proposal is not None and block is not None:
            v = proposal.block_hash
            if proposal.pol_round == -1:  # lines 22-27
                ok = valid and (self.locked_round == -1 or self._locked_on(v))
                self._vote(VoteType.PREVOTE, v if ok else NIL, actions)
                self.step = Step.PREVOTE
            else:  # lines 28-33
                pol = self._votes.get((proposal.pol_round, VoteType.PREVOTE))
                if pol is not None and pol.power.get(v, 0) >= quorum:
                    ok = valid and (self.locked_round <= proposal.pol_round or self._locked_on(v))
                    self._vote(VoteType.PREVOTE, v if ok else NIL, actions)
                    self.step = Step.PREVOTE

        polka = self._polka_block(r, prevotes) if self.step >= Step.PREVOTE else None
        if polka is not None and self._first(("polka", r)):  # lines 36-43
            if self.step == Step.PREVOTE:
                self.locked_hash, self.locked_round = polka.hash, r
                self._vote(VoteType.PRECOMMIT, polka.hash, actions)
                self.step = Step.PRECOMMIT
            self.valid_block, self.valid_round = polka, r

        if self.step == Step.PREVOTE and prevotes is not None:
            if prevotes.power.get(NIL, 0) >= quorum:  # lines 44-46
                self._vote(VoteType.PRECOMMIT, NIL, actions)
                self.step = Step.PRECOMMIT
            elif prevotes.total >= quorum and self._first(("prevote-timeout", r)):  # lines 34-35
                actions.append(ScheduleTimeout(self.height, r, Step.PREVOTE, self.timeouts.prevote(r)))

        if precommits is not None and precommits.total >= quorum and self._first(("precommit-timeout", r)):
            actions.append(ScheduleTimeout(self.height, r, Step.PRECOMMIT, self.timeouts.precommit(r)))  # 47-48

    def _polka_block(self, round_: int, prevotes: _VoteSet | None) -> Block | None:
        """A valid block proposed in `round_` with 2f+1 prevotes for it, if there is one."""
        if prevotes is None:
            return None
        quorum = self._quorum()
        for block_hash in self._proposed.get(round_, ()):
            block, valid = self._blocks.get(block_hash, (None, False))
            if block is not None and valid and prevotes.power.get(block_hash, 0) >= quorum:
                return block
        return None

    def _decide(self, actions: list[Action]) -> bool:
        """Lines 49-54: a valid block with 2f+1 precommits in any round is decided."""
        quorum = self._quorum()
        for (round_, vote_type), vote_set in self._votes.items():
            if vote_type != VoteType.PRECOMMIT or vote_set.total < quorum:
                continue
            for block_hash, power in vote_set.power.items():
                if block_hash == NIL or power < quorum:
                    continue
                known = self._blocks.get(block_hash)
                if known is None or not known[1]:
                    continue  # we lack the block (sync fetches it) or it is invalid for us
                sigs = tuple(
                    CommitSig(validator, by_hash[block_hash].signature)
                    for validator, by_hash in sorted(vote_set.votes.items())
                    if block_hash in by_hash
                )
                self.decided[self.height] = block_hash
                self.step = Step.NEW_HEIGHT
                actions.append(CommitBlock(known[0], Commit(self.height, round_, block_hash, sigs)))
                return True
        return False

    def _skip_round(self, actions: list[Action]) -> None:
        """Lines 55-56: f+1 power is already in a later round: go there."""
        assert self.validators is not None
        later: dict[int, set[bytes]] = {}
        for (round_, _), vote_set in self._votes.items():
            if round_ > self.round:
                later.setdefault(round_, set()).update(vote_set.votes)
        for round_, proposal in self._proposals.items():
            if round_ > self.round:
                later.setdefault(round_, set()).add(proposal.proposer)
        for round_ in sorted(later, reverse=True):
            power = sum(self.validators.by_address[a].power for a in later[round_] if a in self.validators.by_address)
            if power * 3 > self.validators.total_power:
                self._start_round(round_, actions)
                return

    # --- helpers ----------------------------------------------------------------------------

    def _vote(self, vote_type: VoteType, block_hash: bytes, actions: list[Action]) -> None:
        if self.me is not None and self.validators is not None and self.me in self.validators.by_address:
            actions.append(SignVote(Vote(vote_type, self.height, self.round, block_hash, self.me)))

    def _quorum(self) -> int:
        assert self.validators is not None
        return self.validators.quorum()

    def _locked_on(self, block_hash: bytes) -> bool:
        return self.locked_hash == block_hash

    def _first(self, key: tuple[str, int]) -> bool:
        if key in self._done:
            return False
        self._done.add(key)
        return True

    def _is_proposer(self, round_: int) -> bool:
        if self.me is None or self.validators is None:
            return False
        return proposer_for(self.validators, self.height, round_).address == self.me

    def _me(self) -> bytes:
        assert self.me is not None
        return self.me

    # --- observation ------------------------------------------------------------------------

    def decided_without_block(self) -> bool:
        """2f+1 precommits name a block this machine does not hold as valid: the height was decided
        by the others (a node that was down sees the commit's precommits, not the proposal), and
        only block sync can bring the block."""
        if self.validators is None or self.step == Step.NEW_HEIGHT:
            return False
        quorum = self._quorum()
        for (_, vote_type), vote_set in self._votes.items():
            if vote_type != VoteType.PRECOMMIT or vote_set.total < quorum:
                continue
            for block_hash, power in vote_set.power.items():
                if block_hash != NIL and power >= quorum and not self._blocks.get(block_hash, (None, False))[1]:
                    return True
        return False

    def held_votes(self, round_: int, vote_type: int) -> dict[bytes, Vote]:
        """The votes of `vote_type` at `round_` of this height, one per validator (the first that came)."""
        vote_set = self._votes.get((round_, vote_type))
        if vote_set is None:
            return {}
        return {validator: next(iter(by_hash.values())) for validator, by_hash in vote_set.votes.items()}

    def polka_behind(self, vote: Vote) -> list[Vote]:
        """The prevotes of the polka a vote for a block rests on: those of its round for a precommit;
        for a prevote, those of its proposal's POL round or of the lock on that block (the later);
        none otherwise."""
        if not vote.block_hash:
            return []
        round_ = vote.round
        if vote.vote_type == VoteType.PREVOTE:
            proposal = self._proposals.get(vote.round)
            pol = proposal.pol_round if proposal is not None and proposal.block_hash == vote.block_hash else -1
            round_ = max(pol, self.locked_round if self._locked_on(vote.block_hash) else -1)
        vote_set = self._votes.get((round_, VoteType.PREVOTE))
        if round_ < 0 or vote_set is None:
            return []
        return [by_hash[vote.block_hash] for by_hash in vote_set.votes.values() if vote.block_hash in by_hash]

    def equivocations(self, round_: int, vote_type: int) -> dict[bytes, list[Vote]]:
        """The validators that signed more than one vote of `vote_type` at `round_`, with all of them."""
        vote_set = self._votes.get((round_, vote_type))
        if vote_set is None:
            return {}
        return {v: list(by_hash.values()) for v, by_hash in vote_set.votes.items() if len(by_hash) > 1}

    def proposal_in(self, round_: int) -> tuple[Proposal, Block] | None:
        """The first proposal of `round_` at this height with its block, if both are here and the block is valid."""
        proposal = self._proposals.get(round_)
        if proposal is None:
            return None
        known = self._blocks.get(proposal.block_hash)
        return None if known is None or not known[1] else (proposal, known[0])

    def round_state(self) -> dict[str, Any]:
        """Height, round, step, lock, and who has (not) voted in this round: for status and logs."""
        validators = self.validators.validators if self.validators is not None else ()
        state: dict[str, Any] = {
            "height": self.height,
            "round": self.round,
            "step": self.step.name.lower(),
            "locked_round": self.locked_round,
            "locked_block": None if self.locked_hash is None else "0x" + self.locked_hash.hex(),
            "valid_round": self.valid_round,
            "proposal": None,
        }
        proposal = self._proposals.get(self.round)
        if proposal is not None:
            state["proposal"] = {"block_hash": "0x" + proposal.block_hash.hex(), "pol_round": proposal.pol_round}
        if self.validators is not None:
            state["proposer"] = address_hex(proposer_for(self.validators, self.height, self.round).address)
        for vote_type, name in ((VoteType.PREVOTE, "prevotes"), (VoteType.PRECOMMIT, "precommits")):
            vote_set = self._votes.get((self.round, vote_type), _VoteSet())
            state[name] = {
                "power": vote_set.total,
                "of": self.validators.total_power if self.validators else 0,
                "votes": {
                    address_hex(a): ["nil" if h == NIL else "0x" + h.hex()[:16] for h in by_hash]
                    for a, by_hash in vote_set.votes.items()
                },
                "missing": [address_hex(v.address) for v in validators if v.address not in vote_set.votes],
            }
        return state

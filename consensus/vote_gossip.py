"""Which votes and proposals a peer lacks: the bookkeeping of vote gossip, without I/O.

Tendermint is live only if every message a correct validator holds eventually reaches every
other correct validator (the gossip assumption of Buchman, Kwon and Milosevic, 2018, §2).
Flooding each message once is not enough: a validator that was down, restarting or syncing
when a vote went out never gets it, and if that vote is one of a polka's 2f+1 and its signer
has died since, nobody sends it again. Three honest validators of four then stall for good.

So each node tells its peers where it is (`RoundStep`: height, round, step, whether it holds
its round's proposal, that proposal's POL round, and bit sets of the votes it holds for the
rounds that matter there), remembers per peer what the peer holds (`PeerRoundState`: what it
announced, what it sent us, what we sent it) and sends it what it lacks (`pick`), other
validators' votes included. What a peer at (h, r) is sent, from a node at (h, r'):

- the proposal (with its block) of round r, and the prevotes and precommits of round r, if
  r <= r' (a peer behind in rounds can then lock, precommit and time out like the others);
- the prevotes of the POL round of the proposal it holds (so it can accept a re-proposal);
- the prevotes of our valid round, the polka we saw, and that round's proposal;
- the prevotes and precommits of round r' if r < r' (f+1 of them move it to round r');
- if it is at h' = h - 1 (one height behind): the precommits of our last commit.

A peer further behind gets blocks by block sync. Bounds: a peer's state holds a few bit sets
(`MAX_TRACKED_SETS`) and rounds; an announcement carries at most `MAX_ANNOUNCED_SETS`; `pick`
returns at most `max_votes` votes and `max_proposals` proposals, and re-sends a proposal to a
peer at most every `PROPOSAL_RESEND_S`, so a Byzantine peer's claims cannot make a node store
or send without bound. Marks of a peer's own round only grow (a vote may be on its way); for earlier rounds its
announcement says exactly what it holds; and every `STUCK_RESET_S` of one height, what we think
it holds is cut back to what it announces, so a vote lost on the way is sent again.

Votes are identified per validator (bit i: validator i of the height's set, in address order),
except an equivocator's: each of its conflicting votes counts for the block it names (see
`consensus.tendermint`), and one of them may complete a polka, so each is sent by itself to
each peer that did not send it to us (at most `MAX_TRACKED_TWINS` remembered a peer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from consensus.events import Step
from core.block import Block, Commit, Vote, VoteType
from core.proposal import Proposal
from core.validators import ValidatorSet

PREVOTE, PRECOMMIT = int(VoteType.PREVOTE), int(VoteType.PRECOMMIT)
MAX_ANNOUNCED_SETS = 4  # (round, type) bit sets in one announcement
MAX_TRACKED_SETS = 16  # (round, type) bit sets kept per peer
MAX_TRACKED_PROPOSALS = 8  # rounds whose proposal we remember a peer holds
MAX_TRACKED_TWINS = 64  # an equivocator's votes we remember a peer holds
PROPOSAL_RESEND_S = 5.0
STUCK_RESET_S = 5.0
_HELD = -1.0  # in _Marks.proposals: the peer holds it (times are >= 0)


@dataclass(frozen=True, slots=True)
class VoteBits:
    """The validators (bit i: validator i of the set) whose vote of `vote_type` at `round` a node holds."""

    round: int
    vote_type: int
    bits: int


@dataclass(frozen=True, slots=True)
class RoundStep:
    """What a node announces about itself. `step` NEW_HEIGHT: it waits to start `height`."""

    height: int
    round: int
    step: int
    proposal: bool = False  # it holds the proposal of `round` and its block
    pol_round: int = -1  # that proposal's POL round
    votes: tuple[VoteBits, ...] = ()


class HeightView(Protocol):
    """What `pick` and `announce` read from a node's consensus machine (`Tendermint` is one)."""

    @property
    def height(self) -> int: ...
    @property
    def round(self) -> int: ...
    @property
    def step(self) -> Step: ...
    @property
    def valid_round(self) -> int: ...
    @property
    def validators(self) -> ValidatorSet | None: ...
    def held_votes(self, round_: int, vote_type: int) -> Mapping[bytes, Vote]: ...
    def equivocations(self, round_: int, vote_type: int) -> Mapping[bytes, list[Vote]]: ...
    def proposal_in(self, round_: int) -> tuple[Proposal, Block] | None: ...


@dataclass(frozen=True, slots=True)
class LastCommit:
    """The commit of the height before the one a node decides, with the set that signed it."""

    commit: Commit
    validators: ValidatorSet


@dataclass
class Picked:
    """What to send one peer now, in this order."""

    proposals: list[tuple[Proposal, Block]] = field(default_factory=list)
    votes: list[Vote] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.proposals or self.votes)


def index_of(validators: ValidatorSet) -> dict[bytes, int]:
    return {v.address: i for i, v in enumerate(validators.validators)}


def bits_of(votes: Mapping[bytes, Vote], index: Mapping[bytes, int]) -> int:
    bits = 0
    for address in votes:
        i = index.get(address)
        if i is not None:
            bits |= 1 << i
    return bits


def announce(view: HeightView) -> RoundStep:
    """Where `view` is, and the votes it holds for its round and its proposal's POL round."""
    if view.step == Step.NEW_HEIGHT or view.validators is None:
        return RoundStep(view.height + 1, 0, int(Step.NEW_HEIGHT))
    index = index_of(view.validators)
    r = view.round
    held = view.proposal_in(r)
    pol_round = held[0].pol_round if held is not None else -1
    wanted = [(r, PREVOTE), (r, PRECOMMIT)]
    if pol_round >= 0:
        wanted.append((pol_round, PREVOTE))
    if view.valid_round >= 0 and (view.valid_round, PREVOTE) not in wanted:
        wanted.append((view.valid_round, PREVOTE))
    votes = tuple(VoteBits(round_, t, bits_of(view.held_votes(round_, t), index)) for round_, t in wanted)
    return RoundStep(view.height, r, int(view.step), held is not None, pol_round, votes[:MAX_ANNOUNCED_SETS])


class _Marks:
    """What a peer holds at one height: vote bits per (round, type), and proposals per round
    (when we sent it, or `_HELD`). Bounded: the entries farthest from `round` go first."""

    __slots__ = ("proposals", "twins", "votes")

    def __init__(self) -> None:
        self.votes: dict[tuple[int, int], int] = {}
        self.proposals: dict[int, float] = {}
        self.twins: dict[tuple[int, int, bytes, bytes], None] = {}  # (round, type, validator, hash), oldest first

    def add_twin(self, vote: Vote) -> None:
        if len(self.twins) >= MAX_TRACKED_TWINS:
            self.twins.pop(next(iter(self.twins)))
        self.twins[(vote.round, vote.vote_type, vote.validator, vote.block_hash)] = None

    def add_bits(self, round_: int, vote_type: int, bits: int, here: int) -> None:
        key = (round_, vote_type)
        if key not in self.votes and len(self.votes) >= MAX_TRACKED_SETS:
            self.votes.pop(max(self.votes, key=lambda k: abs(k[0] - here)))
        self.votes[key] = self.votes.get(key, 0) | bits

    def add_proposal(self, round_: int, when: float, here: int) -> None:
        if round_ not in self.proposals and len(self.proposals) >= MAX_TRACKED_PROPOSALS:
            self.proposals.pop(max(self.proposals, key=lambda r: abs(r - here)))
        if self.proposals.get(round_) != _HELD:
            self.proposals[round_] = when


class PeerRoundState:
    """What one peer holds at its height, as far as we know: from its announcements, from what it
    sent us and from what we sent it. Unknown until its first announcement. What it got for the
    next height counts too (a node keeps messages one height ahead until it gets there)."""

    def __init__(self) -> None:
        self.step: RoundStep | None = None
        self._here = _Marks()  # at the peer's height
        self._next = _Marks()  # at the height after it
        self._since = 0.0  # when it reached its (height, round, step), or when marks were last cut back

    @property
    def height(self) -> int | None:
        return None if self.step is None else self.step.height

    def apply(self, step: RoundStep, now: float) -> None:
        """Take a peer's announcement: a new height forgets the old one; the bits it lists are held.
        For rounds before its own (its POL and valid rounds) the bits are what it holds, no more:
        nothing of those rounds is on its way to it any longer, so a vote it lacks there was lost."""
        old = self.step
        if old is None or step.height != old.height:
            self._here = self._next if old is not None and step.height == old.height + 1 else _Marks()
            self._next = _Marks()
            self._since = now
        elif now - self._since >= STUCK_RESET_S:
            self._here.votes.clear()  # a long height: send again whatever it does not say it holds
            self._here.proposals = {r: t for r, t in self._here.proposals.items() if t == _HELD}
            self._here.twins.clear()
            self._since = now
        self.step = step
        for entry in step.votes[:MAX_ANNOUNCED_SETS]:
            if entry.round < step.round:
                self._here.votes.pop((entry.round, entry.vote_type), None)
            self._here.add_bits(entry.round, entry.vote_type, entry.bits, step.round)
        if step.proposal:
            self._here.add_proposal(step.round, _HELD, step.round)

    def mark_vote(self, vote: Vote, index: int) -> None:
        """The peer holds `vote` (it sent it to us, or we sent it to it); ignored at other heights."""
        marks, here = self._marks_at(vote.height)
        if marks is not None:
            if marks.votes.get((vote.round, vote.vote_type), 0) >> index & 1:
                marks.add_twin(vote)  # a second vote of that validator: remember which
            marks.add_bits(vote.round, vote.vote_type, 1 << index, here)

    def mark_twin(self, vote: Vote, index: int) -> None:
        """The peer holds this very vote of an equivocator."""
        marks, here = self._marks_at(vote.height)
        if marks is not None:
            marks.add_twin(vote)
            marks.add_bits(vote.round, vote.vote_type, 1 << index, here)

    def holds_twin(self, vote: Vote) -> bool:
        return (vote.round, vote.vote_type, vote.validator, vote.block_hash) in self._here.twins

    def mark_proposal(self, height: int, round_: int, now: float | None = None) -> None:
        """The peer holds the proposal of (height, round_): it sent it (`now` None), or we did at `now`."""
        marks, here = self._marks_at(height)
        if marks is not None:
            marks.add_proposal(round_, _HELD if now is None else now, here)

    def _marks_at(self, height: int) -> tuple[_Marks | None, int]:
        step = self.step
        if step is None:
            return None, 0
        if height == step.height:
            return self._here, step.round
        return (self._next, 0) if height == step.height + 1 else (None, 0)

    def holds(self, round_: int, vote_type: int) -> int:
        return self._here.votes.get((round_, vote_type), 0)

    def tracked(self) -> int:
        """How many entries this peer's state keeps (bounded, whatever the peer claims)."""
        return sum(len(m.votes) + len(m.proposals) for m in (self._here, self._next))

    def wants_proposal(self, round_: int, now: float) -> bool:
        """Whether to send the proposal of `round_`: never sent; or sent over `PROPOSAL_RESEND_S` ago
        and the peer, still in that round, says it lacks it."""
        sent = self._here.proposals.get(round_)
        if sent is None:
            return True
        step = self.step
        return (
            sent != _HELD
            and step is not None
            and step.round == round_
            and not step.proposal
            and now - sent >= PROPOSAL_RESEND_S
        )


def pick(
    view: HeightView,
    peer: PeerRoundState,
    last_commit: LastCommit | None,
    now: float,
    max_votes: int,
    max_proposals: int = MAX_TRACKED_PROPOSALS,
) -> Picked:
    """What `peer` lacks of what `view` holds (see the module docstring), at most `max_votes` votes
    and `max_proposals` proposals; everything picked is marked as held by the peer."""
    picked = Picked()
    step = peer.step
    if step is None or max_votes <= 0:
        return picked
    if view.step != Step.NEW_HEIGHT and view.validators is not None and step.height == view.height:
        _pick_same_height(view, view.validators, peer, step, now, max_votes, max_proposals, picked)
    elif last_commit is not None and step.height == last_commit.commit.height:
        commit = last_commit.commit
        precommits = {s.validator: commit.precommit_of(s) for s in commit.signatures}
        _pick_votes(precommits, index_of(last_commit.validators), peer, commit.round, PRECOMMIT, max_votes, picked)
    return picked


def _pick_same_height(
    view: HeightView,
    validators: ValidatorSet,
    peer: PeerRoundState,
    step: RoundStep,
    now: float,
    max_votes: int,
    max_proposals: int,
    picked: Picked,
) -> None:
    index = index_of(validators)
    ours = view.round
    theirs = step.round
    rounds: list[tuple[int, int]] = []  # (round, type), in order of use to the peer
    proposal_rounds: list[int] = []
    if theirs <= ours:
        proposal_rounds.append(theirs)
        if step.pol_round >= 0:
            rounds.append((step.pol_round, PREVOTE))
        rounds += [(theirs, PREVOTE), (theirs, PRECOMMIT)]
    elif step.pol_round >= 0:
        rounds.append((step.pol_round, PREVOTE))
    if view.valid_round >= 0:
        rounds.append((view.valid_round, PREVOTE))
        proposal_rounds.append(view.valid_round)
    if theirs < ours:
        rounds += [(ours, PREVOTE), (ours, PRECOMMIT)]
    for round_ in dict.fromkeys(proposal_rounds):
        if len(picked.proposals) >= max_proposals:
            break
        held = view.proposal_in(round_)
        if held is not None and peer.wants_proposal(round_, now):
            picked.proposals.append(held)
            peer.mark_proposal(step.height, round_, now)
    for round_, vote_type in dict.fromkeys(rounds):
        if len(picked.votes) >= max_votes:
            break
        twins = view.equivocations(round_, vote_type)
        _pick_votes(view.held_votes(round_, vote_type), index, peer, round_, vote_type, max_votes, picked, twins)


def _pick_votes(
    votes: Mapping[bytes, Vote],
    index: Mapping[bytes, int],
    peer: PeerRoundState,
    round_: int,
    vote_type: int,
    max_votes: int,
    picked: Picked,
    twins: Mapping[bytes, list[Vote]] | None = None,
) -> None:
    held = peer.holds(round_, vote_type)
    for address, vote in votes.items():
        if len(picked.votes) >= max_votes:
            return
        i = index.get(address)
        if i is None or address in (twins or ()) or held >> i & 1:
            continue
        picked.votes.append(vote)
        peer.mark_vote(vote, i)
    for address, conflicting in (twins or {}).items():
        i = index.get(address)
        for vote in conflicting:
            if len(picked.votes) >= max_votes:
                return
            if i is None or peer.holds_twin(vote):
                continue
            picked.votes.append(vote)
            peer.mark_twin(vote, i)


__all__ = [
    "LastCommit",
    "PeerRoundState",
    "Picked",
    "RoundStep",
    "VoteBits",
    "announce",
    "bits_of",
    "index_of",
    "pick",
]

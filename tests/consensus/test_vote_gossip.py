"""Vote gossip bookkeeping (`consensus.vote_gossip`): which proposals and votes a peer is sent,
given what it announced, what it sent us and what we sent it. Deterministic, no I/O."""

from __future__ import annotations

from consensus.events import Step
from consensus.vote_gossip import (
    MAX_TRACKED_PROPOSALS,
    MAX_TRACKED_SETS,
    PROPOSAL_RESEND_S,
    STUCK_RESET_S,
    LastCommit,
    PeerRoundState,
    RoundStep,
    VoteBits,
    announce,
    index_of,
    pick,
)
from core.block import Commit, CommitSig, Vote, VoteType
from tests.consensus.test_safety import Driver, my_votes

PREVOTE, PRECOMMIT = VoteType.PREVOTE, VoteType.PRECOMMIT
NIL = b""
ME, A, C, D = 0, 1, 2, 3  # validator indexes in the Driver's set (address order); ME plays B


def bits(*who: int) -> int:
    return sum(1 << i for i in who)


def peer_at(
    height: int,
    round_: int,
    step: Step = Step.PROPOSE,
    *,
    proposal: bool = False,
    pol_round: int = -1,
    votes: tuple[VoteBits, ...] = (),
    now: float = 0.0,
) -> PeerRoundState:
    peer = PeerRoundState()
    peer.apply(RoundStep(height, round_, int(step), proposal, pol_round, votes), now)
    return peer


def voters(votes: list[Vote], d: Driver) -> set[tuple[int, int, int]]:
    """(validator index, round, type) of each vote."""
    index = index_of(d.validators)
    return {(index[v.validator], v.round, v.vote_type) for v in votes}


def locked_after_a_polka() -> tuple[Driver, bytes]:
    """B's machine (ME) at height 1 round 0: the round's proposal, prevotes of A, C and B for it,
    and the precommits of C and B: locked on the block, which nobody decided (A died)."""
    d = Driver()
    d.start()
    block = d.block()
    assert my_votes(d.propose(0, block), PREVOTE, 0) == [block.hash]
    d.vote(A, PREVOTE, 0, block.hash)
    assert my_votes(d.vote(C, PREVOTE, 0, block.hash), PRECOMMIT, 0) == [block.hash]
    d.vote(C, PRECOMMIT, 0, block.hash)
    assert d.machine.locked_round == 0 and d.machine.decided == {}
    return d, block.hash


def test_a_restarted_peer_gets_the_proposal_and_the_polka_including_a_dead_validators_prevote() -> None:
    """The stall of three honest validators of four: D comes back knowing nothing of round 0.
    It must get A's prevote from B, A being dead: that completes the polka D needs."""
    d, block_hash = locked_after_a_polka()
    peer = peer_at(1, 0)
    picked = pick(d.machine, peer, None, now=10.0, max_votes=100)
    assert [p.block_hash for p, _ in picked.proposals] == [block_hash]
    assert voters(picked.votes, d) == {
        (A, 0, PREVOTE),
        (C, 0, PREVOTE),
        (ME, 0, PREVOTE),
        (C, 0, PRECOMMIT),
        (ME, 0, PRECOMMIT),
    }
    assert all(v.verify(d.validators.by_address[v.validator].public_key, 4242) for v in picked.votes)
    # everything picked counts as sent: nothing more until something changes
    assert not pick(d.machine, peer, None, now=10.1, max_votes=100)


def test_what_a_peer_announced_or_sent_us_is_not_sent_to_it() -> None:
    d, _ = locked_after_a_polka()
    peer = peer_at(1, 0, proposal=True, votes=(VoteBits(0, PREVOTE, bits(A, C)),))
    own_prevote = d.machine.held_votes(0, PREVOTE)[d.keys[ME].address]
    peer.mark_vote(d.machine.held_votes(0, PRECOMMIT)[d.keys[C].address], C)  # C's precommit came from it
    picked = pick(d.machine, peer, None, now=1.0, max_votes=100)
    assert not picked.proposals
    assert voters(picked.votes, d) == {(ME, 0, PREVOTE), (ME, 0, PRECOMMIT)}
    assert own_prevote in picked.votes


def test_a_peer_behind_in_rounds_gets_its_round_and_ours_and_a_peer_ahead_only_what_it_asks_for() -> None:
    d, _ = locked_after_a_polka()
    d.vote(A, PRECOMMIT, 0, NIL)  # three precommits: the precommit timeout, then round 1
    d.timeout(0, Step.PRECOMMIT)
    assert d.machine.round == 1
    d.vote(C, PREVOTE, 1, NIL)
    behind = pick(d.machine, peer_at(1, 0), None, now=0.0, max_votes=100)
    got = voters(behind.votes, d)
    assert {(A, 0, PREVOTE), (C, 0, PREVOTE), (A, 0, PRECOMMIT)} <= got, "its own round"
    assert (C, 1, PREVOTE) in got, "ours: f + 1 of them move it to round 1"
    # a peer at round 3 with a re-proposal whose POL round is 0: the round-0 prevotes, nothing of round 1
    ahead = pick(d.machine, peer_at(1, 3, proposal=True, pol_round=0), None, now=0.0, max_votes=100)
    assert voters(ahead.votes, d) == {(A, 0, PREVOTE), (C, 0, PREVOTE), (ME, 0, PREVOTE)}
    assert [p.round for p, _ in ahead.proposals] == [0], "the proposal of our valid round"


def test_a_peer_one_height_behind_gets_the_precommits_of_our_last_commit() -> None:
    d = Driver()
    d.start()  # at height 1; the "last commit" is one for height 1 as a node at height 2 would hold
    block = d.block()
    precommits = [d.signed_vote(i, PRECOMMIT, 2, block.hash) for i in (A, C, D)]
    commit = Commit(1, 2, block.hash, tuple(CommitSig(v.validator, v.signature) for v in precommits))
    last = LastCommit(commit, d.validators)
    peer = peer_at(1, 2, Step.PRECOMMIT, votes=(VoteBits(2, PRECOMMIT, bits(A)),))
    picked = pick(_Ahead(d), peer, last, now=0.0, max_votes=100)
    assert sorted(voters(picked.votes, d)) == [(C, 2, PRECOMMIT), (D, 2, PRECOMMIT)]
    assert all(v.block_hash == block.hash and v.height == 1 for v in picked.votes)
    assert not pick(_Ahead(d), peer, last, now=0.1, max_votes=100)
    # a peer two heights behind, or ahead, gets nothing (block sync, or it sends us)
    assert not pick(_Ahead(d), peer_at(0, 0), last, now=0.0, max_votes=100)
    assert not pick(d.machine, peer_at(2, 0), last, now=0.0, max_votes=100)


class _Ahead:
    """The Driver's machine seen as if it were at height 2, round 0, with no votes yet."""

    def __init__(self, d: Driver) -> None:
        self.height, self.round, self.step, self.valid_round = 2, 0, Step.PROPOSE, -1
        self.validators = d.validators

    def held_votes(self, round_: int, vote_type: int) -> dict[bytes, Vote]:
        return {}

    def equivocations(self, round_: int, vote_type: int) -> dict[bytes, list[Vote]]:
        return {}

    def proposal_in(self, round_: int) -> None:
        return None


def test_votes_are_paced_by_the_budget_and_the_rest_comes_next_time() -> None:
    d, _ = locked_after_a_polka()
    peer = peer_at(1, 0, proposal=True)
    first = pick(d.machine, peer, None, now=0.0, max_votes=2)
    second = pick(d.machine, peer, None, now=0.1, max_votes=2)
    third = pick(d.machine, peer, None, now=0.2, max_votes=2)
    assert (len(first.votes), len(second.votes), len(third.votes)) == (2, 2, 1)
    assert len(voters(first.votes + second.votes + third.votes, d)) == 5
    assert not pick(d.machine, peer, None, now=0.3, max_votes=0)


def test_a_proposal_is_sent_again_only_to_a_peer_still_lacking_it_in_that_round_after_a_while() -> None:
    d, _ = locked_after_a_polka()
    peer = peer_at(1, 0)
    assert len(pick(d.machine, peer, None, now=0.0, max_votes=100).proposals) == 1
    peer.apply(RoundStep(1, 0, int(Step.PROPOSE)), now=0.5)  # composed before the block arrived
    assert not pick(d.machine, peer, None, now=0.5, max_votes=100).proposals
    peer.apply(RoundStep(1, 0, int(Step.PROPOSE)), now=PROPOSAL_RESEND_S + 0.1)
    assert len(pick(d.machine, peer, None, now=PROPOSAL_RESEND_S + 0.1, max_votes=100).proposals) == 1
    peer.apply(RoundStep(1, 0, int(Step.PROPOSE), proposal=True), now=PROPOSAL_RESEND_S + 0.2)
    assert not pick(d.machine, peer, None, now=10 * PROPOSAL_RESEND_S, max_votes=100).proposals


def test_a_peer_stuck_at_one_step_is_sent_again_what_it_does_not_say_it_holds() -> None:
    d, _ = locked_after_a_polka()
    peer = peer_at(1, 0, proposal=True, now=0.0)
    assert len(pick(d.machine, peer, None, now=0.0, max_votes=100).votes) == 5
    says = RoundStep(1, 0, int(Step.PROPOSE), True, -1, (VoteBits(0, PREVOTE, bits(A, C, ME)),))
    peer.apply(says, now=1.0)
    assert not pick(d.machine, peer, None, now=1.0, max_votes=100)  # sent: we believe it holds them
    peer.apply(says, now=1.0 + STUCK_RESET_S)  # it did not move: a vote may have been lost on the way
    again = pick(d.machine, peer, None, now=1.0 + STUCK_RESET_S, max_votes=100)
    assert voters(again.votes, d) == {(C, 0, PRECOMMIT), (ME, 0, PRECOMMIT)}
    assert not again.proposals, "it says it holds the proposal"


def test_a_new_height_forgets_the_old_one_and_a_hostile_peer_cannot_grow_our_state() -> None:
    d, _ = locked_after_a_polka()
    peer = peer_at(1, 0, votes=(VoteBits(0, PREVOTE, bits(A, C, ME)),))
    peer.apply(RoundStep(2, 0, int(Step.PROPOSE)), now=1.0)
    assert peer.holds(0, PREVOTE) == 0
    hostile = peer_at(1, 0)
    vote = d.machine.held_votes(0, PREVOTE)[d.keys[A].address]
    for round_ in range(10 * MAX_TRACKED_SETS):
        hostile.mark_vote(Vote(PREVOTE, 1, round_, vote.block_hash, vote.validator, vote.signature), A)
        claims = tuple(VoteBits(round_ + k, PRECOMMIT, (1 << 8000) - 1) for k in range(4))
        hostile.apply(RoundStep(1, round_, int(Step.PREVOTE), True, -1, claims), 0.0)
    assert hostile.tracked() <= 2 * (MAX_TRACKED_SETS + MAX_TRACKED_PROPOSALS)


def test_announce_says_where_the_machine_is_and_which_votes_it_holds() -> None:
    d, _ = locked_after_a_polka()
    step = announce(d.machine)
    assert (step.height, step.round, step.step, step.proposal, step.pol_round) == (1, 0, int(Step.PRECOMMIT), True, -1)
    assert {(v.round, v.vote_type): v.bits for v in step.votes} == {
        (0, PREVOTE): bits(A, C, ME),
        (0, PRECOMMIT): bits(C, ME),
    }
    fresh = Driver()
    assert announce(fresh.machine) == RoundStep(1, 0, int(Step.NEW_HEIGHT))


def test_what_a_peer_got_one_height_early_counts_once_it_gets_there() -> None:
    """A node keeps proposals and votes of the height after its own: sent then, not sent again."""
    d, block_hash = locked_after_a_polka()
    peer = peer_at(0, 4, Step.PRECOMMIT)  # still deciding height 0 (as far as we know)
    index = index_of(d.validators)
    for round_, vote_type in ((0, PREVOTE), (0, PRECOMMIT)):
        for vote in d.machine.held_votes(round_, vote_type).values():
            peer.mark_vote(vote, index[vote.validator])
    proposal, _ = d.machine.proposal_in(0) or (None, None)
    assert proposal is not None
    peer.mark_proposal(1, 0, now=0.0)
    two_ahead = d.machine.held_votes(0, PREVOTE)[d.keys[A].address]
    peer.mark_vote(Vote(PREVOTE, 3, 0, NIL, two_ahead.validator, two_ahead.signature), A)  # ignored: too far
    peer.apply(RoundStep(1, 0, int(Step.NEW_HEIGHT)), now=0.5)
    assert not pick(d.machine, peer, None, now=0.5, max_votes=100)
    assert proposal.block_hash == block_hash


def test_each_vote_of_an_equivocator_is_sent_since_either_may_complete_a_polka() -> None:
    """Found by the liveness property: a Byzantine validator prevoted v and v'; the peer had its
    prevote for v only (the other went out while it was down), and the polka for v' needed the other.
    A bit "holds a vote of that validator" would have kept it from ever getting it."""
    d = Driver()
    d.start()
    v, v2 = d.block(), d.block()
    d.propose(0, v)
    first = d.signed_vote(D, PREVOTE, 0, v.hash)
    second = d.signed_vote(D, PREVOTE, 0, v2.hash)
    d.deliver(first)
    d.deliver(second)
    assert set(d.machine.equivocations(0, PREVOTE)) == {d.keys[D].address}
    peer = peer_at(1, 0, proposal=True, votes=(VoteBits(0, PREVOTE, bits(D)),))  # it holds one of D's two
    peer.mark_vote(first, D)  # ... the first: it sent it to us
    picked = pick(d.machine, peer, None, now=0.0, max_votes=100)
    assert second in picked.votes and first not in picked.votes
    assert not pick(d.machine, peer, None, now=0.1, max_votes=100)


def test_what_a_peer_says_it_lacks_of_an_earlier_round_is_sent_again_and_a_long_height_resets_marks() -> None:
    """Found by the liveness property: B's round-0 prevote to C was lost before GST; C moved on from
    round to round (never stuck at one step), with a re-proposal whose POL round is 0, and B went on
    believing C held it. C's announcement of the POL round's prevotes is what C holds, no more."""
    d, _ = locked_after_a_polka()
    peer = peer_at(1, 0, now=0.0)
    pick(d.machine, peer, None, now=0.0, max_votes=100)  # all of round 0 sent; say B's own prevote is lost
    lacking = RoundStep(1, 3, int(Step.PROPOSE), True, 0, (VoteBits(0, PREVOTE, bits(A, C)),))
    peer.apply(lacking, now=1.0)
    again = pick(d.machine, peer, None, now=1.0, max_votes=100)
    assert voters(again.votes, d) == {(ME, 0, PREVOTE)}
    # Its own round's bits only add to what we know (a vote may be on its way): no resend there.
    peer.apply(RoundStep(1, 4, int(Step.PREVOTE), False, -1, (VoteBits(4, PREVOTE, 0),)), now=2.0)
    assert not pick(d.machine, peer, None, now=2.0, max_votes=100).votes
    # But a height that lasts STUCK_RESET_S cuts every mark back to the announcement, rounds moving or
    # not: the polka of our valid round (all we send a peer ahead of us in rounds) goes out again.
    peer.apply(RoundStep(1, 5, int(Step.PROPOSE)), now=STUCK_RESET_S - 0.1)
    assert not pick(d.machine, peer, None, now=STUCK_RESET_S - 0.1, max_votes=100)
    peer.apply(RoundStep(1, 6, int(Step.PROPOSE)), now=STUCK_RESET_S)
    assert voters(pick(d.machine, peer, None, now=STUCK_RESET_S, max_votes=100).votes, d) == {
        (A, 0, PREVOTE),
        (C, 0, PREVOTE),
        (ME, 0, PREVOTE),
    }

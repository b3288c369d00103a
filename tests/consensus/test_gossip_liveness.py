"""Liveness and safety with the node's vote gossip (`consensus.vote_gossip`) in the simulated network.

The simulated network's idealised gossip ("relay") hands every peer whatever it lacks, by
magic; it could not show that three honest validators of four stalled when the only holder of
a polka's third prevote died: the node then re-sent only its own votes ("own"). Here nodes
gossip as the node does ("peers"): flooding, announcements and `pick`, with nothing known
that was not sent.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from consensus.events import Action, SignVote, TimeoutConfig
from consensus.proposer import proposer_for
from core.block import VoteType
from tests.consensus.simnet import Byzantine, NetworkConfig, SimNet, SimNode
from tests.consensus.test_safety import (
    CRASH_BETWEEN_PREVOTE_AND_PRECOMMIT,
    FAST,
    PROPERTY,
    LockMonitor,
    Scenario,
    assert_progress_after_gst,
    scenarios,
    tenths,
)

PEERS = st.just("peers")
CALM = NetworkConfig(min_delay=0.01, max_delay=0.05, delta=0.05, gossip_interval=0.5)
A, B, C, D = 0, 1, 2, 3


def stall_scenario(gossip: str, seed: int) -> tuple[SimNet, int]:
    """D is down; at the first height from 3 on whose round 0 A proposes, A dies right after its
    prevote (B and C see the polka A, B, C and lock); D comes back 5 s later. Returns the net,
    run until D is back, and that height."""
    sim = SimNet(4, seed=seed, net=CALM, timeouts=FAST, gossip=gossip)
    LockMonitor(sim)
    target: list[int] = []

    def die_after_prevote(node: SimNode, action: Action) -> None:
        if node.index != A or target or not isinstance(action, SignVote) or D not in sim.down():
            return
        vote = action.vote
        proposer = proposer_for(sim.validators, vote.height, 0).address
        if vote.vote_type == VoteType.PREVOTE and vote.round == 0 and vote.height >= 3 and proposer == node.address:
            target.append(vote.height)
            sim.after(0.0, lambda: sim.crash(A))  # its prevote is on the way already

    sim.on_action.append(die_after_prevote)
    sim.start()
    sim.at(1.0, lambda: sim.crash(D))
    sim.run(60.0, stop=lambda: bool(target) and not sim.nodes[A].up)
    assert target, "A never proposed round 0 of a height while D was down"
    height = target[0]
    sim.run(sim.now + 2.0)
    for i in (B, C):
        machine = sim.nodes[i].machine
        assert machine is not None and machine.height == height and machine.locked_round == 0, sim.nodes[i]
    sim.at(sim.now + 3.0, lambda: sim.restart(D))
    sim.run(sim.now + 3.0)
    return sim, height


@pytest.mark.parametrize("seed", range(5))
def test_three_honest_validators_finalize_after_a_proposer_dies_holding_a_polka(seed: int) -> None:
    sim, height = stall_scenario("peers", seed)
    sim.run(sim.now + 20.0, stop=lambda: all(height in sim.nodes[i].decided for i in (B, C, D)))
    sim.check()
    assert all(height in sim.nodes[i].decided for i in (B, C, D)), "\n".join(sim.trace)
    assert len({sim.nodes[i].decided[height] for i in (B, C, D)}) == 1


def test_without_vote_gossip_the_three_stall_for_good() -> None:
    """The node before vote gossip (each re-sends only what it signed): a minute later, still stuck."""
    sim, height = stall_scenario("own", 0)
    sim.run(sim.now + 60.0)
    sim.check()
    assert not any(height in sim.nodes[i].decided for i in (B, C, D))


# Found by hypothesis: the Byzantine n0 prevoted two blocks at round 1 while n1 was down; n2 and n3
# locked on the second (a polka with n0's second prevote); n1 held only n0's first. Tracking "holds a
# vote of n0" kept n0's second prevote from n1 for good: every re-proposal of the locked block got nil.
EQUIVOCATOR_COMPLETES_A_POLKA = Scenario(
    seed=2263696,
    byzantine_index=0,
    byzantine=Byzantine(double_sign=1.0, withhold=0.0, invalid_proposal=0.0),
    net=NetworkConfig(
        min_delay=0.0,
        max_delay=0.4,
        drop_rate=0.0,
        duplicate_rate=0.1,
        gst=27.7,
        delta=0.1,
        gossip_interval=0.5,
        block_interval=0.0,
        sync_after=5.0,
    ),
    timeouts=FAST,
    crashes=((0, 15.8, 11.2),),
    max_down=1,
    partitions=(),
    wal=False,
    gossip="peers",
)


# Found by hypothesis: n2's round-0 prevote (one of the polka n2 locked on) was lost on its way to n1
# and n3 before GST; they moved on from round to round, so n2 never thought them stuck, and every
# re-proposal of the locked block with POL round 0 got their nil.
A_POLKA_PREVOTE_LOST_BEFORE_GST = Scenario(
    seed=79,
    byzantine_index=0,
    byzantine=Byzantine(double_sign=0.0, withhold=0.3, invalid_proposal=0.0),
    net=NetworkConfig(
        min_delay=0.0,
        max_delay=0.5,
        drop_rate=0.5,
        duplicate_rate=0.0,
        gst=8.1,
        delta=0.1,
        gossip_interval=1.0,
        block_interval=0.5,
        sync_after=5.0,
    ),
    timeouts=TimeoutConfig(),
    crashes=(),
    max_down=1,
    partitions=(),
    wal=False,
    gossip="peers",
)


# Found by hypothesis: n3, cut off by a partition, prevoted nil in round 1 (lost), precommitted nil, and
# restarted without its WAL; it kept only its last vote, resumed alone in round 2, and its round-1
# prevote was gone for good. n1 and n2 waited in round 1 with two prevotes (the Byzantine n0's was
# dropped and it re-sends nothing), so no honest node held a message that could move anyone again.
A_RESTART_FORGETS_A_PREVOTE_NOBODY_GOT = Scenario(
    seed=0, byzantine_index=0, byzantine=Byzantine(double_sign=0.0, withhold=0.0, invalid_proposal=0.0),
    net=NetworkConfig(min_delay=0.0, max_delay=2.8, drop_rate=0.5, duplicate_rate=0.1, gst=9.3, delta=0.1,
                      gossip_interval=2.0, block_interval=0.0, sync_after=5.0),
    timeouts=FAST, crashes=((2, 9.2, 0.5),), max_down=1, partitions=((6.1, 1.3, frozenset([3])),), wal=False,
    gossip="peers",
)  # fmt: skip


# Found by hypothesis: n1 locked on round 0's block, then restarted without its WAL: it got its lock
# back but not its valid value, so as proposer it built fresh blocks and prevoted nil on them. n2 and
# n3 saw the round-0 polka only after leaving round 0 (no valid value either), and the Byzantine n0
# re-proposed its own lock with a POL whose prevote it withheld: rounds went by, nothing was decided.
A_RESTARTED_PROPOSER_FORGETS_ITS_LOCKED_BLOCK = Scenario(
    seed=50362, byzantine_index=0, byzantine=Byzantine(double_sign=0.0, withhold=0.7, invalid_proposal=0.0),
    net=NetworkConfig(min_delay=0.0, max_delay=3.1, drop_rate=0.3, duplicate_rate=0.0, gst=16.6, delta=0.1,
                      gossip_interval=2.0, block_interval=0.0, sync_after=5.0),
    timeouts=FAST, crashes=((0, 12.7, 0.6), (1, 0.1, 2.6)), max_down=1, partitions=(), wal=False, gossip="peers",
)  # fmt: skip


# Found by hypothesis: n3 locked at height 6 on a polka of which only it had received the third prevote
# (the Byzantine n1's, dropped on the way to the others, never sent again), then restarted without its
# WAL: it kept its lock and lost that prevote. It prevoted nil on every other block, and n0 and n2,
# unlocked, never saw a polka for its block: rounds went by, nothing was decided.
A_RESTART_FORGETS_THE_POLKA_OF_ITS_LOCK = Scenario(
    seed=2211, byzantine_index=1, byzantine=Byzantine(double_sign=0.0, withhold=0.0, invalid_proposal=0.0),
    net=NetworkConfig(min_delay=0.1, max_delay=0.2, drop_rate=0.5, duplicate_rate=0.0, gst=18.5, delta=0.2,
                      gossip_interval=2.0, block_interval=0.5, sync_after=5.0),
    timeouts=TimeoutConfig(), crashes=((0, 11.0, 0.5), (2, 18.4, 0.5)), max_down=1, partitions=(), wal=False,
    gossip="peers",
)  # fmt: skip


@PROPERTY
@given(scenarios(gst=tenths(50, 300), max_down=st.just(1), gossip=PEERS))
@example(replace(CRASH_BETWEEN_PREVOTE_AND_PRECOMMIT, gossip="peers"))
@example(EQUIVOCATOR_COMPLETES_A_POLKA)
@example(A_POLKA_PREVOTE_LOST_BEFORE_GST)
@example(A_RESTART_FORGETS_A_PREVOTE_NOBODY_GOT)
@example(A_RESTARTED_PROPOSER_FORGETS_ITS_LOCKED_BLOCK)
@example(A_RESTART_FORGETS_THE_POLKA_OF_ITS_LOCK)
def test_honest_nodes_progress_after_gst_with_vote_gossip(scenario: Scenario) -> None:
    """Liveness as in test_safety, nodes gossiping as the node does: validators crashed before GST
    come back having missed messages (dropped, cut off, or sent while they were down) and catch up
    from what their peers pick for them."""
    assert_progress_after_gst(scenario)


@settings(PROPERTY, max_examples=15)  # flooding makes each run a few times longer than with "relay"
@given(scenarios(gst=st.just(float("inf")), max_down=st.sampled_from([1, 2]), gossip=PEERS))
def test_no_two_honest_nodes_decide_differently_with_vote_gossip(scenario: Scenario) -> None:
    """Safety as in test_safety (chaos only, never GST), nodes gossiping as the node does."""
    scenario.simulate(until=40.0).check()

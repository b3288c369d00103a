"""When the next height is due (node/consensus/next_height.py): the rule on its own, then the wait
with a fake clock, a fake mempool and a fake chain head."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from consensus.events import ProposalReceived, VoteReceived
from consensus.proposer import proposer_for
from core.block import Header, Vote, VoteType
from core.clock import now_ms
from core.hashing import ZERO_HASH
from core.keys import PrivateKey
from core.proposal import Proposal
from core.validators import Validator, ValidatorSet
from node.consensus.inbox import Entry, Inbox, UnvalidatedProposal
from node.consensus.next_height import Ahead, BlockTiming, NextHeight, ahead, due_at, wait_for_next_height
from node.consensus.signer import Signer

CHAIN_ID = 31
TIMING = BlockTiming(block_time_ms=1000, empty_block_interval_ms=10_000, busy_interval_ms=250, busy_txs=200)
KEYS = [PrivateKey.generate() for _ in range(4)]
VALIDATORS = ValidatorSet(tuple(Validator(k.public_key, 10) for k in KEYS))

# --- the rule ------------------------------------------------------------------------------


def due(pending: int = 0, work: bool = False, peers: Ahead = Ahead.NOTHING, started: float = 100.0) -> float:
    """Due time after a height whose proposal came at 100.0 s and that was written at 100.1 s."""
    return due_at(TIMING, 100.1, started, pending, work, peers)


def test_a_block_s_worth_pending_is_due_one_busy_interval_after_the_commit() -> None:
    assert due(pending=200) == pytest.approx(100.35)
    assert due(pending=50_000) == pytest.approx(100.35)


def test_under_load_a_slow_height_is_followed_one_busy_interval_after_its_commit() -> None:
    """The previous height took 2 s, longer than the block time: still one short interval."""
    assert due_at(TIMING, 102.0, 100.0, 500, False, Ahead.NOTHING) == pytest.approx(102.25)


def test_near_saturation_the_busy_interval_grows_with_the_height_never_past_one_block_time() -> None:
    """Heights that take long (the machine is busy) are followed after as long as they took, up to
    one block time from their start: fewer, larger blocks where a height's fixed cost matters."""
    busy = 500
    assert due_at(TIMING, 100.1, 100.0, busy, False, Ahead.NOTHING, height_s=0.1) == pytest.approx(100.35)
    assert due_at(TIMING, 100.4, 100.0, busy, False, Ahead.NOTHING, height_s=0.4) == pytest.approx(100.8)
    assert due_at(TIMING, 100.5, 100.0, busy, False, Ahead.NOTHING, height_s=0.5) == pytest.approx(101.0)
    assert due_at(TIMING, 100.7, 100.0, busy, False, Ahead.NOTHING, height_s=0.7) == pytest.approx(101.0)
    # a height longer than the block time: one busy interval, as before
    assert due_at(TIMING, 101.5, 100.0, busy, False, Ahead.NOTHING, height_s=1.5) == pytest.approx(101.75)


def test_fewer_pending_transactions_wait_for_the_block_time_from_the_previous_proposal() -> None:
    assert due(pending=1) == pytest.approx(101.0)
    assert due(pending=199) == pytest.approx(101.0)
    assert due(work=True) == pytest.approx(101.0), "evidence waiting is work for a block"


def test_nothing_to_do_waits_for_the_empty_block_interval() -> None:
    assert due() == pytest.approx(110.0)


def test_never_before_the_previous_block_is_written() -> None:
    """A height that took longer than the block time: the next one starts when it is written."""
    assert due_at(TIMING, 101.8, 100.0, 10, False, Ahead.NOTHING) == pytest.approx(101.8)


def test_votes_for_the_next_height_count_as_work_not_as_load() -> None:
    """A peer's votes cannot make this node start heights faster than one per block time."""
    assert due(peers=Ahead.MESSAGES) == pytest.approx(101.0)


def test_the_round_0_proposer_s_proposal_starts_the_height_at_once() -> None:
    assert due(peers=Ahead.PROPOSAL) == pytest.approx(100.1)


def test_an_empty_block_interval_below_the_block_time_does_not_speed_up_blocks() -> None:
    timing = BlockTiming(block_time_ms=1000, empty_block_interval_ms=200, busy_interval_ms=250, busy_txs=200)
    assert due_at(timing, 100.1, 100.0, 0, False, Ahead.NOTHING) == pytest.approx(101.0)


# --- what peers sent -----------------------------------------------------------------------


def proposal(height: int, round_: int, proposer: bytes) -> UnvalidatedProposal:
    return UnvalidatedProposal(Proposal(height, round_, -1, b"\x01" * 32, proposer), None)  # type: ignore[arg-type]


def test_only_the_round_0_proposer_s_proposal_shows_the_height_started() -> None:
    first = proposer_for(VALIDATORS, 5, 0).address
    other = next(v.address for v in VALIDATORS.validators if v.address != first)
    vote = VoteReceived(Vote(VoteType.PREVOTE, 5, 0, b"\x01" * 32, other))
    assert ahead([], VALIDATORS, 5) is Ahead.NOTHING
    assert ahead([vote], VALIDATORS, 5) is Ahead.MESSAGES
    assert ahead([proposal(5, 0, other)], VALIDATORS, 5) is Ahead.MESSAGES, "not its proposer"
    assert ahead([proposal(5, 1, proposer_for(VALIDATORS, 5, 1).address)], VALIDATORS, 5) is Ahead.MESSAGES
    assert ahead([vote, proposal(5, 0, first)], VALIDATORS, 5) is Ahead.PROPOSAL
    assert ahead([proposal(6, 0, proposer_for(VALIDATORS, 6, 0).address)], VALIDATORS, 5) is Ahead.NOTHING
    received = ProposalReceived(Proposal(5, 0, -1, b"\x01" * 32, first), None, True)  # type: ignore[arg-type]
    assert ahead([received], VALIDATORS, 5) is Ahead.PROPOSAL


# --- the wait, with a fake clock -----------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeMempool:
    def __init__(self) -> None:
        self.n = 0

    def __len__(self) -> int:
        return self.n


class NoEvidence:
    def pending(self) -> bool:
        return False


class FakeHead:
    """The chain head at height 4, and the set of validators."""

    validators = VALIDATORS
    head = Header(CHAIN_ID, 4, 1, ZERO_HASH, bytes(20), *(ZERO_HASH,) * 7, 0, 0)  # type: ignore[arg-type]

    def __init__(self, head: Header | None = None) -> None:
        if head is not None:
            self.head = head


class FakePrebuilder:
    def __init__(self) -> None:
        self.steps: list[tuple[bytes, int]] = []

    def discard(self) -> None:
        pass

    async def step(self, proposer: bytes, timestamp_ms: int) -> None:
        self.steps.append((proposer, timestamp_ms))


class Waiting:
    """One wait for height 5, as the driver does it; `stash` keeps what arrives as the driver does.
    The proposal of height 4 came at 999.9 s; it was written at 1000.0 s."""

    def __init__(self, signer: Signer | None = None, paced_from: float | None = 999.9) -> None:
        self.clock, self.mempool, self.inbox = FakeClock(), FakeMempool(), Inbox()
        self.prebuilder = FakePrebuilder()
        self.tx_arrived = asyncio.Event()
        self.kept: list[object] = []
        self.at = NextHeight(
            FakeHead(),  # type: ignore[arg-type]
            self.mempool,  # type: ignore[arg-type]
            NoEvidence(),
            TIMING,
            signer,
            self.prebuilder,  # type: ignore[arg-type]
            self.tx_arrived,
            self.clock,
        )
        self.paced_from = paced_from
        self.task: asyncio.Task[None] | None = None

    def stash(self, event: Entry | None) -> Ahead:
        if event is None:
            return ahead(self.kept, VALIDATORS, 5)  # type: ignore[arg-type]
        self.kept.append(event)
        return ahead([event], VALIDATORS, 5)  # type: ignore[list-item]

    async def start(self) -> None:
        self.task = asyncio.create_task(wait_for_next_height(self.at, self.inbox, self.stash, self.paced_from))
        await asyncio.sleep(0.01)

    async def at_time(self, t: float, pending: int | None = None) -> bool:
        """Move the clock to `t` (and the mempool to `pending`), wake the wait; whether it returned."""
        self.clock.t = t
        if pending is not None:
            self.mempool.n = pending
        self.tx_arrived.set()
        await asyncio.sleep(0.02)
        assert self.task is not None
        return self.task.done()


async def test_under_load_the_wait_ends_one_busy_interval_after_the_commit() -> None:
    w = Waiting()
    w.mempool.n = 500
    await w.start()
    assert not await w.at_time(1000.24)
    assert await w.at_time(1000.25)


async def test_a_light_load_waits_for_the_block_time_then_turns_busy_when_a_block_s_worth_arrives() -> None:
    w = Waiting()
    w.mempool.n = 3
    await w.start()
    assert not await w.at_time(1000.5), "3 transactions: not before one block time after the previous proposal"
    assert await w.at_time(1000.6, pending=250), "a block's worth arrived: due (past the busy interval)"


async def test_a_few_transactions_get_their_block_one_block_time_after_the_previous_proposal() -> None:
    w = Waiting()
    w.mempool.n = 3
    await w.start()
    assert not await w.at_time(1000.89)
    assert await w.at_time(1000.9)


async def test_an_empty_mempool_waits_for_the_empty_block_interval_until_transactions_arrive() -> None:
    w = Waiting()
    await w.start()
    assert not await w.at_time(1000.5)
    assert not await w.at_time(1005.0)
    assert await w.at_time(1005.0, pending=1), "a transaction past the block time: due"


async def test_votes_from_peers_do_not_start_the_height_early_but_the_proposal_does() -> None:
    w = Waiting()
    await w.start()
    voter = VALIDATORS.validators[0].address
    w.inbox.put(VoteReceived(Vote(VoteType.PREVOTE, 5, 0, b"\x01" * 32, voter)))
    assert not await w.at_time(1000.3), "votes alone: one block time after the previous proposal"
    w.inbox.put(proposal(5, 0, proposer_for(VALIDATORS, 5, 0).address))
    await asyncio.sleep(0.02)
    assert w.task is not None and w.task.done()
    assert len(w.kept) == 2, "what arrived is kept for the height"


async def test_the_proposer_builds_the_next_block_from_the_commit_on(tmp_path: Path) -> None:
    key = next(k for k in KEYS if k.address == proposer_for(VALIDATORS, 5, 0).address)
    w = Waiting(Signer(key, CHAIN_ID, tmp_path / "sign_state.json"))
    w.mempool.n = 500
    await w.start()
    assert w.prebuilder.steps, "a step right after the commit, before the block is due"
    assert all(proposer == key.address for proposer, _ in w.prebuilder.steps)
    assert await w.at_time(1000.25)


async def test_a_validator_that_does_not_propose_the_next_height_builds_nothing(tmp_path: Path) -> None:
    key = next(k for k in KEYS if k.address != proposer_for(VALIDATORS, 5, 0).address)
    w = Waiting(Signer(key, CHAIN_ID, tmp_path / "sign_state.json"))
    w.mempool.n = 500
    await w.start()
    assert await w.at_time(1000.25)
    assert not w.prebuilder.steps


async def test_a_head_dated_ahead_of_the_clock_delays_nobody() -> None:
    """A proposer may date its block up to 5 s ahead (consensus/validation.py); the wait counts on
    this node's clock from when the height started here, so the next height is not held back."""
    w = Waiting()
    future = now_ms() + 5_000
    w.at = dataclasses.replace(w.at, ledger=FakeHead(dataclasses.replace(FakeHead.head, timestamp_ms=future)))
    w.mempool.n = 500
    await w.start()
    assert await w.at_time(1000.25)


def restarted(head_age_ms: int) -> Waiting:
    """A wait right after a start (no height started here yet), the head dated `head_age_ms` ago."""
    w = Waiting(paced_from=None)
    head = dataclasses.replace(FakeHead.head, timestamp_ms=now_ms() - head_age_ms)
    w.at = dataclasses.replace(w.at, ledger=FakeHead(head))
    w.mempool.n = 3
    return w


async def test_after_a_start_the_node_waits_out_what_is_left_of_the_block_time() -> None:
    """A restart does not rush a block: the head's time counts as its proposal's (the kill -9 tests
    of the mempool journal restart a node whose next block is a minute away)."""
    w = restarted(head_age_ms=300)  # due 0.7 s after the commit (less the few ms the test takes)
    await w.start()
    assert not await w.at_time(1000.5)
    assert await w.at_time(1000.75)


async def test_after_a_start_an_old_head_starts_the_height_at_once_and_one_dated_ahead_waits_one_interval() -> None:
    old = restarted(head_age_ms=10_000)
    await old.start()
    assert await old.at_time(1000.0)
    ahead_of_us = restarted(head_age_ms=-5_000)  # dated 5 s ahead: counts as made now
    await ahead_of_us.start()
    assert not await ahead_of_us.at_time(1000.95)
    assert await ahead_of_us.at_time(1001.05)


def test_block_timing_takes_the_genesis_times_and_the_node_s_intervals() -> None:
    from core.genesis import ChainParams
    from node.config import ConsensusConfig

    timing = BlockTiming.of(
        ChainParams(block_time_ms=700, empty_block_interval_ms=5000), ConsensusConfig(busy_interval_ms=300, busy_txs=50)
    )
    assert timing == BlockTiming(700, 5000, 300, 50)

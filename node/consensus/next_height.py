"""Between heights: when the next height is due.

The next height starts

- `busy_interval_ms` after the previous block was written here when the mempool holds at least
  `busy_txs` transactions: under load, blocks follow each other one short interval after each
  commit, so a transaction waits at most about one short interval for the block that carries
  it, and that block carries what arrived meanwhile. The round-0 proposer executes the
  arrivals during that interval, so they cost little on the finality path. When heights get
  long (the machine nears saturation), the interval grows to as long as the previous height
  took, but never past one block time from that height's start: a height has a fixed cost, and
  fewer, larger blocks leave more of the machine for transactions where it is scarce;

and otherwise once the previous block is written and, after the previous height's proposal
was made or reached this node (or after that height started here, if later),

- one block time when it holds fewer, evidence waits, or peers' votes for the next height
  arrived: a light load gets a block per block time, not a flood of small ones;
- the empty-block interval when there is nothing to do;
- no time at all when the round-0 proposer's proposal for the next height arrived (that
  proposer judged it due: a late node catches up).

After a start, when no height started here yet, the previous proposal counts as made at the
head's time by this node's clock (never ahead of it): a restarted node waits out what is left of
the block time, as it would have without the restart, and a head dated ahead delays it at most
one interval.

Pacing from the proposal, as the head's timestamp once did, gives a validator that was slow
to write the previous block (or whose proposal came late) the same interval as the others
before the next height, so it does not fall behind. An honest node starts at most one height
per `busy_interval_ms` after a commit. Votes count only as work for a block: a peer that
sends them cannot make the others start heights faster than one per block time. A faulty
proposer can start early only the heights it proposes itself.

The times are this node's monotonic clock, not the head's timestamp, so a proposer that dates
its block ahead (as far as validity allows) does not delay the next height, and a step of the
wall clock changes nothing. The rule decides only when this node starts a height; whether a
block is valid never depends on it (see `consensus.validation`). A validator that signed at
the next height before a restart does not wait: that height is under way.

Meanwhile the round-0 proposer of the next height executes the pending transactions as they
arrive (`node.consensus.prebuild.Prebuilder`), from the commit on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum

from consensus.events import Event, ProposalReceived, VoteReceived
from consensus.proposer import proposer_for
from core.clock import now_ms
from core.genesis import ChainParams
from core.validators import ValidatorSet
from node.config import BUSY_INTERVAL_MS, BUSY_TXS, ConsensusConfig
from node.consensus.inbox import Entry, Inbox, UnvalidatedProposal
from node.consensus.prebuild import Candidates, ChainHead, PendingEvidence, Prebuilder
from node.consensus.signer import Signer

STEP_EVERY_S = 0.05  # execute arrivals at most this often: small steps cost a mempool walk each


@dataclass(frozen=True)
class BlockTiming:
    """This node's block timing (`[consensus]` in node.toml; the block time and empty-block
    interval default to the genesis')."""

    block_time_ms: int = 1000
    empty_block_interval_ms: int = 10_000
    busy_interval_ms: int = BUSY_INTERVAL_MS
    busy_txs: int = BUSY_TXS

    @classmethod
    def of(cls, params: ChainParams, consensus: ConsensusConfig | None = None) -> BlockTiming:
        """`params`' block time and empty-block interval, with the busy interval and count of `consensus`."""
        c = ConsensusConfig() if consensus is None else consensus
        return cls(params.block_time_ms, params.empty_block_interval_ms, c.busy_interval_ms, c.busy_txs)


class Ahead(IntEnum):
    """What peers sent for the next height while this node waits for it."""

    NOTHING = 0
    MESSAGES = 1  # votes, or a proposal not from its round-0 proposer
    PROPOSAL = 2  # the round-0 proposer's proposal: it started the height


def ahead(events: Iterable[Event | UnvalidatedProposal], validators: ValidatorSet, height: int) -> Ahead:
    """How far `events` show peers to be into `height`."""
    level = Ahead.NOTHING
    for event in events:
        if isinstance(event, UnvalidatedProposal | ProposalReceived) and event.proposal.height == height:
            proposal = event.proposal
            if proposal.round == 0 and proposal.proposer == proposer_for(validators, height, 0).address:
                return Ahead.PROPOSAL
            level = Ahead.MESSAGES
        elif isinstance(event, VoteReceived) and event.vote.height == height:
            level = Ahead.MESSAGES
    return level


def due_at(
    timing: BlockTiming,
    committed_at: float,
    paced_from: float,
    pending: int,
    work: bool,
    peers: Ahead,
    height_s: float = 0.0,
) -> float:
    """When the next height is due (monotonic seconds), by the rule of this module.

    `committed_at`: when the head was written here; `paced_from`: when the previous height's
    proposal was made or reached this node, not before that height started here (after a start,
    when no height started here yet: the head's time, by this node's clock, never ahead of it);
    `pending`: transactions in the mempool; `work`: other work for a block (evidence);
    `height_s`: how long the previous height took here, from its start to its block written."""
    if peers is Ahead.PROPOSAL:
        return committed_at
    if pending >= timing.busy_txs:  # the proposer executes arrivals meanwhile, off the finality path
        block_time_s = timing.block_time_ms / 1000
        return committed_at + max(timing.busy_interval_ms / 1000, min(height_s, block_time_s - height_s))
    if pending > 0 or work or peers is Ahead.MESSAGES:
        interval_ms = timing.block_time_ms
    else:
        interval_ms = max(timing.block_time_ms, timing.empty_block_interval_ms)
    return max(committed_at, paced_from + interval_ms / 1000)


@dataclass(frozen=True)
class NextHeight:
    """What the wait for the next height reads."""

    ledger: ChainHead
    mempool: Candidates
    evidence: PendingEvidence
    timing: BlockTiming
    signer: Signer | None
    prebuilder: Prebuilder
    tx_arrived: asyncio.Event  # set by admission when transactions arrive
    clock: Callable[[], float] = time.monotonic


async def wait_for_next_height(
    at: NextHeight,
    inbox: Inbox,
    stash: Callable[[Entry | None], Ahead],
    paced_from: float | None,
    height_s: float = 0.0,
) -> None:
    """Return when the next height is due (`due_at`). Events taken from `inbox` meanwhile go to
    `stash`, which keeps those for the next height and answers how far they show peers to be
    (given None: of all it keeps). `paced_from`, `height_s`: what `due_at` counts from."""
    ledger, mempool, signer, prebuilder, clock = at.ledger, at.mempool, at.signer, at.prebuilder, at.clock
    head = ledger.head
    committed_at = clock()
    if paced_from is None:  # after a start: the head's proposal came at its time (a restart does not rush)
        paced_from = committed_at - max(0.0, (now_ms() - head.timestamp_ms) / 1000)
    prebuilder.discard()
    last = None if signer is None else signer.last_signed()
    if last is not None and last[0] == head.height + 1:
        return
    peers = stash(None)
    while True:
        pending = len(mempool)
        due = due_at(at.timing, committed_at, paced_from, pending, at.evidence.pending(), peers, height_s)
        now = clock()
        if now >= due:
            return
        wait_s = due - now
        if signer is not None and pending > 0 and _proposes(ledger, signer, head.height + 1):
            # The block's time is when its building began: never ahead of the clock, always after
            # the parent's (`Chain.start_block`), and what its transactions see when executed.
            await prebuilder.step(signer.address, now_ms())
            wait_s = min(wait_s, STEP_EVERY_S)
        at.tx_arrived.clear()
        waiters = [asyncio.ensure_future(at.tx_arrived.wait()), asyncio.ensure_future(inbox.get())]
        done, pending_waiters = await asyncio.wait(waiters, timeout=wait_s, return_when="FIRST_COMPLETED")
        for waiter in pending_waiters:
            waiter.cancel()
        for waiter in done:
            result = waiter.result()
            if result is not True:  # an inbox entry (the event's wait answers True)
                peers = max(peers, stash(result))
        if ledger.head.height != head.height:  # synced meanwhile: wait from this head on
            head = ledger.head
            committed_at = clock()
            peers = stash(None)


def _proposes(ledger: ChainHead, signer: Signer, height: int) -> bool:
    """Whether this validator proposes round 0 of `height`."""
    return proposer_for(ledger.validators, height, 0).address == signer.address

"""Drives the consensus state machine with real time, real blocks and the network.

One task owns the machine: it takes events from its inbox (`node.consensus.inbox`) in order,
and carries out the actions the machine returns. Rules:

- the blocks of the height (ours built, peers' executed before the machine sees them, the
  one voted for stored, the decided one written) are `node.consensus.height_blocks`; heavy
  work runs on the block thread (`node.block_thread`) while the task awaits it;
- signatures are `node.consensus.signing`: made after the signer persisted them, and kept
  while the double-sign guard holds;
- messages for the next height are kept (bounded) and replayed when that height starts;
- between heights it waits as `node.consensus.next_height` says (the next proposer executes
  transactions meanwhile: `node.consensus.prebuild`);
- what it signs is broadcast once (`SignedProposal`, `SignedVote`); a peer that was down,
  restarting or syncing gets it (and every other vote it lacks) from
  `node.consensus.vote_gossip`, which reads the machine's votes and is told (`on_state_changed`)
  when the height, round or step may have moved.

The driver knows the rest of the node only through the ports it is given
(`node.consensus.ports`): the chain, the mempool, the evidence pool, `broadcast`, and
`on_committed`, told of each block it wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

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
    TimeoutFired,
    VoteReceived,
)
from consensus.tendermint import Tendermint
from core.block import VoteType
from core.genesis import ChainParams
from node.block_thread import BlockThread
from node.consensus.double_sign_guard import DoubleSignGuard
from node.consensus.height_blocks import HeightBlocks
from node.consensus.inbox import RETRY, Entry, Inbox, UnvalidatedProposal
from node.consensus.messages import ConsensusMessage, SignedProposal, SignedVote
from node.consensus.next_height import Ahead, BlockTiming, NextHeight, ahead, wait_for_next_height
from node.consensus.ports import Broadcast, Committed, Evidence, Ledger, Pool, broadcast_nowhere
from node.consensus.prebuild import Prebuilder
from node.consensus.signer import Signer
from node.consensus.signing import Signing
from node.consensus.wal import ConsensusWal, Kept, resume_point

if TYPE_CHECKING:
    from node.metrics import NodeMetrics

log = logging.getLogger("aichain.consensus")

MAX_BUFFERED = 20_000


class ConsensusDriver:
    def __init__(
        self,
        *,
        machine: Tendermint,
        signer: Signer | None,
        inbox: Inbox,
        ledger: Ledger,
        params: ChainParams,
        mempool: Pool,
        evidence: Evidence,
        blocks: BlockThread,
        prebuilder: Prebuilder,
        wal: ConsensusWal,
        metrics: NodeMetrics,
        on_committed: Committed,
        tx_arrived: asyncio.Event,
        hold_admission: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext,
        broadcast: Broadcast = broadcast_nowhere,
        on_state_changed: Callable[[], None] = lambda: None,
        guard: DoubleSignGuard | None = None,
        timing: BlockTiming | None = None,  # default: the block time of `params` and the default intervals
    ) -> None:
        self.machine = machine
        self.signer = signer
        self.ledger = ledger
        self.params = params  # the chain's, with this node's block time (which may be overridden)
        self.evidence = evidence
        self.metrics = metrics
        self.broadcast = broadcast
        self.on_state_changed = on_state_changed
        self.on_committed = on_committed
        timing = BlockTiming.of(params) if timing is None else timing
        self._next_height = NextHeight(ledger, mempool, evidence, timing, signer, prebuilder, tx_arrived)
        self._signing = Signing(signer, guard, lambda: inbox.put(RETRY))
        self._blocks = HeightBlocks(
            ledger=ledger,
            mempool=mempool,
            evidence=evidence,
            blocks=blocks,
            prebuilder=prebuilder,
            wal=wal,
            params=params,
            metrics=metrics,
            hold_admission=hold_admission,
            keeps=signer is not None,
        )
        self._wal = wal
        self._inbox = inbox
        self._future: list[Event | UnvalidatedProposal] = []
        self._task: asyncio.Task[None] | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self.round_started_at = time.monotonic()
        self._paced_from: float | None = None  # when the last height's proposal came here (None: none yet)
        self._height_s = 0.0  # how long the last height took here, start to written
        self._marks: dict[str, float] = {}  # step -> seconds after the height started (first time reached)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="consensus")
        self._task.add_done_callback(_report_crash)

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._signing.close()

    def receive(self, message: ConsensusMessage) -> None:
        """A checked proposal or vote from a peer (see `Inbox.receive`)."""
        self._inbox.receive(message)

    # --- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await wait_for_next_height(self._next_height, self._inbox, self._stash, self._paced_from, self._height_s)
            head = self.ledger.head
            self._blocks.new_height()
            self._signing.new_height()
            self.round_started_at = self._paced_from = time.monotonic()
            self._marks = {}
            height = head.height + 1
            resume = resume_point(self.signer, self._wal, height)
            if resume.votes:
                log.info(
                    "resuming height %d at round %d after a restart (%d votes signed, the last: %s at round %d)",
                    height,
                    resume.first_round,
                    len(resume.votes),
                    VoteType(resume.votes[-1].vote_type).name.lower(),
                    resume.votes[-1].round,
                )
            actions = self.machine.start_height(height, self.ledger.validators, resume.first_round, resume.locked)
            replay, self._future = [e for e in self._future if _height_of(e) == height], []
            for event in replay:
                self._inbox.put(event)
            if resume.kept is not None:
                actions = await self._replay_kept(resume.kept, actions)
            for vote in resume.votes:  # any may never have left; peers may wait for exactly it
                await self.broadcast(SignedVote(vote))
                self._inbox.put(VoteReceived(vote))
            committed = await self._carry_out(actions)
            self.on_state_changed()
            while not committed:
                entry = await self._inbox.get()
                if entry is None:
                    if self.ledger.head.height >= self.machine.height:
                        break  # sync imported this height: start over at the new head
                    continue
                if entry is RETRY:
                    committed = await self._release_withheld()
                else:
                    committed = await self._handle(entry)
                self.on_state_changed()

    async def _handle(self, event: Event | UnvalidatedProposal) -> bool:
        height = self.machine.height
        event_height = _height_of(event)
        if event_height != height:
            if event_height == height + 1 and len(self._future) < MAX_BUFFERED:
                self._future.append(event)
            return False
        if isinstance(event, UnvalidatedProposal):
            self._mark("proposal arrived", at=event.arrived_at)
            validated = await self._blocks.validate(event.proposal, event.block)
            if validated.valid:
                self._blocks.proposed(validated.proposal, validated.block)
            self._mark("proposal validated")
            event = validated
        return await self._carry_out(self.machine.handle(event))

    async def _carry_out(self, actions: Iterable[Action]) -> bool:
        """Carry out actions (and the follow-ups they cause); True once a block was committed."""
        queue = list(actions)
        while queue:
            action = queue.pop(0)
            if isinstance(action, ScheduleTimeout):
                self._schedule(action)
            elif isinstance(action, BuildBlock):
                proposer = self.machine.me
                assert proposer is not None, "the machine asks only a validator to build"
                block = await self._blocks.build(action, proposer)
                self._mark("built")
                queue.extend(self.machine.handle(BlockBuilt(action.height, action.round, block)))
            elif isinstance(action, SignProposal):
                proposal = await self._signing.proposal(action, self.ledger.head.height, self.machine.validators)
                if proposal is None:
                    continue
                await self.broadcast(SignedProposal(proposal, action.block))
                self._blocks.proposed(proposal, action.block)
                queue.extend(self.machine.handle(ProposalReceived(proposal, action.block, True)))
            elif isinstance(action, SignVote):
                self._blocks.keep(action.vote.block_hash, tuple(self.machine.polka_behind(action.vote)))
                vote = await self._signing.vote(action, self.ledger.head.height, self.machine.validators)
                if vote is None:
                    continue
                await self.broadcast(SignedVote(vote))
                self._mark("prevoted" if vote.vote_type == VoteType.PREVOTE else "precommitted")
                queue.extend(self.machine.handle(VoteReceived(vote)))
            elif isinstance(action, CommitBlock):
                self._mark("decided")
                await self._commit(action)
                return True
            elif isinstance(action, EvidenceFound):
                self.evidence.found(action.first, action.second)
        return False

    def _mark(self, step: str, at: float | None = None) -> None:
        """Note when this height first reached `step` (exported as aichain_consensus_step_seconds);
        `at` is when it happened (monotonic), if not now; before the height started counts as 0."""
        if step not in self._marks:
            elapsed = max(0.0, (time.monotonic() if at is None else at) - self.round_started_at)
            self._marks[step] = elapsed
            self.metrics.step_seconds.labels(step).observe(elapsed)

    # --- actions --------------------------------------------------------------------------

    def _schedule(self, action: ScheduleTimeout) -> None:
        loop = asyncio.get_running_loop()
        event = TimeoutFired(action.height, action.round, action.step)
        if action.step == Step.PROPOSE and action.round > 0:
            elapsed = time.monotonic() - self.round_started_at
            log.info(
                "height %d: round %d did not decide; round %d begins (%.2f s into the height)",
                action.height,
                action.round - 1,
                action.round,
                elapsed,
            )
        self._timers = [t for t in self._timers if not t.cancelled() and t.when() > loop.time()]
        self._timers.append(loop.call_later(action.seconds, self._inbox.put, event))

    async def _release_withheld(self) -> bool:
        """Carry out the kept requests of the current round once the guard lets go; True if committed."""
        m = self.machine
        return await self._carry_out(self._signing.release(self.ledger.head.height, m.validators, m.height, m.round))

    async def _replay_kept(self, kept: Kept, actions: list[Action]) -> list[Action]:
        """After a restart: give the machine the proposal whose block it voted for, and the polka that
        vote rested on (see node.consensus.wal)."""
        proposal, block = kept.proposal, kept.block
        event = await self._blocks.validate(proposal, block)
        if not event.valid:
            return actions
        log.info(
            "restored the block voted for at height %d round %d, with %d prevotes behind it",
            proposal.height,
            proposal.round,
            len(kept.polka),
        )
        if self.signer is not None and proposal.proposer == self.signer.address:
            await self.broadcast(SignedProposal(proposal, block))
        # Its own proposal for that round is restored: building another would be wasted.
        actions = [a for a in actions if not (isinstance(a, BuildBlock) and a.round == proposal.round)]
        actions += self.machine.handle(event)
        for vote in kept.polka:  # others' votes it may alone have had: gossip sends them on from its machine
            actions += self.machine.handle(VoteReceived(vote))
        return actions

    async def _commit(self, action: CommitBlock) -> None:
        block = action.block
        pending = await self._blocks.write(action)
        if pending is None:
            return  # sync imported it meanwhile
        self._height_s = time.monotonic() - self.round_started_at
        self.metrics.round_seconds.observe(self._height_s)
        self._mark("written")
        # The next height is paced from when this one's proposal was made or reached us (not before
        # the height started): a late proposal does not make the next height start at once.
        marks = self._marks
        self._paced_from = self.round_started_at + max(marks.get("built", 0.0), marks.get("proposal arrived", 0.0))
        steps = ", ".join(f"{k} +{v:.3f} s" for k, v in self._marks.items())
        if action.commit.round > 0:  # a round failed: say so, with where the time went
            log.info("height %d decided in round %d (%s)", block.height, action.commit.round, steps)
        elif self._marks.get("written", 0.0) * 1000 > self.params.block_time_ms:  # late: the next one starts late
            log.info("height %d took longer than the block time (%s)", block.height, steps)
        else:
            log.debug("height %d: %s", block.height, steps)
        await self.on_committed(pending)

    # --- between heights ------------------------------------------------------------------

    def _stash(self, event: Entry | None) -> Ahead:
        """Keep a message for the next height that arrived while waiting for it; answer how far it
        shows peers to be into that height (given None: how far all those kept show them)."""
        height = self.ledger.head.height + 1
        if event is None:
            return ahead(self._future, self.ledger.validators, height)
        if not isinstance(event, Event | UnvalidatedProposal) or _height_of(event) != height:
            return Ahead.NOTHING
        if len(self._future) < MAX_BUFFERED:
            self._future.append(event)
        return ahead((event,), self.ledger.validators, height)

    def status(self) -> dict[str, Any]:
        state = self.machine.round_state()
        state["round_duration_s"] = round(time.monotonic() - self.round_started_at, 3)
        state["signer"] = None if self.signer is None else "0x" + self.signer.address.hex()
        state["signing"] = self._signing.status()
        return state


def _report_crash(task: asyncio.Task[None]) -> None:
    """A bug that ends the consensus task must not leave a node that silently stops deciding."""
    if not task.cancelled() and task.exception() is not None:
        log.critical(
            "consensus stopped on an internal error; restart the node and report this", exc_info=task.exception()
        )


def _height_of(event: Event | UnvalidatedProposal) -> int:
    if isinstance(event, VoteReceived):
        return event.vote.height
    if isinstance(event, ProposalReceived | UnvalidatedProposal):
        return event.proposal.height
    return event.height

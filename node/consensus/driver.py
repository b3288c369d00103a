"""Drives the consensus state machine with real time, real blocks and the network.

One task owns the machine: it takes events from its inbox (`node.consensus.inbox`) in order,
and carries out the actions the machine returns. Heavy work (building or executing a block,
committing it) runs on the block thread (`node.block_thread`) while the task awaits it. Rules:

- a proposal from a peer is executed on our head before the machine sees it, and reaches
  it with its validity; our own proposals are valid by construction;
- every signature goes through the `Signer`, which persists what it signs first;
- messages for the next height are kept (bounded) and replayed when that height starts;
- between heights it waits as `node.consensus.prebuild.wait_for_next_height` says (the next
  proposer executes transactions meanwhile);
- while the double-sign guard (`node.consensus.double_sign_guard`) holds, the machine's requests
  to sign are kept and carried out when it lets go, if the machine is still in that round;
- what it signs is broadcast once (`SignedProposal`, `SignedVote`); a peer that was down,
  restarting or syncing gets it (and every other vote it lacks) from
  `node.consensus.vote_gossip`, which reads the machine's votes and is told (`on_state_changed`)
  when the height, round or step may have moved.

The driver knows the rest of the node only through the ports it is given: the chain
(`Ledger`), the mempool (`Pool`), the evidence pool (`Evidence`), `broadcast`, and
`on_committed`, told of each block it wrote. They are `Protocol`s, as CometBFT's consensus
state takes its `evidencePool` interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Container, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

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
from core.block import Block, Commit, Header, Vote, VoteType
from core.clock import now_ms
from core.errors import AichainError, InvalidBlock
from core.genesis import ChainParams
from core.proposal import Proposal
from core.transaction import Transaction
from core.validators import ValidatorSet
from node.block_thread import BlockThread
from node.chain import BLOCK_TX_BYTES, PendingBlock
from node.consensus.double_sign_guard import DoubleSignGuard, Withheld
from node.consensus.inbox import RETRY, Inbox, UnvalidatedProposal
from node.consensus.messages import ConsensusMessage, SignedProposal, SignedVote
from node.consensus.prebuild import NextHeight, Prebuilder, wait_for_next_height
from node.consensus.signer import DoubleSignRefused, Signer
from node.consensus.wal import ConsensusWal, resume_point

if TYPE_CHECKING:
    from node.metrics import NodeMetrics

log = logging.getLogger("aichain.consensus")

MAX_BUFFERED = 20_000


class Ledger(Protocol):
    """The chain as the driver uses it (`node.chain.Chain`): its head, the set that signs the next
    block, and the block steps (run on the block thread)."""

    @property
    def head(self) -> Header: ...

    @property
    def validators(self) -> ValidatorSet: ...

    def build(
        self, txs: list[Transaction], proposer: bytes, now_ms: int, evidence: tuple[bytes, ...] = ()
    ) -> PendingBlock: ...

    def execute(
        self, block: Block, now_ms: int | None = None, verified: Container[bytes] | None = None
    ) -> PendingBlock: ...

    def commit(self, pending: PendingBlock, commit: Commit) -> None: ...


class Pool(Protocol):
    """The mempool as the driver uses it (`node.txpool.mempool.Mempool`)."""

    def __len__(self) -> int: ...

    def select(self, max_txs: int, max_gas: int, max_bytes: int | None = None) -> list[Transaction]: ...

    def evict_invalid(self, dropped: Iterable[tuple[Transaction, Exception]], height: int) -> None: ...

    def verified_hashes(self) -> Container[bytes]: ...


class Evidence(Protocol):
    """Evidence of equivocation (`node.consensus.evidence.EvidencePool`)."""

    def take(self) -> tuple[bytes, ...]: ...

    def pending(self) -> bool: ...

    def found(self, first: Vote, second: Vote) -> None: ...


Broadcast = Callable[[ConsensusMessage], Awaitable[None]]
Committed = Callable[[PendingBlock], Awaitable[None]]


async def broadcast_nowhere(message: ConsensusMessage) -> None:
    """Without P2P a validator decides alone: what it signs goes nowhere."""


class ConsensusDriver:
    def __init__(
        self, *, machine: Tendermint, signer: Signer | None, inbox: Inbox, ledger: Ledger, params: ChainParams,
        mempool: Pool, evidence: Evidence, blocks: BlockThread, prebuilder: Prebuilder, wal: ConsensusWal,
        metrics: NodeMetrics, on_committed: Committed, tx_arrived: asyncio.Event,
        hold_admission: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext,
        broadcast: Broadcast = broadcast_nowhere, on_state_changed: Callable[[], None] = lambda: None,
        guard: DoubleSignGuard | None = None,
    ) -> None:  # fmt: skip
        self.machine = machine
        self.signer = signer
        self.ledger = ledger
        self.params = params  # the chain's, with this node's block time (which may be overridden)
        self.mempool = mempool
        self.evidence = evidence
        self.blocks = blocks
        self.prebuilder = prebuilder
        self.wal = wal
        self.metrics = metrics
        self.broadcast = broadcast
        self.on_state_changed = on_state_changed
        self.on_committed = on_committed
        self.hold_admission = hold_admission  # transaction admission waits while a block is executed
        self._next_height = NextHeight(ledger, mempool, evidence, params, signer, prebuilder, tx_arrived)
        self.guard = guard  # may this validator sign yet?
        self._withheld = None if guard is None else Withheld(guard, lambda: inbox.put(RETRY))
        self._inbox = inbox
        self._pending: dict[bytes, PendingBlock] = {}
        self._future: list[Event | UnvalidatedProposal] = []
        self._task: asyncio.Task[None] | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self.round_started_at = time.monotonic()
        self._marks: dict[str, float] = {}  # step -> seconds after the height started (first time reached)
        self._proposal_of: dict[bytes, Proposal] = {}  # block hash -> the (valid) proposal that carried it
        # One thread: signatures are made one at a time and in order, as the signer's record requires.
        self._signing_thread = ThreadPoolExecutor(1, thread_name_prefix="signer")

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
        await asyncio.to_thread(self._signing_thread.shutdown)  # a signature being recorded is recorded whole

    def receive(self, message: ConsensusMessage) -> None:
        """A checked proposal or vote from a peer (see `Inbox.receive`)."""
        self._inbox.receive(message)

    # --- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await wait_for_next_height(self._next_height, self._inbox, self._stash)
            head = self.ledger.head
            self._pending.clear()
            if self._withheld is not None:
                self._withheld.clear()
            self.round_started_at = time.monotonic()
            self._marks = {}
            height = head.height + 1
            self._proposal_of = {}
            resume = resume_point(self.signer, self.wal, height)
            if resume.last_vote is not None:
                log.info("resuming height %d at round %d after a restart (last signed: %s at round %d)",
                         height, resume.first_round, VoteType(resume.last_vote.vote_type).name.lower(),
                         resume.last_vote.round)  # fmt: skip
            actions = self.machine.start_height(height, self.ledger.validators, resume.first_round, resume.locked)
            replay, self._future = [e for e in self._future if _height_of(e) == height], []
            for event in replay:
                self._inbox.put(event)
            if resume.kept is not None:
                actions = await self._replay_kept(*resume.kept, actions)
            if resume.last_vote is not None:  # it may never have left; peers may wait for exactly it
                await self.broadcast(SignedVote(resume.last_vote))
                self._inbox.put(VoteReceived(resume.last_vote))
            committed = await self._carry_out(actions)
            self.on_state_changed()
            while not committed:
                event = await self._inbox.get()
                if event is None:
                    if self.ledger.head.height >= self.machine.height:
                        break  # sync imported this height: start over at the new head
                    continue
                if event is RETRY:
                    committed = await self._release_withheld()
                else:
                    committed = await self._handle(event)  # type: ignore[arg-type]
                self.on_state_changed()

    async def _handle(self, event: Event | UnvalidatedProposal) -> bool:
        height = self.machine.height
        event_height = _height_of(event)
        if event_height is not None and event_height != height:
            if event_height == height + 1 and len(self._future) < MAX_BUFFERED:
                self._future.append(event)
            return False
        if isinstance(event, UnvalidatedProposal):
            self._mark("proposal arrived", at=event.arrived_at)
            validated = await self._validate(event.proposal, event.block)
            if validated.valid:
                self._proposal_of[validated.block.hash] = validated.proposal
            self._mark("proposal validated")
            event = validated
        return await self._carry_out(self.machine.handle(event))

    async def _validate(self, proposal: Proposal, block: Block) -> ProposalReceived:
        if block.hash in self._pending:
            return ProposalReceived(proposal, block, True)
        try:
            async with self.hold_admission():
                verified = self.mempool.verified_hashes()
                pending = await self.blocks.run(self.ledger.execute, block, now_ms(), verified)
        except AichainError as exc:
            log.warning("proposal for height %d round %d is invalid: %s", proposal.height, proposal.round, exc)
            return ProposalReceived(proposal, block, False)
        self._pending[block.hash] = pending
        return ProposalReceived(proposal, block, True)

    async def _carry_out(self, actions: list[Action]) -> bool:
        """Carry out actions (and the follow-ups they cause); True once a block was committed."""
        queue = list(actions)
        while queue:
            action = queue.pop(0)
            if isinstance(action, ScheduleTimeout):
                self._schedule(action)
            elif isinstance(action, BuildBlock):
                block = await self._build(action)
                self._mark("built")
                queue.extend(self.machine.handle(BlockBuilt(action.height, action.round, block)))
            elif isinstance(action, SignProposal):
                if self._withhold(action):
                    continue
                signed = await self._sign(lambda a=action: self.signer.sign_proposal(a.proposal))  # type: ignore[union-attr]
                if signed is None:
                    continue
                await self.broadcast(SignedProposal(signed, action.block))
                self._proposal_of[action.block.hash] = signed
                queue.extend(self.machine.handle(ProposalReceived(signed, action.block, True)))
            elif isinstance(action, SignVote):
                self._keep(action.vote.block_hash)
                if self._withhold(action):
                    continue
                signed = await self._sign(lambda a=action: self.signer.sign_vote(a.vote))  # type: ignore[union-attr]
                if signed is None:
                    continue
                await self.broadcast(SignedVote(signed))
                self._mark("prevoted" if signed.vote_type == VoteType.PREVOTE else "precommitted")
                queue.extend(self.machine.handle(VoteReceived(signed)))
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
            log.info("height %d: round %d did not decide; round %d begins (%.2f s into the height)",
                     action.height, action.round - 1, action.round, elapsed)  # fmt: skip
        self._timers = [t for t in self._timers if not t.cancelled() and t.when() > loop.time()]
        self._timers.append(loop.call_later(action.seconds, self._inbox.put, event))

    async def _build(self, action: BuildBlock) -> Block:
        params = self.params
        evidence = self.evidence.take()
        pending = None
        async with self.hold_admission():
            if action.round == 0 and self.prebuilder.active:
                try:
                    pending = await self.prebuilder.finish(action.height, evidence)
                except InvalidBlock as exc:  # the head moved under it; build afresh
                    log.info("prebuilt block discarded: %s", exc)
            self.prebuilder.discard()
            self.metrics.blocks_proposed.labels("built" if pending is None else "prebuilt").inc()
            if pending is None:
                candidates = self.mempool.select(params.max_block_txs, params.block_gas_limit, BLOCK_TX_BYTES)
                pending = await self.blocks.run(self.ledger.build, candidates, self.machine.me, now_ms(), evidence)
        self.mempool.evict_invalid(pending.dropped, action.height)
        self._pending[pending.block.hash] = pending
        return pending.block

    def _keep(self, block_hash: bytes) -> None:
        """Before voting for a block, store it with its proposal (see node.consensus.wal)."""
        proposal, pending = self._proposal_of.get(block_hash), self._pending.get(block_hash)
        if self.signer is not None and proposal is not None and pending is not None:
            self.wal.save(proposal, pending.block)

    def _withhold(self, action: SignProposal | SignVote) -> bool:
        validators = self.machine.validators
        return self._withheld is not None and validators is not None and self._withheld.hold(
            action, self.ledger.head.height, validators
        )

    async def _release_withheld(self) -> bool:
        """Carry out the kept requests of the current round once the guard lets go; True if committed."""
        validators = self.machine.validators
        if self._withheld is None or validators is None:
            return False
        head, m = self.ledger.head.height, self.machine
        return await self._carry_out(self._withheld.release(head, validators, m.height, m.round))  # type: ignore[arg-type]

    async def _sign(self, make: Callable[[], Any]) -> Any:
        """Sign on the signer's own thread: the signing record is fsynced before a signature is returned,
        which on a busy disk took up to 1.1 s, all of it with the event loop held (P2P, RPC, timers)."""
        if self.signer is None:
            return None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._signing_thread, make)
        except DoubleSignRefused as exc:
            log.error("%s", exc)
            return None

    async def _replay_kept(self, proposal: Proposal, block: Block, actions: list[Action]) -> list[Action]:
        """After a restart: give the machine the proposal whose block it voted for (see consensus_wal)."""
        event = await self._validate(proposal, block)
        if not event.valid:
            return actions
        log.info("restored the block voted for at height %d round %d", proposal.height, proposal.round)
        if self.signer is not None and proposal.proposer == self.signer.address:
            await self.broadcast(SignedProposal(proposal, block))
        # Its own proposal for that round is restored: building another would be wasted.
        kept = [a for a in actions if not (isinstance(a, BuildBlock) and a.round == proposal.round)]
        return kept + self.machine.handle(event)

    async def _commit(self, action: CommitBlock) -> None:
        block = action.block
        self.blocks.writing_height = block.height
        try:
            pending = await self._write(action)
        finally:
            self.blocks.writing_height = None
        if pending is None:
            return  # sync imported it meanwhile
        self.metrics.round_seconds.observe(time.monotonic() - self.round_started_at)
        self._mark("written")
        steps = ", ".join(f"{k} +{v:.3f} s" for k, v in self._marks.items())
        if action.commit.round > 0:  # a round failed: say so, with where the time went
            log.info("height %d decided in round %d (%s)", block.height, action.commit.round, steps)
        elif self._marks.get("written", 0.0) * 1000 > self.params.block_time_ms:  # late: the next one starts late
            log.info("height %d took longer than the block time (%s)", block.height, steps)
        else:
            log.debug("height %d: %s", block.height, steps)
        await self.on_committed(pending)

    async def _write(self, action: CommitBlock) -> PendingBlock | None:
        """Execute the decided block if we have not, and write it; None if sync wrote it first."""
        block = action.block
        pending = self._pending.get(block.hash)
        async with self.hold_admission():
            if pending is None:  # decided without having executed it (e.g. we only saw the commit)
                pending = await self.blocks.run(self.ledger.execute, block, None, self.mempool.verified_hashes())
            async with self.blocks.commit_lock:
                if self.ledger.head.height + 1 != block.height:
                    return None
                await self.blocks.run(self.ledger.commit, pending, action.commit)
        return pending

    # --- between heights ------------------------------------------------------------------

    def _stash(self, event: object) -> bool:
        """Keep a message for the next height that arrived while waiting for it (None, True: nothing
        to keep); answer whether any such message is kept."""
        if event is None or event is True:
            return bool(self._future)
        height = _height_of(event)
        if height == self.ledger.head.height + 1 and len(self._future) < MAX_BUFFERED:
            self._future.append(event)  # type: ignore[arg-type]
        return bool(self._future)

    def status(self) -> dict[str, Any]:
        state = self.machine.round_state()
        state["round_duration_s"] = round(time.monotonic() - self.round_started_at, 3)
        state["signer"] = None if self.signer is None else "0x" + self.signer.address.hex()
        state["signing"] = None if self.signer is None else "yes" if self.guard is None else self.guard.status()
        return state


def _report_crash(task: asyncio.Task[None]) -> None:
    """A bug that ends the consensus task must not leave a node that silently stops deciding."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("consensus stopped on an internal error; restart the node and report this",
                     exc_info=task.exception())  # fmt: skip


def _height_of(event: object) -> int | None:
    if isinstance(event, VoteReceived):
        return event.vote.height
    if isinstance(event, ProposalReceived | UnvalidatedProposal):
        return event.proposal.height
    if isinstance(event, TimeoutFired | BlockBuilt):
        return event.height
    return None

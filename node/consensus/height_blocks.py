"""The blocks of the height being decided, as the consensus driver builds, checks, keeps and writes them.

Rules:
- our own proposal is the block prebuilt while the block time ran (`node.consensus.prebuild`)
  when it is still usable, else one built when due from the mempool; transactions found
  invalid on the way are evicted;
- a proposal from a peer is executed on our head before the machine sees it, and reaches it
  with its validity; our own proposals are valid by construction;
- before a vote for a block, the block is stored with its proposal and the polka the vote
  rests on (`node.consensus.wal`), so a restart does not forget what it voted for, nor why;
- the decided block is executed if it was not yet, then written under the commit lock, unless
  sync wrote that height first.

Execution and the commit run on the block thread (`node.block_thread`); transaction admission
waits meanwhile (`hold_admission`), so the finality path has the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from consensus.events import BuildBlock, CommitBlock, ProposalReceived
from core.block import Block, Vote
from core.clock import now_ms
from core.errors import AichainError, InvalidBlock
from core.genesis import ChainParams
from core.proposal import Proposal
from node.block_thread import BlockThread
from node.chain import BLOCK_TX_BYTES, PendingBlock
from node.consensus.ports import Evidence, Ledger, Pool
from node.consensus.prebuild import Prebuilder
from node.consensus.wal import ConsensusWal

if TYPE_CHECKING:
    from node.metrics import NodeMetrics

log = logging.getLogger("aichain.consensus")


class HeightBlocks:
    """The blocks executed at this height (ours and peers'), by hash, and the proposals that carried them."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        mempool: Pool,
        evidence: Evidence,
        blocks: BlockThread,
        prebuilder: Prebuilder,
        wal: ConsensusWal,
        params: ChainParams,
        metrics: NodeMetrics,
        hold_admission: Callable[[], AbstractAsyncContextManager[None]],
        keeps: bool,
    ) -> None:
        self.ledger = ledger
        self.mempool = mempool
        self.evidence = evidence
        self.blocks = blocks
        self.prebuilder = prebuilder
        self.wal = wal
        self.params = params
        self.metrics = metrics
        self.hold_admission = hold_admission
        self.keeps = keeps  # a validator stores the block it votes for
        self._pending: dict[bytes, PendingBlock] = {}
        self._proposal_of: dict[bytes, Proposal] = {}  # block hash -> the (valid) proposal that carried it

    def new_height(self) -> None:
        self._pending.clear()
        self._proposal_of = {}

    def proposed(self, proposal: Proposal, block: Block) -> None:
        """`proposal` carries `block`, which is valid."""
        self._proposal_of[block.hash] = proposal

    async def validate(self, proposal: Proposal, block: Block) -> ProposalReceived:
        """A peer's proposal with its validity: its block executed on our head."""
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

    async def build(self, action: BuildBlock, proposer: bytes) -> Block:
        """Our proposal's block: prebuilt if that is still usable, else built now."""
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
                pending = await self.blocks.run(self.ledger.build, candidates, proposer, now_ms(), evidence)
        self.mempool.evict_invalid(pending.dropped, action.height)
        self._pending[pending.block.hash] = pending
        return pending.block

    def keep(self, block_hash: bytes, polka: tuple[Vote, ...] = ()) -> None:
        """Before voting for a block, store it with its proposal and the polka the vote rests on
        (see node.consensus.wal)."""
        proposal, pending = self._proposal_of.get(block_hash), self._pending.get(block_hash)
        if self.keeps and proposal is not None and pending is not None:
            self.wal.save(proposal, pending.block, polka)

    async def write(self, action: CommitBlock) -> PendingBlock | None:
        """Execute the decided block if we have not, and write it; None if sync wrote it first."""
        block = action.block
        self.blocks.writing_height = block.height
        try:
            pending = self._pending.get(block.hash)
            async with self.hold_admission():
                if pending is None:  # decided without having executed it (e.g. we only saw the commit)
                    pending = await self.blocks.run(self.ledger.execute, block, None, self.mempool.verified_hashes())
                async with self.blocks.commit_lock:
                    if self.ledger.head.height + 1 != block.height:
                        return None
                    await self.blocks.run(self.ledger.commit, pending, action.commit)
            return pending
        finally:
            self.blocks.writing_height = None

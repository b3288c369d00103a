"""Between heights: building the next block while it is not due yet.

The proposer of the next height knows its turn as soon as the head is committed. Instead of
executing the whole mempool when the block is due (which puts all of that execution on the
finality path), it executes transactions as they arrive, in the block thread, from the commit
on, and when the block is due (`node.consensus.next_height`) only adds the last arrivals and
computes the state root.

Rules:
- only the round-0 proposer of the next height prebuilds (others would waste the CPU);
- the block's time is fixed when its building starts (the wait gives the clock then), so the
  transactions see the same block time as validators will;
- transactions are executed in admission order (each sender's nonces in order, as the
  mempool admits them); one that does not fit the block is skipped with its sender's later
  nonces, which stay pending for the next block (never dropped for the gap: see
  `BlockBuilder`); ones that turn out invalid are evicted from the mempool with their error
  as the reason, as at build;
- a builder whose head was replaced (sync imported a block) is discarded.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Protocol

from core.block import Header
from core.genesis import ChainParams
from core.transaction import Transaction
from core.validators import ValidatorSet
from node.block_thread import BlockThread
from node.chain import BLOCK_TX_BYTES, BlockBuilder, PendingBlock

log = logging.getLogger("aichain.consensus")


class ChainHead(Protocol):
    """The chain as the wait between heights reads it (`node.chain.Chain`): its head, and the set
    that signs the next block."""

    @property
    def head(self) -> Header: ...

    @property
    def validators(self) -> ValidatorSet: ...


class BuildingLedger(ChainHead, Protocol):
    """The chain as the prebuilder builds on it."""

    def start_block(self, proposer: bytes, timestamp_ms: int) -> BlockBuilder: ...


class Candidates(Protocol):
    """The mempool as the prebuilder reads it (`node.txpool.mempool.Mempool`)."""

    def __len__(self) -> int: ...

    def select(self, max_txs: int, max_gas: int, max_bytes: int | None = None) -> list[Transaction]: ...

    def evict_invalid(self, dropped: Iterable[tuple[Transaction, Exception]], height: int) -> None: ...


class PendingEvidence(Protocol):
    def pending(self) -> bool: ...


class Prebuilder:
    """Executes the next block's transactions as they are admitted (told by `admitted`, an admission
    listener), on the block thread."""

    def __init__(self, ledger: BuildingLedger, mempool: Candidates, blocks: BlockThread, params: ChainParams) -> None:
        self.ledger = ledger
        self.mempool = mempool
        self.blocks = blocks
        self.params = params
        self._builder: BlockBuilder | None = None
        self._arrivals: list[Transaction] = []

    def admitted(self, txs: list[Transaction]) -> None:
        if self._builder is not None:
            self._arrivals.extend(txs)

    @property
    def active(self) -> bool:
        return self._builder is not None

    async def step(self, proposer: bytes, timestamp_ms: int) -> None:
        """Start the builder (with the mempool as it is) or execute what arrived since the last step."""
        if self._builder is not None and self._builder.stale:
            self.discard()
        if self._builder is None:
            params = self.params
            self._arrivals = self.mempool.select(params.max_block_txs, params.block_gas_limit, BLOCK_TX_BYTES)
            self._builder = self.ledger.start_block(proposer, timestamp_ms)
        if not self._arrivals:
            return
        txs, self._arrivals = self._arrivals, []
        builder = self._builder
        dropped = await self.blocks.run(builder.add, txs)
        self.mempool.evict_invalid(dropped, builder.height)

    async def finish(self, height: int, evidence: tuple[bytes, ...]) -> PendingBlock | None:
        """The prebuilt block for `height` with the last arrivals, or None if there is none usable."""
        builder, self._builder = self._builder, None
        txs, self._arrivals = self._arrivals, []
        if builder is None or builder.height != height or builder.stale:
            return None

        def complete() -> PendingBlock:
            dropped_now = builder.add(txs)  # earlier steps' drops were handled then
            return dataclasses.replace(builder.finish(evidence), dropped=list(dropped_now))

        return await self.blocks.run(complete)

    def discard(self) -> None:
        self._builder = None
        self._arrivals = []

"""Between heights: waiting out the block time, and building the next block meanwhile.

The driver waits one block time after the head's timestamp; with an empty mempool it waits
up to the empty-block interval, unless transactions arrive or a peer is already at the next
height (a message for it arrived). A validator that signed at the next height before a
restart does not wait: that height is under way.

The proposer of the next height knows its turn as soon as the head is committed. Instead of
executing the whole mempool when the block is due (which puts all of that execution on the
finality path), it executes transactions as they arrive, in the block thread, and at the due
time only adds the last arrivals and computes the state root.

Rules:
- only the round-0 proposer of the next height prebuilds (others would waste the CPU);
- the block's time is the time it was due (head time + block time), fixed when it starts,
  so the transactions see the same block time as validators will;
- transactions are executed in admission order (each sender's nonces in order, as the
  mempool admits them); one that does not fit the block is skipped with its sender's later
  nonces, which stay pending for the next block (never dropped for the gap: see
  `BlockBuilder`); ones that turn out invalid are evicted from the mempool with their error
  as the reason, as at build;
- a builder whose head was replaced (sync imported a block) is discarded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from consensus.proposer import proposer_for
from core.block import Header
from core.clock import now_ms
from core.genesis import ChainParams
from core.transaction import Transaction
from core.validators import ValidatorSet
from node.block_thread import BlockThread
from node.chain import BLOCK_TX_BYTES, BlockBuilder, PendingBlock
from node.consensus.inbox import Entry, Inbox
from node.consensus.signer import Signer

log = logging.getLogger("aichain.consensus")

STEP_EVERY_S = 0.05  # execute arrivals at most this often: small steps cost a mempool walk each


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


@dataclass(frozen=True)
class NextHeight:
    """What the wait for the next height reads; `params` carry this node's block time."""

    ledger: ChainHead
    mempool: Candidates
    evidence: PendingEvidence
    params: ChainParams
    signer: Signer | None
    prebuilder: Prebuilder
    tx_arrived: asyncio.Event  # set by admission when transactions arrive


async def wait_for_next_height(at: NextHeight, inbox: Inbox, stash: Callable[[Entry | bool], bool]) -> None:
    """Return when the next height is due. Events taken from `inbox` meanwhile go to `stash`,
    which keeps those for the next height and answers whether it holds any."""
    ledger, mempool, signer, prebuilder = at.ledger, at.mempool, at.signer, at.prebuilder
    head = ledger.head
    block_time = at.params.block_time_ms
    idle = max(block_time, at.params.empty_block_interval_ms)
    prebuilder.discard()
    last = None if signer is None else signer.last_signed()
    if last is not None and last[0] == head.height + 1:
        return
    peers_ahead = stash(None)  # a peer already sent messages for the next height
    while True:
        now = now_ms()
        busy = len(mempool) > 0 or at.evidence.pending() or peers_ahead
        due = head.timestamp_ms + (block_time if busy else idle)
        if now >= due:
            return
        wait_s = (due - now) / 1000
        if signer is not None and len(mempool) > 0 and _proposes(ledger, signer, head.height + 1):
            await prebuilder.step(signer.address, head.timestamp_ms + block_time)
            wait_s = min(wait_s, STEP_EVERY_S)
        at.tx_arrived.clear()
        waiters = [asyncio.ensure_future(at.tx_arrived.wait()), asyncio.ensure_future(inbox.get())]
        done, pending = await asyncio.wait(waiters, timeout=wait_s, return_when="FIRST_COMPLETED")
        for waiter in pending:
            waiter.cancel()
        for waiter in done:
            peers_ahead = stash(waiter.result()) or peers_ahead
        if ledger.head.height != head.height:  # synced meanwhile
            head = ledger.head


def _proposes(ledger: ChainHead, signer: Signer, height: int) -> bool:
    """Whether this validator proposes round 0 of `height`."""
    return proposer_for(ledger.validators, height, 0).address == signer.address

"""What the consensus driver needs of the rest of the node, each as narrow as the driver uses it.

The chain (`Ledger`), the mempool (`Pool`), the evidence pool (`Evidence`), where what it signs
goes (`Broadcast`) and who is told of each block it wrote (`Committed`). They are `Protocol`s,
as CometBFT's consensus state takes its `evidencePool` interface: the driver imports none of the
parts that implement them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container, Iterable
from typing import Protocol

from core.block import Block, Commit, Header, Vote
from core.transaction import Transaction
from core.validators import ValidatorSet
from node.chain import PendingBlock
from node.consensus.messages import ConsensusMessage


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

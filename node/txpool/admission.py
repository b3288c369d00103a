"""Transaction admission: how a transaction gets into the mempool, and how block signatures are checked.

A transaction is refused cheaply first (a nonce the chain has used, a mempool precheck), then
its signature is verified (on two threads for a batch: libsodium frees the GIL), then the
mempool admits it. While consensus executes or commits a block, new verifications wait (at most
`ADMISSION_HOLD_MAX_S`), so the finality path has the CPU to itself. Who needs to know of
admitted transactions subscribes (`subscribe`): the journal, the prebuilder, and the network,
which gossips those that came from this node's clients.

Admissions take effect in the order they arrived, whatever order their verifications finish
in: a sender's nonce n in a large gossip batch (verified on threads) and its n+1 in a small one
right behind it (verified at once) must not meet the mempool as n+1 first, which it refuses as
a gap, and the peer never sends it again. Transactions a restarted node finds in its mempool
journal (`node.txpool.journal`) are admitted again with `readmit`.

Gossip asks `knows_encoding` of every copy a peer sends before decoding it. On a network where
every node forwards what it admits, most nodes hear of a transaction from several peers, and
under load the later copies arrive after the block that holds it: the encodings of the last
`COMMITTED_KEPT` committed transactions are remembered, so that such a copy is dropped unread
instead of being decoded and refused with a read of the transaction index (on a 4-validator
testnet at saturation, py-spy found those reads at about 2% of a validator's samples).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from core.block import Block
from core.clock import now_ms
from core.errors import AichainError, AlreadyKnown, DecodeError, InvalidBlock, InvalidSignature, NonceTooLow
from core.transaction import Transaction
from node.txpool.mempool import Mempool

if TYPE_CHECKING:
    from node.metrics import NodeMetrics
    from node.txpool.journal import JournalRecord

PARALLEL_VERIFY_MIN = 64
ADMIT_SLICE = 1000
ADMISSION_HOLD_MAX_S = 1.0
COMMITTED_KEPT = 32_768  # a few full blocks: copies later than that are refused the slow way

Listener = Callable[[list[Transaction]], None]


class TxAdmission:
    """`next_nonce(address)`: the sender's next nonce at the head; `tx_location(tx_hash)`: where a
    committed block holds a transaction, if one does (read only to explain a used nonce)."""

    def __init__(
        self,
        mempool: Mempool,
        metrics: NodeMetrics,
        *,
        next_nonce: Callable[[bytes], int],
        tx_location: Callable[[bytes], tuple[int, int] | None],
    ) -> None:
        self.mempool = mempool
        self.metrics = metrics
        self._next_nonce = next_nonce
        self._tx_location = tx_location
        self.tx_arrived = asyncio.Event()
        self._listeners: list[Listener] = []  # told of each admission, in order
        self._relay_listeners: list[Listener] = []  # ... of those peers have not seen yet
        self._verifiers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify")
        # Cleared while consensus executes or commits a block: new admissions wait, so the block
        # thread has the CPU (and the GIL) to itself on the finality path (see `consensus_work`).
        self._admission_open = asyncio.Event()
        self._admission_open.set()
        self._consensus_busy = 0
        # Encodings of the transactions whose signatures are being verified now. Gossip brings each
        # transaction from several peers at once; without this each copy would be verified (3x the
        # work on 4 nodes). Kept by encoding, not hash: gossip asks of a copy before hashing it.
        self._verifying: set[bytes] = set()
        self._last_turn: asyncio.Future[None] | None = None  # the latest admission to take effect
        # Encodings of the newest committed transactions, oldest first (see the module docstring).
        self._committed: dict[bytes, None] = {}

    def subscribe(self, listener: Listener, *, relay_only: bool = False) -> None:
        """`listener(txs)` is told of every admission, in order; with `relay_only`, only of those
        from this node's clients and itself (what peers sent is forwarded by `node.txpool.gossip`)."""
        (self._relay_listeners if relay_only else self._listeners).append(listener)

    def close(self) -> None:
        self._verifiers.shutdown(wait=True)

    def _reject_spent_nonce(self, tx: Transaction) -> None:
        """Refuse, before its signature is checked, a transaction whose nonce the chain has used:
        the same transaction is already in a block (-32016), another one reuses the nonce (-32005).
        The account comes from the state cache; the transaction index is read only on this path."""
        next_nonce = self._next_nonce(tx.sender_address)
        if tx.nonce >= next_nonce:
            return
        where = self._tx_location(tx.hash)
        if where is not None:
            raise AlreadyKnown(f"transaction 0x{tx.hash.hex()} is already in block {where[0]}")
        raise NonceTooLow(f"nonce {tx.nonce} already used; the sender's next nonce is {next_nonce}")

    @contextlib.asynccontextmanager
    async def _arrival_order(self) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """Take a turn: `await turn()` returns once every admission that arrived earlier took effect."""
        previous, mine = self._last_turn, asyncio.get_running_loop().create_future()
        self._last_turn = mine

        async def turn() -> None:
            if previous is not None and not previous.done():
                await previous

        try:
            yield turn
        finally:
            mine.set_result(None)
            if self._last_turn is mine:
                self._last_turn = None

    async def submit(self, tx: Transaction) -> bytes:
        """Admit one transaction to the mempool (signature verified here) or raise why not."""
        async with self._arrival_order() as turn:
            await turn()
            try:
                self._reject_spent_nonce(tx)
                tx_hash = self.mempool.add(tx, now_ms())
            except AichainError as exc:
                self.metrics.txs_rejected.labels(type(exc).__name__).inc()
                raise
            self._admitted([tx], relay=True)
        return tx_hash

    async def submit_many(self, txs: Sequence[Transaction], *, relay: bool = True) -> list[bytes | AichainError]:
        """Admit many transactions; signatures are verified on two threads (libsodium frees the GIL).
        `relay=False`: they came from a peer (the relay listeners are not told)."""
        results: list[bytes | AichainError | None] = [None] * len(txs)
        candidates: list[int] = []
        verifying = self._verifying
        for i, tx in enumerate(txs):
            try:
                self.mempool.precheck(tx)
                if tx.encoded in verifying:
                    raise AlreadyKnown(f"transaction 0x{tx.hash.hex()} is being admitted already")
                self._reject_spent_nonce(tx)
                candidates.append(i)
                verifying.add(tx.encoded)
            except AichainError as exc:
                results[i] = exc
        async with self._arrival_order() as turn:
            try:
                valid = await self._verify([txs[i] for i in candidates])
                await turn()
            finally:
                verifying.difference_update(txs[i].encoded for i in candidates)
            now = now_ms()
            for n, (i, ok) in enumerate(zip(candidates, valid, strict=True)):
                if n and not n % ADMIT_SLICE:
                    await asyncio.sleep(0)  # 10,000 admissions in one stretch held the loop 33 ms
                tx = txs[i]
                if not ok:
                    results[i] = InvalidSignature(f"signature of 0x{tx.hash.hex()} does not verify for its sender")
                    continue
                self.mempool.mark_verified(tx.hash)
                try:
                    results[i] = self.mempool.admit(tx, now)
                except AichainError as exc:
                    results[i] = exc
            admitted = [tx for tx, r in zip(txs, results, strict=True) if isinstance(r, bytes)]
            self._admitted(admitted, relay=relay)
        outcomes: list[bytes | AichainError] = []
        for r in results:
            assert r is not None  # each was refused before its signature was checked, or admitted or refused after
            if isinstance(r, AichainError):
                self.metrics.txs_rejected.labels(type(r).__name__).inc()
            outcomes.append(r)
        return outcomes

    async def readmit(self, records: list[JournalRecord], ttl_ms: int) -> list[Transaction]:
        """Admit again what the mempool journal kept (at start, before peers and clients are served):
        each sender's transactions in nonce order, with their first arrival time; those that
        expired, were committed meanwhile or no longer pass admission stay out. Returns those admitted."""
        now = now_ms()
        cutoff = now - ttl_ms
        txs: dict[bytes, tuple[int, Transaction]] = {}
        for record in records:
            if record.arrival_ms < cutoff:
                continue
            try:
                tx = Transaction.decode(record.raw)
            except DecodeError:
                continue
            # A time ahead of the clock (a damaged record, a clock stepped back) would never expire.
            txs.setdefault(tx.hash, (min(record.arrival_ms, now), tx))
        ordered = sorted(txs.values(), key=lambda item: (item[1].sender_address, item[1].nonce, item[0]))
        candidates: list[tuple[int, Transaction]] = []
        for arrival, tx in ordered:
            try:
                self._reject_spent_nonce(tx)
                self.mempool.precheck(tx)
            except AichainError:
                continue
            candidates.append((arrival, tx))
        valid = await self._verify([tx for _, tx in candidates])
        admitted: list[Transaction] = []
        for (arrival, tx), ok in zip(candidates, valid, strict=True):
            if not ok:
                continue
            self.mempool.mark_verified(tx.hash)
            with contextlib.suppress(AichainError):
                self.mempool.admit(tx, arrival)
                admitted.append(tx)
        self._admitted(admitted, relay=False)  # the caller announces them once peers are connected
        return admitted

    def _admitted(self, txs: list[Transaction], *, relay: bool) -> None:
        self.tx_arrived.set()
        if txs:
            for listener in self._listeners:
                listener(txs)
            if relay:
                for listener in self._relay_listeners:
                    listener(txs)

    @contextlib.asynccontextmanager
    async def consensus_work(self) -> AsyncIterator[None]:
        """Hold transaction admission while a block on the finality path is executed or committed."""
        self._consensus_busy += 1
        self._admission_open.clear()
        try:
            yield
        finally:
            self._consensus_busy -= 1
            if not self._consensus_busy:
                self._admission_open.set()

    def knows_encoding(self, raw: bytes) -> bool:
        """Whether the transaction encoded as `raw` is pending, being admitted or newly committed
        (so a copy from a peer is redundant)."""
        return self.mempool.holds_encoding(raw) or raw in self._verifying or raw in self._committed

    def block_committed(self, txs: Sequence[Transaction]) -> None:
        """Remember the encodings of a committed block's transactions (the newest `COMMITTED_KEPT`)."""
        committed = self._committed
        committed.update(dict.fromkeys(tx.encoded for tx in txs))
        excess = len(committed) - COMMITTED_KEPT
        if excess > 0:
            for raw in list(itertools.islice(committed, excess)):
                del committed[raw]

    async def _verify(self, txs: list[Transaction]) -> list[bool]:
        if not self._admission_open.is_set():
            with contextlib.suppress(TimeoutError):  # bounded: admission never starves
                await asyncio.wait_for(self._admission_open.wait(), ADMISSION_HOLD_MAX_S)
        self.metrics.signatures_verified.inc(len(txs))
        if len(txs) < PARALLEL_VERIFY_MIN:
            return [tx.signature_valid() for tx in txs]
        loop = asyncio.get_running_loop()
        half = len(txs) // 2
        parts = await asyncio.gather(
            loop.run_in_executor(self._verifiers, _verify_all, txs[:half]),
            loop.run_in_executor(self._verifiers, _verify_all, txs[half:]),
        )
        return parts[0] + parts[1]

    async def verify_block_signatures(self, block: Block) -> set[bytes]:
        """Verify the signatures of a block's transactions on two threads; raise if one fails."""
        txs = [tx for tx in block.transactions if not self.mempool.is_verified(tx.hash)]
        results = await self._verify(txs)
        for tx, ok in zip(txs, results, strict=True):
            if not ok:
                raise InvalidBlock(f"block {block.height}: transaction 0x{tx.hash.hex()} has a bad signature")
        return {tx.hash for tx in block.transactions}


def _verify_all(txs: list[Transaction]) -> list[bool]:
    return [tx.signature_valid() for tx in txs]

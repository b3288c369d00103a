"""Transaction gossip: message type 16, `[16, [tx bytes, ...]]`.

Rules:
- Transactions this node admits from its clients are queued and sent to every peer every
  `TX_FLUSH_S`, in batches of at most `TX_BATCH` transactions and `TX_BATCH_BYTES` bytes of
  encodings (at most half the frame limit: a batch of the largest transactions stays well inside
  a frame; one transaction is at most ~129 KiB).
- A received batch holds at most `TX_BATCH` transactions; copies this node already knows are
  skipped before decoding; the others are decoded in slices (`node.txpool.decode`) and admitted as
  if a client sent them, and those admitted are forwarded to the other peers in the same
  bounded batches. A batch that cannot be decoded costs the sender `PENALTY_MALFORMED`, a bad
  signature `PENALTY_BAD_SIGNATURE`; other refusals (nonce used, fee, balance) cost nothing:
  peers see the chain at slightly different heights.
- A batch that fails to go out is a bug: it is logged with its traceback and counted
  (`aichain_tx_gossip_failures_total`), and gossip goes on with the next one. (A batch over the
  frame limit once made the broadcast raise and ended gossip for good, silently.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from core import codec
from core.codec import Value
from core.errors import AichainError, DecodeError, InvalidSignature
from core.transaction import Transaction
from node.p2p.manager import PeerManager
from node.p2p.peer import Peer
from node.txpool.decode import decode_each, without_tracebacks

if TYPE_CHECKING:
    from node.metrics import NodeMetrics

log = logging.getLogger("aichain.network")

TXS = 16
TX_BATCH = 2000
TX_BATCH_BYTES = 4 * 1024 * 1024
TX_FLUSH_S = 0.02
PENALTY_MALFORMED = 20.0
PENALTY_BAD_SIGNATURE = 40.0


def batches(raws: Iterable[bytes], max_count: int = TX_BATCH, max_bytes: int = TX_BATCH_BYTES) -> Iterator[list[bytes]]:
    """`raws` in order, cut into runs of at most `max_count` items and `max_bytes` bytes (an item
    larger than `max_bytes` goes alone)."""
    batch: list[bytes] = []
    size = 0
    for raw in raws:
        if batch and (len(batch) >= max_count or size + len(raw) > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(raw)
        size += len(raw)
    if batch:
        yield batch


Admit = Callable[[Sequence[Transaction]], Awaitable[list[bytes | AichainError]]]  # hash or refusal, each


class TxGossip:
    """`knows(encoding)`: whether a copy is redundant (pending or being admitted); `admit(txs)`: admit
    what peers sent (not announced again: this module forwards it); `order`: the object admission's
    arrival order is kept for (see `node.txpool.decode`)."""

    def __init__(
        self, manager: PeerManager, metrics: NodeMetrics, *, knows: Callable[[bytes], bool], admit: Admit, order: object
    ) -> None:
        self.manager = manager
        self.metrics = metrics
        self.knows = knows
        self.admit = admit
        self.order = order
        self._outgoing: list[bytes] = []
        self._batch_bytes = min(TX_BATCH_BYTES, manager.config.max_frame_size // 2)  # room for the framing
        self._flusher: asyncio.Task[None] | None = None

    def register(self) -> None:
        self.manager.register(TXS, self._on_txs)

    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_forever(), name="tx-gossip")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    def announce(self, txs: Iterable[Transaction]) -> None:
        """Queue admitted transactions for the next gossip batch."""
        self._outgoing.extend(tx.encoded for tx in txs)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(TX_FLUSH_S)
            outgoing, self._outgoing = self._outgoing, []
            await self._broadcast(outgoing)

    async def _broadcast(self, raws: list[bytes], exclude: Peer | None = None) -> None:
        """Send `raws` to every peer but `exclude`, in bounded batches; a failure is logged, counted, survived."""
        for i, batch in enumerate(batches(raws, TX_BATCH, self._batch_bytes)):
            if i:
                await asyncio.sleep(0)  # many batches: let the loop breathe between them
            txs: list[Value] = list(batch)  # as the codec types a list
            try:
                await self.manager.broadcast(TXS, [TXS, txs], exclude=None if exclude is None else exclude.node_key)
            except Exception:  # a bug must not end gossip for good: say so, count it, go on
                self.metrics.tx_gossip_failures.inc()
                log.exception(
                    "gossip of %d transactions (%d bytes) failed; gossip goes on with the next batch",
                    len(batch),
                    sum(map(len, batch)),
                )

    async def _on_txs(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, TXS, 2, "transactions")
            if not isinstance(items[1], list) or len(items[1]) > TX_BATCH:
                raise DecodeError(f"transactions: expected an array of at most {TX_BATCH}")
            knows = self.knows
            fresh = [raw for raw in items[1] if type(raw) is not bytes or not knows(raw)]
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        decoded = await decode_each(fresh, _decode, order=self.order, stop_at_error=True)  # in slices, in order
        if decoded and not isinstance(decoded[-1], Transaction):
            peer.penalize(PENALTY_MALFORMED, f"malformed: {decoded[-1]}")
            return
        txs = [tx for tx in decoded if isinstance(tx, Transaction)]  # all of them: decoding stops at an error
        if not txs:
            return
        results = without_tracebacks(await self.admit(txs))
        if any(isinstance(result, InvalidSignature) for result in results):
            peer.penalize(PENALTY_BAD_SIGNATURE, "bad transaction signature")
        admitted = [tx.encoded for tx, result in zip(txs, results, strict=True) if isinstance(result, bytes)]
        await self._broadcast(admitted, exclude=peer)


def _decode(raw: object) -> Transaction:
    return Transaction.decode(codec.expect_bytes(raw, "transaction"))

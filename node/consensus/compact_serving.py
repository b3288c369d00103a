"""Serving the transactions of proposal blocks to peers that rebuild them (`GET_TXS` answered with
`BLOCK_TXS`, see `node.consensus.compact`).

Rules:
- Requests are answered from the proposal blocks kept (`MAX_KEPT_BLOCKS`, heights from the head
  on; older ones are dropped as the head moves), each answer with at most `MAX_ANSWER_BYTES` of
  transactions.
- At most `REQUESTS_PER_S` requests a peer (burst `REQUEST_BURST`); more cost `PENALTY_FLOOD`
  and get no answer, refused before the request is even decoded.
- A request for a height below our head costs `PENALTY_STALE` and is answered nil without a
  lookup; one for a block not held is answered nil (it may be a proposal we never got); an index
  beyond the block is malformed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Protocol

from core.block import Block, Header
from core.errors import DecodeError
from node.consensus.compact import BLOCK_TXS, BlockTxs, GetTxs, answer
from node.p2p.framing import encode_frame
from node.p2p.peer import Peer

MAX_KEPT_BLOCKS = 16
REQUESTS_PER_S = 20.0
REQUEST_BURST = 40.0
PENALTY_MALFORMED = 20.0
PENALTY_FLOOD = 5.0
PENALTY_STALE = 2.0


class HeadOf(Protocol):
    @property
    def head(self) -> Header: ...


class _Budget:
    """A peer's request budget (token bucket)."""

    __slots__ = ("at", "tokens")

    def __init__(self) -> None:
        self.tokens, self.at = REQUEST_BURST, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(REQUEST_BURST, self.tokens + (now - self.at) * REQUESTS_PER_S)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class ProposalBlocks:
    """The proposal blocks this node holds, and the answers to peers' requests for their transactions."""

    def __init__(self, chain: HeadOf) -> None:
        self.chain = chain
        self._kept: OrderedDict[bytes, Block] = OrderedDict()  # block hash -> block
        self._budgets: dict[bytes, _Budget] = {}

    def keep(self, block: Block) -> None:
        self._kept[block.hash] = block
        self._kept.move_to_end(block.hash)
        while len(self._kept) > MAX_KEPT_BLOCKS:
            self._kept.popitem(last=False)

    def head_moved(self, head_height: int) -> None:
        for block_hash, block in list(self._kept.items()):
            if block.height < head_height:
                del self._kept[block_hash]

    def forget(self, node_key: bytes) -> None:
        """A peer left: its budget goes with it."""
        self._budgets.pop(node_key, None)

    async def on_get_txs(self, peer: Peer, payload: Any) -> None:
        budget = self._budgets.get(peer.node_key)
        if budget is None:
            budget = self._budgets[peer.node_key] = _Budget()
        if not budget.take():
            peer.penalize(PENALTY_FLOOD, "too_many_requests: transaction requests over the rate")
            return
        try:
            request = GetTxs.from_wire(payload)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        not_held = BlockTxs(request.block_hash, None).to_wire()
        if request.height < self.chain.head.height:
            peer.penalize(PENALTY_STALE, f"stale_request: transactions of height {request.height}")
            peer.offer(encode_frame(BLOCK_TXS, not_held))
            return
        block = self._kept.get(request.block_hash)
        if block is None or block.height != request.height:
            peer.offer(encode_frame(BLOCK_TXS, not_held))
            return
        if request.indices[-1] >= len(block.transactions):
            peer.penalize(PENALTY_MALFORMED, "malformed: a transaction index beyond the block")
            return
        peer.offer(encode_frame(BLOCK_TXS, answer(block, request.indices).to_wire()))


__all__ = ["ProposalBlocks"]

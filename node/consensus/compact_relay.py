"""Compact proposal relay: a proposal travels as its block's header and transaction hashes; a validator
rebuilds the block from its mempool and fetches from the sender only what it lacks (as compact block
relay, BIP 152, does). Wire format: `node.consensus.compact`.

Rules:
- What the driver signs goes to every peer as a `CompactProposal`, carrying the transactions
  this node admitted from its own clients in the last `PREFILL_WINDOW_S` (peers are likely not
  to hold them yet: gossip and their admission take that long under load); its block is kept
  to answer requests. A proposal that reached us as a full block (type 17, vote gossip's repair) is
  forwarded compact as well.
- A compact proposal for the height we decide: its signature must verify and its header must be
  the block it signs (else `PENALTY_BAD_SIGNATURE`). Its transactions come from the mempool
  (decoded and signature-checked once already, at admission), from those carried along, and from
  those fetched before (`RECENT_TXS`); the others are fetched (`GET_TXS`) from the peers that sent
  this very message, one peer at a time, each answer awaited at most `FETCH_TIMEOUT_S`, the whole
  rebuild at most `REBUILD_TIMEOUT_S`. A fetched (or carried) transaction not in the mempool is
  decoded once here and admitted to
  the mempool (`admit`: its signature checked there, once) before the block is delivered, so
  execution does not check it again and the copy gossip brings later is skipped undecoded. An
  answered transaction that does not hash to the hash asked costs the peer `PENALTY_BAD_TX`, and
  the next sender is asked.
- A rebuilt block whose body does not match its header (`consensus.validation.check_body`:
  transaction root, last commit, evidence) is never delivered and costs each sender
  `PENALTY_BAD_BLOCK`; a correct copy from another peer still gets through (messages are told
  apart by their hash list, which the signature does not cover).
- A proposal whose transactions cannot be had is not delivered: this node prevotes nil when its
  propose timeout fires, and vote gossip sends it the full block while it announces it lacks the
  proposal. Nothing waits on a fetch but its own task: handlers return at once.
- Rebuilt, a proposal is forwarded compact to the peers that did not send it, and delivered.
  A proposal is delivered once (by signature), whichever way it came.
- Requests for the transactions of the blocks this node holds are answered by
  `node.consensus.compact_serving` (bounded, rate limited). An answer nobody asked for costs
  `PENALTY_UNSOLICITED`.
- At most `MAX_REBUILDS` rebuilds wait on fetches at once, `MAX_REBUILDS_PER_PEER` started by one peer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from consensus.validation import check_body
from core.block import Block, Header
from core.errors import DecodeError, InvalidBlock
from core.hashing import sha256
from core.proposal import Proposal
from core.transaction import Transaction
from core.validators import ValidatorSet
from node.consensus.compact import (
    BLOCK_TXS,
    COMPACT_PROPOSAL,
    GET_TXS,
    BlockTxs,
    CompactProposal,
    GetTxs,
)
from node.consensus.compact_serving import ProposalBlocks
from node.consensus.held_messages import HeldForNextHeight
from node.consensus.messages import ConsensusMessage, SignedProposal
from node.consensus.vote_gossip import VoteGossip
from node.p2p.framing import encode_frame
from node.p2p.gossip import SeenSet
from node.p2p.manager import PeerManager
from node.p2p.peer import Peer

if TYPE_CHECKING:
    from node.metrics import NodeMetrics

log = logging.getLogger("aichain.network")

FETCH_TIMEOUT_S = 1.0
REBUILD_TIMEOUT_S = 3.0
MAX_REBUILDS = 8
MAX_REBUILDS_PER_PEER = 2
RECENT_TXS = 20_000  # fetched or carried transactions kept for a re-proposal (the mempool may refuse them)
PREFILL_WINDOW_S = 0.5
LOCAL_TXS = 50_000  # admissions from our clients remembered for prefilling
PENALTY_MALFORMED = 20.0
PENALTY_BAD_SIGNATURE = 40.0
PENALTY_BAD_TX = 40.0
PENALTY_BAD_BLOCK = 40.0
PENALTY_UNSOLICITED = 10.0

Answer = tuple[bytes, ...] | None


class RelayChain(Protocol):
    """The chain as the relay checks proposals against it (`node.chain.Chain`)."""

    @property
    def chain_id(self) -> int: ...

    @property
    def head(self) -> Header: ...

    @property
    def validators(self) -> ValidatorSet: ...


class _Rebuild:
    """A compact proposal waiting for transactions, and the peers that sent it (they hold them)."""

    __slots__ = ("compact", "sources", "task")

    def __init__(self, compact: CompactProposal, first: Peer) -> None:
        self.compact = compact
        self.sources = [first]
        self.task: asyncio.Task[None] | None = None


class CompactRelay:
    def __init__(
        self,
        *,
        manager: PeerManager,
        chain: RelayChain,
        votes: VoteGossip,
        deliver: Callable[[ConsensusMessage], None],
        held: HeldForNextHeight,
        metrics: NodeMetrics,
        lookup_tx: Callable[[bytes], Transaction | None] = lambda tx_hash: None,
        admit: Callable[[Sequence[Transaction]], Awaitable[object]] | None = None,
    ) -> None:
        self.manager = manager
        self.chain = chain
        self.votes = votes
        self.deliver = deliver
        self.held = held
        self.metrics = metrics
        self.lookup_tx = lookup_tx  # the mempool's: decoded, signature verified
        self.admit = admit  # into the mempool, as from a peer (not relayed)
        self.blocks = ProposalBlocks(chain)  # the proposal blocks we hold, served to peers
        self._recent: OrderedDict[bytes, Transaction] = OrderedDict()  # fetched or carried along before
        self._delivered = SeenSet(4096)  # signatures of the proposals handed to the driver
        self._rebuilding: dict[bytes, _Rebuild] = {}  # compact key -> rebuild waiting on fetches
        self._waiting: dict[tuple[bytes, bytes], asyncio.Future[Answer]] = {}  # (peer, block hash) -> answer
        self._local: OrderedDict[bytes, float] = OrderedDict()  # tx hash -> when our clients' tx was admitted

    def register(self) -> None:
        self.manager.register(COMPACT_PROPOSAL, self.on_compact)
        self.manager.register(GET_TXS, self.blocks.on_get_txs)
        self.manager.register(BLOCK_TXS, self._on_block_txs)
        self.manager.on_peer_disconnected(self._on_disconnected)

    async def stop(self) -> None:
        tasks = [r.task for r in self._rebuilding.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- outbound -------------------------------------------------------------------------

    def note_local(self, txs: Iterable[Transaction]) -> None:
        """Transactions our clients sent were admitted (an admission listener): prefill candidates."""
        now = time.monotonic()
        local = self._local
        for tx in txs:
            local[tx.hash] = now
        while len(local) > LOCAL_TXS:
            local.popitem(last=False)

    async def publish(self, proposal: Proposal, block: Block, exclude: Peer | None = None) -> None:
        """Send a proposal compact to every peer (but `exclude`), and keep its block to serve."""
        self.keep(block)
        self._delivered.add(proposal.signature)
        since = time.monotonic() - PREFILL_WINDOW_S
        local = self._local
        prefill = [i for i, tx in enumerate(block.transactions) if local.get(tx.hash, since) > since]
        payload = CompactProposal.of(proposal, block, prefill).to_wire()
        await self.manager.broadcast(COMPACT_PROPOSAL, payload, exclude=None if exclude is None else exclude.node_key)

    def keep(self, block: Block) -> None:
        """Hold a proposal block to answer requests for its transactions."""
        self.blocks.keep(block)

    def delivered(self, proposal: Proposal) -> bool:
        """Whether this proposal was handed to the driver already (it came another way)."""
        return proposal.signature in self._delivered

    def mark_delivered(self, proposal: Proposal) -> bool:
        """Record that `proposal` goes to the driver now; False if it went already."""
        return self._delivered.add(proposal.signature)

    def head_moved(self, head_height: int) -> None:
        """Drop what is of no use any more: blocks below the head, rebuilds at or below it."""
        self.blocks.head_moved(head_height)
        for rebuild in list(self._rebuilding.values()):
            if rebuild.compact.proposal.height <= head_height and rebuild.task is not None:
                rebuild.task.cancel()

    # --- compact proposals ----------------------------------------------------------------

    async def on_compact(self, peer: Peer, payload: Any) -> None:
        try:
            compact = CompactProposal.from_wire(payload)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        proposal, chain = compact.proposal, self.chain
        if proposal.height == chain.head.height + 2:
            size = len(compact.tx_hashes) + sum(len(raw) for _, raw in compact.prefilled) + 1024
            # Held by message, not by signature: an altered copy held first must not shut out the correct one.
            self.held.hold(peer, COMPACT_PROPOSAL, proposal.height, compact.key, payload, size)
            return
        if proposal.height != chain.head.height + 1:
            return  # another height (normal around height changes; sync handles a peer far ahead)
        if proposal.signature in self._delivered:
            self.votes.received_proposal(peer, proposal)
            return
        rebuild = self._rebuilding.get(compact.key)
        if rebuild is not None:  # the same message from another peer: one more to fetch from
            if peer not in rebuild.sources:
                rebuild.sources.append(peer)
            return
        validator = chain.validators.by_address.get(proposal.proposer)
        if validator is None or not proposal.verify(validator.public_key, chain.chain_id):
            peer.penalize(PENALTY_BAD_SIGNATURE, "proposal with a bad signature")
            return
        if compact.header.hash != proposal.block_hash:
            peer.penalize(PENALTY_BAD_SIGNATURE, "proposal names another block")
            return
        try:
            txs, missing, decoded = compact.transactions(self.lookup_tx, self._recent.get)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        if not missing and not decoded:
            self.metrics.compact_proposals.labels("rebuilt").inc()
            await self._complete(compact, txs, [peer])
            return
        started_by_peer = sum(1 for r in self._rebuilding.values() if r.sources[0] is peer)
        if len(self._rebuilding) >= MAX_REBUILDS or started_by_peer >= MAX_REBUILDS_PER_PEER:
            return  # vote gossip sends the full block if no other rebuild delivers it
        rebuild = _Rebuild(compact, peer)
        self._rebuilding[compact.key] = rebuild
        rebuild.task = asyncio.create_task(self._fetch(rebuild, txs, missing, decoded), name="compact-fetch")

    def _remember(self, tx: Transaction) -> None:
        self._recent[tx.hash] = tx
        if len(self._recent) > RECENT_TXS:
            self._recent.popitem(last=False)

    async def _complete(self, compact: CompactProposal, txs: list[Transaction | None], sources: list[Peer]) -> None:
        """Check the rebuilt block against its header, forward the proposal and deliver it."""
        block = Block(compact.header, tuple(tx for tx in txs if tx is not None), compact.last_commit, compact.evidence)
        try:
            check_body(block)
        except InvalidBlock as exc:
            for peer in sources:
                peer.penalize(PENALTY_BAD_BLOCK, f"bad_compact_block: {exc}")
            return
        proposal = compact.proposal
        if proposal.height != self.chain.head.height + 1 or not self._delivered.add(proposal.signature):
            return  # the head moved meanwhile, or it came another way
        self.keep(block)
        for peer in sources:
            self.votes.received_proposal(peer, proposal)
        await self.manager.broadcast(COMPACT_PROPOSAL, compact.to_wire(), exclude=[p.node_key for p in sources])
        self.votes.sent_proposal(proposal, exclude=sources[0])
        self.deliver(SignedProposal(proposal, block))

    # --- fetching -------------------------------------------------------------------------

    async def _fetch(
        self, rebuild: _Rebuild, txs: list[Transaction | None], missing: list[int], decoded: list[int]
    ) -> None:
        """Fetch what is missing, admit what was decoded here, and complete the proposal."""
        compact = rebuild.compact
        fetched = list(missing)
        try:
            async with asyncio.timeout(REBUILD_TIMEOUT_S):
                tried = 0
                while missing and tried < len(rebuild.sources):  # sources may grow meanwhile
                    source = rebuild.sources[tried]
                    tried += 1
                    missing = await self._fetch_from(source, compact, txs, missing)
        except TimeoutError:
            pass
        finally:
            self._rebuilding.pop(compact.key, None)
        if missing:
            self.metrics.compact_proposals.labels("unavailable").inc()
            log.info(
                "height %d round %d: %d of %d transactions of the proposal could not be fetched from %d peers",
                compact.proposal.height,
                compact.proposal.round,
                len(missing),
                len(compact),
                len(rebuild.sources),
            )
            return
        self.metrics.compact_proposals.labels("fetched" if fetched else "rebuilt").inc()
        self.metrics.compact_txs_fetched.inc(len(fetched))
        if self.admit is not None:
            try:  # refusals (a nonce used meanwhile, a full pool) leave the block as it is
                await self.admit([tx for i in sorted(decoded + fetched) if (tx := txs[i]) is not None])
            except Exception:  # a bug in admission must not lose the proposal
                log.exception("admitting the fetched transactions of a proposal failed")
        await self._complete(compact, txs, rebuild.sources)

    async def _fetch_from(
        self, source: Peer, compact: CompactProposal, txs: list[Transaction | None], missing: list[int]
    ) -> list[int]:
        """Ask `source` for the missing transactions until it has sent them all, fails or lies;
        returns the indices still missing."""
        proposal = compact.proposal
        key = (source.node_key, proposal.block_hash)
        while missing and not source.closing:
            future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
            self._waiting[key] = future
            try:
                if not source.offer(
                    encode_frame(GET_TXS, GetTxs(proposal.height, proposal.block_hash, tuple(missing)).to_wire())
                ):
                    return missing
                raws = await asyncio.wait_for(future, FETCH_TIMEOUT_S)
            except TimeoutError:
                return missing
            finally:
                if self._waiting.get(key) is future:
                    del self._waiting[key]
            if not raws:
                return missing  # it does not hold the block
            if len(raws) > len(missing):
                source.penalize(PENALTY_MALFORMED, "malformed: more transactions answered than asked")
                return missing
            for index, raw in zip(missing, raws, strict=False):
                if sha256(raw) != compact.tx_hash(index):
                    source.penalize(PENALTY_BAD_TX, "bad_tx: an answered transaction does not match the hash asked")
                    return [i for i in missing if txs[i] is None]
                try:
                    tx = Transaction.decode(raw)
                except DecodeError as exc:  # its hash matches: the proposer's own block holds garbage
                    source.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
                    return [i for i in missing if txs[i] is None]
                txs[index] = tx
                self._remember(tx)
            missing = missing[len(raws) :]
        return missing

    async def _on_block_txs(self, peer: Peer, payload: Any) -> None:
        try:
            answered = BlockTxs.from_wire(payload)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        future = self._waiting.get((peer.node_key, answered.block_hash))
        if future is None or future.done():
            peer.penalize(PENALTY_UNSOLICITED, "unsolicited: transactions nobody asked for")
            return
        future.set_result(answered.raws)

    async def _on_disconnected(self, peer: Peer) -> None:
        self.blocks.forget(peer.node_key)
        for (node_key, _), future in list(self._waiting.items()):
            if node_key == peer.node_key and not future.done():
                future.set_result(None)


__all__ = ["CompactRelay"]

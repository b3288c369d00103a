"""Consensus on the wire: proposals, votes and evidence from peers, checked, flooded once and
handed to the driver; what the driver signs, flooded.

Message types (application range of `node.p2p.messages`):

- 17 `[17, proposal, block bytes]`: for the height we decide; the proposer's signature is
  checked, and the block's body against its header; forwarded once, compact. Only vote gossip's
  repair sends it: proposals travel as 28 (`node.consensus.compact_relay`), which rebuilds
  blocks from the mempool.
- 18 `[18, vote]`: for the height we decide, from a validator, signature checked; forwarded once.
  A precommit for a height we committed (at most `EVIDENCE_LOOKBACK` back) whose signer's
  precommit in our stored commit, at the same round, names another block is equivocation:
  it becomes evidence like a conflict at the current height.
- 19 `[19, evidence bytes]`: checked against the validator set; forwarded once.

A message that cannot be decoded, or whose signature fails, lowers the sender's score (the
P2P layer bans a peer whose score falls too low). Proposals and votes for the height after
the one we decide are held until we get there (see `HeldForNextHeight`); other heights are
dropped without penalty: they are normal around height changes. What reaches the driver is a
`SignedProposal` or `SignedVote`; what the driver broadcasts must be one of them
(`UnknownConsensusMessage` otherwise).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from consensus.validation import check_body
from core import codec
from core.block import Block, Commit, Header, Vote, VoteType
from core.errors import AichainError, DecodeError, InvalidBlock
from core.evidence import DuplicateVote
from core.proposal import Proposal
from core.transaction import Transaction
from core.validators import ValidatorSet
from node.consensus.compact import COMPACT_PROPOSAL
from node.consensus.compact_relay import CompactRelay
from node.consensus.held_messages import VOTE_SIZE, HeldForNextHeight
from node.consensus.messages import (
    EVIDENCE,
    PROPOSAL,
    VOTE,
    ConsensusMessage,
    SignedProposal,
    SignedVote,
    UnknownConsensusMessage,
)
from node.consensus.vote_gossip import VoteGossip
from node.p2p.gossip import Gossip, message_id
from node.p2p.manager import PeerManager
from node.p2p.peer import Peer

if TYPE_CHECKING:
    from node.metrics import NodeMetrics

log = logging.getLogger("aichain.network")

PENALTY_MALFORMED = 20.0
PENALTY_BAD_SIGNATURE = 40.0
EVIDENCE_LOOKBACK = 1000  # heights back that a late precommit is checked against our stored commit


class Commits(Protocol):
    def commit(self, height: int) -> Commit | None: ...


class CheckingChain(Protocol):
    """The chain as the reactor checks messages against it (`node.chain.Chain`)."""

    @property
    def chain_id(self) -> int: ...

    @property
    def head(self) -> Header: ...

    @property
    def validators(self) -> ValidatorSet: ...

    @property
    def last_commit(self) -> Commit | None: ...

    @property
    def blocks(self) -> Commits: ...


class EvidenceSink(Protocol):
    """Where evidence goes (`node.consensus.evidence.EvidencePool`)."""

    def found(self, first: Vote, second: Vote) -> None: ...

    def add(self, evidence: DuplicateVote) -> bool: ...


class ConsensusReactor:
    def __init__(
        self,
        *,
        manager: PeerManager,
        gossip: Gossip,
        chain: CheckingChain,
        votes: VoteGossip,
        deliver: Callable[[ConsensusMessage], None],
        evidence: EvidenceSink,
        metrics: NodeMetrics,
        lookup_tx: Callable[[bytes], Transaction | None] = lambda tx_hash: None,
        admit_fetched: Callable[[Sequence[Transaction]], Awaitable[object]] | None = None,
        observe_vote: Callable[[Vote], None] = lambda vote: None,
    ) -> None:
        self.manager = manager
        self.gossip = gossip
        self.chain = chain
        self.votes = votes
        self.deliver = deliver  # the driver's inbox
        self.evidence = evidence
        self.metrics = metrics
        self.lookup_tx = lookup_tx  # transactions a proposal's block refers to by hash (the mempool's)
        self.observe_vote = observe_vote  # the double-sign guard watches every valid vote
        self.held = HeldForNextHeight()
        self.compact = CompactRelay(
            manager=manager,
            chain=chain,
            votes=votes,
            deliver=deliver,
            held=self.held,
            metrics=metrics,
            lookup_tx=lookup_tx,
            admit=admit_fetched,
        )
        self._publishing: set[asyncio.Task[bool]] = set()

    def register(self) -> None:
        for msg_type, handler in ((PROPOSAL, self._on_proposal), (VOTE, self._on_vote), (EVIDENCE, self._on_evidence)):
            self.manager.register(msg_type, handler)
        self.compact.register()

    async def stop(self) -> None:
        await self.compact.stop()

    # --- outbound -------------------------------------------------------------------------

    async def broadcast(self, message: ConsensusMessage) -> None:
        """Flood what the driver signed. A peer that misses it (down, restarting or syncing) gets it
        later from `node.consensus.vote_gossip`."""
        match message:
            case SignedProposal(proposal=proposal, block=block):
                await self.compact.publish(proposal, block)
                self.votes.sent_proposal(proposal)
            case SignedVote(vote=vote):
                await self.gossip.publish(VOTE, [VOTE, vote.to_wire()])
                self.votes.sent_vote(vote)
            case _:
                raise UnknownConsensusMessage(message)

    def publish_evidence(self, raw: bytes) -> None:
        """Flood evidence this node found (an evidence pool listener)."""
        task = asyncio.get_running_loop().create_task(self.gossip.publish(EVIDENCE, [EVIDENCE, raw]))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def release_held(self, head_height: int) -> None:
        """The head moved: handle the messages held for the height now decided."""
        self.compact.head_moved(head_height)
        handlers = {PROPOSAL: self._on_proposal, COMPACT_PROPOSAL: self.compact.on_compact}
        for peer, msg_type, payload in self.held.release(head_height):
            self.metrics.held_messages.inc()
            await handlers.get(msg_type, self._on_vote)(peer, payload)

    # --- inbound --------------------------------------------------------------------------

    async def _on_proposal(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, PROPOSAL, 3, "proposal message")
            proposal = Proposal.from_wire(items[1])
            raw_block = codec.expect_bytes(items[2], "proposal block")
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        chain = self.chain
        if proposal.height == chain.head.height + 2:
            self.held.hold(peer, PROPOSAL, proposal.height, proposal.signature, payload, len(raw_block))
            return
        if proposal.height != chain.head.height + 1:
            return  # another height (normal around height changes; sync handles a peer far ahead)
        if self.compact.delivered(proposal):  # by signature: it came compact, or in full before
            self.votes.received_proposal(peer, proposal)
            return
        validator = chain.validators.by_address.get(proposal.proposer)
        if validator is None or not proposal.verify(validator.public_key, chain.chain_id):
            peer.penalize(PENALTY_BAD_SIGNATURE, "proposal with a bad signature")
            return
        try:
            block = Block.decode(raw_block, self.lookup_tx)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed block: {exc}")
            return
        if block.hash != proposal.block_hash:
            peer.penalize(PENALTY_BAD_SIGNATURE, "proposal names another block")
            return
        try:
            check_body(block)  # the body is not signed: a relay may have altered it
        except InvalidBlock as exc:
            peer.penalize(PENALTY_BAD_SIGNATURE, f"bad_block: {exc}")
            return
        self.votes.received_proposal(peer, proposal)
        if not self.compact.mark_delivered(proposal):
            return  # delivered meanwhile
        await self.compact.publish(proposal, block, exclude=peer)
        self.votes.sent_proposal(proposal, exclude=peer)
        self.deliver(SignedProposal(proposal, block))

    async def _on_vote(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, VOTE, 2, "vote message")
            vote = Vote.from_wire(items[1])
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        chain = self.chain
        if vote.height == chain.head.height + 2:
            self.held.hold(peer, VOTE, vote.height, vote.signature, payload, VOTE_SIZE)
            return
        if vote.height <= chain.head.height:
            self._check_against_commit(peer, vote, payload)
            return
        if vote.height != chain.head.height + 1:
            return  # another height
        if message_id(VOTE, payload) in self.gossip.seen:
            self.votes.received_vote(peer, vote)  # the very bytes we checked before: no signature check needed
            return
        validator = chain.validators.by_address.get(vote.validator)
        if validator is None or not vote.verify(validator.public_key, chain.chain_id):
            peer.penalize(PENALTY_BAD_SIGNATURE, "vote with a bad signature")
            return
        self.votes.received_vote(peer, vote)
        if not await self.gossip.publish(VOTE, payload, origin=peer):
            return
        self.votes.sent_vote(vote, exclude=peer)
        self.observe_vote(vote)
        self.deliver(SignedVote(vote))

    def _check_against_commit(self, peer: Peer, vote: Vote, payload: Any) -> None:
        """A precommit for a committed height that contradicts our stored commit is evidence (a validator
        whose data was wiped, or a second instance of its key, may sign again at heights long decided)."""
        chain = self.chain
        if vote.vote_type != VoteType.PRECOMMIT or chain.head.height - vote.height > EVIDENCE_LOOKBACK:
            return
        commit = chain.last_commit if vote.height == chain.head.height else chain.blocks.commit(vote.height)
        if commit is None or commit.round != vote.round or commit.block_hash == vote.block_hash:
            return
        sig = next((s for s in commit.signatures if s.validator == vote.validator), None)
        validator = chain.validators.by_address.get(vote.validator)
        if sig is None or validator is None or not self.gossip.seen.add(message_id(VOTE, payload)):
            return  # it did not sign our commit, is no longer a validator, or this was checked before
        if not vote.verify(validator.public_key, chain.chain_id):
            peer.penalize(PENALTY_BAD_SIGNATURE, "vote with a bad signature")
            return
        self.evidence.found(commit.precommit_of(sig), vote)

    async def _on_evidence(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, EVIDENCE, 2, "evidence message")
            raw = codec.expect_bytes(items[1], "evidence", max_size=4096)
            evidence = DuplicateVote.decode(raw)
            evidence.check(self.chain.validators, self.chain.chain_id)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        except AichainError:
            return  # stale (the offender already left) or not for our set
        if await self.gossip.publish(EVIDENCE, payload, origin=peer):
            self.evidence.add(evidence)

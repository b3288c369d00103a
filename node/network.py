"""The node's side of the P2P network: gossip of transactions, proposals, votes and evidence.

Message types (application range of `node.p2p.messages`):

- 16 `[16, [tx bytes, ...]]`: transactions, see `node.txpool.gossip`.
- 17 `[17, proposal, block bytes]`: for the height we decide; the proposer's signature is
  checked; forwarded once.
- 18 `[18, vote]`: for the height we decide, from a validator, signature checked; forwarded once.
  A precommit for a height we committed (at most `EVIDENCE_LOOKBACK` back) whose signer's
  precommit in our stored commit, at the same round, names another block is equivocation:
  it becomes evidence like a conflict at the current height.
- 19 `[19, evidence bytes]`: checked against the validator set; forwarded once.
- 20 `[20, height, head hash]`: a peer's head, announced after each block (drives sync).
- 21, 22: block ranges, see `node.p2p.sync`.
- 23-26: artifacts (want, have, get chunks, chunk), see `node.artifacts.exchange`.
- 27 `[27, height, round, step, ...]`: where a node is in consensus and which votes it holds;
  each peer is sent the proposals and votes it lacks, see `node.consensus.vote_gossip`.

A message that cannot be decoded, or whose signature fails, lowers the sender's score (the
P2P layer bans a peer whose score falls too low). Proposals and votes for the height after
the one we decide are held until we get there (see `HeldForNextHeight`); other heights are
dropped without penalty: they are normal around height changes.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from consensus.events import VoteReceived
from core import codec
from core.block import Block, Vote, VoteType
from core.errors import AichainError, AlreadyKnown, DecodeError
from core.evidence import DuplicateVote
from core.keys import PrivateKey
from core.proposal import Proposal
from core.transaction import Transaction
from node.artifacts import exchange as artifact_exchange
from node.artifacts.exchange import ArtifactExchange
from node.consensus.held_messages import VOTE_SIZE, HeldForNextHeight
from node.consensus.vote_gossip import ROUND_STEP, VoteGossip
from node.p2p.config import P2PConfig as TransportConfig
from node.p2p.gossip import Gossip, message_id
from node.p2p.manager import PeerManager
from node.p2p.peer import Peer
from node.p2p.sync import BlockSync
from node.txpool.gossip import TxGossip

if TYPE_CHECKING:
    from node.node import Node

log = logging.getLogger("aichain.network")

PROPOSAL, VOTE, EVIDENCE, STATUS = 17, 18, 19, 20
URGENT_TYPES = frozenset({PROPOSAL, VOTE, EVIDENCE, STATUS, ROUND_STEP})
PENALTY_MALFORMED = 20.0
PENALTY_BAD_SIGNATURE = 40.0
EVIDENCE_LOOKBACK = 1000  # heights back that a late precommit is checked against our stored commit


class Network:
    def __init__(self, node: Node, node_key: PrivateKey, config: TransportConfig) -> None:
        self.node = node
        # Consensus messages overtake transaction gossip and block ranges, on the wire and in handling.
        # Artifact chunks come only as answers to our requests: exempt from the byte rate (see PeerManager).
        requested = frozenset({artifact_exchange.CHUNK})
        config = dataclasses.replace(config, urgent_types=URGENT_TYPES, requested_types=requested)
        self.manager = PeerManager(config, node_key)
        self.gossip = Gossip(self.manager)
        self.sync = BlockSync(node, self.manager, node.config.p2p.sync_answer_bytes)
        self.artifacts = ArtifactExchange(node, self.manager, node.config.artifacts)
        self.votes = VoteGossip(node, self.manager)
        self.txs = TxGossip(node, self.manager)
        self.held = HeldForNextHeight()
        for msg_type, handler in (
            (PROPOSAL, self._on_proposal), (VOTE, self._on_vote), (EVIDENCE, self._on_evidence),
            (STATUS, self._on_status),
        ):  # fmt: skip
            self.manager.register(msg_type, handler)
        self.txs.register()
        self.sync.register()
        self.artifacts.register()
        self.votes.register()
        self.manager.on_peer_connected(self._on_connected)

    async def start(self) -> None:
        head = self.node.chain.head
        self.manager.set_head(head.height, head.hash)
        await self.manager.start()
        self.sync.start()
        self.artifacts.start()
        self.votes.start()
        self.txs.start()

    async def stop(self) -> None:
        await self.txs.stop()
        await self.votes.stop()
        await self.sync.stop()
        await self.artifacts.stop()
        await self.manager.stop()

    def peer_count(self) -> int:
        return len(self.manager.connected_peers())

    def peer_heads(self) -> list[int] | None:
        """The heads the connected peers announced; None while one of them has not yet."""
        heads = []
        for peer in self.manager.connected_peers():
            height = self.sync.head_of(peer)
            if height is None:
                return None
            heads.append(height)
        return heads

    # --- outbound -------------------------------------------------------------------------

    async def broadcast_consensus(self, message: object) -> None:
        """Called by the consensus driver for what it signed: ("proposal", p, block) or ("vote", v).
        A peer that misses it (down, restarting or syncing) gets it later from `node.consensus.vote_gossip`."""
        msg_type, payload = _consensus_payload(message)
        await self.gossip.publish(msg_type, payload)
        if msg_type == VOTE:
            self.votes.sent_vote(message[1])  # type: ignore[index]
        else:
            self.votes.sent_proposal(message[1])  # type: ignore[index]

    async def broadcast_evidence(self, raw: bytes) -> None:
        await self.gossip.publish(EVIDENCE, [EVIDENCE, raw])

    def announce_txs(self, txs: list[Transaction]) -> None:
        """Queue admitted transactions for the next gossip batch."""
        self.txs.announce(txs)

    async def head_changed(self) -> None:
        head = self.node.chain.head
        self.manager.set_head(head.height, head.hash)
        await self.manager.broadcast(STATUS, [STATUS, head.height, head.hash])
        for peer, msg_type, payload in self.held.release(head.height):
            self.node.metrics.held_messages.inc()
            await (self._on_proposal if msg_type == PROPOSAL else self._on_vote)(peer, payload)

    # --- inbound --------------------------------------------------------------------------

    async def _on_connected(self, peer: Peer) -> None:
        head = self.node.chain.head
        await peer.send(STATUS, [STATUS, head.height, head.hash])

    async def _on_proposal(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, PROPOSAL, 3, "proposal message")
            proposal = Proposal.from_wire(items[1])
            raw_block = codec.expect_bytes(items[2], "proposal block")
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        chain = self.node.chain
        if proposal.height == chain.head.height + 2:
            self.held.hold(peer, PROPOSAL, proposal.height, proposal.signature, payload, len(raw_block))
            return
        if proposal.height != chain.head.height + 1:
            return  # another height (normal around height changes; sync handles a peer far ahead)
        if message_id(PROPOSAL, payload) in self.gossip.seen:
            self.votes.received_proposal(peer, proposal)
            return
        validator = chain.validators.by_address.get(proposal.proposer)
        if validator is None or not proposal.verify(validator.public_key, chain.chain_id):
            peer.penalize(PENALTY_BAD_SIGNATURE, "proposal with a bad signature")
            return
        try:
            block = Block.decode(raw_block, self.node.mempool.get)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed block: {exc}")
            return
        if block.hash != proposal.block_hash:
            peer.penalize(PENALTY_BAD_SIGNATURE, "proposal names another block")
            return
        self.votes.received_proposal(peer, proposal)
        if not await self.gossip.publish(PROPOSAL, payload, origin=peer):
            return  # seen before
        self.votes.sent_proposal(proposal, exclude=peer)
        assert self.node.driver is not None
        self.node.driver.proposal_from_peer(proposal, block)

    async def _on_vote(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, VOTE, 2, "vote message")
            vote = Vote.from_wire(items[1])
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        chain = self.node.chain
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
        assert self.node.driver is not None
        if self.node.driver.guard is not None:
            self.node.driver.guard.observe_vote(vote)
        self.node.driver.deliver(VoteReceived(vote))

    def _check_against_commit(self, peer: Peer, vote: Vote, payload: Any) -> None:
        """A precommit for a committed height that contradicts our stored commit is evidence (a validator
        whose data was wiped, or a second instance of its key, may sign again at heights long decided)."""
        chain = self.node.chain
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
        self.node.evidence_found(commit.precommit_of(sig), vote)

    async def _on_evidence(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, EVIDENCE, 2, "evidence message")
            raw = codec.expect_bytes(items[1], "evidence", max_size=4096)
            evidence = DuplicateVote.decode(raw)
            evidence.check(self.node.chain.validators, self.node.chain.chain_id)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        except AichainError:
            return  # stale (the offender already left) or not for our set
        if await self.gossip.publish(EVIDENCE, payload, origin=peer):
            self.node.add_evidence(evidence)

    async def _on_status(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, STATUS, 3, "status")
            height = codec.expect_uint(items[1], "status height")
            head_hash = codec.expect_bytes(items[2], "status head hash", 32)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        self.sync.peer_head(peer, height, head_hash)


def _consensus_payload(message: object) -> tuple[int, list[Any]]:
    kind = message[0]  # type: ignore[index]
    if kind == "proposal":
        _, proposal, block = message  # type: ignore[misc]
        return PROPOSAL, [PROPOSAL, proposal.to_wire(), block.encode()]
    _, vote = message  # type: ignore[misc]
    return VOTE, [VOTE, vote.to_wire()]


__all__ = ["AlreadyKnown", "Network"]

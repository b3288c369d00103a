"""Consensus messages between the driver and the network are typed both ways: the reactor floods a
`SignedProposal` or `SignedVote` and refuses anything else (it used to take anything that was not
a proposal for a vote), and hands the driver what peers sent as the same types. Real peer managers
over TLS on loopback; the chain the reactor checks messages against is a fake of its port.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from consensus.tendermint import Tendermint
from core.block import Block, Commit, Header, Vote, VoteType, evidence_root, transactions_root
from core.hashing import ZERO_HASH
from core.keys import PrivateKey
from core.proposal import Proposal
from core.validators import Validator, ValidatorSet
from node.consensus.evidence import EvidencePool
from node.consensus.messages import (
    PROPOSAL,
    VOTE,
    ConsensusMessage,
    SignedProposal,
    SignedVote,
    UnknownConsensusMessage,
)
from node.consensus.reactor import ConsensusReactor
from node.consensus.vote_gossip import VoteGossip
from node.metrics import NodeMetrics
from node.p2p import Peer, PeerManager
from node.p2p.gossip import Gossip
from tests.p2p.support import CHAIN_ID, Cluster, connected, wait_until

KEY = PrivateKey.generate()
VALIDATORS = ValidatorSet((Validator(KEY.public_key, 10),))


class AtGenesis:
    """The `CheckingChain` port: a chain at height 0 whose one validator is KEY."""

    chain_id = CHAIN_ID
    validators = VALIDATORS
    last_commit: Commit | None = None
    head = Header(
        CHAIN_ID,
        0,
        0,
        ZERO_HASH,
        bytes(20),
        ZERO_HASH,
        ZERO_HASH,
        ZERO_HASH,
        VALIDATORS.hash(),
        VALIDATORS.hash(),
        ZERO_HASH,
        ZERO_HASH,
        0,
        0,
    )

    class blocks:
        @staticmethod
        def commit(height: int) -> Commit | None:
            return None


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        await c.stop_all()


def reactor_on(manager: PeerManager, delivered: list[ConsensusMessage]) -> ConsensusReactor:
    chain = AtGenesis()
    metrics = NodeMetrics()
    votes = VoteGossip(manager, Tendermint(CHAIN_ID, None), chain, metrics)  # type: ignore[arg-type]
    reactor = ConsensusReactor(
        manager=manager,
        gossip=Gossip(manager),
        chain=chain,
        votes=votes,
        deliver=delivered.append,  # type: ignore[arg-type]
        evidence=EvidencePool(lambda items: items),
        metrics=metrics,
    )
    reactor.register()
    return reactor


def a_block() -> Block:
    header = Header(
        CHAIN_ID,
        1,
        1,
        AtGenesis.head.hash,
        KEY.address,
        transactions_root(()),
        ZERO_HASH,
        ZERO_HASH,
        VALIDATORS.hash(),
        VALIDATORS.hash(),
        ZERO_HASH,
        evidence_root(()),
        0,
        0,
    )
    return Block(header, (), None, ())


async def test_what_the_driver_signs_reaches_a_peer_typed(cluster: Cluster) -> None:
    a, b = await cluster.start(), await cluster.start()
    sender, delivered = reactor_on(a, []), []
    reactor_on(b, delivered)
    await a.connect("127.0.0.1", b.listen_port)
    await wait_until(lambda: connected(a, b), what="a-b")
    block = a_block()
    proposal = Proposal(1, 0, -1, block.hash, KEY.address).signed_by(KEY, CHAIN_ID)
    vote = Vote(VoteType.PREVOTE, 1, 0, block.hash, KEY.address).signed_by(KEY, CHAIN_ID)
    await sender.broadcast(SignedProposal(proposal, block))
    await sender.broadcast(SignedVote(vote))
    await wait_until(lambda: len(delivered) == 2, what="the proposal and the vote at b's driver")
    assert delivered == [SignedProposal(proposal, block), SignedVote(vote)]


@pytest.mark.parametrize(
    "message",
    [
        ("vote", Vote(VoteType.PREVOTE, 1, 0, b"\x01" * 32, KEY.address)),  # the tuple the driver used to send
        ("proposal", None, None),
        Vote(VoteType.PREVOTE, 1, 0, b"\x01" * 32, KEY.address),
        "vote",
    ],
)
async def test_an_unknown_message_from_the_driver_is_refused_and_nothing_is_sent(
    cluster: Cluster, message: Any
) -> None:
    a, b = await cluster.start(), await cluster.start()
    sender = reactor_on(a, [])
    frames: list[tuple[int, Any]] = []

    async def record(msg_type: int) -> Any:
        async def handler(peer: Peer, payload: Any) -> None:
            frames.append((msg_type, payload))

        return handler

    for msg_type in (PROPOSAL, VOTE):
        b.register(msg_type, await record(msg_type))
    await a.connect("127.0.0.1", b.listen_port)
    await wait_until(lambda: connected(a, b), what="a-b")
    with pytest.raises(UnknownConsensusMessage, match="not a consensus message"):
        await sender.broadcast(message)
    vote = Vote(VoteType.PREVOTE, 1, 0, b"\x01" * 32, KEY.address).signed_by(KEY, CHAIN_ID)
    await sender.broadcast(SignedVote(vote))  # a marker: whatever was sent before it has arrived with it
    await wait_until(lambda: bool(frames), what="the marker vote at b")
    await asyncio.sleep(0.05)
    assert frames == [(VOTE, [VOTE, vote.to_wire()])], "the refused message went nowhere"

"""Compact proposals: a proposal travels as header and transaction hashes, the receiver rebuilds the
block from its mempool and fetches only what it lacks, and peers that lie about what they hold, answer
with other transactions, alter the hash list or flood requests are refused cheaply and penalised.
Real peer managers over TLS on loopback; the chain is a fake of the reactor's port, the mempool a dict.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from consensus.tendermint import Tendermint
from core.block import Block, Commit, Header, evidence_root, transactions_root
from core.hashing import ZERO_HASH
from core.keys import PrivateKey
from core.proposal import Proposal
from core.transaction import Transaction, TxKind
from core.validators import Validator, ValidatorSet
from node.consensus import compact_relay, compact_serving
from node.consensus.compact import BLOCK_TXS, COMPACT_PROPOSAL, GET_TXS, BlockTxs, CompactProposal, GetTxs
from node.consensus.evidence import EvidencePool
from node.consensus.messages import PROPOSAL, ConsensusMessage, SignedProposal
from node.consensus.reactor import ConsensusReactor
from node.consensus.vote_gossip import VoteGossip
from node.metrics import NodeMetrics
from node.p2p import Peer, PeerManager
from node.p2p.framing import encode_frame
from node.p2p.gossip import Gossip
from tests.p2p.support import CHAIN_ID, Cluster, connected, wait_until
from vm.gas import TX_BASE

KEY = PrivateKey.generate()
VALIDATORS = ValidatorSet((Validator(KEY.public_key, 10),))
SENDER = PrivateKey.generate()


def a_header(height: int, **fields: Any) -> Header:
    header = Header(
        CHAIN_ID,
        height,
        height,
        ZERO_HASH,
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
    return replace(header, **fields)


class Chain:
    """The reactor's chain port: a head we move by hand, one validator (KEY)."""

    chain_id = CHAIN_ID
    validators = VALIDATORS
    last_commit: Commit | None = None

    def __init__(self) -> None:
        self.head = a_header(0)

    class blocks:
        @staticmethod
        def commit(height: int) -> Commit | None:
            return None


class Node:
    """One node: a peer manager, a reactor, a mempool (a dict) and what reached its driver."""

    def __init__(self, manager: PeerManager, mempool: dict[bytes, Transaction] | None = None) -> None:
        self.manager = manager
        self.chain = Chain()
        self.mempool = mempool if mempool is not None else {}
        self.delivered: list[ConsensusMessage] = []
        self.admitted: list[tuple[list[Transaction], int]] = []  # (fetched, proposals delivered before)
        self.metrics = NodeMetrics()
        votes = VoteGossip(manager, Tendermint(CHAIN_ID, None), self.chain, self.metrics)  # type: ignore[arg-type]
        self.reactor = ConsensusReactor(
            manager=manager,
            gossip=Gossip(manager),
            chain=self.chain,
            votes=votes,
            deliver=self.delivered.append,
            evidence=EvidencePool(lambda items: items),
            metrics=self.metrics,
            lookup_tx=self.mempool.get,
            admit_fetched=self._admit,
        )
        self.reactor.register()

    async def _admit(self, txs: Sequence[Transaction]) -> None:
        self.admitted.append((list(txs), len(self.delivered)))

    def count(self, outcome: str) -> float:
        return self.metrics.compact_proposals.labels(outcome)._value.get()

    def fetched(self) -> float:
        return self.metrics.compact_txs_fetched._value.get()


class Raw:
    """A hand-driven peer: a manager whose handlers for the relay's messages we choose."""

    def __init__(self, manager: PeerManager) -> None:
        self.manager = manager
        self.frames: list[tuple[int, Any]] = []
        self.on_get_txs: Callable[[Peer, GetTxs], None] = lambda peer, request: None
        for msg_type in (COMPACT_PROPOSAL, BLOCK_TXS, 18, 27):
            manager.register(msg_type, self._record(msg_type))
        manager.register(GET_TXS, self._get_txs)

    def _record(self, msg_type: int) -> Any:
        async def handler(peer: Peer, payload: Any) -> None:
            self.frames.append((msg_type, payload))

        return handler

    async def _get_txs(self, peer: Peer, payload: Any) -> None:
        self.frames.append((GET_TXS, payload))
        self.on_get_txs(peer, GetTxs.from_wire(payload))

    def send(self, to: PeerManager, msg_type: int, payload: Any) -> None:
        peer = self.manager.peer(to.node_id)
        assert peer is not None
        assert peer.offer(encode_frame(msg_type, payload))

    def answers(self) -> list[BlockTxs]:
        return [BlockTxs.from_wire(p) for t, p in self.frames if t == BLOCK_TXS]


def transfers(n: int, first_nonce: int = 0) -> list[Transaction]:
    to = bytes(20)
    return [
        Transaction(CHAIN_ID, SENDER.public_key, nonce, TX_BASE, 1, TxKind.TRANSFER, to, 1, b"").signed_by(SENDER)
        for nonce in range(first_nonce, first_nonce + n)
    ]


def block_of(txs: list[Transaction], height: int = 1) -> Block:
    return Block(a_header(height, tx_root=transactions_root(txs), tx_count=len(txs)), tuple(txs), None, ())


def signed(block: Block, round_: int = 0) -> Proposal:
    return Proposal(block.height, round_, -1, block.hash, KEY.address).signed_by(KEY, CHAIN_ID)


def score(of: PeerManager, at: PeerManager) -> float:
    peer = at.peer(of.node_id)
    return 0.0 if peer is None else peer.score.value


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        await c.stop_all()


@pytest.fixture(autouse=True)
def quick_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compact_relay, "FETCH_TIMEOUT_S", 0.3)
    monkeypatch.setattr(compact_relay, "REBUILD_TIMEOUT_S", 1.0)


async def linked(cluster: Cluster, a: PeerManager, b: PeerManager) -> None:
    await a.connect("127.0.0.1", b.listen_port)
    await wait_until(lambda: connected(a, b), what="connected")


async def test_a_proposal_travels_compact_and_is_rebuilt_from_the_mempool(cluster: Cluster) -> None:
    txs = transfers(60)
    proposer, validator = Node(await cluster.start()), Node(await cluster.start(), {tx.hash: tx for tx in txs})
    await linked(cluster, proposer.manager, validator.manager)
    block = block_of(txs)
    proposal = signed(block)
    before = proposer.manager.metrics.bytes_out
    await proposer.reactor.broadcast(SignedProposal(proposal, block))
    await wait_until(lambda: bool(validator.delivered), what="the proposal at the validator")
    assert validator.delivered == [SignedProposal(proposal, block)]
    delivered = validator.delivered[0]
    assert isinstance(delivered, SignedProposal)
    reused = all(a is b for a, b in zip(delivered.block.transactions, txs, strict=True))
    assert reused, "the mempool's transactions, not decoded again"
    assert validator.count("rebuilt") == 1 and validator.fetched() == 0
    sent = proposer.manager.metrics.bytes_out - before
    assert sent < len(block.encode()) // 2, f"{sent} bytes for a block of {len(block.encode())}"


async def test_missing_transactions_are_fetched_from_the_sender_once(cluster: Cluster) -> None:
    txs = transfers(40)
    proposer = Node(await cluster.start())
    validator = Node(await cluster.start(), {tx.hash: tx for tx in txs[::2]})
    await linked(cluster, proposer.manager, validator.manager)
    block = block_of(txs)
    await proposer.reactor.broadcast(SignedProposal(signed(block), block))
    await wait_until(lambda: bool(validator.delivered), what="the proposal at the validator")
    delivered = validator.delivered[0]
    assert isinstance(delivered, SignedProposal) and delivered.block == block
    assert all(a is b for a, b in zip(delivered.block.transactions[::2], txs[::2], strict=True))
    assert validator.count("fetched") == 1 and validator.fetched() == 20
    # Admitted to the mempool (signature checked there, once) before the block went to execution.
    assert validator.admitted == [(txs[1::2], 0)]
    # A re-proposal of the same block in the next round needs no fetch: fetched ones are remembered.
    await proposer.reactor.broadcast(SignedProposal(signed(block, 1), block))
    await wait_until(lambda: len(validator.delivered) == 2, what="the re-proposal")
    assert validator.count("rebuilt") == 1 and validator.fetched() == 20


async def test_a_proposer_that_names_a_hash_it_will_not_serve_gets_no_proposal_through(cluster: Cluster) -> None:
    txs = transfers(10)
    liar = Raw(await cluster.start())
    validator = Node(await cluster.start(), {tx.hash: tx for tx in txs[:9]})
    await linked(cluster, liar.manager, validator.manager)
    block = block_of(txs)
    liar.send(validator.manager, COMPACT_PROPOSAL, CompactProposal.of(signed(block), block).to_wire())
    await wait_until(lambda: validator.count("unavailable") == 1, what="the rebuild given up")
    assert not validator.delivered, "a block that could not be rebuilt reached the driver"
    asked = [GetTxs.from_wire(p) for t, p in liar.frames if t == GET_TXS]
    assert asked and all(r.indices == (9,) for r in asked), "only the missing one was asked for"
    assert not validator.reactor.compact._rebuilding, "nothing left waiting"
    # The validator is not stuck: the next round's proposal (now in its mempool) gets through.
    validator.mempool[txs[9].hash] = txs[9]
    liar.send(validator.manager, COMPACT_PROPOSAL, CompactProposal.of(signed(block, 1), block).to_wire())
    await wait_until(lambda: bool(validator.delivered), what="the next round's proposal")


async def test_a_peer_that_answers_with_another_transaction_is_penalised_and_another_is_asked(
    cluster: Cluster,
) -> None:
    txs = transfers(5)
    liar = Raw(await cluster.start())
    honest = Node(await cluster.start())
    validator = Node(await cluster.start(), {tx.hash: tx for tx in txs[:3]})
    await linked(cluster, liar.manager, validator.manager)
    await linked(cluster, honest.manager, validator.manager)
    block = block_of(txs)
    proposal = signed(block)
    honest.reactor.compact.keep(block)  # honest holds the block and will serve it
    other = transfers(2, first_nonce=100)
    liar.on_get_txs = lambda peer, request: peer.offer(
        encode_frame(BLOCK_TXS, BlockTxs(request.block_hash, tuple(tx.encoded for tx in other)).to_wire())
    )
    payload = CompactProposal.of(proposal, block).to_wire()
    liar.send(validator.manager, COMPACT_PROPOSAL, payload)
    await asyncio.sleep(0.05)  # the liar is the first source
    honest_peer = honest.manager.peer(validator.manager.node_id)
    assert honest_peer is not None and honest_peer.offer(encode_frame(COMPACT_PROPOSAL, payload))
    await wait_until(lambda: bool(validator.delivered), what="the block rebuilt from the honest peer")
    assert validator.delivered == [SignedProposal(proposal, block)]
    assert score(liar.manager, validator.manager) <= -compact_relay.PENALTY_BAD_TX
    assert score(honest.manager, validator.manager) == 0.0


async def test_a_hash_list_that_does_not_rebuild_the_signed_block_is_refused(cluster: Cluster) -> None:
    txs = transfers(6)
    relay = Raw(await cluster.start())
    proposer = Node(await cluster.start())
    validator = Node(await cluster.start(), {tx.hash: tx for tx in txs})
    await linked(cluster, relay.manager, validator.manager)
    block = block_of(txs)
    proposal = signed(block)
    honest = CompactProposal.of(proposal, block)
    swapped = replace(honest, tx_hashes=honest.tx_hashes[32:64] + honest.tx_hashes[:32] + honest.tx_hashes[64:])
    relay.send(validator.manager, COMPACT_PROPOSAL, swapped.to_wire())
    await wait_until(lambda: score(relay.manager, validator.manager) < 0, what="the relay penalised")
    assert score(relay.manager, validator.manager) <= -compact_relay.PENALTY_BAD_BLOCK
    other_header = replace(honest, header=replace(block.header, gas_used=1))  # not the block signed
    relay.send(validator.manager, COMPACT_PROPOSAL, other_header.to_wire())
    await wait_until(lambda: score(relay.manager, validator.manager) <= -80, what="the relay penalised again")
    assert not validator.delivered, "no prevote can follow: the driver never saw the proposal"
    # The correct message, from the proposer, still gets through.
    await linked(cluster, proposer.manager, validator.manager)
    await proposer.reactor.broadcast(SignedProposal(proposal, block))
    await wait_until(lambda: bool(validator.delivered), what="the correct proposal")
    assert validator.delivered == [SignedProposal(proposal, block)]


async def test_request_floods_are_refused_cheaply_and_cost_the_peer(cluster: Cluster) -> None:
    txs = transfers(20)
    flooder = Raw(await cluster.start())
    server = Node(await cluster.start(ban_ip=False))  # all peers share 127.0.0.1: ban keys only
    await linked(cluster, flooder.manager, server.manager)
    block = block_of(txs)
    server.reactor.compact.keep(block)
    request = GetTxs(1, block.hash, tuple(range(20))).to_wire()
    for _ in range(200):
        flooder.send(server.manager, GET_TXS, request)
    await wait_until(lambda: server.manager.peer(flooder.manager.node_id) is None, what="the flooder banned")
    answered = [a for a in flooder.answers() if a.raws]
    assert len(answered) <= compact_serving.REQUEST_BURST + 2, f"{len(answered)} requests answered"
    # Bounds of one request: an index beyond the block is malformed, not served.
    other = Raw(await cluster.start())
    await linked(cluster, other.manager, server.manager)
    other.send(server.manager, GET_TXS, GetTxs(1, block.hash, (3, 20)).to_wire())
    await wait_until(lambda: score(other.manager, server.manager) < 0, what="the bad request penalised")
    assert not other.answers()


async def test_requests_for_an_old_height_are_refused_without_a_lookup(cluster: Cluster) -> None:
    txs = transfers(4)
    asker = Raw(await cluster.start())
    server = Node(await cluster.start())
    await linked(cluster, asker.manager, server.manager)
    block = block_of(txs)
    server.reactor.compact.keep(block)
    server.chain.head = a_header(3)  # block 1 is two heights behind the head
    server.reactor.compact.head_moved(3)
    asker.send(server.manager, GET_TXS, GetTxs(1, block.hash, (0,)).to_wire())
    await wait_until(lambda: bool(asker.answers()), what="the answer")
    assert asker.answers() == [BlockTxs(block.hash, None)]
    assert score(asker.manager, server.manager) <= -compact_serving.PENALTY_STALE
    # A block not held (at a current height) is answered nil, without penalty.
    before = score(asker.manager, server.manager)
    asker.send(server.manager, GET_TXS, GetTxs(4, b"\x01" * 32, (0,)).to_wire())
    await wait_until(lambda: len(asker.answers()) == 2, what="the second answer")
    assert asker.answers()[1] == BlockTxs(b"\x01" * 32, None)
    assert score(asker.manager, server.manager) == before


async def test_transactions_nobody_asked_for_cost_the_sender(cluster: Cluster) -> None:
    pusher = Raw(await cluster.start())
    validator = Node(await cluster.start())
    await linked(cluster, pusher.manager, validator.manager)
    pusher.send(validator.manager, BLOCK_TXS, BlockTxs(b"\x02" * 32, (transfers(1)[0].encoded,)).to_wire())
    await wait_until(lambda: score(pusher.manager, validator.manager) < 0, what="the push penalised")
    assert score(pusher.manager, validator.manager) == -compact_relay.PENALTY_UNSOLICITED


async def test_transactions_our_clients_just_sent_are_carried_along_and_need_no_fetch(cluster: Cluster) -> None:
    txs = transfers(30)
    proposer = Node(await cluster.start())
    validator = Node(await cluster.start(), {tx.hash: tx for tx in txs[:20]})
    await linked(cluster, proposer.manager, validator.manager)
    proposer.reactor.compact.note_local(txs[20:])  # admitted from its clients just now
    block = block_of(txs)
    await proposer.reactor.broadcast(SignedProposal(signed(block), block))
    await wait_until(lambda: bool(validator.delivered), what="the proposal at the validator")
    assert validator.delivered == [SignedProposal(signed(block), block)]
    assert validator.count("rebuilt") == 1 and validator.fetched() == 0
    assert proposer.manager.metrics.messages_in[GET_TXS] == 0, "nothing was asked"
    assert validator.admitted == [(txs[20:], 0)], "the carried ones are admitted once, before execution"


async def test_a_compact_proposal_one_height_early_is_held_and_an_altered_copy_does_not_shut_it_out(
    cluster: Cluster,
) -> None:
    txs = transfers(4)
    relay = Raw(await cluster.start())
    validator = Node(await cluster.start(), {tx.hash: tx for tx in txs})
    await linked(cluster, relay.manager, validator.manager)
    last_commit = Commit(1, 0, b"\x03" * 32, ())
    header = a_header(2, tx_root=transactions_root(txs), tx_count=len(txs), last_commit_hash=last_commit.hash())
    block = Block(header, tuple(txs), last_commit, ())
    proposal = signed(block)
    honest = CompactProposal.of(proposal, block)
    altered = replace(honest, tx_hashes=honest.tx_hashes[32:64] + honest.tx_hashes[:32] + honest.tx_hashes[64:])
    relay.send(validator.manager, COMPACT_PROPOSAL, altered.to_wire())  # height 2 while deciding 1: held
    relay.send(validator.manager, COMPACT_PROPOSAL, honest.to_wire())
    await wait_until(lambda: len(validator.reactor.held) == 2, what="both held")
    assert not validator.delivered
    validator.chain.head = a_header(1)
    await validator.reactor.release_held(1)
    await wait_until(lambda: bool(validator.delivered), what="the held proposal delivered")
    assert validator.delivered == [SignedProposal(proposal, block)]
    assert score(relay.manager, validator.manager) == -compact_relay.PENALTY_BAD_BLOCK


async def test_a_full_block_whose_body_is_not_its_header_is_refused(cluster: Cluster) -> None:
    txs = transfers(3)
    relay, watcher = Raw(await cluster.start()), Raw(await cluster.start())
    validator = Node(await cluster.start())
    await linked(cluster, relay.manager, validator.manager)
    await linked(cluster, watcher.manager, validator.manager)
    block = block_of(txs)
    proposal = signed(block)
    altered = Block(block.header, (txs[1], txs[0], txs[2]), None, ())  # the signed header, other order
    relay.send(validator.manager, PROPOSAL, [PROPOSAL, proposal.to_wire(), altered.encode()])
    await wait_until(lambda: score(relay.manager, validator.manager) < 0, what="the relay penalised")
    relay.send(validator.manager, PROPOSAL, [PROPOSAL, proposal.to_wire(), block.encode()])
    await wait_until(lambda: bool(validator.delivered), what="the correct block")
    assert validator.delivered == [SignedProposal(proposal, block)]
    await wait_until(lambda: bool(watcher.frames), what="the proposal forwarded")
    assert [t for t, _ in watcher.frames] == [COMPACT_PROPOSAL], "forwarded compact, once"

"""The node's P2P side: the transport (`node.p2p`) and the protocols that run over it.

Message types (application range of `node.p2p.messages`), each handled by one part:

- 16 transactions: `node.txpool.gossip`;
- 17-19 proposals, votes and evidence: `node.consensus.reactor`; 28-30 compact proposals and the
  transactions they name: `node.consensus.compact_relay`;
- 20-22 heads and block ranges: `node.p2p.sync`;
- 23-26 artifacts: `node.artifacts.exchange` (serving: `node.artifacts.serving`);
- 27 where a node is in consensus; each peer is sent the proposals and votes it lacks:
  `node.consensus.vote_gossip`.

Consensus messages (and heads) overtake transaction gossip and block ranges, on the wire and
in handling. Artifact chunks come only as answers to our requests: they are exempt from the
byte rate (see `PeerManager`).

`make_network` assembles it from the node's parts, each protocol given what it reads and calls,
with the double-sign guard of a validator, which watches the votes peers send.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from consensus.tendermint import Tendermint
from core.errors import AichainError
from core.genesis import Genesis
from core.keys import PrivateKey
from core.transaction import Transaction
from node.artifacts.exchange import ArtifactExchange
from node.artifacts.serving import CHUNK
from node.block_thread import BlockThread
from node.chain import Chain
from node.config import NodeConfig
from node.consensus.compact import BLOCK_TXS, COMPACT_PROPOSAL, GET_TXS
from node.consensus.double_sign_guard import DoubleSignGuard, PeerHeads
from node.consensus.evidence import EvidencePool
from node.consensus.messages import EVIDENCE, PROPOSAL, VOTE, ConsensusMessage
from node.consensus.ports import Committed
from node.consensus.reactor import ConsensusReactor
from node.consensus.vote_gossip import ROUND_STEP, VoteGossip
from node.metrics import NodeMetrics
from node.p2p.config import P2PConfig
from node.p2p.gossip import Gossip
from node.p2p.manager import PeerManager
from node.p2p.sync import STATUS, BlockSync
from node.txpool.admission import TxAdmission
from node.txpool.gossip import TxGossip
from node.txpool.mempool import Mempool
from node.version import CLIENT_VERSION
from node.wiring import ChunkReader
from storage.artifact_store import ArtifactStore

URGENT_TYPES = frozenset({PROPOSAL, VOTE, EVIDENCE, STATUS, ROUND_STEP, COMPACT_PROPOSAL, GET_TXS, BLOCK_TXS})
REQUESTED_TYPES = frozenset({CHUNK})


def transport_config(config: NodeConfig, genesis: Genesis, role: str) -> P2PConfig:
    """The transport's settings from the node's (`[p2p]`), with the message types that overtake
    others and those that come only when asked for."""
    p2p = config.p2p
    return P2PConfig(
        chain_id=genesis.chain_id,
        genesis_hash=genesis.hash(),
        host=p2p.addr,
        port=p2p.port,
        role=role,
        client_version=CLIENT_VERSION,
        bootnodes=tuple(p2p.bootnodes),
        allow_list=frozenset(bytes.fromhex(k.removeprefix("0x")) for k in p2p.allow_list) or None,
        max_inbound=p2p.max_inbound,
        max_outbound=p2p.max_outbound,
        max_pending_handshakes=p2p.max_pending_handshakes,
        max_pending_per_ip=p2p.max_pending_per_ip,
        handshake_timeout=p2p.handshake_timeout_s,
        # On loopback every peer shares one IP (a local testnet): ban misbehaving keys, not the address.
        ban_ip=not ipaddress.ip_address(p2p.addr).is_loopback if _is_ip(p2p.addr) else True,
        urgent_types=URGENT_TYPES,
        requested_types=REQUESTED_TYPES,
    )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Network:
    """The protocols over one `PeerManager`, started together and stopped in reverse."""

    def __init__(
        self,
        manager: PeerManager,
        *,
        txs: TxGossip,
        sync: BlockSync,
        artifacts: ArtifactExchange,
        votes: VoteGossip,
        consensus: ConsensusReactor,
    ) -> None:
        self.manager = manager
        self.txs = txs
        self.sync = sync
        self.artifacts = artifacts
        self.votes = votes
        self.consensus = consensus
        # Sync registers last: a peer that connects is sent our round step (votes), then our head.
        for part in (txs, artifacts, votes, consensus, sync):
            part.register()

    async def start(self) -> None:
        self.sync.show_head()
        await self.manager.start()
        self.sync.start()
        self.artifacts.start()
        self.votes.start()
        self.txs.start()

    async def stop(self) -> None:
        await self.txs.stop()
        await self.votes.stop()
        await self.consensus.stop()
        await self.sync.stop()
        await self.artifacts.stop()
        await self.manager.stop()

    def peer_count(self) -> int:
        return len(self.manager.connected_peers())

    async def head_changed(self, height: int) -> None:
        """A block was committed: tell peers our head, and handle what was held for the next height."""
        await self.sync.announce_head()
        await self.consensus.release_held(height)


def make_network(
    config: NodeConfig,
    genesis: Genesis,
    node_key: PrivateKey,
    *,
    chain: Chain,
    blocks: BlockThread,
    machine: Tendermint,
    admission: TxAdmission,
    mempool: Mempool,
    evidence: EvidencePool,
    artifacts: ArtifactStore,
    metrics: NodeMetrics,
    deliver: Callable[[ConsensusMessage], None],
    on_committed: Committed,
    served_chunks: ChunkReader,
    guard_for: Callable[[PeerHeads], DoubleSignGuard | None] | None,
) -> tuple[Network, DoubleSignGuard | None]:
    """The P2P side of a node, and a validator's double-sign guard (`guard_for`, shown the heads
    peers announce; None for a node that is not a validator)."""
    transport = transport_config(config, genesis, "full" if guard_for is None else "validator")
    manager = PeerManager(transport, node_key)
    sync = BlockSync(
        manager,
        chain,
        blocks,
        machine,
        admission.verify_block_signatures,
        on_committed,
        metrics,
        config.p2p.sync_answer_bytes,
        verify_tx_signatures=config.p2p.sync_verify_tx_signatures,
    )
    guard = None if guard_for is None else guard_for(sync.peer_heads)
    votes = VoteGossip(manager, machine, chain, metrics)

    async def admit_from_peer(txs: Sequence[Transaction]) -> list[bytes | AichainError]:
        return await admission.submit_many(txs, relay=False)  # gossip forwards what it admits itself

    txs = TxGossip(manager, metrics, knows=admission.knows_encoding, admit=admit_from_peer, order=admission)
    observe_vote = (lambda vote: None) if guard is None else guard.observe_vote
    reactor = ConsensusReactor(
        manager=manager,
        gossip=Gossip(manager),
        chain=chain,
        votes=votes,
        deliver=deliver,
        evidence=evidence,
        metrics=metrics,
        lookup_tx=mempool.get,
        admit_fetched=admit_from_peer,
        observe_vote=observe_vote,
    )
    evidence.subscribe(reactor.publish_evidence)
    exchange = ArtifactExchange(artifacts, manager, config.artifacts, served_chunks)
    admission.subscribe(txs.announce, relay_only=True)
    admission.subscribe(reactor.compact.note_local, relay_only=True)  # what a proposal carries along
    network = Network(manager, txs=txs, sync=sync, artifacts=exchange, votes=votes, consensus=reactor)
    return network, guard

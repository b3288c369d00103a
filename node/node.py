"""The node: its composition root. It opens the chain, makes each part with the narrow things that
part needs, and starts and stops them in order.

Lifecycle: `await node.start()` … `await node.stop()`. Each step of the start that opens or
starts something pushes what undoes it on a stack (`contextlib.AsyncExitStack`, as aiohttp's
`cleanup_ctx`): `stop` undoes them in reverse, and a start that fails part-way (the RPC port is
taken, say) undoes what it did before the error goes up, so no database stays locked and no
socket listening. The RPC server is set up before the network starts but listens last, so it is
closed (its long polls answered) before the parts it reads.

Blocks are built and committed on one block thread (execution is CPU work; the event loop
keeps answering RPC meanwhile), one at a time; the mempool and every other piece of state is
touched only on the event loop. No part holds the `Node`: each takes what it uses in its
constructor (a `Protocol` declared where it is used, or a plain callable), and the node calls
them back only through `_block_committed`, the bookkeeping after each block. Process-wide
tuning (garbage collector, malloc) is the program's business (`aichain-node start`), not this
object's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import replace
from typing import Any

from consensus.tendermint import Tendermint
from core.clock import now_ms
from core.errors import ConfigError
from core.genesis import Genesis
from core.keys import PrivateKey
from core.transaction import Transaction
from node.artifacts.access import ArtifactAccess, PublisherBindings
from node.artifacts.flight import FetchInFlight
from node.artifacts.head_view import HeadView
from node.artifacts.key_release import KeyRelease, events_of
from node.block_thread import BlockThread
from node.chain import Chain, PendingBlock
from node.config import NodeConfig
from node.consensus.double_sign_guard import DoubleSignGuard, PeerHeads
from node.consensus.driver import ConsensusDriver
from node.consensus.evidence import EvidencePool
from node.consensus.inbox import Inbox
from node.consensus.next_height import BlockTiming
from node.consensus.ports import broadcast_nowhere
from node.consensus.prebuild import Prebuilder
from node.consensus.signer import Signer
from node.consensus.wal import ConsensusWal
from node.head_waiters import HeadWaiters
from node.http_server import HttpServer, os_reason
from node.loop_monitor import LoopMonitor
from node.metrics import LiveFamilies, LiveSources, NodeMetrics
from node.network import Network, make_network
from node.node_file import remove_node_file, write_node_file
from node.node_keys import load_node_key, load_validator_key
from node.p2p.metrics import P2PMetrics
from node.rpc.api import Served
from node.rpc.head_feed import HeadFeed
from node.rpc.read_calls import ReadOnlyCalls
from node.txpool.admission import TxAdmission
from node.txpool.journal import JournalKeeper, TxJournal
from node.txpool.mempool import Mempool, MempoolLimits
from node.version import CLIENT_VERSION
from node.wiring import Wiring
from storage.artifact_store import ArtifactStore
from storage.kv import KeyValueStore

log = logging.getLogger("aichain.node")


class Node:
    def __init__(
        self, config: NodeConfig, *, validator_key: PrivateKey | None = None, wiring: Wiring | None = None
    ) -> None:
        self.config = config
        self.wiring = wiring or Wiring()  # a test's misbehaving parts (node/wiring.py); as shipped by default
        self.metrics = NodeMetrics()
        self.loop_monitor = LoopMonitor(self.metrics)
        self.genesis = Genesis.load(config.genesis_path)
        # A block-time override changes when this node proposes, never the genesis (and so its hash).
        self.timing = self.genesis.params
        if config.block_time_ms is not None:
            self.timing = replace(self.timing, block_time_ms=config.block_time_ms)
        self.timeouts = config.consensus.timeouts()
        self._validator_key = validator_key
        self.rpc_url = ""
        self.started_at = 0.0
        self._stack: contextlib.AsyncExitStack | None = None  # what `stop` undoes, once started
        # Made by `start` (the database opens there):
        self.kv: KeyValueStore
        self.head_waiters: HeadWaiters
        self.chain: Chain
        self.artifacts: ArtifactStore
        self.artifact_access: ArtifactAccess
        self.node_key: PrivateKey  # its P2P identity, the releaser's account, the audience of signed reads
        self.blocks: BlockThread
        self.mempool: Mempool
        self.admission: TxAdmission
        self.journal: JournalKeeper
        self.evidence: EvidencePool
        self.driver: ConsensusDriver
        self.guard: DoubleSignGuard | None = None  # a validator's
        self.network: Network | None = None  # with P2P on
        self.key_release: KeyRelease | None = None  # with [models] release_keys on
        self._inbox: Inbox

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open and start every part; if a step fails, what was done is undone and the error goes up."""
        async with contextlib.AsyncExitStack() as stack:
            await self._open(stack)
            self._stack = stack.pop_all()
        log.info("node started: chain %s, head %d, rpc %s", self.genesis.chain_id, self.chain.head.height, self.rpc_url)

    async def stop(self) -> None:
        """Stop producing, finish the block being committed, close RPC, the network and the database."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
            log.info("node stopped")

    async def _open(self, stack: contextlib.AsyncExitStack) -> None:
        """The start, step by step; after each step, what undoes it goes on `stack`."""
        config = self.config
        self.loop_monitor.start()
        stack.push_async_callback(self.loop_monitor.stop)
        stack.callback(remove_node_file, config.datadir)
        self.kv = KeyValueStore(config.chaindata)
        stack.callback(self.kv.close)
        self.chain = chain = Chain(self.kv, self.genesis)
        self.head_waiters = HeadWaiters(lambda: chain.head.height)
        self.heads = HeadFeed(chain.params.block_gas_limit)  # pushed to WebSocket subscribers
        self.artifacts = ArtifactStore(config.artifacts_path, chunk_size=config.artifacts.chunk_size)
        stack.callback(self.artifacts.close)
        bindings = PublisherBindings(config.artifacts_path / "publishers")
        self.node_key = load_node_key(config.node_key_path)  # with P2P off too: signed reads name the node they are for
        self.artifact_access = ArtifactAccess(
            self.genesis.chain_id, self.node_key.public_key, HeadView(chain, self.genesis.chain_id), bindings
        )
        self.mempool = self._make_mempool()
        self.admission = TxAdmission(
            self.mempool,
            self.metrics,
            # nonce_and_balance decodes each stored account value once; the mempool asks it too.
            next_nonce=lambda a: chain.nonce_and_balance(a)[0],
            tx_location=chain.blocks.tx_location,
        )
        stack.callback(self.admission.close)
        self.blocks = BlockThread()
        stack.callback(self.blocks.shutdown)  # a commit under way is written whole first
        restored = await self._open_journal(stack)
        key = self._validator_key or load_validator_key(config.validator_key_path, config.validator_key_password)
        signer = None
        if key is not None:
            signer = Signer(key, self.genesis.chain_id, config.datadir / "sign_state.json")
        self.evidence = EvidencePool(chain.usable_evidence, self.metrics.evidence_found.inc)
        machine = Tendermint(self.genesis.chain_id, signer.address if signer else None, self.timeouts)
        self._inbox = Inbox()
        guard_for = None if signer is None else functools.partial(self._make_guard, signer)
        if config.p2p.enabled:
            self.network, self.guard = make_network(
                config,
                self.genesis,
                self.node_key,
                chain=chain,
                blocks=self.blocks,
                machine=machine,
                admission=self.admission,
                mempool=self.mempool,
                evidence=self.evidence,
                artifacts=self.artifacts,
                metrics=self.metrics,
                deliver=self._inbox.receive,
                on_committed=self._block_committed,
                served_chunks=self.wiring.served_chunks(self.artifacts.chunks.read),
                guard_for=guard_for,
            )
        elif guard_for is not None:
            self.guard = guard_for(None)
        network = self.network
        prebuilder = Prebuilder(chain, self.mempool, self.blocks, self.timing)
        self.admission.subscribe(prebuilder.admitted)
        wiring = self.wiring
        broadcast = broadcast_nowhere if network is None else network.consensus.broadcast
        self.driver = ConsensusDriver(
            machine=machine,
            signer=signer,
            inbox=self._inbox,
            ledger=wiring.consensus_ledger(chain),
            params=self.timing,
            mempool=self.mempool,
            evidence=self.evidence,
            blocks=self.blocks,
            prebuilder=prebuilder,
            wal=ConsensusWal(self.kv),
            metrics=self.metrics,
            on_committed=self._block_committed,
            tx_arrived=self.admission.tx_arrived,
            hold_admission=self.admission.consensus_work,
            guard=self.guard,
            timing=BlockTiming.of(self.timing, config.consensus),
            broadcast=wiring.consensus_broadcast(broadcast, signer, chain),
            on_state_changed=(lambda: None) if network is None else network.votes.state_changed,
        )
        rpc = config.rpc
        calls = ReadOnlyCalls(
            rpc.call_threads, rpc.call_max_per_client, rpc.call_max_queued_per_client, rpc.call_max_in_flight
        )
        stack.push_async_callback(calls.close)  # its threads read the database: closed before it
        http = await self._set_up_http(stack, calls)  # closed before the parts its handlers read
        live = LiveFamilies(self._live_sources(calls, http))  # every part that keeps numbers exists now
        self.metrics.registry.register(live)
        stack.callback(self.metrics.registry.unregister, live)
        if network is not None:
            await self._start_network(network)
            stack.push_async_callback(network.stop)
            if restored:
                network.txs.announce(restored)  # peers that lost them too get them back
        if config.models.release_keys:
            self.key_release = self._make_key_release()
            self.key_release.start()
            stack.push_async_callback(self.key_release.stop)
        self.metrics.head_height.set(chain.head.height)
        self.metrics.finalized_height.set(chain.head.height)
        self.rpc_url = await http.listen()
        self.started_at = time.time()
        write_node_file(config.datadir, self.rpc_url, self.genesis.chain_id)
        # Load the tree's internal nodes into memory off the event loop, so the first blocks after
        # a restart do not pay a disk read per touched node; it shares the block thread, so it
        # never runs beside a commit.
        asyncio.get_running_loop().run_in_executor(self.blocks.executor, chain.tree.warm)
        self.driver.start()
        stack.push_async_callback(self.driver.stop)
        stack.push_async_callback(self._release_waiters)  # first of all at stop

    async def _release_waiters(self) -> None:
        """Stopping: long polls (tx_wait, chain_waitForHeight) answer now rather than hold up the shutdown."""
        self.admission.tx_arrived.set()
        await self.head_waiters.release()

    def _make_mempool(self) -> Mempool:
        config, chain = self.config.mempool, self.chain
        mempool = Mempool(
            self.genesis.chain_id,
            self.genesis.params,
            chain.nonce_and_balance,
            MempoolLimits(
                max_txs=config.max_txs,
                max_bytes=config.max_bytes,
                max_per_sender=config.max_per_sender,
                ttl_ms=config.ttl_s * 1000,
            ),
            is_committed=lambda tx_hash: chain.blocks.tx_location(tx_hash) is not None,
        )
        evicted = self.metrics.txs_evicted
        mempool.subscribe_evictions(lambda e: evicted.labels(e.reason.value).inc())
        return mempool

    async def _open_journal(self, stack: contextlib.AsyncExitStack) -> list[Transaction]:
        """Open the mempool journal, admit again what it kept (see node.txpool.journal), and journal
        every admission from now on."""
        journal = JournalKeeper(
            TxJournal(self.config.datadir / "mempool"), self.mempool.records, lambda: self.mempool.size_bytes
        )
        self.journal = journal
        stack.push_async_callback(journal.close)
        self.mempool.subscribe_evictions(journal.evicted)
        return await journal.restore(self.admission, self.mempool.limits.ttl_ms)

    async def _start_network(self, network: Network) -> None:
        config = self.config
        try:
            await network.start()
        except OSError as exc:
            where = f"{config.p2p.addr}:{config.p2p.port}"
            reason = os_reason(exc)
            raise ConfigError(f"cannot listen for peers on {where}: {reason}; choose another --p2p-port") from exc

    def _make_guard(self, signer: Signer, peer_heads: PeerHeads | None) -> DoubleSignGuard | None:
        """The double-sign guard (node/consensus/double_sign_guard.py), shown the last commits this node holds."""
        guard = DoubleSignGuard(signer, self.config.consensus.double_sign_check_height, peer_heads)
        head = self.chain.head.height
        for height in range(max(1, head - guard.check_height + 1), head + 1):
            guard.observe_commit(self.chain.blocks.commit(height))
        return self.wiring.double_sign_guard(guard)

    def _make_key_release(self) -> KeyRelease:
        network, admission = self.network, self.admission
        return KeyRelease(
            self.node_key,
            chain=self.chain,
            content_key=self.artifacts.content_key,
            publisher_of=self.artifact_access.bindings.publisher_of,
            syncing=(lambda: False) if network is None else network.sync.syncing,
            pending_nonce=self.mempool.pending_nonce,
            submit=admission.submit,
        )

    async def _set_up_http(self, stack: contextlib.AsyncExitStack, calls: ReadOnlyCalls) -> HttpServer:
        """JSON-RPC, artifacts over HTTP, /metrics and /health, set up to listen last (`HttpServer.listen`)."""
        rpc = self.config.rpc
        served = Served(
            chain=self.chain,
            genesis=self.genesis,
            mempool=self.mempool,
            admission=self.admission,
            status=self.status,
            consensus_status=self.driver.status,
            peer_count=self._peer_count,
            wait_for_height=self.head_waiters.wait_for_height,
            artifacts=self.artifacts,
            exchange=None if self.network is None else self.network.artifacts,
            calls=calls,
            rpc=rpc,
            heads=self.heads,
        )
        http = HttpServer(served, self.config, self.metrics, self.artifact_access, self._fetch_in_flight)
        await http.set_up()
        stack.push_async_callback(http.close)
        return http

    def _live_sources(self, calls: ReadOnlyCalls, http: HttpServer) -> LiveSources:
        """What /metrics reads at scrape time of the parts that keep their own numbers."""
        network = self.network
        return LiveSources(
            consensus=self.driver.status,
            contract_calls=calls.counts,
            uploads=http.upload_counts,
            websocket=http.websocket.counts,
            private_reads=self.artifact_access.counts,
            journal=self.journal.counts,
            p2p=P2PMetrics() if network is None else network.manager.metrics,
            artifacts=None if network is None else network.artifacts.counters,
        )

    def _fetch_in_flight(self, artifact: bytes) -> FetchInFlight | None:
        return None if self.network is None else self.network.artifacts.in_flight.get(artifact)

    # --- after each block ----------------------------------------------------------------------

    async def _block_committed(self, pending: PendingBlock) -> None:
        """Bookkeeping after a block is committed (by consensus or sync): guard, evidence, peers,
        consensus, mempool, journal, metrics, waiters, key release."""
        block = pending.block
        if self.guard is not None:
            self.guard.observe_commit(block.last_commit)
            self.guard.observe_commit(self.chain.last_commit)
        self.evidence.block_committed(block.evidence)
        if self.network is not None:
            await self.network.head_changed(self.chain.head.height)
        self._inbox.wake()  # consensus re-checks the height
        used = {(tx.sender_address, tx.nonce): tx.hash for tx in block.transactions}
        self.mempool.remove_committed({sender for sender, _ in used}, used)
        self.admission.block_committed(block.transactions)
        self.mempool.expire(now_ms())
        self.journal.block_committed()
        self.metrics.block_committed(block.height, len(block.transactions))
        await self.head_waiters.head_moved()
        self.heads.publish(block, pending.receipts)
        if self.key_release is not None:
            self.key_release.block_committed(events_of(pending.receipts))
        if block.transactions:
            log.info("block %d: %d txs, %s…", block.height, len(block.transactions), block.hash.hex()[:12])

    # --- status ------------------------------------------------------------------------------

    def _peer_count(self) -> int:
        return 0 if self.network is None else self.network.peer_count()

    def validator_address(self) -> str | None:
        signer = self.driver.signer
        return None if signer is None else "0x" + signer.address.hex()

    def status(self) -> dict[str, Any]:
        head = self.chain.head
        return {
            "client_version": CLIENT_VERSION,
            "chain_id": self.genesis.chain_id,
            "chain_name": self.genesis.chain_name,
            "genesis_hash": "0x" + self.genesis.hash().hex(),
            "head_height": head.height,
            "head_hash": "0x" + head.hash.hex(),
            "head_time_ms": head.timestamp_ms,
            "finalized_height": head.height,
            "validator": self.validator_address(),
            "validators": len(self.chain.validators),
            "mempool_txs": len(self.mempool),
            "peers": self._peer_count(),
            "syncing": False if self.network is None else self.network.sync.syncing(),
            "node_key": "0x" + self.node_key.public_key.hex(),  # P2P or not: the audience of signed reads
            "releaser": None if self.key_release is None else "0x" + self.key_release.address.hex(),
            "p2p_port": None if self.network is None else self.network.manager.listen_port,
            "uptime_s": round(time.time() - self.started_at, 1),
            "datadir": str(self.config.datadir),
            "artifacts_path": str(self.config.artifacts_path),
            "rpc": self.rpc_url,
        }

"""Prometheus metrics of one node, served as text at `/metrics`.

Counters the node updates as it goes (blocks, transactions, step timings), and families read
at scrape time from the parts that keep their own numbers (`LiveSources`): the P2P layer (peers,
bytes, messages, bans, penalties), the consensus machine (round, step, votes in this round), the
artifact exchange, read-only calls, uploads, private reads and the mempool journal. The node
makes those parts with its `NodeMetrics`, then adds their families (`LiveFamilies`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from node.p2p.metrics import P2PMetrics
from vm.faults import internal_errors

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LOOP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class NodeMetrics:
    """Each node has its own registry, so several nodes can run in one process (tests, bench)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # process_cpu_seconds_total, process_resident_memory_bytes, open fds: what an operator (and
        # `bench testnet`'s CPU per transaction) reads first
        ProcessCollector(registry=r)
        self.head_height = Gauge("aichain_head_height", "Height of the head block", registry=r)
        self.finalized_height = Gauge("aichain_finalized_height", "Height of the last finalized block", registry=r)
        r.register(_VmFaults())
        self.mempool_txs = Gauge("aichain_mempool_transactions", "Transactions in the mempool", registry=r)
        self.mempool_bytes = Gauge("aichain_mempool_bytes", "Bytes of transactions in the mempool", registry=r)
        self.txs_committed = Counter("aichain_transactions_committed", "Transactions committed in blocks", registry=r)
        self.rpc_errors = Counter(
            "aichain_rpc_errors", "JSON-RPC error answers, by code (-32040: admin call refused)", ["code"], registry=r
        )
        self.txs_rejected = Counter(
            "aichain_transactions_rejected", "Transactions refused at admission", ["reason"], registry=r
        )
        self.txs_evicted = Counter(
            "aichain_transactions_evicted",
            "Admitted transactions that left the mempool uncommitted, by reason (tx_get reports each)",
            ["reason"],
            registry=r,
        )
        self.evictions_kept = Gauge(
            "aichain_mempool_evictions_kept", "Evictions this node can still explain to tx_get (bounded)", registry=r
        )
        self.tx_gossip_failures = Counter(
            "aichain_tx_gossip_failures",
            "Batches of transaction gossip that failed to go out (each a bug, logged with its traceback)",
            registry=r,
        )
        self.signatures_verified = Counter(
            "aichain_transaction_signatures_verified", "Transaction signatures checked at admission", registry=r
        )
        self.blocks_committed = Counter("aichain_blocks_committed", "Blocks committed", registry=r)
        self.sync_imported = Counter(
            "aichain_sync_blocks_imported", "Blocks committed from block sync (not decided here)", registry=r
        )
        self.held_messages = Counter(
            "aichain_consensus_messages_held",
            "Proposals and votes for the height after ours, kept until this node reached it",
            registry=r,
        )
        self.evidence_found = Counter(
            "aichain_evidence_found",
            "Equivocations this node found (two conflicting votes of one validator)",
            registry=r,
        )
        self.compact_proposals = Counter(
            "aichain_compact_proposals",
            "Compact proposals from peers: rebuilt from the mempool alone, after fetching transactions, or"
            " given up (transactions unavailable)",
            ["outcome"],
            registry=r,
        )
        self.compact_txs_fetched = Counter(
            "aichain_compact_txs_fetched",
            "Transactions of proposals fetched from peers (not in the mempool)",
            registry=r,
        )
        self.gossip_sent = Counter(
            "aichain_consensus_gossip_sent",
            "Proposals and votes sent to a peer that lacked them (vote gossip), by kind",
            ["kind"],
            registry=r,
        )
        self.blocks_proposed = Counter(
            "aichain_blocks_proposed",
            "Blocks this validator proposed: prebuilt (executed while the block time ran) or built when due",
            ["how"],
            registry=r,
        )
        self.block_interval = Histogram(
            "aichain_block_interval_seconds",
            "Time between consecutive blocks",
            buckets=(0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.round_seconds = Histogram("aichain_consensus_round_seconds", "Duration of consensus rounds", registry=r)
        self.step_seconds = Histogram(
            "aichain_consensus_step_seconds",
            "Seconds from the start of a height until it first reached a step "
            "(built, proposal arrived, proposal validated, prevoted, precommitted, decided, written)",
            ["step"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.artifact_bytes = Gauge("aichain_artifact_bytes", "Bytes held in the artifact store", registry=r)
        self._last_block_at: float | None = None  # when the last block was committed (monotonic)
        self._loop_metrics(r)

    def _loop_metrics(self, r: CollectorRegistry) -> None:
        """The event-loop lag monitor's figures (node/loop_monitor.py)."""
        self.loop_lag = Histogram(
            "aichain_event_loop_lag_seconds",
            "How late the event loop woke from a 10 ms sleep",
            buckets=LOOP_BUCKETS,
            registry=r,
        )
        self.loop_blocked = Histogram(
            "aichain_event_loop_blocked_seconds",
            "The lag less the time the loop's thread waited for a CPU: how long the node itself blocked its loop",
            buckets=LOOP_BUCKETS,
            registry=r,
        )
        self.loop_lag_max = Gauge(
            "aichain_event_loop_lag_max_seconds", "Largest event-loop lag since start", registry=r
        )
        self.loop_blocked_max = Gauge(
            "aichain_event_loop_blocked_max_seconds", "Largest event-loop blocked time since start", registry=r
        )
        self.loop_stalls = Counter(
            "aichain_event_loop_stalls", "Times the event loop was blocked for more than 100 ms", registry=r
        )
        self._lag_max = self._blocked_max = 0.0

    def block_committed(self, height: int, txs: int) -> None:
        """A block of `txs` transactions was committed at `height` (by consensus or sync)."""
        now = time.monotonic()
        if self._last_block_at is not None:
            self.block_interval.observe(now - self._last_block_at)
        self._last_block_at = now
        self.head_height.set(height)
        self.finalized_height.set(height)
        self.blocks_committed.inc()
        self.txs_committed.inc(txs)

    def loop_tick(self, lag_s: float, blocked_s: float) -> None:
        self.loop_lag.observe(lag_s)
        self.loop_blocked.observe(blocked_s)
        if lag_s > self._lag_max:
            self._lag_max = lag_s
            self.loop_lag_max.set(lag_s)
        if blocked_s > self._blocked_max:
            self._blocked_max = blocked_s
            self.loop_blocked_max.set(blocked_s)

    def loop_stall(self) -> None:
        self.loop_stalls.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


STEPS = ("new_height", "propose", "prevote", "precommit")


class _VmFaults(Collector):
    """The VM's count of exceptions it did not expect: process-wide, read at scrape time."""

    def collect(self) -> Iterator[Any]:
        yield CounterMetricFamily(
            "aichain_vm_internal_errors",
            "Exceptions the VM did not expect (bugs), each turned into the receipt error 'internal VM error'",
            value=internal_errors(),
        )


@dataclass(frozen=True)
class LiveSources:
    """Where the numbers that parts keep themselves are read at scrape time."""

    consensus: Callable[[], dict[str, Any]]  # the round state (`ConsensusDriver.status`)
    contract_calls: Callable[[], dict[str, int]]  # read-only calls: in flight, and by outcome
    uploads: Callable[[], dict[str, int]]  # PUT /artifacts: being read, and refused by reason
    private_reads: Callable[[], dict[str, int]]  # signed plaintext reads: granted, refused
    journal: Callable[[], dict[str, int]]  # the mempool journal: bytes, compactions, write errors
    websocket: Callable[[], dict[str, int]] = dict  # /ws: connections, subscriptions, clients dropped as too slow
    p2p: P2PMetrics = field(default_factory=P2PMetrics)  # the P2P layer's live counters; without P2P, zeros
    artifacts: Callable[[], dict[str, Any]] | None = None  # the exchange's counters; none without P2P


class LiveFamilies(Collector):
    """The families read at scrape time from `sources`."""

    def __init__(self, sources: LiveSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Any]:
        sources = self.sources
        yield from _p2p_families(sources.p2p)
        yield from _consensus_families(sources.consensus())
        if sources.artifacts is not None:
            yield from _artifact_families(sources.artifacts())
        calls = sources.contract_calls()
        yield GaugeMetricFamily(
            "aichain_rpc_contract_calls_in_flight",
            "Read-only contract calls running or waiting",
            value=calls.get("in_flight", 0),
        )
        outcomes = CounterMetricFamily(
            "aichain_rpc_contract_calls", "Read-only contract calls, by outcome", labels=["outcome"]
        )
        for outcome in ("answered", "failed", "busy"):
            outcomes.add_metric([outcome], calls.get(outcome, 0))
        yield outcomes
        uploads = sources.uploads()
        yield GaugeMetricFamily(
            "aichain_artifact_uploads", "PUT /artifacts bodies being read now", value=uploads["uploading"]
        )
        refused = CounterMetricFamily(
            "aichain_artifact_uploads_refused",
            "Uploads refused: busy (all slots taken, 503), too_slow (408), admin (no admin rights, 403)",
            labels=["reason"],
        )
        for reason in ("busy", "too_slow", "admin"):
            refused.add_metric([reason], uploads[reason])
        yield refused
        healed = CounterMetricFamily(
            "aichain_artifact_chunks_healed",
            "Chunks found damaged while serving a download, fetched again from peers (healed) or not (failed)",
            labels=["outcome"],
        )
        healed.add_metric(["healed"], uploads.get("healed", 0))
        healed.add_metric(["failed"], uploads.get("heal_failed", 0))
        yield healed
        ws = sources.websocket()
        yield GaugeMetricFamily(
            "aichain_rpc_websocket_connections", "WebSocket connections open at /ws", value=ws.get("connections", 0)
        )
        yield GaugeMetricFamily(
            "aichain_rpc_websocket_subscriptions",
            "WebSocket subscriptions open, of every kind",
            value=ws.get("subscriptions", 0),
        )
        yield CounterMetricFamily(
            "aichain_rpc_websocket_dropped_slow",
            "WebSocket clients disconnected because they did not read what was pushed to them",
            value=ws.get("dropped_slow", 0),
        )
        reads = sources.private_reads()
        family = CounterMetricFamily(
            "aichain_private_reads", "Requests for the plaintext of a private artifact, by outcome", labels=["outcome"]
        )
        for outcome in ("granted", "refused"):
            family.add_metric([outcome], reads[outcome])
        yield family
        journal = sources.journal()
        yield GaugeMetricFamily(
            "aichain_mempool_journal_bytes", "Bytes in the mempool journal's files", value=journal["bytes"]
        )
        yield CounterMetricFamily(
            "aichain_mempool_journal_compactions", "Compactions of the mempool journal", value=journal["compactions"]
        )
        yield CounterMetricFamily(
            "aichain_mempool_journal_write_errors",
            "Admissions the mempool journal could not write (disk full?)",
            value=journal["write_errors"],
        )


def _p2p_families(m: P2PMetrics) -> Iterator[Any]:
    peers = GaugeMetricFamily("aichain_peers", "Connected peers", labels=["direction"])
    peers.add_metric(["inbound"], m.peers_inbound)
    peers.add_metric(["outbound"], m.peers_outbound)
    yield peers
    traffic = CounterMetricFamily("aichain_p2p_bytes", "Bytes of P2P frames", labels=["direction"])
    traffic.add_metric(["in"], m.bytes_in)
    traffic.add_metric(["out"], m.bytes_out)
    yield traffic
    messages = CounterMetricFamily("aichain_p2p_messages", "P2P messages by type", labels=["direction", "type"])
    for direction, counts in (("in", m.messages_in), ("out", m.messages_out)):
        for msg_type, n in sorted(counts.items()):
            messages.add_metric([direction, str(msg_type)], n)
    yield messages
    yield CounterMetricFamily("aichain_p2p_bans", "Peers banned for misbehaviour", value=m.bans)
    yield CounterMetricFamily(
        "aichain_p2p_rate_limited", "Frames dropped over a peer's rate limit", value=m.dropped_rate_limited
    )
    for name, doc, by_reason in (
        ("aichain_p2p_penalties", "Score penalties given to peers, by reason", m.penalties),
        ("aichain_p2p_disconnects", "Connections ended, by reason", m.disconnects),
        ("aichain_p2p_refused", "Connections we refused, by reason", m.refused_by_us),
    ):
        family = CounterMetricFamily(name, doc, labels=["reason"])
        for reason, n in sorted(by_reason.items()):
            family.add_metric([reason], n)
        yield family
    handshakes = CounterMetricFamily("aichain_p2p_handshakes", "Handshakes, by result", labels=["result"])
    handshakes.add_metric(["ok"], m.handshakes_ok)
    handshakes.add_metric(["error"], m.handshake_errors)
    yield handshakes


def _consensus_families(state: dict[str, Any]) -> Iterator[Any]:
    yield GaugeMetricFamily("aichain_consensus_height", "Height being decided", value=state["height"])
    yield GaugeMetricFamily("aichain_consensus_round", "Round of the height being decided", value=state["round"])
    step = GaugeMetricFamily("aichain_consensus_step", "The step of the round (1 for the current one)", labels=["step"])
    for name in STEPS:
        step.add_metric([name], 1 if state["step"] == name else 0)
    yield step
    votes = GaugeMetricFamily(
        "aichain_consensus_vote_power", "Voting power seen in this round, by vote type", labels=["type"]
    )
    for kind in ("prevotes", "precommits"):
        votes.add_metric([kind], state[kind]["power"])
    yield votes
    missing = GaugeMetricFamily(
        "aichain_consensus_missing_validators", "Validators whose vote of this round has not arrived", labels=["type"]
    )
    for kind in ("prevotes", "precommits"):
        missing.add_metric([kind], len(state[kind]["missing"]))
    yield missing
    if state.get("prevotes"):
        yield GaugeMetricFamily(
            "aichain_consensus_total_power", "Voting power of the validator set", value=state["prevotes"]["of"]
        )
    if state.get("signing") is not None:
        yield GaugeMetricFamily(
            "aichain_consensus_signing_held",
            "1 while the double-sign guard keeps this validator from signing",
            value=0 if state["signing"] == "yes" else 1,
        )


def _artifact_families(counts: dict[str, Any]) -> Iterator[Any]:
    yield CounterMetricFamily(
        "aichain_artifact_chunks_served", "Artifact chunks sent to peers", value=counts["chunks_served"]
    )
    yield CounterMetricFamily(
        "aichain_artifact_chunks_fetched",
        "Artifact chunks received from peers and kept",
        value=counts["chunks_fetched"],
    )
    yield CounterMetricFamily(
        "aichain_artifact_bad_chunks",
        "Artifact chunks from peers that did not match their id",
        value=counts["bad_chunks"],
    )
    fetches = GaugeMetricFamily(
        "aichain_artifact_fetches", "Fetches from peers since start, by state", labels=["state"]
    )
    for state, n in sorted(counts["fetches"].items()):
        fetches.add_metric([state], n)
    yield fetches

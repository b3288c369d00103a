"""Prometheus metrics of one node, served as text at `/metrics`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class NodeMetrics:
    """Each node has its own registry, so several nodes can run in one process (tests, bench)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.head_height = Gauge("aichain_head_height", "Height of the head block", registry=r)
        self.finalized_height = Gauge("aichain_finalized_height", "Height of the last finalized block", registry=r)
        self.peers = Gauge("aichain_peers", "Connected peers", registry=r)
        self.mempool_txs = Gauge("aichain_mempool_transactions", "Transactions in the mempool", registry=r)
        self.mempool_bytes = Gauge("aichain_mempool_bytes", "Bytes of transactions in the mempool", registry=r)
        self.txs_committed = Counter("aichain_transactions_committed", "Transactions committed in blocks", registry=r)
        self.txs_rejected = Counter(
            "aichain_transactions_rejected", "Transactions refused at admission", ["reason"], registry=r
        )
        self.blocks_committed = Counter("aichain_blocks_committed", "Blocks committed", registry=r)
        self.blocks_proposed = Counter(
            "aichain_blocks_proposed",
            "Blocks this validator proposed: prebuilt (executed while the block time ran) or built when due",
            ["how"],
            registry=r,
        )
        self.block_seconds = Histogram(
            "aichain_block_build_seconds",
            "Time to execute, root and commit one block",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
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
            "(built, proposal validated, prevoted, precommitted, decided, written)",
            ["step"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.artifact_bytes = Gauge("aichain_artifact_bytes", "Bytes held in the artifact store", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

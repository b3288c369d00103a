"""Offering a steady load to a local testnet and measuring one window of it.

`Load` sends pre-signed transfers through JSON-RPC (`tx_sendBatch`) at a rate, spread over
the nodes; `measure_window` watches node0's finalized blocks meanwhile and computes the
finalized transfers/s and the finality latency of a sample of the transactions, leaving out a
warm-up at the start of the window. `step_totals` reads every node's consensus step timings
from /metrics (aichain_consensus_step_seconds), so that a window's mean per step is the
difference of two readings.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from aichain_node import Client
from node import testnet
from node.bench.rate_search import percentile

BATCH = 100  # per request: clients send steadily, not in bursts
SAMPLE_EVERY = 10  # one transaction in this many has its latency measured


def post(url: str, method: str, params: list[Any], timeout: float = 30) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise RuntimeError(answer["error"])
    return answer["result"]


def free_base(span: int = 110, attempts: int = 50) -> int:
    """A base port such that base .. base + span are all free on 127.0.0.1 (RPC at base, P2P at base + 100)."""
    import random
    import socket

    for _ in range(attempts):
        base = random.randrange(20000, 60000 - span)
        try:
            for port in range(base, base + span):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"found no {span} free consecutive ports on 127.0.0.1")


def worker_batches(senders: int, total: int, workers: int, worker: int, batch: int = BATCH) -> list[int]:
    """Offsets of the batches `worker` sends, of `total` nonce-major transactions from `senders`.

    A batch never spans two nonces of a sender (senders is a multiple of `batch`), and the batch
    at position j of every nonce round goes to worker j mod workers: each sender's transactions
    always reach the same node (or connection), in nonce order, whatever the number of workers.
    """
    if senders % batch:
        raise ValueError(f"senders must be a multiple of the batch size {batch}")
    per_round = senders // batch
    return [o for o in range(0, total, batch) if (o // batch % per_round) % workers == worker]


class Load:
    """Sends the pre-signed transactions at `rate`/s in batches, one client thread per node,
    each paced at its share of the rate, so a node slow to answer holds up only its share."""

    def __init__(
        self, nodes: list[testnet.TestnetNode], raws: list[bytes], senders: int, rate: float, duration: float
    ) -> None:
        self.nodes, self.raws, self.rate, self.duration = nodes, raws, rate, duration
        self.sent_at: dict[str, float] = {}  # sampled tx hash -> submit time
        self.sent_wall: dict[str, float] = {}  # the same, wall clock (to compare with block timestamps)
        self.sent = 0
        self.rejected = 0
        self.started = 0.0
        self.stop_flag = threading.Event()
        self._lock = threading.Lock()
        self._batches = [worker_batches(senders, len(raws), len(nodes), i) for i in range(len(nodes))]
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(len(nodes))]

    def start(self) -> None:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()

    def is_alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def samples(self) -> tuple[dict[str, float], dict[str, float]]:
        """Copies of the sampled hashes' submit times (monotonic, wall clock)."""
        with self._lock:
            return dict(self.sent_at), dict(self.sent_wall)

    def _run(self, worker: int) -> None:
        node = self.nodes[worker]
        batches = self._batches[worker]
        rate = self.rate * len(batches) / max(1, sum(len(b) for b in self._batches))
        done = 0
        for offset in batches:
            if self.stop_flag.is_set():
                return
            while True:  # pace: at most BATCH ahead of the share's schedule
                elapsed = time.monotonic() - self.started
                if elapsed > self.duration:
                    return
                if done < int(elapsed * rate) + BATCH:
                    break
                time.sleep(0.005)
            chunk = self.raws[offset : offset + BATCH]
            done += len(chunk)
            submitted, submitted_wall = time.monotonic(), time.time()
            try:
                results = post(node.rpc_url, "tx_sendBatch", [["0x" + raw.hex() for raw in chunk]])
            except Exception:
                with self._lock:
                    self.rejected += len(chunk)
                continue
            with self._lock:
                for i, result in enumerate(results):
                    if "hash" in result:
                        self.sent += 1
                        if i % SAMPLE_EVERY == 0:
                            self.sent_at[result["hash"]] = submitted
                            self.sent_wall[result["hash"]] = submitted_wall
                    else:
                        self.rejected += 1


@dataclass(frozen=True)
class _Seen:
    at: float  # monotonic, when node0 first reported the block
    height: int
    txs: list[str]
    stamped: float  # the block's timestamp, s
    wall: float  # wall clock at `at`


def measure_window(watcher: Client, load: Load, warmup: float = 0.0, drain_timeout: float = 30.0) -> dict[str, float]:
    """Run `load` to its end and measure what node0 finalized, leaving out the first `warmup` s.

    Latency is measured for the sampled transactions submitted after the warm-up; one never seen
    finalized (the window ends `drain_timeout` s after the load, or 5 s after the last block once
    the load is over) counts as an infinite latency, so it cannot flatter the percentiles.
    """
    start_height = watcher.rpc("chain_head")["height"]
    load.start()
    measured_from = load.started + warmup
    seen: list[_Seen] = []
    height = start_height
    deadline = load.started + load.duration + drain_timeout
    found: set[str] = set()
    while time.monotonic() < deadline:
        # A long poll answers the moment the next block is committed (no polling load on node0).
        header = watcher.rpc("chain_waitForHeight", height + 1, 5)
        finalized_at, finalized_wall = time.monotonic(), time.time()  # when the node first reported it
        head = height if header is None else header["height"]
        while height < head:
            height += 1
            block = watcher.rpc("chain_getBlockByHeight", height, False)
            seen.append(
                _Seen(finalized_at, height, block["transactions"], block["timestamp_ms"] / 1000, finalized_wall)
            )
            found.update(h for h in block["transactions"] if h in load.sent_at)
        if not load.is_alive() and (header is None or len(found) == len(load.sent_at)):
            break
    load.stop_flag.set()
    load.join(5)
    measured = [s for s in seen if s.txs and s.at >= measured_from]
    if len(measured) < 3:
        raise RuntimeError("too few blocks with transactions to measure; is the testnet finalizing?")
    first, last = measured[0], measured[-1]
    committed = sum(len(s.txs) for s in measured[1:])
    window = last.at - first.at
    seen_at = {h: s.at for s in seen for h in s.txs}
    stamped_at = {h: s.stamped for s in seen for h in s.txs}
    sent_at, sent_wall = load.samples()
    latencies, waits = [], []
    unseen = 0
    for h, sent in sent_at.items():
        if sent < measured_from:
            continue
        when = seen_at.get(h)
        if when is None:
            unseen += 1
            latencies.append(math.inf)
            continue
        latencies.append(when - sent)
        waits.append(stamped_at[h] - sent_wall[h])
    latencies.sort()
    # Block proposed -> seen finalized: the part of the latency that consensus is responsible for.
    decide = [s.wall - s.stamped for s in measured]
    return {
        "tps": committed / window if window > 0 else 0.0,
        "committed": committed,
        "window": window,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "samples": len(latencies),
        "unseen": unseen,
        "inclusion_wait_p50": statistics.median(waits) if waits else math.nan,
        "decide_p50": statistics.median(decide),
        "decide_max": max(decide),
        "later_rounds": sum(1 for s in measured if watcher.rpc("chain_getCommit", s.height)["round"] > 0),
        "heights": len(measured),
        "interval_p50": statistics.median(b.stamped - a.stamped for a, b in itertools.pairwise(measured)),
        "sent": load.sent,
        "rejected": load.rejected,
    }


STEP_ORDER = ("built", "proposal arrived", "proposal validated", "prevoted", "precommitted", "decided", "written")
_STEP_LINE = re.compile(r'^aichain_consensus_step_seconds_(sum|count)\{step="([^"]+)"\} (\S+)$')
_PROPOSED_LINE = re.compile(r'^aichain_blocks_proposed_total\{how="([^"]+)"\} (\S+)$')
_CPU_LINE = re.compile(r"^process_cpu_seconds_total (\S+)$")


def parse_step_metrics(text: str) -> dict[str, float]:
    """From one /metrics text: "sum STEP" and "count STEP" of each consensus step's seconds after
    its height's start, "proposed HOW" (blocks proposed prebuilt / built when due) and "cpu" (the
    process's CPU seconds)."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        cpu = _CPU_LINE.match(line)
        if cpu:
            totals["cpu"] = totals.get("cpu", 0.0) + float(cpu.group(1))
        how = _PROPOSED_LINE.match(line)
        if how:
            key = f"proposed {how.group(1)}"
            totals[key] = totals.get(key, 0.0) + float(how.group(2))
        match = _STEP_LINE.match(line)
        if match:
            kind, step, value = match.groups()
            key = f"{kind} {step}"
            totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def step_totals(nodes: list[testnet.TestnetNode]) -> dict[str, float]:
    """`parse_step_metrics` summed over every node's /metrics."""
    totals: dict[str, float] = {}
    for node in nodes:
        with urllib.request.urlopen(node.rpc_url + "/metrics", timeout=10) as response:
            for key, value in parse_step_metrics(response.read().decode()).items():
                totals[key] = totals.get(key, 0.0) + value
    return totals


def step_means(after: dict[str, float], before: dict[str, float] | None = None) -> dict[str, float]:
    """Mean seconds from a height's start to each step between two `step_totals` readings, in
    the order of a height, the blocks proposed prebuilt / built in between ("proposed …"), and the
    CPU seconds the nodes used in between ("cpu")."""
    before = before or {}

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    means = {step: delta(f"sum {step}") / delta(f"count {step}") for step in STEP_ORDER if delta(f"count {step}") > 0}
    proposed = {key: delta(key) for key in after if key.startswith("proposed ")}
    cpu = {"cpu": delta("cpu")} if "cpu" in after else {}
    return means | proposed | cpu

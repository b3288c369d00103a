"""`bench testnet`: finalized transfers/s, finality latency and sync speed of a local testnet.

Starts `validators` real node processes on 127.0.0.1 (all on this machine), pushes pre-signed
transfers at a steady rate through JSON-RPC (`tx_sendBatch`, spread over the nodes), and
watches blocks being finalized. Figures:
- finalized transfers/s over the measured window (every block in it, on node0);
- finality latency, submit -> seen in a finalized block, p50 and p99 (a sample of txs);
- a fresh non-validator started afterwards syncs the whole history: transactions/s.
Beside them: one core's Ed25519 verifications/s, measured in the same run.
"""

from __future__ import annotations

import itertools
import json
import re
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from aichain_node import Client
from node import testnet
from node.bench import limits
from node.bench.report import Report
from node.bench.workload import FUNDING, account_key, signed_transfers

BATCH = 100  # per request: clients send steadily, not in bursts


def _post(url: str, method: str, params: list[Any], timeout: float = 30) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise RuntimeError(answer["error"])
    return answer["result"]


def _free_base(span: int = 110, attempts: int = 50) -> int:
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


class _Load:
    """Sends the pre-signed transactions at `rate`/s in batches, one client thread per node.

    Batch k goes to node k mod n, so each sender's transactions (nonce-major order, a batch
    never spans two nonces of one sender) always reach the same node, in nonce order. Each
    thread paces itself at rate/n, so a node that is slow to answer holds up only its share.
    """

    def __init__(self, nodes: list[testnet.TestnetNode], raws: list[bytes], rate: float, duration: float) -> None:
        self.nodes, self.raws, self.rate, self.duration = nodes, raws, rate, duration
        self.sent_at: dict[str, float] = {}  # sampled tx hash -> submit time
        self.sent_wall: dict[str, float] = {}  # the same, wall clock (to compare with block timestamps)
        self.sent = 0
        self.rejected = 0
        self.stop_flag = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(len(nodes))]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def is_alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, worker: int) -> None:
        workers = len(self.nodes)
        node = self.nodes[worker]
        rate = self.rate / workers
        batches = range(worker * BATCH, len(self.raws), workers * BATCH)
        started = time.monotonic()
        done = 0
        for offset in batches:
            if self.stop_flag.is_set():
                return
            while True:  # pace: at most BATCH ahead of the share's schedule
                elapsed = time.monotonic() - started
                if elapsed > self.duration:
                    return
                if done < int(elapsed * rate) + BATCH:
                    break
                time.sleep(0.005)
            chunk = self.raws[offset : offset + BATCH]
            done += len(chunk)
            submitted, submitted_wall = time.monotonic(), time.time()
            try:
                results = _post(node.rpc_url, "tx_sendBatch", [["0x" + raw.hex() for raw in chunk]])
            except Exception:
                with self._lock:
                    self.rejected += len(chunk)
                continue
            with self._lock:
                for i, result in enumerate(results):
                    if "hash" in result:
                        self.sent += 1
                        if i % 10 == 0:
                            self.sent_at[result["hash"]] = submitted
                            self.sent_wall[result["hash"]] = submitted_wall
                    else:
                        self.rejected += 1


def run_testnet_bench(
    validators: int = 4,
    duration: float = 60.0,
    rate: float = 2200.0,
    block_time_ms: int = 1000,
    senders: int = 2000,
    sync: bool = True,
) -> Report:
    report = Report(f"aichain-node bench testnet: {validators} validators on this machine, {block_time_ms} ms blocks")
    verify_rate = limits.ed25519_verifications_per_s()
    per_sender = int(rate * (duration + 10) / senders) + 1
    recipients = [bytes([i % 256, i // 256]) + bytes(18) for i in range(5000)]
    raws = signed_transfers(senders, per_sender, recipients, chain_id=7790)
    with tempfile.TemporaryDirectory(prefix="aichain-bench-testnet-") as tmp:
        root = Path(tmp)
        base = _free_base()
        nodes = testnet.init_testnet(
            root,
            validators,
            full_nodes=1 if sync else 0,
            chain_id=7790,
            rpc_base_port=base,
            p2p_base_port=base + 100,
            block_time_ms=block_time_ms,
            max_block_txs=50_000,
            allocations={account_key(i).address: FUNDING for i in range(senders)},
        )
        running = [n for n in nodes if n.validator]
        try:
            for node in running:
                testnet.start_node(node)
            testnet.wait_ready(running, timeout=60)
            figures = _measure(running, raws, rate, duration)
            steps = _step_means(running)
            if sync:
                full = nodes[-1]
                figures.update(_measure_sync(full, running[0]))
        finally:
            for node in nodes:
                testnet.stop_node(node, grace=10)
    report.add(
        "transfers finalized /s (sustained)",
        figures["tps"],
        "tx/s",
        "Ed25519 verifications/s, one core",
        verify_rate,
        target=">= 2000 tx/s",
    )
    report.add("finality latency p50", figures["p50"], "s", target="<= 1.5 s")
    report.add("finality latency p99", figures["p99"], "s", target="<= 3 s")
    if "sync_tps" in figures:
        report.add(
            "fresh node sync",
            figures["sync_tps"],
            "tx/s",
            "Ed25519 verifications/s, one core",
            verify_rate,
            target=">= 5000 tx/s",
        )
        report.notes["synced"] = (
            f"{int(figures['sync_blocks'])} blocks, {int(figures['sync_txs'])} txs in {figures['sync_s']:.1f} s"
        )
    report.notes["latency parts (p50)"] = (
        f"waiting for a block {figures['inclusion_wait_p50']:.2f} s, block proposed -> finalized "
        f"{figures['decide_p50']:.2f} s (slowest {figures['decide_max']:.2f} s), block interval "
        f"{figures['interval_p50']:.2f} s"
    )
    report.notes["heights decided after round 0"] = f"{int(figures['later_rounds'])} of {int(figures['heights'])}"
    if steps:
        report.notes["consensus steps (mean after height start)"] = ", ".join(
            f"{step} {seconds:.2f} s" for step, seconds in steps.items() if not step.startswith("proposed")
        )
        report.notes["blocks proposed"] = (
            f"{int(steps.get('proposed prebuilt', 0))} prebuilt, {int(steps.get('proposed built', 0))} built when due"
        )
    report.notes["measured over"] = f"{figures['window']:.1f} s, {int(figures['committed'])} txs"
    report.notes["offered load"] = f"{rate:.0f} tx/s"
    report.notes["accepted / refused"] = f"{int(figures['sent'])} / {int(figures['rejected'])}"
    report.notes["latency sample"] = int(figures["samples"])
    return report


def _measure(nodes: list[testnet.TestnetNode], raws: list[bytes], rate: float, duration: float) -> dict[str, float]:
    with Client(nodes[0].rpc_url, timeout=30) as watcher:
        return _measure_with(watcher, nodes, raws, rate, duration)


def _measure_with(
    watcher: Client, nodes: list[testnet.TestnetNode], raws: list[bytes], rate: float, duration: float
) -> dict[str, float]:
    start_height = watcher.rpc("chain_head")["height"]
    load = _Load(nodes, raws, rate, duration)
    load.start()
    seen: list[tuple[float, int, list[str], float, float]] = []  # (seen, height, txs, block timestamp, seen wall)
    height = start_height
    deadline = time.monotonic() + duration + 15
    while time.monotonic() < deadline:
        # A long poll answers the moment the next block is committed (no polling load on node0).
        header = watcher.rpc("chain_waitForHeight", height + 1, 5)
        finalized_at, finalized_wall = time.monotonic(), time.time()  # when the node first reported it
        head = height if header is None else header["height"]
        while height < head:
            height += 1
            block = watcher.rpc("chain_getBlockByHeight", height, False)
            seen.append((finalized_at, height, block["transactions"], block["timestamp_ms"] / 1000, finalized_wall))
        if not load.is_alive() and seen and not seen[-1][2] and height > start_height + 2:
            break
    load.stop_flag.set()
    load.join(5)
    with_txs = [s for s in seen if s[2]]
    if len(with_txs) < 3:
        raise RuntimeError("too few blocks with transactions to measure; is the testnet finalizing?")
    first, last = with_txs[0], with_txs[-1]
    committed = sum(len(s[2]) for s in with_txs[1:])
    window = last[0] - first[0]
    latencies, waits = [], []
    for when, _, hashes, stamped, _ in seen:
        for h in hashes:
            sent = load.sent_at.get(h)
            if sent is not None:
                latencies.append(when - sent)
                waits.append(stamped - load.sent_wall[h])
    latencies.sort()
    # Block proposed -> seen finalized: the part of the latency that consensus is responsible for.
    decide = [seen_wall - stamped for _, _, _, stamped, seen_wall in with_txs]
    return {
        "tps": committed / window if window > 0 else 0.0,
        "committed": committed,
        "window": window,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else float("nan"),
        "samples": len(latencies),
        "inclusion_wait_p50": statistics.median(waits) if waits else float("nan"),
        "decide_p50": statistics.median(decide),
        "decide_max": max(decide),
        "later_rounds": sum(1 for _, h, _, _, _ in with_txs if watcher.rpc("chain_getCommit", h)["round"] > 0),
        "heights": len(with_txs),
        "interval_p50": statistics.median(b[3] - a[3] for a, b in itertools.pairwise(with_txs)),
        "sent": load.sent,
        "rejected": load.rejected,
    }


_STEP_LINE = re.compile(r'^aichain_consensus_step_seconds_(sum|count)\{step="([^"]+)"\} (\S+)$')
_PROPOSED_LINE = re.compile(r'^aichain_blocks_proposed_total\{how="([^"]+)"\} (\S+)$')


def _step_means(nodes: list[testnet.TestnetNode]) -> dict[str, float]:
    """Mean time from a height's start to each consensus step, over all nodes' /metrics; and how
    many blocks were proposed prebuilt / built when due (as "prebuilt" and "built")."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    proposed: dict[str, float] = {}
    for node in nodes:
        with urllib.request.urlopen(node.rpc_url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        for line in text.splitlines():
            how = _PROPOSED_LINE.match(line)
            if how:
                proposed[how.group(1)] = proposed.get(how.group(1), 0.0) + float(how.group(2))
            match = _STEP_LINE.match(line)
            if match:
                kind, step, value = match.groups()
                target = sums if kind == "sum" else counts
                target[step] = target.get(step, 0.0) + float(value)
    order = ["built", "proposal arrived", "proposal validated", "prevoted", "precommitted", "decided", "written"]
    means = {step: sums[step] / counts[step] for step in order if counts.get(step)}
    return means | {f"proposed {how}": n for how, n in proposed.items()}


def _measure_sync(full: testnet.TestnetNode, source: testnet.TestnetNode) -> dict[str, float]:
    with Client(source.rpc_url) as client:
        target = client.rpc("chain_head")["height"]
        txs = sum(client.rpc("chain_getBlockByHeight", h, False)["tx_count"] for h in range(1, target + 1))
    started = time.monotonic()
    testnet.start_node(full)
    testnet.wait_ready([full], timeout=60)
    with Client(full.rpc_url, timeout=30) as client:
        while client.rpc("chain_head")["height"] < target:
            if time.monotonic() - started > 600:
                raise RuntimeError("the fresh node did not sync within 10 minutes")
            time.sleep(0.05)
    elapsed = time.monotonic() - started
    return {"sync_tps": txs / elapsed, "sync_s": elapsed, "sync_blocks": target, "sync_txs": txs}

"""`bench testnet`: finalized transfers/s, finality latency and sync speed of a local testnet.

Starts `validators` real node processes on 127.0.0.1 (all on this machine), pushes pre-signed
transfers at a steady rate through JSON-RPC (`tx_sendBatch`, spread over the nodes), and
watches blocks being finalized (node/bench/testnet_load.py). Figures:
- finalized transfers/s over the measured window (every block in it, on node0);
- finality latency, submit -> seen in a finalized block, p50 and p99 (a sample of txs);
- where a height's time goes: the mean time from its start to each consensus step, from the
  nodes' /metrics;
- a fresh non-validator started afterwards syncs the whole history: transactions/s.
Beside them: one core's Ed25519 verifications/s, measured in the same run.

With a fixed rate the load runs once for `duration`. With `run_testnet_ceiling` (`--rate auto`)
the same testnet is offered a series of rates (node/bench/rate_search.py), each for a warm-up
and a measured window of `duration`, and the report gives the highest rate whose finality p99
stayed within 2 s. Each step sends from its own accounts, nonces from 0, signed just before it:
a step whose transactions were refused leaves no nonce gap behind for the next.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aichain_node import Client
from node import testnet
from node.bench import limits
from node.bench.rate_search import Bounds, Search, Step, holds, search_ceiling
from node.bench.report import Report
from node.bench.testnet_load import STEP_ORDER, Load, free_base, measure_window, step_means, step_totals
from node.bench.workload import FUNDING, account_key, signed_transfers

CHAIN_ID = 7790
VERIFY_LIMIT = "Ed25519 verifications/s, one core"
_RECIPIENTS = [bytes([i % 256, i // 256]) + bytes(18) for i in range(5000)]


@contextmanager
def _running_testnet(
    validators: int, block_time_ms: int, accounts: int, sync: bool
) -> Iterator[tuple[list[testnet.TestnetNode], testnet.TestnetNode | None]]:
    """A started testnet whose accounts 0 .. accounts - 1 are funded (and a fresh full node, not
    started, if `sync`); every node is stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="aichain-bench-testnet-") as tmp:
        base = free_base()
        nodes = testnet.init_testnet(
            Path(tmp),
            validators,
            full_nodes=1 if sync else 0,
            chain_id=CHAIN_ID,
            rpc_base_port=base,
            p2p_base_port=base + 100,
            block_time_ms=block_time_ms,
            max_block_txs=50_000,
            allocations={account_key(i).address: FUNDING for i in range(accounts)},
        )
        running = [n for n in nodes if n.validator]
        try:
            for node in running:
                testnet.start_node(node)
            testnet.wait_ready(running, timeout=60)
            yield running, nodes[-1] if sync else None
        finally:
            for node in nodes:
                testnet.stop_node(node, grace=10)


def _window(
    running: list[testnet.TestnetNode], raws: list[bytes], senders: int, rate: float, duration: float, warmup: float
) -> tuple[dict[str, float], dict[str, float]]:
    """One measured window at `rate`, and the mean consensus step times during it."""
    before = step_totals(running)
    with Client(running[0].rpc_url, timeout=30) as watcher:
        figures = measure_window(watcher, Load(running, raws, senders, rate, warmup + duration), warmup)
    return figures, step_means(step_totals(running), before)


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
    raws = signed_transfers(senders, per_sender, _RECIPIENTS, chain_id=CHAIN_ID)
    with _running_testnet(validators, block_time_ms, senders, sync) as (running, full):
        figures, steps = _window(running, raws, senders, rate, duration, 0.0)
        if full is not None:
            figures.update(_measure_sync(full, running[0]))
    report.add("transfers finalized /s (sustained)", figures["tps"], "tx/s", VERIFY_LIMIT, verify_rate)
    report.add("finality latency p50", figures["p50"], "s", target="<= 1.0 s")
    report.add("finality latency p99", figures["p99"], "s", target="<= 2.0 s")
    _cpu_figure(report, figures, steps, validators, verify_rate)
    _sync_figure(report, figures, verify_rate)
    _window_notes(report, figures, steps)
    report.notes["offered load"] = f"{rate:.0f} tx/s"
    return report


def run_testnet_ceiling(
    validators: int = 4,
    duration: float = 15.0,
    warmup: float = 5.0,
    start: float = 2000.0,
    block_time_ms: int = 1000,
    senders: int = 2000,
    sync: bool = True,
    max_steps: int = 8,
    bounds: Bounds | None = None,
) -> Report:
    """The highest offered rate whose finality p99 stays within `bounds` (2 s), found by
    `search_ceiling` on one running testnet, each step `warmup` + `duration` s of load."""
    bounds = bounds or Bounds()
    report = Report(
        f"aichain-node bench testnet --rate auto: {validators} validators on this machine, {block_time_ms} ms blocks"
    )
    verify_rate = limits.ed25519_verifications_per_s()
    windows: dict[float, tuple[dict[str, float], dict[str, float]]] = {}
    with _running_testnet(validators, block_time_ms, senders * max_steps, sync) as (running, full):
        accounts = iter(range(0, senders * max_steps, senders))

        def measure(rate: float) -> Step:
            per_sender = int(rate * (warmup + duration + 2) / senders) + 1
            first = next(accounts)  # this step's own accounts, nonces from 0
            raws = signed_transfers(senders, per_sender, _RECIPIENTS, chain_id=CHAIN_ID, first_sender=first)
            _wait_idle(running, max(1, len(raws) // 100))
            try:
                figures, steps = _window(running, raws, senders, rate, duration, warmup)
            except RuntimeError:  # too few blocks finalized to measure: the rate did not hold
                return Step(rate, 0.0, math.inf, math.inf, 0.0)
            windows[rate] = figures, steps
            sent = figures["sent"] + figures["rejected"]
            refused = figures["rejected"] / sent if sent else 1.0
            return Step(rate, figures["tps"], figures["p50"], figures["p99"], refused)

        started = time.monotonic()
        search = search_ceiling(measure, start=start, max_steps=max_steps, bounds=bounds)
        searched_s = time.monotonic() - started
        sync_figures = _measure_sync(full, running[0]) if full is not None else {}
    ceiling = search.ceiling
    if ceiling is None:
        report.add("highest offered load within p99 bound", 0.0, "tx/s", VERIFY_LIMIT, verify_rate)
        report.notes["result"] = f"no rate tested held (p99 <= {bounds.p99_s} s); try a lower --start-rate"
    else:
        figures, steps = windows[ceiling.rate]
        report.add(
            f"highest offered load with p99 <= {bounds.p99_s:g} s",
            ceiling.rate,
            "tx/s",
            VERIFY_LIMIT,
            verify_rate,
            target=">= 3500 tx/s",
        )
        report.add("  transfers finalized /s at it", figures["tps"], "tx/s", VERIFY_LIMIT, verify_rate)
        report.add("  finality latency p50 at it", figures["p50"], "s", target="<= 1.0 s")
        report.add("  finality latency p99 at it", figures["p99"], "s", target="<= 2.0 s")
        _cpu_figure(report, figures, steps, validators, verify_rate)
        _window_notes(report, figures, steps)
    _sync_figure(report, sync_figures, verify_rate)
    failed = search.lowest_failed
    report.notes["lowest rate that failed"] = "none tried" if failed is None else f"{failed.rate:.0f} tx/s"
    for i, line in enumerate(_describe_search(search), 1):
        report.notes[f"step {i}"] = line
    report.notes["search took"] = (
        f"{searched_s:.0f} s, {len(search.steps)} steps of {warmup:g} s warm-up + {duration:g} s"
    )
    return report


def _wait_idle(nodes: list[testnet.TestnetNode], pending: int, timeout: float = 60.0) -> None:
    """Wait (at most `timeout` s) until every node's mempool holds at most `pending` transactions,
    so that a step does not finalize, and get slowed by, what the one before left behind."""
    deadline = time.monotonic() + timeout
    for node in nodes:
        with Client(node.rpc_url, timeout=10) as client:
            while client.rpc("node_status")["mempool_txs"] > pending and time.monotonic() < deadline:
                time.sleep(0.5)


def _describe_search(search: Search) -> list[str]:
    return [
        f"{step.rate:.0f} tx/s offered: finalized {step.finalized:.0f} tx/s, p50 {step.p50:.2f} s, "
        f"p99 {step.p99:.2f} s, refused {step.refused:.1%} -> {'holds' if holds(step, search.bounds) else 'fails'}"
        for step in search.steps
    ]


def _cpu_figure(
    report: Report, figures: dict[str, float], steps: dict[str, float], validators: int, verify_rate: float
) -> None:
    """CPU each validator spent per transaction accepted in the window (admission, gossip, signature
    check, execution, consensus, commit, RPC), beside one signature check: what a node costs per
    transaction, the figure that sets the ceiling when the validators share the machine's cores."""
    if "cpu" not in steps or not figures["sent"]:
        return
    per_tx_us = steps["cpu"] / figures["sent"] / validators * 1e6
    report.add("validator CPU per transfer", per_tx_us, "us", "one Ed25519 verification, us", 1e6 / verify_rate)
    report.notes["validators' CPU"] = f"{steps['cpu']:.1f} s over the window, all {validators} together"


def _sync_figure(report: Report, figures: dict[str, float], verify_rate: float) -> None:
    if "sync_tps" not in figures:
        return
    report.add("fresh node sync", figures["sync_tps"], "tx/s", VERIFY_LIMIT, verify_rate, target=">= 15000 tx/s")
    report.notes["synced"] = (
        f"{int(figures['sync_blocks'])} blocks, {int(figures['sync_txs'])} txs in {figures['sync_s']:.1f} s"
    )


def _window_notes(report: Report, figures: dict[str, float], steps: dict[str, float]) -> None:
    report.notes["latency parts (p50)"] = (
        f"waiting for a block {figures['inclusion_wait_p50']:.2f} s, block proposed -> finalized "
        f"{figures['decide_p50']:.2f} s (slowest {figures['decide_max']:.2f} s), block interval "
        f"{figures['interval_p50']:.2f} s"
    )
    report.notes["heights decided after round 0"] = f"{int(figures['later_rounds'])} of {int(figures['heights'])}"
    if steps:
        report.notes["consensus steps (mean after height start)"] = ", ".join(
            f"{step} {seconds:.2f} s" for step, seconds in steps.items() if step in STEP_ORDER
        )
        report.notes["blocks proposed"] = (
            f"{int(steps.get('proposed prebuilt', 0))} prebuilt, {int(steps.get('proposed built', 0))} built when due"
        )
    report.notes["measured over"] = f"{figures['window']:.1f} s, {int(figures['committed'])} txs"
    report.notes["accepted / refused"] = f"{int(figures['sent'])} / {int(figures['rejected'])}"
    report.notes["latency sample"] = f"{int(figures['samples'])} ({int(figures['unseen'])} never seen finalized)"


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

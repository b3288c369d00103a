"""Chaos on a 4-validator testnet under load: kill -9, quorum loss, SIGSTOP pauses.

A load thread sends signed transfers from several senders to whichever validators are up,
each sender's transactions in nonce order, re-sending the *same* signed bytes until a node
acknowledges them (`tx_send` returns the hash, or the node already knows it, or its nonce is
already used), as a wallet would. Meanwhile validators are:

- killed with SIGKILL one at a time and restarted (quorum stays),
- killed two at once and restarted (quorum lost until they are back),
- paused with SIGSTOP and continued.

After every event the test measures how long the chain took to finalize a new block once
quorum was back (for a pause: once the validator was continued). At the end, with every
node up again:

- no fork: all four hold the same block at every height;
- no acknowledged transaction is lost: each is committed, on every node, in the same block;
- none is duplicated: each hash appears in exactly one block;
- finalization resumed within `RESUME_LIMIT_S` of quorum returning, every time (and, when
  quorum never left, continued within that time of the fault).

`test_chaos_quick` runs a few events in `make test`; `test_chaos_campaign` (`make soak`) runs
30 kills (a third of them breaking quorum), 10 pauses, and three times the stall of a polka
whose proposer dies right after its prevote while another validator is down (`run_stall`). Set
AICHAIN_CHAOS_SEED to replay a run's random choices (the seed is printed).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import signal
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core.keys import PrivateKey, address_hex
from core.transaction import Transaction
from node import testnet
from tests import faults
from tests.integration.support import CONNECTION_ERRORS, DEV_KEY, batch, raw, transfer
from tests.integration.testnet_support import CHAIN_ID, Testnet, wait_for

RESUME_LIMIT_S = 10.0
BLOCK_TIME_MS = 500
SENDERS = 6
SEND_TIMEOUT_S = 2.0
ROUND_PAUSE_S = 0.05
FUNDS = 10**12
NONCE_TOO_LOW, NONCE_TOO_HIGH, ALREADY_KNOWN = -32005, -32006, -32016


@dataclass
class Sender:
    key: PrivateKey
    nonce: int = 0
    current: Transaction | None = None  # signed, not yet acknowledged


@dataclass
class Acked:
    sender: str
    nonce: int
    at: float


class ChaosLoad(threading.Thread):
    """Transfers from `senders` through the validators that are up, acknowledged one nonce at a time."""

    def __init__(self, net: Testnet, senders: list[PrivateKey], rng: random.Random) -> None:
        super().__init__(name="chaos-load", daemon=True)
        self.net = net
        self.rng = rng
        self.senders = [Sender(k) for k in senders]
        self.receivers = [PrivateKey.generate().address for _ in range(3)]
        self.up: set[int] = set(range(len(net.nodes)))
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.acked: dict[str, Acked] = {}
        self.send_errors = Counter[str]()
        self.failures: list[str] = []

    def mark(self, i: int, up: bool) -> None:
        with self.lock:
            (self.up.add if up else self.up.discard)(i)

    def run(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                up = sorted(self.up)
            if not up:
                self.stopping.wait(0.1)
                continue
            target = self.rng.choice(up)
            try:
                self._round(target)
            except CONNECTION_ERRORS as exc:
                self.send_errors[type(exc).__name__] += 1
            except Exception as exc:  # recorded and reported by the test
                self.failures.append(f"load: {exc!r}")
            self.stopping.wait(ROUND_PAUSE_S)

    def _round(self, target: int) -> None:
        for sender in self.senders:
            if sender.current is None:
                sender.current = transfer(
                    sender.key,
                    self.rng.choice(self.receivers),
                    self.rng.randint(1, 1000),
                    sender.nonce,
                    chain_id=CHAIN_ID,
                )
        calls: list[tuple[str, list[Any]]] = [("tx_send", [raw(s.current)]) for s in self.senders]  # type: ignore[arg-type]
        answers = batch(self.net.nodes[target].rpc_url, calls, timeout=SEND_TIMEOUT_S)
        now = time.monotonic()
        for sender, answer in zip(self.senders, answers, strict=True):
            tx = sender.current
            assert tx is not None
            tx_hash = "0x" + tx.hash.hex()
            if "result" in answer:
                acked = answer["result"]["hash"] == tx_hash
                if not acked:
                    self.failures.append(f"tx_send answered {answer['result']} for {tx_hash}")
            else:
                code = answer["error"]["code"]
                # Known already, or its nonce is used (by this very transaction: each nonce is signed once).
                acked = code in (ALREADY_KNOWN, NONCE_TOO_LOW)
                if code not in (ALREADY_KNOWN, NONCE_TOO_LOW, NONCE_TOO_HIGH):
                    self.failures.append(f"tx_send refused a valid transfer: {answer['error']}")
                self.send_errors[str(code)] += 1
            if acked:
                with self.lock:
                    self.acked.setdefault(tx_hash, Acked(address_hex(sender.key.address), tx.nonce, now))
                sender.nonce += 1
                sender.current = None

    def stop(self) -> None:
        self.stopping.set()
        self.join(15)
        assert not self.is_alive(), "the load thread did not stop"


@dataclass
class Event:
    kind: str  # "kill", "kill-quorum", "pause", "stall" (finding 5's scenario)
    nodes: tuple[int, ...]
    down_s: float
    resume_s: float = -1.0
    catchup_s: float = -1.0
    height_before: int = 0


@dataclass
class Campaign:
    events: list[Event] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for kind in ("kill", "kill-quorum", "pause", "stall"):
            for figure in ("resume_s", "catchup_s"):
                times = [getattr(e, figure) for e in self.events if e.kind == kind]
                if times:
                    out[f"{kind} {figure}"] = {
                        "events": len(times),
                        "min": round(min(times), 2),
                        "median": round(statistics.median(times), 2),
                        "max": round(max(times), 2),
                    }
        return out


def plan(rng: random.Random, singles: int, pairs: int, pauses: int, validators: int = 4) -> list[Event]:
    events = [Event("kill", (rng.randrange(validators),), rng.uniform(1.0, 4.0)) for _ in range(singles)]
    events += [
        Event("kill-quorum", tuple(rng.sample(range(validators), 2)), rng.uniform(1.0, 4.0)) for _ in range(pairs)
    ]
    events += [Event("pause", (rng.randrange(validators),), rng.uniform(1.0, 6.0)) for _ in range(pauses)]
    rng.shuffle(events)
    return events


def _signal(net: Testnet, i: int, sig: signal.Signals) -> None:
    pid = testnet._pid(net.nodes[i])
    assert pid is not None, f"node{i} is not running"
    os.killpg(pid, sig)


def _top(net: Testnet, nodes: list[int]) -> int:
    """The highest finalized height among `nodes` that answer."""
    best = -1
    for i in nodes:
        with contextlib.suppress(*CONNECTION_ERRORS):
            best = max(best, int(net.rpc(i, timeout=1).call("chain_head")["height"]))
    return best


def _wait_new_height(net: Testnet, nodes: list[int], above: int, limit: float, since: float | None = None) -> float:
    """Seconds from `since` (default: now) until some node in `nodes` finalizes a height above `above`
    (fails after `limit`)."""
    start = time.monotonic() if since is None else since
    wait_for(lambda: _top(net, nodes) > above, limit, f"a height above {above} on {nodes}", interval=0.05)
    return time.monotonic() - start


def _wait_caught_up(net: Testnet, i: int, others: list[int], limit: float) -> float:
    """Seconds until node i has reached the head the others had when it came back."""
    start = time.monotonic()
    target = _top(net, others)
    wait_for(lambda: net.height(i) >= target, limit, f"node{i} to catch up to {target}", interval=0.05)
    return time.monotonic() - start


def run_event(net: Testnet, load: ChaosLoad, event: Event, rng: random.Random | None = None) -> None:
    """Carry out one fault and measure it.

    `resume_s` is, for a quorum loss, the time from quorum returning (the first killed validator
    started again; its start-up counts, so this is an upper bound) to the next finalized block;
    for a single kill or a pause (quorum never left), the time from the fault to the next
    finalized block among the others. `catchup_s` is how long the faulty validator took, once
    back, to reach the head.
    """
    everyone = list(range(len(net.nodes)))
    others = [i for i in everyone if i not in event.nodes]
    limit = 3 * RESUME_LIMIT_S
    if event.kind == "pause":
        (i,) = event.nodes
        load.mark(i, False)
        event.height_before = _top(net, others)
        _signal(net, i, signal.SIGSTOP)
        try:
            event.resume_s = _wait_new_height(net, others, event.height_before, limit)
            time.sleep(max(0.0, event.down_s - event.resume_s))
        finally:
            _signal(net, i, signal.SIGCONT)
        event.catchup_s = _wait_caught_up(net, i, others, limit)
        load.mark(i, True)
        return
    first, *rest = event.nodes
    event.height_before = _top(net, others)
    load.mark(first, False)
    net.kill(first)
    if not rest:
        event.resume_s = _wait_new_height(net, others, event.height_before, limit)
        time.sleep(max(0.0, event.down_s - event.resume_s))
        net.start(first, timeout=60)
        event.catchup_s = _wait_caught_up(net, first, others, limit)
        load.mark(first, True)
        return
    time.sleep((rng or random).uniform(0.0, 1.0))
    for i in rest:
        load.mark(i, False)
        net.kill(i)
    time.sleep(event.down_s)
    event.height_before = _top(net, others)
    back = time.monotonic()  # counted from the restart, the process's start-up included: an upper bound
    net.start(first, timeout=60)  # 3 of 4: quorum is back
    event.resume_s = _wait_new_height(net, [first, *others], event.height_before, limit, since=back)
    load.mark(first, True)
    net.start(*rest, timeout=60)
    event.catchup_s = max(_wait_caught_up(net, i, [first, *others], limit) for i in rest)
    for i in rest:
        load.mark(i, True)


def _set_exit_after_prevote(net: Testnet, i: int, height: int | None) -> None:
    """Switch validator i into (or out of) the fault `exit_after_prevote_at` (tests/faults.py) from its next start."""
    if height is None:
        faults.set_faults(net.nodes[i].dir)
    else:
        faults.set_faults(net.nodes[i].dir, exit_after_prevote_at=height)


def run_stall(net: Testnet, load: ChaosLoad, event: Event, rng: random.Random | None = None) -> None:
    """Finding 5's scenario under load: D down; A, proposing, dies right after its round-0 prevote
    while B and C lock on its block; D comes back. B, C and D must finalize (`resume_s`: from D's
    restart, its start-up included, to the next block); then A comes back and catches up (`catchup_s`)."""
    a, b, c, d = event.nodes
    load.mark(d, False)
    net.kill(d)
    load.mark(a, False)
    net.kill(a)
    event.height_before = _top(net, [b, c])
    _set_exit_after_prevote(net, a, event.height_before + 2)
    try:
        net.start(a, timeout=60)
        wait_for(lambda: not net.running(a), 60, "A to exit after its round-0 prevote at a height it proposes")
    finally:
        _set_exit_after_prevote(net, a, None)
    for i in (b, c):
        wait_for(lambda i=i: net.call(i, "consensus_status")["locked_round"] >= 0, 20, f"node{i} locked on A's block")
    event.height_before = _top(net, [b, c])
    back = time.monotonic()
    net.start(d, timeout=60)
    event.resume_s = _wait_new_height(net, [b, c, d], event.height_before, 3 * RESUME_LIMIT_S, since=back)
    load.mark(d, True)
    net.start(a, timeout=60)
    event.catchup_s = _wait_caught_up(net, a, [b, c, d], 3 * RESUME_LIMIT_S)
    load.mark(a, True)


def fund(net: Testnet, senders: list[PrivateKey]) -> None:
    nonce = int(net.call(0, "state_getAccount", address_hex(DEV_KEY.address))["pending_nonce"])
    txs = [transfer(DEV_KEY, k.address, FUNDS, nonce + n, chain_id=CHAIN_ID) for n, k in enumerate(senders)]
    for tx in txs:
        net.rpc(0).send(tx)
    receipt = net.call(0, "tx_wait", "0x" + txs[-1].hash.hex(), 30)
    assert receipt is not None and receipt["status"] == "success", receipt
    net.wait_height(range(len(net.nodes)), receipt["block_height"], 30)


def check_outcome(net: Testnet, load: ChaosLoad, campaign: Campaign, report: Path) -> None:
    everyone = list(range(len(net.nodes)))
    acked = dict(load.acked)

    # Every acknowledged transaction commits, with every node up and no more faults.
    def uncommitted() -> list[str]:
        missing = []
        hashes = list(acked)
        for start in range(0, len(hashes), 500):
            part = hashes[start : start + 500]
            answers = batch(net.nodes[0].rpc_url, [("tx_getReceipt", [h]) for h in part], timeout=30)
            missing += [h for h, a in zip(part, answers, strict=True) if a.get("result") is None]
        return missing

    deadline = time.monotonic() + 60
    missing = uncommitted()
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = uncommitted()
    status = {h: net.call(0, "tx_get", h) for h in missing[:5]}
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged transactions were never committed: {status}"

    top = max(net.height(i) for i in everyone)
    net.wait_height(everyone, top, 60)
    compared = net.assert_same_chain(everyone, top)
    seen = Counter(h for block in net.blocks(0, 1, compared) for h in block["transactions"])
    duplicated = {h: n for h, n in seen.items() if n > 1}
    assert not duplicated, f"transactions in more than one block: {duplicated}"
    assert all(seen[h] == 1 for h in acked), "an acknowledged transaction is not in exactly one block"

    summary = campaign.summary()
    report.write_text(
        json.dumps(
            {
                "summary": summary,
                "acknowledged": len(acked),
                "height": compared,
                "send_errors": dict(load.send_errors),
                "events": [e.__dict__ for e in campaign.events],
            },
            indent=1,
        )
    )
    print(f"chaos: {len(acked)} acknowledged transactions committed once each; height {compared}")
    for name, figures in summary.items():
        print(f"  {name:<22} {figures}")
    slow = [e for e in campaign.events if e.resume_s > RESUME_LIMIT_S]
    assert not slow, f"finalization took more than {RESUME_LIMIT_S} s to resume: {slow}"
    assert not load.failures, load.failures[:10]


def chaos(tmp_path: Path, singles: int, pairs: int, pauses: int, stalls: int = 0) -> Campaign:
    seed = int(os.environ.get("AICHAIN_CHAOS_SEED") or secrets.randbits(32))
    print(f"AICHAIN_CHAOS_SEED={seed}")
    rng = random.Random(seed)
    campaign = Campaign(plan(rng, singles, pairs, pauses))
    campaign.events += [Event("stall", tuple(rng.sample(range(4), 4)), 0.0) for _ in range(stalls)]
    with Testnet(tmp_path, validators=4, block_time_ms=BLOCK_TIME_MS) as net:
        net.wait_height(range(4), 2, 30)
        senders = [PrivateKey.generate() for _ in range(SENDERS)]
        fund(net, senders)
        load = ChaosLoad(net, senders, random.Random(rng.random()))
        load.start()
        try:
            time.sleep(2)
            for event in campaign.events:
                (run_stall if event.kind == "stall" else run_event)(net, load, event, rng)
                time.sleep(rng.uniform(0.5, 2.0))
        finally:
            load.stop()
        check_outcome(net, load, campaign, tmp_path / "chaos-report.json")
    return campaign


def test_chaos_quick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One kill, one quorum loss and one pause under load: nothing lost, no fork, finality resumes."""
    faults.enable(monkeypatch)
    campaign = chaos(tmp_path, singles=1, pairs=1, pauses=1)
    assert len(campaign.events) == 3


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_chaos_campaign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """30 kill -9s (10 of them breaking quorum), 10 SIGSTOP pauses and 3 runs of finding 5's stall
    scenario, under load."""
    faults.enable(monkeypatch)
    campaign = chaos(tmp_path, singles=10, pairs=10, pauses=10, stalls=3)
    kills = sum(len(e.nodes) for e in campaign.events if e.kind in ("kill", "kill-quorum"))
    assert kills == 30

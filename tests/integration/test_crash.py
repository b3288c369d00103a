"""Acceptance: kill -9 under load loses nothing committed and shows nothing half-written.

A background thread keeps sending signed transfers from several funded accounts (tx_send)
and polls their receipts (tx_getReceipt), recording every receipt the node returned. The
node is killed with SIGKILL at random moments, at least 20 times, and restarted each time.
After every restart:

- the node starts (it refuses to start on a state tree that does not match its head);
- chain_head agrees with the head block from chain_getBlockByHeight (hash and state root);
- every block seen before is still there with the same hash, and the chain links up (each
  block's parent_hash is the hash of the block below);
- every transaction whose receipt had been returned is found by tx_getReceipt in the same
  block;
- the accounts' state proofs verify against the state root of the block they are read at.

At the end the supply is conserved: the balances of every account involved, the validator
(which collects the fees; the block reward is 0) included, add up to the genesis allocation,
and the validator holds exactly 21000 units per committed transfer.

Set AICHAIN_CRASH_SEED to replay a run's random choices (the seed is printed on failure).
"""

from __future__ import annotations

import os
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core.keys import PrivateKey, address_hex
from storage.state_proof import Proof, verify_proof
from tests.harness import NodeProcess
from tests.integration.support import (
    CONNECTION_ERRORS,
    DEV_KEY,
    TRANSFER_GAS,
    batch,
    pending_nonce,
    raw,
    transfer,
)

KILLS = 20
SENDERS = 4
RECEIVERS = 3
ROUND_PAUSE_S = 0.03  # between rounds of one transfer per sender: roughly 100 transfers/s
STALE_S = 8.0  # a hash without receipt after this long was lost with a killed node's mempool
BATCH = 500
UNIT = 10**9
FEE = TRANSFER_GAS * 1  # min gas price 1


@dataclass
class Snapshot:
    confirmed: dict[str, tuple[int, str]]  # tx hash -> (block height, block hash) from its receipt
    heads: dict[int, str]  # height -> hash, from chain_head answers


class TransferLoad(threading.Thread):
    """Steady transfers via tx_send; survives the node being killed (re-reads nonces after errors)."""

    def __init__(self, url: str, senders: list[PrivateKey], receivers: list[bytes], rng: random.Random) -> None:
        super().__init__(name="transfer-load", daemon=True)
        self.url = url
        self.senders = senders
        self.receivers = receivers
        self.rng = rng
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.nonces: dict[bytes, int | None] = {key.address: None for key in senders}
        self.outstanding: dict[str, float] = {}  # hash -> when tx_send accepted it
        self.confirmed: dict[str, tuple[int, str]] = {}  # hash -> (height, block hash) from its receipt
        self.heads: dict[int, str] = {}
        self.accepted = 0
        self.rejected_stale_nonce = 0
        self.connection_errors = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._round()
            except CONNECTION_ERRORS:
                # The node was killed (or is starting): what it had in its mempool is gone.
                self.connection_errors += 1
                self.nonces = dict.fromkeys(self.nonces)
                self.stopping.wait(0.02)
                continue
            except Exception as exc:
                self.failures.append(f"load thread: {exc!r}")
                self.stopping.wait(0.1)
                continue
            self.stopping.wait(ROUND_PAUSE_S)

    def snapshot(self) -> Snapshot:
        with self.lock:
            return Snapshot(dict(self.confirmed), dict(self.heads))

    def stop(self) -> None:
        self.stopping.set()
        self.join(15)
        assert not self.is_alive(), "the load thread did not stop"

    def _read_nonces(self) -> None:
        stale = [a for a, n in self.nonces.items() if n is None]
        answers = batch(self.url, [("state_getAccount", [address_hex(a)]) for a in stale], timeout=10)
        for address, answer in zip(stale, answers, strict=True):
            self.nonces[address] = int(answer["result"]["pending_nonce"])

    def _round(self) -> None:
        if any(n is None for n in self.nonces.values()):
            self._read_nonces()
        txs = []
        for key in self.senders:
            nonce = self.nonces[key.address]
            assert nonce is not None
            txs.append(transfer(key, self.rng.choice(self.receivers), self.rng.randint(1, 1000), nonce))
        now = time.monotonic()
        with self.lock:
            for tx_hash in [h for h, t in self.outstanding.items() if now - t > STALE_S]:
                del self.outstanding[tx_hash]
            polled = list(self.outstanding)[:BATCH]
        calls: list[tuple[str, list[Any]]] = [("chain_head", [])]
        calls += [("tx_send", [raw(tx)]) for tx in txs]
        calls += [("tx_getReceipt", [h]) for h in polled]
        answers = batch(self.url, calls, timeout=10)

        head = answers[0]["result"]
        sends = answers[1 : 1 + len(txs)]
        receipts = answers[1 + len(txs) :]
        with self.lock:
            self.heads[head["height"]] = head["hash"]
            for tx, answer in zip(txs, sends, strict=True):
                if "result" in answer:
                    assert answer["result"]["hash"] == "0x" + tx.hash.hex()
                    self.outstanding["0x" + tx.hash.hex()] = now
                    self.nonces[tx.sender_address] = tx.nonce + 1
                    self.accepted += 1
                elif answer["error"]["code"] in (-32005, -32006, -32016):
                    # nonce too low / gap / already known: our idea of the nonce is stale (a restart
                    # emptied the mempool, or an answer was lost with a killed connection).
                    self.nonces[tx.sender_address] = None
                    self.rejected_stale_nonce += 1
                else:
                    self.failures.append(f"tx_send refused a valid transfer: {answer['error']}")
            for tx_hash, answer in zip(polled, receipts, strict=True):
                if "error" in answer:
                    self.failures.append(f"tx_getReceipt({tx_hash}): {answer['error']}")
                    continue
                receipt = answer["result"]
                if receipt is not None:
                    if receipt["status"] != "success" or receipt["tx_hash"] != tx_hash:
                        self.failures.append(f"unexpected receipt {receipt}")
                    self.confirmed[tx_hash] = (receipt["block_height"], receipt["block_hash"])
                    del self.outstanding[tx_hash]


@dataclass
class ChainRecord:
    """The blocks verified so far: hashes[h] is the hash of block h."""

    hashes: list[str] = field(default_factory=list)
    tx_count: int = 0


def fetch_blocks(url: str, heights: range) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for start in range(heights.start, heights.stop, BATCH):
        part = range(start, min(start + BATCH, heights.stop))
        answers = batch(url, [("chain_getBlockByHeight", [h, False]) for h in part])
        for height, answer in zip(part, answers, strict=True):
            block = answer.get("result")
            assert block is not None, f"block {height} is missing below the head: {answer}"
            blocks.append(block)
    return blocks


def check_after_restart(
    node: NodeProcess, record: ChainRecord, seen: Snapshot, accounts: list[bytes], restart: int
) -> None:
    url = node.url
    where = f"after restart {restart}"

    # The head: chain_head and the stored head block agree.
    head = node.rpc.call("chain_head")
    stored = node.rpc.call("chain_getBlockByHeight", head["height"])
    assert stored is not None, f"{where}: no block at the head height {head['height']}"
    assert stored["hash"] == head["hash"], where
    assert stored["state_root"] == head["state_root"], f"{where}: head state root differs from its block's"

    # Nothing seen before went away: old blocks keep their hashes, and the chain links up.
    newest_seen = max([len(record.hashes) - 1, *seen.heads, *(h for h, _ in seen.confirmed.values())])
    assert head["height"] >= newest_seen, f"{where}: head {head['height']} is below block {newest_seen} seen before"
    blocks = fetch_blocks(url, range(head["height"] + 1))
    for height, block in enumerate(blocks):
        assert block["height"] == height
        if height < len(record.hashes):
            assert block["hash"] == record.hashes[height], f"{where}: block {height} changed its hash"
        if height > 0:
            assert block["parent_hash"] == blocks[height - 1]["hash"], f"{where}: block {height} does not link"
    for height, block_hash in seen.heads.items():
        assert blocks[height]["hash"] == block_hash, f"{where}: head {height} seen before changed its hash"
    record.hashes = [b["hash"] for b in blocks]
    record.tx_count = sum(len(b["transactions"]) for b in blocks)

    # Every returned receipt is still there, in the same block.
    hashes = list(seen.confirmed)
    for start in range(0, len(hashes), BATCH):
        part = hashes[start : start + BATCH]
        answers = batch(url, [("tx_getReceipt", [h]) for h in part])
        for tx_hash, answer in zip(part, answers, strict=True):
            receipt = answer.get("result")
            assert receipt is not None, f"{where}: the receipt of {tx_hash} was returned before and is gone"
            height, block_hash = seen.confirmed[tx_hash]
            assert (receipt["block_height"], receipt["block_hash"]) == (height, block_hash), (where, tx_hash)
            assert record.hashes[height] == block_hash, (where, tx_hash)

    # State proofs verify against the state root of the block they were read at.
    for address, info in zip(accounts, read_accounts(url, accounts), strict=True):
        root = bytes.fromhex(info["state_root"][2:])
        value = None if info["value"] is None else bytes.fromhex(info["value"][2:])
        proof = Proof.decode(bytes.fromhex(info["proof"][2:]))
        assert verify_proof(root, b"a" + address, value, proof), f"{where}: proof of {address_hex(address)} fails"
        if info["height"] < len(record.hashes):
            block = blocks[info["height"]]
            assert block["state_root"] == info["state_root"], f"{where}: state root of block {info['height']}"


def read_accounts(url: str, accounts: list[bytes]) -> list[dict[str, Any]]:
    return [a["result"] for a in batch(url, [("state_getAccount", [address_hex(a)]) for a in accounts])]


def settled_balances(node: NodeProcess, accounts: list[bytes], timeout: float = 20) -> tuple[list[int], int]:
    """Balances of `accounts` all read at one height, once the mempool is empty; and that height."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.rpc.call("node_status")["mempool_txs"] == 0:
            infos = read_accounts(node.url, accounts)
            if len({i["height"] for i in infos}) == 1:
                return [int(i["balance"]) for i in infos], infos[0]["height"]
        time.sleep(0.1)
    raise AssertionError("the mempool did not drain")


@pytest.mark.timeout(240)
def test_kill_9_under_load_loses_nothing_committed(tmp_path: Path) -> None:
    seed = int(os.environ.get("AICHAIN_CRASH_SEED") or secrets.randbits(32))
    print(f"AICHAIN_CRASH_SEED={seed}")
    rng = random.Random(seed)
    started = time.monotonic()
    node = NodeProcess(tmp_path, block_time_ms=100)
    load: TransferLoad | None = None
    with node:
        genesis = node.rpc.call("node_genesis")
        supply = sum(int(str(v).removesuffix("units")) for v in genesis["allocations"].values())
        assert genesis["params"]["block_reward"] in (0, "0units")
        validator = bytes.fromhex(node.rpc.call("node_status")["validator"][2:])

        senders = [PrivateKey.generate() for _ in range(SENDERS)]
        receivers = [secrets.token_bytes(20) for _ in range(RECEIVERS)]
        accounts = [DEV_KEY.address, validator, *(k.address for k in senders), *receivers]
        first = pending_nonce(node, DEV_KEY.address)
        funding = [transfer(DEV_KEY, k.address, 1_000 * UNIT, first + i) for i, k in enumerate(senders)]
        answers = batch(node.url, [("tx_send", [raw(tx)]) for tx in funding])
        assert all("result" in a for a in answers), answers
        for tx in funding:
            assert node.rpc.call("tx_wait", "0x" + tx.hash.hex(), 30)["status"] == "success"

        record = ChainRecord()
        load = TransferLoad(node.url, senders, receivers, random.Random(rng.random()))
        load.start()
        try:
            for restart in range(1, KILLS + 1):
                time.sleep(rng.uniform(0.2, 1.5))
                assert not load.failures, load.failures[:5]
                node.kill()
                seen = load.snapshot()  # after the kill: nothing more can be confirmed by that process
                node.start()
                check_after_restart(node, record, seen, accounts, restart)
            # A clean stop and start keeps everything too.
            seen = load.snapshot()
            node.stop()
            node.start()
            check_after_restart(node, record, seen, accounts, KILLS + 1)
        finally:
            load.stop()

        assert not load.failures, load.failures[:5]
        final = load.snapshot()
        assert load.accepted >= 20 * KILLS, f"too little load: {load.accepted} transfers accepted"
        assert len(final.confirmed) >= 10 * KILLS, f"too few receipts seen: {len(final.confirmed)}"
        assert load.connection_errors >= 1  # the load did run into the kills

        balances, height = settled_balances(node, accounts)
        check_after_restart(node, record, final, accounts, KILLS + 2)
        assert sum(balances) == supply, f"supply not conserved: {sum(balances)} != {supply} at block {height}"
        committed = node.rpc.call("chain_head")["height"]
        tx_count = sum(len(b["transactions"]) for b in fetch_blocks(node.url, range(committed + 1)))
        assert balances[1] == FEE * tx_count, "the validator must hold exactly the fees of every committed transfer"
        nonces = [a["nonce"] for a in read_accounts(node.url, accounts)]
        assert sum(nonces) == tx_count, "every committed transfer was sent by one of the involved accounts"
    elapsed = time.monotonic() - started
    print(
        f"{KILLS} kills in {elapsed:.1f} s: {load.accepted} transfers accepted ({load.rejected_stale_nonce} refused "
        f"for a stale nonce after a kill), {len(final.confirmed)} receipts checked after every restart, "
        f"{tx_count} committed in {committed} blocks"
    )

"""No accepted transaction is forgotten: every hash `tx_send` returned is committed exactly once,
or `tx_get` reports it evicted with a reason (issue 18, finding 4), on real nodes.

The random traffic mixes senders, nonces sent one by one and in batches, replacements, fees and
gas limits of which many do not fit a block beside others (up to the whole block's gas), so the
proposer keeps skipping transactions while it builds blocks as they arrive (node/consensus/prebuild.py).
"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aichain_node import AsyncClient, TransactionEvicted
from core.keys import PrivateKey, address_hex
from core.transaction import MAX_TX_DATA, Transaction, TxKind
from tests.harness import NodeProcess, Rpc
from tests.integration.support import CHAIN_ID, DEV_KEY, TRANSFER_GAS, batch, pending_nonce, raw, transfer
from tests.integration.testnet_support import CHAIN_ID as TESTNET_CHAIN_ID
from tests.integration.testnet_support import Testnet, wait_for
from vm.gas import intrinsic_gas

RECIPIENT = b"\x42" * 20


def block_gas_limit(url: str) -> int:
    return int(Rpc(url).call("node_genesis")["params"]["block_gas_limit"])


def fund_all(url: str, chain_id: int, keys: list[PrivateKey], amount: int) -> None:
    """Pay each key `amount` from the dev account, and wait until all of it is committed."""
    rpc = Rpc(url)
    nonce = int(rpc.call("state_getAccount", address_hex(DEV_KEY.address))["pending_nonce"])
    txs = [transfer(DEV_KEY, k.address, amount, nonce + i, chain_id=chain_id) for i, k in enumerate(keys)]
    answers = batch(url, [("tx_send", [raw(tx)]) for tx in txs])
    assert all("result" in a for a in answers), answers
    assert rpc.call("tx_wait", "0x" + txs[-1].hash.hex(), 30) is not None


def pace(url: str, chain_id: int) -> int:
    """Send a transfer and return its block's height once committed: right after a block, with
    every block decided before it committed too (an idle node would wait the empty-block interval)."""
    rpc = Rpc(url)
    nonce = int(rpc.call("state_getAccount", address_hex(DEV_KEY.address))["pending_nonce"])
    receipt = rpc.call("tx_wait", rpc.send(transfer(DEV_KEY, RECIPIENT, 1, nonce, chain_id=chain_id)), 30)
    assert receipt is not None
    return int(receipt["block_height"])


# --- the reproducer ------------------------------------------------------------------------------


def test_a_sender_nonce_after_one_that_did_not_fit_is_committed(tmp_path: Path) -> None:
    """Within one block time: any transaction; S nonce 0 with the whole block's gas; S nonce 1."""
    node = NodeProcess(tmp_path, block_time_ms=1_000)
    with node:
        sender = PrivateKey.generate()
        fund_all(node.url, CHAIN_ID, [sender], 100 * 10**9)
        limit = block_gas_limit(node.url)
        pace(node.url, CHAIN_ID)  # the next block is due in one block time: all three arrive meanwhile
        first = transfer(DEV_KEY, RECIPIENT, 1, pending_nonce(node, DEV_KEY.address))
        big = transfer(sender, RECIPIENT, 1, 0, gas_limit=limit)
        after = transfer(sender, RECIPIENT, 1, 1)
        for tx in (first, big, after):
            assert node.rpc.send(tx) == "0x" + tx.hash.hex()
            time.sleep(0.15)  # each arrives in another prebuild step (every 50 ms)
            assert pending_nonce(node, sender.address) == (2 if tx is after else 1 if tx is big else 0)
        receipts = [node.rpc.call("tx_wait", "0x" + tx.hash.hex(), 20) for tx in (first, big, after)]
        assert all(r is not None and r["status"] == "success" for r in receipts), (receipts, node.log())
        assert receipts[1]["block_height"] < receipts[2]["block_height"]
        assert pending_nonce(node, sender.address) == 2
        statuses = [node.rpc.call("tx_get", "0x" + tx.hash.hex())["status"] for tx in (first, big, after)]
        assert statuses == ["committed"] * 3


def test_a_replaced_transaction_is_reported_evicted_and_waiting_for_it_stops(tmp_path: Path) -> None:
    """The sender replaces a nonce that could not fit yet: the replaced one is `evicted`, `replaced`,
    naming its replacement; `tx_wait` and the SDK's wait say so at once instead of timing out."""
    node = NodeProcess(tmp_path, block_time_ms=1_000)
    with node:
        sender = PrivateKey.generate()
        fund_all(node.url, CHAIN_ID, [sender], 100 * 10**9)
        limit = block_gas_limit(node.url)
        first = transfer(DEV_KEY, RECIPIENT, 1, pending_nonce(node, DEV_KEY.address))
        big = transfer(sender, RECIPIENT, 1, 0, gas_limit=limit, gas_price=1)
        cheaper = transfer(sender, RECIPIENT, 2, 0, gas_price=2)  # the same nonce, 21,000 gas, a higher price
        after = transfer(sender, RECIPIENT, 1, 1)
        answers = batch(node.url, [("tx_send", [raw(tx)]) for tx in (first, big, cheaper, after)])
        assert all("result" in a for a in answers), answers
        big_hash = "0x" + big.hash.hex()
        started = time.monotonic()
        with pytest.raises(TransactionEvicted) as caught:
            asyncio.run(_sdk_wait(node.url, big_hash))
        assert time.monotonic() - started < 10
        assert caught.value.data["reason"] == "replaced" and caught.value.data["by"] == "0x" + cheaper.hash.hex()
        assert "replaced by 0x" + cheaper.hash.hex() in str(caught.value)
        report = node.rpc.call("tx_get", big_hash)
        assert report["status"] == "evicted" and report["reason"] == "replaced" and report["pending"] is False
        assert report["by"] == "0x" + cheaper.hash.hex() and report["nonce"] == 0
        assert report["from"] == address_hex(sender.address) and report["evicted_at_ms"] > 0
        for tx in (first, cheaper, after):
            assert node.rpc.call("tx_wait", "0x" + tx.hash.hex(), 20) is not None
        assert node.rpc.call("tx_get", big_hash)["status"] == "evicted"
        shown = node.cli("tx", "get", big_hash, check=False)  # the CLI says why, and exits 1
        assert shown.returncode == 1 and "evicted uncommitted: replaced (by 0x" + cheaper.hash.hex() in shown.stdout
        metrics = _metrics(node.url)
        assert 'aichain_transactions_evicted_total{reason="replaced"} 1.0' in metrics


def test_more_transaction_bytes_than_one_proposal_can_carry_all_commit(tmp_path: Path) -> None:
    """130 transactions of the largest size (17 MB) arrive within one block time: they fit one
    block's gas but not one 16 MiB P2P frame. Before, the proposal could not be broadcast and the
    node's consensus stopped for good; now blocks take what fits, the rest waits."""
    node = NodeProcess(tmp_path, block_time_ms=1_500)
    with node:
        sender = PrivateKey.generate()
        fund_all(node.url, CHAIN_ID, [sender], 1_000 * 10**9)
        data = bytes(MAX_TX_DATA)
        txs = [
            Transaction(
                CHAIN_ID, sender.public_key, n, intrinsic_gas(data), 1, TxKind.TRANSFER, RECIPIENT, 1, data
            ).signed_by(sender)
            for n in range(130)
        ]
        first_height = pace(node.url, CHAIN_ID) + 1
        for start in range(0, len(txs), 15):  # 15 hex-encoded transactions: under the 5 MiB body limit
            answers = batch(node.url, [("tx_send", [raw(tx)]) for tx in txs[start : start + 15]], timeout=60)
            assert all("result" in a for a in answers), answers
        receipt = node.rpc.call("tx_wait", "0x" + txs[-1].hash.hex(), 30)
        assert receipt is not None, node.log()
        blocks = [
            node.rpc.call("chain_getBlockByHeight", h, False)["transactions"]
            for h in range(first_height, receipt["block_height"] + 1)
        ]
        assert sorted(h for b in blocks for h in b) == sorted("0x" + tx.hash.hex() for tx in txs)
        assert len([b for b in blocks if b]) >= 3  # 8 MiB of transactions in a block at most
        assert pending_nonce(node, sender.address) == 130
        assert "internal error" not in node.log()


async def _sdk_wait(url: str, tx_hash: str) -> dict[str, Any]:
    async with AsyncClient(url) as client:
        return await client.wait(tx_hash, timeout=20)


def _metrics(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        return str(response.read().decode())


# --- random traffic ------------------------------------------------------------------------------


@dataclass
class Sent:
    tx: Transaction
    url: str  # the node that accepted it


@dataclass
class Traffic:
    """Random transfers from `senders` to the nodes at `urls`, remembering what each node accepted
    and checking, after each send, that the sender's pending nonce on that node did not fall back."""

    urls: list[str]
    chain_id: int
    senders: list[PrivateKey]
    gas_limit: int
    rng: random.Random
    accepted: dict[bytes, Sent] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    _pending: dict[tuple[str, bytes], int] = field(default_factory=dict)
    _price: dict[tuple[bytes, int], int] = field(default_factory=dict)  # (sender, nonce) -> last gas price sent

    def gas(self) -> int:
        return self.rng.choice(
            [TRANSFER_GAS] * 6 + [200_000, self.gas_limit // 3, self.gas_limit // 2 + 1, self.gas_limit]
        )

    def nonces(self, url: str, sender: PrivateKey) -> tuple[int, int]:
        """(account nonce, pending nonce) on the node at `url`; the pending one must not have fallen back."""
        account = Rpc(url).call("state_getAccount", address_hex(sender.address))
        now = int(account["pending_nonce"])
        before = self._pending.get((url, sender.address), 0)
        assert now >= before, f"the pending nonce of {address_hex(sender.address)} on {url} fell back {before} -> {now}"
        self._pending[(url, sender.address)] = now
        return int(account["nonce"]), now

    def step(self) -> None:
        rng = self.rng
        url = rng.choice(self.urls)
        sender = rng.choice(self.senders)
        account_nonce, pending = self.nonces(url, sender)
        txs: list[Transaction] = []
        if rng.random() < 0.2 and pending > account_nonce:  # replace a pending nonce
            nonce = rng.randrange(account_nonce, pending)
            old = self._price.get((sender.address, nonce), 1)
            price = old + rng.choice([1, max(1, old // 10), old])  # at times too little of a bump: refused
            txs.append(
                transfer(
                    sender,
                    RECIPIENT,
                    rng.randrange(1, 100),
                    nonce,
                    gas_limit=self.gas(),
                    gas_price=price,
                    chain_id=self.chain_id,
                )
            )
        else:
            for i in range(rng.choice([1, 1, 1, 2, 3])):  # one, or a few consecutive nonces in a batch
                txs.append(
                    transfer(
                        sender,
                        RECIPIENT,
                        rng.randrange(1, 100),
                        pending + i,
                        gas_limit=self.gas(),
                        gas_price=rng.randrange(1, 6),
                        chain_id=self.chain_id,
                    )
                )
        answers = batch(url, [("tx_send", [raw(tx)]) for tx in txs])
        for tx, answer in zip(txs, answers, strict=True):
            if "result" in answer:
                self.accepted[tx.hash] = Sent(tx, url)
                self._price[(sender.address, tx.nonce)] = tx.gas_price
            else:
                self.refused[str(answer["error"]["code"])] += 1
        self.nonces(url, sender)

    def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.step()
            time.sleep(self.rng.choice([0, 0.01, 0.03, 0.06, 0.12]))

    def settle(self, timeout: float) -> Counter[str]:
        """Wait until no accepted transaction is pending on the node that accepted it (none is ever
        unknown to it), then two blocks more; then check what became of each: committed exactly
        once, or evicted with a reason, never both. No pending nonce fell back meanwhile."""
        left = dict(self.accepted)

        def settled() -> bool:
            for tx_hash, sent in list(left.items()):
                report = Rpc(sent.url).call("tx_get", "0x" + tx_hash.hex())
                assert report is not None, f"0x{tx_hash.hex()} was accepted by {sent.url} and is forgotten"
                if report["status"] != "pending":
                    del left[tx_hash]
            for url in self.urls:
                for sender in self.senders:
                    self.nonces(url, sender)
            return not left

        wait_for(settled, timeout, "the accepted transactions to be committed or evicted", interval=0.5)
        height = pace(self.urls[0], self.chain_id)  # a block being decided may hold one replaced here
        for url in self.urls:
            Rpc(url).call("chain_waitForHeight", height, 30)
        url = self.urls[0]
        head = int(Rpc(url).call("chain_head")["height"])
        included: Counter[str] = Counter()
        for height in range(1, head + 1):
            included.update(Rpc(url).call("chain_getBlockByHeight", height, False)["transactions"])
        mine = {"0x" + h.hex() for h in self.accepted}
        counts: Counter[str] = Counter()
        for tx_hash, sent in self.accepted.items():
            text = "0x" + tx_hash.hex()
            report = Rpc(sent.url).call("tx_get", text)
            assert report is not None, f"{text} was accepted by {sent.url} and is forgotten"
            if report["status"] == "committed":
                assert included[text] == 1, f"{text} is in {included[text]} blocks"
                counts["committed"] += 1
                continue
            assert report["status"] == "evicted" and included[text] == 0, (report, included[text])
            # This traffic is all payable and within the pool's bounds: a transaction leaves
            # uncommitted only because the same nonce was sent again.
            assert report["reason"] in ("replaced", "nonce_used"), report
            assert report["by"] in mine and report["message"], report
            counts[f"evicted {report['reason']}"] += 1
        return counts


def run_traffic(urls: list[str], chain_id: int, seed: int, seconds: float) -> Counter[str]:
    rng = random.Random(seed)
    senders = [PrivateKey.from_seed(rng.randbytes(32)) for _ in range(4)]
    fund_all(urls[0], chain_id, senders, 1_000 * 10**9)
    traffic = Traffic(urls, chain_id, senders, block_gas_limit(urls[0]), rng)
    traffic.run(seconds)
    counts = traffic.settle(timeout=60 + seconds * 3)
    assert counts["committed"] > 20 and counts["evicted replaced"] + counts["evicted nonce_used"] > 0, counts
    return counts


def test_random_traffic_on_a_dev_node_commits_or_explains_every_accepted_transaction(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, block_time_ms=300)
    with node:
        run_traffic([node.url], CHAIN_ID, seed=1, seconds=4)


def test_random_traffic_on_four_validators_commits_or_explains_every_accepted_transaction(tmp_path: Path) -> None:
    """Each transaction goes to a random validator: the proposer of a block holds it by gossip."""
    with Testnet(tmp_path / "net", validators=4, block_time_ms=300) as net:
        run_traffic([n.rpc_url for n in net.nodes], TESTNET_CHAIN_ID, seed=7, seconds=3)


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(10, 14))
def test_random_traffic_soak_on_a_dev_node(tmp_path: Path, seed: int) -> None:
    node = NodeProcess(tmp_path, block_time_ms=300)
    with node:
        run_traffic([node.url], CHAIN_ID, seed, seconds=90)


@pytest.mark.soak
def test_random_traffic_soak_on_four_validators(tmp_path: Path) -> None:
    with Testnet(tmp_path / "net", validators=4, block_time_ms=300) as net:
        run_traffic([n.rpc_url for n in net.nodes], TESTNET_CHAIN_ID, seed=70, seconds=120)

"""A 4-validator testnet of real processes: agreement, one validator down, two down (no quorum)."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from pathlib import Path
from typing import Any

from core.errors import AlreadyKnown, NonceTooLow
from core.keys import PrivateKey, address_hex
from tests.integration.support import DEV_KEY, transfer
from tests.integration.testnet_support import CHAIN_ID, Testnet, wait_for

FUNDS = 10**12


def _pending_nonce(net: Testnet, i: int, key: PrivateKey) -> int:
    return int(net.call(i, "state_getAccount", address_hex(key.address))["pending_nonce"])


def _wait_receipt(net: Testnet, i: int, tx_hash: str) -> dict:
    receipt = net.call(i, "tx_wait", tx_hash, 30)
    assert receipt is not None, f"{tx_hash} not committed on node{i} within 30 s"
    assert receipt["status"] == "success", receipt
    return receipt


def test_four_validators_finalize_the_same_blocks_and_include_a_transaction_once(tmp_path: Path) -> None:
    with Testnet(tmp_path, validators=4) as net:
        net.wait_height(range(4), 2, 30)
        # Four senders, funded through node0.
        senders = [PrivateKey.generate() for _ in range(4)]
        nonce = _pending_nonce(net, 0, DEV_KEY)
        funding = [transfer(DEV_KEY, k.address, FUNDS, nonce + n, chain_id=CHAIN_ID) for n, k in enumerate(senders)]
        for tx in funding:
            net.rpc(0).send(tx)
        funded = _wait_receipt(net, 0, "0x" + funding[-1].hash.hex())
        net.wait_height(range(4), funded["block_height"], 30)  # every node knows the senders' funds
        # Each sends one transfer to a different node; the same transaction also reaches a second node.
        recipient = PrivateKey.generate().address
        txs = [transfer(k, recipient, 1000 + i, 0, chain_id=CHAIN_ID) for i, k in enumerate(senders)]
        for i, tx in enumerate(txs):
            net.rpc(i).send(tx)
        for i, tx in enumerate(txs):
            with contextlib.suppress(AlreadyKnown, NonceTooLow):  # known there (gossip was faster), or committed
                net.rpc((i + 1) % 4).send(tx)
        receipts = [_wait_receipt(net, (i + 2) % 4, "0x" + tx.hash.hex()) for i, tx in enumerate(txs)]
        top = max(r["block_height"] for r in receipts) + 2
        net.wait_height(range(4), top, 30)

        compared = net.assert_same_chain(range(4))
        assert compared >= top
        wanted = {"0x" + tx.hash.hex() for tx in txs + funding}
        for i in range(4):
            seen = Counter(h for block in net.blocks(i, 1, compared) for h in block["transactions"] if h in wanted)
            assert seen == dict.fromkeys(wanted, 1), f"node{i}: {seen}"
            account = net.call(i, "state_getAccount", address_hex(recipient))
            assert int(account["balance"]) == sum(1000 + n for n in range(4))
        # Every node answers with the receipt in the same block.
        for tx, receipt in zip(txs, receipts, strict=True):
            for i in range(4):
                mine = net.call(i, "tx_getReceipt", "0x" + tx.hash.hex())
                assert (mine["block_height"], mine["block_hash"]) == (receipt["block_height"], receipt["block_hash"])


def _signed_after(net: Testnet, observers: list[int], address: str, after: int) -> int | None:
    """The first height above `after` whose commit (as some observer stored it) `address` signed."""
    top = min(net.height(i) for i in observers)
    for height in range(after + 1, top + 1):
        for i in observers:
            if address in net.commit_signers(i, height):
                return height
    return None


def test_one_validator_killed_the_others_finalize_and_it_rejoins_and_votes(tmp_path: Path) -> None:
    with Testnet(tmp_path, validators=4) as net:
        net.wait_height(range(4), 2, 30)
        net.kill(3)
        killed_at = max(net.heights(range(3)).values())
        net.wait_height(range(3), killed_at + 4, 30)  # a quarter of the heights wait out node3's propose timeout

        net.start(3)
        head = max(net.heights(range(3)).values())
        wait_for(lambda: net.height(3) >= head, 20, f"node3 to sync to height {head}")
        me = net.validator_address(3)
        observers = [0, 1, 2]
        checked = head
        deadline = time.monotonic() + 30
        signed_at = None
        while signed_at is None:
            assert time.monotonic() < deadline, "node3 signs no commit after its restart"
            signed_at = _signed_after(net, observers, me, checked)
            checked = max(checked, min(net.height(i) for i in observers) - 1)
            time.sleep(0.2)
        assert signed_at > head
        net.wait_height(range(4), signed_at + 1, 20)
        net.assert_same_chain(range(4))


def test_two_validators_killed_nothing_finalizes_then_it_resumes_after_restart(tmp_path: Path) -> None:
    with Testnet(tmp_path, validators=4) as net:
        net.wait_height(range(4), 2, 30)
        net.kill(2, 3)
        # Votes already in flight may still finalize the height being decided; after that, nothing.
        time.sleep(1.0)
        stalled = net.heights([0, 1])
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            assert net.heights([0, 1]) == stalled, f"a height was finalized without a quorum: {stalled}"
            time.sleep(0.2)
        net.assert_same_chain([0, 1], up_to=min(stalled.values()))
        # An operator asks a live node why nothing is finalized: the two dead validators' votes are missing.
        dead = {net.validator_address(2), net.validator_address(3)}
        live = {net.validator_address(0), net.validator_address(1)}

        def live_voted_dead_missing() -> dict[str, Any] | None:
            status = net.call(0, "consensus_status")
            prevotes = status["prevotes"]
            return status if set(prevotes["missing"]) == dead and set(prevotes["votes"]) == live else None

        status = wait_for(live_voted_dead_missing, 10, "consensus_status naming the dead validators as missing")
        assert status["height"] == stalled[0] + 1, status
        assert status["prevotes"]["power"] * 3 <= 2 * status["prevotes"]["of"], status
        assert status["signer"] == net.validator_address(0)

        net.start(2, 3)
        restarted = time.monotonic()
        target = max(stalled.values()) + 1
        net.wait_height([0, 1, 2, 3], target, 10)
        print(f"finalization resumed {time.monotonic() - restarted:.1f} s after the restart")
        net.wait_height(range(4), target + 3, 20)
        net.assert_same_chain(range(4))

"""Validators added and removed by governance votes (the CLI) while the chain runs."""

from __future__ import annotations

import json
from pathlib import Path

from core.keys import PrivateKey, address_hex, read_key_file, write_key_file
from tests.integration.support import DEV_KEY, transfer
from tests.integration.testnet_support import CHAIN_ID, Testnet, finish, wait_for


def _make_validator_node(net: Testnet, i: int) -> PrivateKey:
    """Give full node i a validator key (it starts as a validator the set does not list yet)."""
    node = net.nodes[i]
    key = PrivateKey.generate()
    write_key_file(node.dir / "validator.pem", key, None)
    config = node.dir / "node.toml"
    config.write_text(f'validator_key = "{node.dir / "validator.pem"}"\n' + config.read_text())
    return key


def _key(net: Testnet, i: int) -> PrivateKey:
    return read_key_file(net.validator_key(i), None)


def _fund(net: Testnet, addresses: list[bytes]) -> None:
    """Votes are transactions: their senders pay gas."""
    nonce = int(net.call(0, "state_getAccount", address_hex(DEV_KEY.address))["pending_nonce"])
    txs = [transfer(DEV_KEY, a, 10**12, nonce + n, chain_id=CHAIN_ID) for n, a in enumerate(addresses)]
    for tx in txs:
        net.rpc(0).send(tx)
    receipt = net.call(0, "tx_wait", "0x" + txs[-1].hash.hex(), 30)
    assert receipt is not None and receipt["status"] == "success", receipt


def _vote(net: Testnet, action: str, public_key: str, voters: list[int]) -> int:
    """Each voter votes through its own node's RPC, all at once; the height the change takes effect."""
    procs = [net.cli(i, "validator", action, public_key, "--from", str(net.validator_key(i)), "--json") for i in voters]
    answers = [json.loads(finish(p)) for p in procs]
    events = [e for a in answers for e in a["receipt"]["events"]]
    scheduled = [e["fields"]["at_height"] for e in events if e["name"] == "ValidatorChangeScheduled"]
    assert len(scheduled) == 1, answers
    return int(scheduled[0])


def _first_signed(net: Testnet, observers: list[int], address: str, after: int) -> int | None:
    top = min(net.height(i) for i in observers)
    for height in range(after + 1, top + 1):
        if any(address in net.commit_signers(i, height) for i in observers):
            return height
    return None


def test_a_validator_is_added_then_another_removed_by_governance_votes(tmp_path: Path) -> None:
    with Testnet(tmp_path, validators=4, full_nodes=1) as net:
        new_key = _make_validator_node(net, 4)
        net.start(4)
        newcomer = address_hex(new_key.address).lower()
        leaver = net.validator_address(3)
        net.wait_height(range(5), 2, 30)
        assert net.call(4, "node_status")["validator"].lower() == newcomer
        assert newcomer not in net.validator_addresses(0)
        _fund(net, [new_key.address] + [_key(net, i).address for i in range(4)])

        # 3 of 4 validators (more than 2/3 of the power) vote to add node4's key.
        effective = _vote(net, "propose-add", "0x" + new_key.public_key.hex(), [0, 1, 2])
        net.wait_height(range(5), effective, 30)
        for i in range(5):
            validators = net.validator_addresses(i)
            assert newcomer in validators and len(validators) == 5, (i, validators)
        # Its signatures appear in the commits of the heights it helps decide.
        signed = wait_for(
            lambda: _first_signed(net, [0, 1, 2, 3, 4], newcomer, effective - 1),
            30,
            "a commit signed by the new validator",
        )
        assert signed >= effective

        # Now 4 of 5 (more than 2/3) vote node3 out, one of them the newcomer.
        effective = _vote(net, "propose-remove", "0x" + _key(net, 3).public_key.hex(), [0, 1, 2, 4])
        net.wait_height([0, 1, 2, 4], effective, 30)
        for i in range(5):
            wait_for(lambda i=i: net.height(i) >= effective, 20, f"node{i} at height {effective}")
            validators = net.validator_addresses(i)
            assert leaver not in validators and newcomer in validators and len(validators) == 4, (i, validators)
        # The four remaining validators keep finalizing; node3's signature is in no later commit.
        net.wait_height(range(5), effective + 5, 30)
        compared = net.assert_same_chain(range(5))
        for height in range(effective, compared + 1):
            signers = net.commit_signers(0, height)
            assert leaver not in signers and len(signers) >= 3, (height, signers)

"""Contracts on a running node: deploy and call by transaction, read-only calls, storage with proofs, events."""

from __future__ import annotations

from pathlib import Path

from aichain_node import NodeError
from aichain_node.errors import ContractCallFailed
from core.contract_values import encode_call, encode_value
from core.transaction import Transaction, TxKind
from storage.state_proof import Proof, verify_proof
from tests.harness import NodeProcess
from tests.integration.support import DEV_KEY, MIN_GAS_PRICE, pending_nonce
from tests.vm.test_contract_vm import TOKEN
from vm.compiler import compile_contract
from vm.contract_tx import encode_deploy
from vm.contracts import contract_address

ALICE = b"\x0a" * 20


def send(node: NodeProcess, kind: TxKind, to: bytes, data: bytes) -> dict:
    nonce = pending_nonce(node, DEV_KEY.address)
    tx = Transaction(7777, DEV_KEY.public_key, nonce, 5_000_000, MIN_GAS_PRICE, kind, to, 0, data).signed_by(DEV_KEY)
    tx_hash = node.rpc.send(tx)
    receipt = node.rpc.call("tx_wait", tx_hash, 30)
    assert receipt is not None
    return receipt


def test_deploy_call_read_prove_and_list_events(dev_node: NodeProcess) -> None:
    nonce = pending_nonce(dev_node, DEV_KEY.address)
    receipt = send(dev_node, TxKind.DEPLOY, b"", encode_deploy(compile_contract(TOKEN), [1000]))
    assert receipt["status"] == "success", receipt
    token = contract_address(DEV_KEY.address, nonce)
    address = "0x" + token.hex()
    receipt = send(dev_node, TxKind.CALL, token, encode_call("send", [ALICE, 25]))
    assert receipt["status"] == "success", receipt

    answer = dev_node.rpc.call("contract_call", address, "balance_of", ["0x" + ALICE.hex()])
    assert answer["result"] == 25 and answer["gas_used"] > 0

    stored = dev_node.rpc.call("contract_getStorage", address, "balances", "0x" + ALICE.hex())
    assert stored["value"] == 25 and stored["present"] is True
    proof = Proof.decode(bytes.fromhex(stored["proof"][2:]))
    root, key = bytes.fromhex(stored["state_root"][2:]), bytes.fromhex(stored["key"][2:])
    assert verify_proof(root, key, encode_value(25), proof)
    assert not verify_proof(root, key, encode_value(26), proof)
    missing = dev_node.rpc.call("contract_getStorage", address, "balances", "0x" + "0b" * 20)
    assert missing == missing | {"value": 0, "present": False}

    events = dev_node.rpc.call("contract_getEvents", address, 1, None, "Sent")
    assert [e["fields"]["amount"] for e in events] == [25]
    assert events[0]["fields"]["to"] == "0x" + ALICE.hex()

    failing = send(dev_node, TxKind.CALL, token, encode_call("send", [ALICE, 10**9]))
    assert failing["status"] == "failed" and "insufficient balance" in failing["error"]
    try:
        dev_node.rpc.call("contract_call", address, "send", ["0x" + ALICE.hex(), 1], "0x" + DEV_KEY.address.hex())
        raise AssertionError("a read-only call that writes must fail")
    except ContractCallFailed as exc:
        assert exc.rpc_code == -32094 and "may not change storage" in exc.message


def test_the_contract_cli_compiles_deploys_calls_and_lists_events(dev_node: NodeProcess, tmp_path: Path) -> None:
    source = tmp_path / "token.py"
    source.write_text(TOKEN)
    compiled = dev_node.cli_json("contract", "compile", str(source))
    assert compiled["code_hash"].startswith("0x") and "send" in [f["name"] for f in compiled["functions"]]
    deployed = dev_node.cli_json("contract", "deploy", str(source), "500", "--from", "dev")
    assert deployed["receipt"]["status"] == "success"
    address = deployed["address"]
    sent = dev_node.cli_json("contract", "call", address, "send", "0x" + ALICE.hex(), "7", "--send", "--from", "dev")
    assert sent["status"] == "success"
    assert dev_node.cli_json("contract", "call", address, "balance_of", "0x" + ALICE.hex())["result"] == 7
    assert [e["fields"]["amount"] for e in dev_node.cli_json("contract", "events", address, "--name", "Sent")] == [7]
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    result = dev_node.cli("contract", "compile", str(bad), check=False)
    assert result.returncode == 1 and "line 1: import is not allowed" in result.stderr


def test_reads_run_against_the_head_and_refuse_older_blocks(dev_node: NodeProcess) -> None:
    models = "0x" + "00" * 19 + "a1"
    dev_node.rpc.call("chain_waitForHeight", 2, 10)
    head = dev_node.rpc.call("chain_head")["height"]
    answer = dev_node.rpc.call("contract_call", models, "owners_of_all", [[]], "0x" + "00" * 20, "latest")
    assert answer["result"] == [] and answer["height"] >= head
    for call in (
        ("contract_call", models, "owners_of_all", [[]], "0x" + "00" * 20, 1),
        ("contract_getStorage", models, "version_count", "m", "earliest"),
    ):
        try:
            dev_node.rpc.call(*call)
            raise AssertionError("an old block's state must be refused")
        except NodeError as exc:  # -32000: the generic code, which no type of its own can claim
            assert exc.rpc_code == -32000 and "keeps the latest state only" in exc.message

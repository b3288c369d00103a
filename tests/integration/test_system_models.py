"""The models system contract through real transactions on a running node: lineage, ownership, shares."""

from __future__ import annotations

from typing import Any

from core.contract_values import encode_call
from core.keys import PrivateKey
from core.transaction import Transaction, TxKind
from tests.harness import NodeProcess
from tests.integration.support import DEV_KEY, MIN_GAS_PRICE, fund, pending_nonce
from vm.system import KEYS, LICENSING, MODELS

ARTIFACT = b"\x11" * 32
DATASET = b"\x22" * 32


def send_to(contract: bytes, node: NodeProcess, key: PrivateKey, function: str, *args: Any) -> dict[str, Any]:
    """Call a system contract by transaction; its receipt."""
    nonce = pending_nonce(node, key.address)
    tx = Transaction(
        7777,
        key.public_key,
        nonce,
        5_000_000,
        MIN_GAS_PRICE,
        TxKind.CALL,
        contract,
        0,
        encode_call(function, list(args)),
    ).signed_by(key)
    receipt = node.rpc.call("tx_wait", node.rpc.send(tx), 30)
    assert receipt is not None
    return receipt


def call(node: NodeProcess, key: PrivateKey, function: str, *args: Any) -> dict[str, Any]:
    return send_to(MODELS, node, key, function, *args)


def call_keys(node: NodeProcess, key: PrivateKey, function: str, *args: Any) -> dict[str, Any]:
    return send_to(KEYS, node, key, function, *args)


def read(node: NodeProcess, function: str, *args: Any) -> Any:
    return node.rpc.call("contract_call", "0x" + MODELS.hex(), function, list(args))["result"]


def test_lineage_is_enforced_and_only_owners_publish(dev_node: NodeProcess) -> None:
    dev, other = DEV_KEY, fund(dev_node, 10**12)
    split = [[dev.address, 6_000], [other.address, 4_000]]
    bad_split = call(dev_node, dev, "register_model", "m", ARTIFACT, "onnx", b"", [[dev.address, 9_999]])
    assert bad_split["status"] == "failed" and "sum to 10000" in bad_split["error"]
    assert call(dev_node, dev, "register_model", "base", ARTIFACT, "onnx", b"", split)["status"] == "success"

    missing_dataset = call(dev_node, dev, "publish_version", "base", ARTIFACT, [["base", 1]], [DATASET])
    assert missing_dataset["status"] == "failed" and "dataset does not exist" in missing_dataset["error"]
    missing_parent = call(dev_node, dev, "publish_version", "base", ARTIFACT, [["base", 7]], [])
    assert missing_parent["status"] == "failed" and "parent version does not exist" in missing_parent["error"]

    assert call(dev_node, dev, "register_dataset", DATASET, [[dev.address, 10_000]], "CC-BY-4.0")["status"] == "success"
    published = call(dev_node, dev, "publish_version", "base", b"\x33" * 32, [["base", 1]], [DATASET])
    assert published["status"] == "success", published
    assert [e["name"] for e in published["events"]] == ["VersionPublished"]

    outsider = fund(dev_node, 10**12)
    refused = call(dev_node, outsider, "publish_version", "base", ARTIFACT, [], [])
    assert refused["status"] == "failed" and "only the model's owners" in refused["error"]

    assert (
        call(dev_node, other, "register_model", "child", b"\x44" * 32, "onnx", b"", [[other.address, 10_000]])["status"]
        == "success"
    )
    assert call(dev_node, other, "publish_version", "child", b"\x55" * 32, [["base", 2]], [])["status"] == "success"
    assert read(dev_node, "lineage", "child", 2) == [["base", 2], ["base", 1]]
    assert read(dev_node, "model_info", "base")[3] == 2
    owners = [["0x" + dev.address.hex(), 6_000], ["0x" + other.address.hex(), 4_000]]
    assert read(dev_node, "owners_of", "base") == owners


def test_keys_and_envelopes_only_from_a_models_owners_to_a_published_key(dev_node: NodeProcess) -> None:
    owner, licensee = DEV_KEY, fund(dev_node, 10**12)
    assert (
        call(dev_node, owner, "register_model", "sealed", ARTIFACT, "onnx", b"", [[owner.address, 10_000]])["status"]
        == "success"
    )
    envelope = b"\x77" * 80
    early = call_keys(dev_node, owner, "post_envelope", "sealed", 1, licensee.address, envelope)
    assert early["status"] == "failed" and "has not published an encryption key" in early["error"]
    assert call_keys(dev_node, licensee, "publish_key", b"\x99" * 31)["status"] == "failed"
    assert call_keys(dev_node, licensee, "publish_key", b"\x99" * 32)["status"] == "success"
    stranger = call_keys(dev_node, licensee, "post_envelope", "sealed", 1, licensee.address, envelope)
    assert stranger["status"] == "failed" and "only the model's owners" in stranger["error"]
    no_version = call_keys(dev_node, owner, "post_envelope", "sealed", 9, licensee.address, envelope)
    assert no_version["status"] == "failed" and "no such version" in no_version["error"]
    unlicensed = call_keys(dev_node, owner, "post_envelope", "sealed", 1, licensee.address, envelope)
    assert unlicensed["status"] == "failed" and "holds no valid licence" in unlicensed["error"]
    assert send_to(LICENSING, dev_node, owner, "make_offer", "sealed", 1, 0, 0, 0, 0, [], 0)["status"] == "success"
    assert send_to(LICENSING, dev_node, licensee, "buy", "sealed", 1)["status"] == "success"
    assert call_keys(dev_node, owner, "post_envelope", "sealed", 1, licensee.address, envelope)["status"] == "success"
    again = call_keys(dev_node, owner, "post_envelope", "sealed", 1, licensee.address, envelope)
    assert again["status"] == "failed" and "already posted" in again["error"]
    keys = "0x" + KEYS.hex()
    got = dev_node.rpc.call("contract_call", keys, "envelope_for", ["sealed", 1, "0x" + licensee.address.hex()])
    assert got["result"] == "0x" + envelope.hex()
    published = dev_node.rpc.call("contract_call", keys, "key_of", ["0x" + licensee.address.hex()])
    assert published["result"] == "0x" + "99" * 32

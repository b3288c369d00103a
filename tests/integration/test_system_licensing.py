"""The licensing and payments system contracts through real transactions on a running node.

Royalties split exactly and no unit is lost or created; an expired licence is not valid;
per-use metering charges exactly; only a model's owners publish versions or make offers.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from core.contract_values import encode_call
from core.keys import PrivateKey
from core.transaction import Transaction, TxKind
from node.devnet import DEV_BALANCE
from tests.harness import CLI, NodeProcess
from tests.integration.support import CHAIN_ID, DEV_KEY, MIN_GAS_PRICE, balance, fund, pending_nonce
from tests.integration.test_system_models import call as call_models
from tests.integration.test_system_models import send_to
from vm.system import KEYS, LICENSING, MODELS, PAYMENTS
from vm.system.receipts import sign_usage_receipt

ARTIFACT = b"\x11" * 32
GAS = 5_000_000


def buy(node: NodeProcess, key: PrivateKey, model: str, offer: int, value: int) -> dict[str, Any]:
    nonce = pending_nonce(node, key.address)
    tx = Transaction(
        CHAIN_ID,
        key.public_key,
        nonce,
        GAS,
        MIN_GAS_PRICE,
        TxKind.CALL,
        LICENSING,
        value,
        encode_call("buy", [model, offer]),
    ).signed_by(key)
    receipt = node.rpc.call("tx_wait", node.rpc.send(tx), 30)
    assert receipt is not None
    return receipt


def register(node: NodeProcess, key: PrivateKey, name: str, owners: list[list[Any]]) -> None:
    receipt = call_models(node, key, "register_model", name, ARTIFACT, "onnx", b"", owners)
    assert receipt["status"] == "success", receipt


def licensing(node: NodeProcess, key: PrivateKey, function: str, *args: Any) -> dict[str, Any]:
    return send_to(LICENSING, node, key, function, *args)


def read(node: NodeProcess, function: str, *args: Any) -> Any:
    args_json = [("0x" + a.hex()) if isinstance(a, bytes) else a for a in args]
    return node.rpc.call("contract_call", "0x" + LICENSING.hex(), function, args_json)["result"]


def validator_address(node: NodeProcess) -> bytes:
    return bytes.fromhex(node.rpc.call("chain_head")["proposer"][2:])  # the only validator


def test_royalties_split_exactly_and_the_supply_stays_constant(dev_node: NodeProcess) -> None:
    owners = [fund(dev_node, 10**12) for _ in range(3)]
    upstream, buyer = fund(dev_node, 10**12), fund(dev_node, 10**12)
    a, b, c = owners
    base_owner = [[upstream.address, 10_000]]
    assert (
        call_models(dev_node, upstream, "register_model", "base", ARTIFACT, "onnx", b"", base_owner)["status"]
        == "success"
    )
    split = [[a.address, 5_000], [b.address, 3_000], [c.address, 2_000]]
    register(dev_node, a, "tuned", split)
    published = call_models(dev_node, b, "publish_version", "tuned", b"\x12" * 32, [["base", 1]], [])
    assert published["status"] == "success", published

    refused = licensing(dev_node, upstream, "make_offer", "tuned", 2, 10**6, 3600, 0, 0, [], 1_000)
    assert refused["status"] == "failed" and "only the model's owners" in refused["error"]
    made = licensing(dev_node, c, "make_offer", "tuned", 2, 1_000_000, 3600, 0, 0, [], 1_500)
    assert made["status"] == "success" and made["events"][0]["name"] == "OfferMade", made

    everyone = [
        DEV_KEY.address,
        *(k.address for k in (*owners, upstream, buyer)),
        validator_address(dev_node),
        MODELS,
        LICENSING,
        PAYMENTS,
        KEYS,
    ]
    before = {who: balance(dev_node, who) for who in everyone}
    receipt = buy(dev_node, buyer, "tuned", 1, 1_000_000)
    assert receipt["status"] == "success", receipt
    after = {who: balance(dev_node, who) for who in everyone}
    fee = receipt["gas_used"] * MIN_GAS_PRICE
    # 85% to the owners by 50/30/20, 15% upstream: exact, nothing left in the contracts
    assert [after[k.address] - before[k.address] for k in (a, b, c, upstream)] == [425_000, 255_000, 170_000, 150_000]
    assert before[buyer.address] - after[buyer.address] == 1_000_000 + fee
    assert all(after[x] == before[x] == 0 for x in (LICENSING, PAYMENTS))
    # every account with a balance is here: fees went to the validator, no unit was made or lost
    assert sum(after.values()) == sum(before.values()) == DEV_BALANCE
    assert read(dev_node, "is_licensed", buyer.address, "tuned", 2) is True
    assert read(dev_node, "is_licensed", upstream.address, "tuned", 2) is False

    outsider = call_models(dev_node, buyer, "publish_version", "tuned", ARTIFACT, [["tuned", 2]], [])
    assert outsider["status"] == "failed" and "only the model's owners" in outsider["error"]


def test_an_expired_licence_is_not_valid(dev_node: NodeProcess) -> None:
    owner, buyer = DEV_KEY, fund(dev_node, 10**12)
    registered = call_models(
        dev_node, owner, "register_model", "brief", ARTIFACT, "onnx", b"", [[owner.address, 10_000]]
    )
    assert registered["status"] == "success"
    assert licensing(dev_node, owner, "make_offer", "brief", 1, 10, 2, 0, 0, [], 0)["status"] == "success"
    receipt = buy(dev_node, buyer, "brief", 1, 10)
    assert receipt["status"] == "success", receipt
    expires = receipt["events"][-1]["fields"]["expires"]
    assert read(dev_node, "is_licensed", buyer.address, "brief", 1) is True
    deadline = time.monotonic() + 15
    while read(dev_node, "is_licensed", buyer.address, "brief", 1):
        assert time.monotonic() < deadline, "the licence did not expire"
        time.sleep(0.2)
    assert dev_node.rpc.call("chain_head")["timestamp_ms"] >= expires
    assert read(dev_node, "licence_of", buyer.address, "brief", 1)[4] is False


def test_per_use_metering_charges_exactly(dev_node: NodeProcess) -> None:
    owner, second, buyer = DEV_KEY, fund(dev_node, 10**12), fund(dev_node, 10**12)
    split = [[owner.address, 7_000], [second.address, 3_000]]
    assert (
        call_models(dev_node, owner, "register_model", "metered", ARTIFACT, "onnx", b"", split)["status"] == "success"
    )
    assert licensing(dev_node, owner, "make_offer", "metered", 1, 0, 0, 1_000, 0, [], 0)["status"] == "success"
    assert buy(dev_node, buyer, "metered", 1, 10_000)["status"] == "success"
    assert balance(dev_node, PAYMENTS) == 10_000
    second_before = balance(dev_node, second.address)

    receipt = sign_usage_receipt(buyer, CHAIN_ID, "metered", 1, 4)
    charged = licensing(dev_node, second, "submit_usage_receipt", *receipt.call_args())
    assert charged["status"] == "success", charged
    usage = next(e for e in charged["events"] if e["name"] == "UsageCharged")["fields"]
    assert usage["uses"] == 4 and usage["amount"] == 4_000
    fee = charged["gas_used"] * MIN_GAS_PRICE
    assert balance(dev_node, second.address) - second_before == 1_200 - fee  # 30% of 4 uses, less its own fee
    assert balance(dev_node, PAYMENTS) == 6_000
    replay = licensing(dev_node, second, "submit_usage_receipt", *receipt.call_args())
    assert replay["status"] == "failed" and "already charged" in replay["error"]
    too_many = licensing(dev_node, buyer, "report_usage", "metered", 1, 11)
    assert too_many["status"] == "failed" and "does not cover" in too_many["error"]
    assert licensing(dev_node, buyer, "report_usage", "metered", 1, 10)["status"] == "success"
    assert read(dev_node, "licence_of", buyer.address, "metered", 1) == [1, 0, 10, 0, False]
    assert balance(dev_node, PAYMENTS) == 0


def test_the_documented_licensing_walkthrough_runs(dev_node: NodeProcess) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "contracts.md").read_text()
    section = text[text.index("### Licensing") :]
    script = re.search(r"```sh\n(.*?)```", section, re.S)
    assert script is not None
    env = {**dev_node.env, "AICHAIN_RPC": dev_node.url, "PATH": f"{Path(CLI).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script.group(1)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "true"

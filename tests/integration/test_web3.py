"""An unmodified web3.py client (no middleware) reads a running node through its eth_ subset.

Amounts: 1 base unit shows as 10**9 wei, so 1 AIC (10**9 units) shows as 1 ether. Besides
what web3.py accepts, the raw answers are checked against the Ethereum JSON-RPC encoding
rules: QUANTITY is 0x-hex without leading zeros, DATA is 0x-hex of whole bytes, hashes are
32 bytes, addresses 20, the bloom 256, extraData at most 32.
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal
from typing import Any

import pytest
from web3 import HTTPProvider, Web3
from web3.exceptions import BlockNotFound, TransactionNotFound, Web3RPCError

from core.keys import address_hex
from tests.harness import NodeProcess
from tests.integration.support import (
    CHAIN_ID,
    DEV_ADDRESS,
    DEV_KEY,
    TRANSFER_GAS,
    account,
    call_raw,
    fund,
    pending_nonce,
    send_and_wait,
    transfer,
)

WEI_PER_UNIT = 10**9
UNIT = 10**9  # base units per AIC

QUANTITY = re.compile(r"^0x(0|[1-9a-f][0-9a-f]*)$")
DATA = re.compile(r"^0x([0-9a-f]{2})*$")


def checksum(address: str) -> Any:
    return Web3.to_checksum_address(address)


@pytest.fixture(scope="module")
def w3(shared_node: NodeProcess) -> Web3:
    return Web3(HTTPProvider(shared_node.url, request_kwargs={"timeout": 30}))


@pytest.fixture(scope="module")
def sent(shared_node: NodeProcess) -> dict[str, Any]:
    """A fresh account funded with 2.5 AIC by the dev account, and the receipt of that transfer."""
    recipient = secrets.token_bytes(20)
    tx = transfer(DEV_KEY, recipient, 2_500_000_000, pending_nonce(shared_node, DEV_KEY.address))
    receipt = send_and_wait(shared_node, tx)
    return {"tx": tx, "receipt": receipt, "recipient": address_hex(recipient)}


# --- format checks (Ethereum JSON-RPC encoding) --------------------------------------------------


def assert_quantity(value: object, what: str) -> None:
    assert isinstance(value, str) and QUANTITY.match(value), f"{what}: {value!r} is not a QUANTITY"


def assert_data(value: object, what: str, size: int | None = None, max_size: int | None = None) -> None:
    assert isinstance(value, str) and DATA.match(value), f"{what}: {value!r} is not DATA"
    n = (len(value) - 2) // 2
    if size is not None:
        assert n == size, f"{what}: {n} bytes, expected {size}"
    if max_size is not None:
        assert n <= max_size, f"{what}: {n} bytes, at most {max_size} allowed"


def assert_eth_tx(tx: dict[str, Any]) -> None:
    for name in (
        "blockNumber",
        "gas",
        "gasPrice",
        "nonce",
        "transactionIndex",
        "value",
        "type",
        "chainId",
        "v",
        "r",
        "s",
    ):
        assert_quantity(tx[name], f"tx.{name}")
    assert_data(tx["blockHash"], "tx.blockHash", 32)
    assert_data(tx["hash"], "tx.hash", 32)
    assert_data(tx["from"], "tx.from", 20)
    if tx["to"] is not None:
        assert_data(tx["to"], "tx.to", 20)
    assert_data(tx["input"], "tx.input")


def assert_eth_block(block: dict[str, Any]) -> None:
    for name in ("number", "difficulty", "size", "gasLimit", "gasUsed", "timestamp"):
        assert_quantity(block[name], f"block.{name}")
    if "totalDifficulty" in block:
        assert_quantity(block["totalDifficulty"], "block.totalDifficulty")
    for name in ("hash", "parentHash", "sha3Uncles", "transactionsRoot", "stateRoot", "receiptsRoot", "mixHash"):
        assert_data(block[name], f"block.{name}", 32)
    assert_data(block["nonce"], "block.nonce", 8)
    assert_data(block["logsBloom"], "block.logsBloom", 256)
    assert_data(block["miner"], "block.miner", 20)
    assert_data(block["extraData"], "block.extraData", max_size=32)
    assert block["uncles"] == []
    for tx in block["transactions"]:
        if isinstance(tx, str):
            assert_data(tx, "block.transactions[]", 32)
        else:
            assert_eth_tx(tx)
            assert tx["blockHash"] == block["hash"] and tx["blockNumber"] == block["number"]


# --- web3.py -------------------------------------------------------------------------------------


def test_web3_connects_and_reads_the_chain(w3: Web3, shared_node: NodeProcess) -> None:
    assert w3.is_connected()
    assert w3.eth.chain_id == CHAIN_ID == 7777
    assert w3.net.version == str(CHAIN_ID)
    assert w3.client_version.startswith("aichain-node/")
    before = shared_node.rpc.call("chain_head")["height"]
    number = w3.eth.block_number
    after = shared_node.rpc.call("chain_head")["height"]
    assert isinstance(number, int) and before <= number <= after
    latest = w3.eth.get_block("latest")
    assert latest["number"] >= number
    assert latest["hash"].to_0x_hex() == shared_node.rpc.call("chain_getBlockByHeight", latest["number"])["hash"]
    genesis = w3.eth.get_block(0)
    assert genesis["number"] == 0 and genesis["parentHash"] == b"\x00" * 32
    assert w3.eth.get_block(1)["parentHash"] == genesis["hash"]
    assert w3.eth.gas_price == 1 * WEI_PER_UNIT


def test_web3_balance_is_the_node_balance_in_wei(w3: Web3, shared_node: NodeProcess, sent: dict[str, Any]) -> None:
    recipient = sent["recipient"]
    wei = w3.eth.get_balance(checksum(recipient))
    assert wei == 2_500_000_000 * WEI_PER_UNIT
    assert Web3.from_wei(wei, "ether") == Decimal("2.5")  # 1 AIC shows as 1 ether
    dev_units = int(account(shared_node, DEV_ADDRESS)["balance"])
    assert w3.eth.get_balance(checksum(DEV_ADDRESS)) == dev_units * WEI_PER_UNIT
    assert w3.eth.get_balance(checksum(DEV_ADDRESS), "latest") == dev_units * WEI_PER_UNIT
    # An account the chain has never seen: zero, like any unused Ethereum address.
    assert w3.eth.get_balance(checksum(address_hex(secrets.token_bytes(20)))) == 0


def test_web3_transaction_count_follows_the_sender_nonce(w3: Web3, shared_node: NodeProcess) -> None:
    key = fund(shared_node, 5 * UNIT)
    address = checksum(address_hex(key.address))
    assert w3.eth.get_transaction_count(address) == 0
    for nonce in range(2):
        send_and_wait(shared_node, transfer(key, DEV_KEY.address, 1, nonce))
    assert w3.eth.get_transaction_count(address) == 2
    assert w3.eth.get_transaction_count(address, "latest") == 2
    assert w3.eth.get_transaction_count(checksum(DEV_ADDRESS)) == account(shared_node, DEV_ADDRESS)["nonce"]


def test_web3_reads_a_transfer_and_its_block(w3: Web3, shared_node: NodeProcess, sent: dict[str, Any]) -> None:
    tx, receipt = sent["tx"], sent["receipt"]
    tx_hash = "0x" + tx.hash.hex()
    got = w3.eth.get_transaction(tx_hash)
    assert got["hash"].to_0x_hex() == tx_hash
    assert got["from"] == checksum(DEV_ADDRESS)
    assert got["to"] == checksum(sent["recipient"])
    assert got["value"] == 2_500_000_000 * WEI_PER_UNIT
    assert got["nonce"] == tx.nonce
    assert got["gas"] == TRANSFER_GAS
    assert got["gasPrice"] == 1 * WEI_PER_UNIT
    assert got["blockNumber"] == receipt["block_height"]
    assert got["blockHash"].to_0x_hex() == receipt["block_hash"]
    assert got["transactionIndex"] == receipt["index"]
    assert got["chainId"] == CHAIN_ID

    by_number = w3.eth.get_block(receipt["block_height"], full_transactions=True)
    assert by_number["hash"].to_0x_hex() == receipt["block_hash"]
    assert by_number["number"] == receipt["block_height"]
    assert by_number["gasUsed"] >= TRANSFER_GAS
    full = by_number["transactions"][receipt["index"]]
    assert full["hash"].to_0x_hex() == tx_hash and full["value"] == got["value"] and full["from"] == got["from"]

    by_hash = w3.eth.get_block(receipt["block_hash"], full_transactions=True)
    assert by_hash == by_number
    hashes_only = w3.eth.get_block(receipt["block_hash"])
    full_hashes = [t["hash"].to_0x_hex() for t in by_hash["transactions"]]
    assert [h.to_0x_hex() for h in hashes_only["transactions"]] == full_hashes

    # The eth view and the node's own view describe the same block.
    own = shared_node.rpc.call("chain_getBlockByHeight", receipt["block_height"])
    assert by_hash["stateRoot"].to_0x_hex() == own["state_root"]
    assert by_hash["parentHash"].to_0x_hex() == own["parent_hash"]
    assert by_hash["timestamp"] == own["timestamp_ms"] // 1000
    assert by_hash["miner"].lower() == own["proposer"]
    assert [h.to_0x_hex() for h in hashes_only["transactions"]] == own["transactions"]


def test_web3_unknown_block_and_transaction_are_not_found(w3: Web3, shared_node: NodeProcess) -> None:
    with pytest.raises(BlockNotFound):
        w3.eth.get_block(10**9)
    with pytest.raises(BlockNotFound):
        w3.eth.get_block("0x" + secrets.token_hex(32))
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction("0x" + secrets.token_hex(32))
    # ... because the node answered null, as the spec says for unknown objects.
    assert call_raw(shared_node.url, "eth_getBlockByNumber", hex(10**9), False) == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": None,
    }
    assert call_raw(shared_node.url, "eth_getBlockByHash", "0x" + secrets.token_hex(32), True)["result"] is None
    assert call_raw(shared_node.url, "eth_getTransactionByHash", "0x" + secrets.token_hex(32))["result"] is None


def test_web3_historical_state_is_an_error_not_a_wrong_answer(w3: Web3) -> None:
    # This node keeps the latest state only: a balance at an old block must not silently be today's.
    with pytest.raises(Web3RPCError) as info:
        w3.eth.get_balance(checksum(DEV_ADDRESS), 0)
    assert "latest" in str(info.value)


# --- raw encoding ---------------------------------------------------------------------------------


def test_eth_answers_follow_the_json_rpc_encoding(shared_node: NodeProcess, sent: dict[str, Any]) -> None:
    url = shared_node.url
    receipt = sent["receipt"]
    for ref in ("0x0", "latest", "earliest", "pending", hex(receipt["block_height"])):
        for full in (False, True):
            block = call_raw(url, "eth_getBlockByNumber", ref, full)["result"]
            assert block is not None, ref
            assert_eth_block(block)
    block = call_raw(url, "eth_getBlockByHash", receipt["block_hash"], True)["result"]
    assert_eth_block(block)
    assert block["number"] == hex(receipt["block_height"])
    assert any(t["hash"] == receipt["tx_hash"] for t in block["transactions"])
    tx = call_raw(url, "eth_getTransactionByHash", receipt["tx_hash"])["result"]
    assert_eth_tx(tx)
    assert tx["value"] == hex(2_500_000_000 * WEI_PER_UNIT)

    for method, params in (
        ("eth_chainId", []),
        ("eth_blockNumber", []),
        ("eth_gasPrice", []),
        ("net_peerCount", []),
        ("eth_getBalance", [DEV_ADDRESS, "latest"]),
        ("eth_getBalance", [address_hex(secrets.token_bytes(20)), "latest"]),
        ("eth_getTransactionCount", [DEV_ADDRESS, "latest"]),
        ("eth_getTransactionCount", [DEV_ADDRESS, "pending"]),
        ("eth_getTransactionCount", [address_hex(secrets.token_bytes(20)), "latest"]),
    ):
        assert_quantity(call_raw(url, method, *params)["result"], method)
    assert call_raw(url, "eth_chainId")["result"] == "0x1e61"
    assert call_raw(url, "net_version")["result"] == "7777"
    assert call_raw(url, "eth_syncing")["result"] is False
    assert isinstance(call_raw(url, "web3_clientVersion")["result"], str)

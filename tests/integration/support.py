"""Client-side helpers for integration tests: raw HTTP JSON-RPC, batches, signed transfers.

Everything here talks to a node only through its public interfaces (HTTP JSON-RPC and
/metrics); transactions are built and signed on the client side, as an SDK would.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.keys import PrivateKey, address_hex, write_key_file
from core.transaction import Transaction, TxKind
from node.devnet import DEV_ACCOUNT_KEY, DEV_CHAIN_ID
from tests.harness import NodeProcess

CHAIN_ID = DEV_CHAIN_ID
TRANSFER_GAS = 21_000  # intrinsic gas of a transfer without data (vm/gas.py)
MIN_GAS_PRICE = 1
DEV_KEY = DEV_ACCOUNT_KEY
DEV_ADDRESS = address_hex(DEV_ACCOUNT_KEY.address)

# What a client that lost its connection (node killed, restarting) can meet.
CONNECTION_ERRORS = (OSError, http.client.HTTPException, json.JSONDecodeError)


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def post(
    url: str, body: bytes | str | object, *, content_type: str = "application/json", timeout: float = 30
) -> HttpAnswer:
    """POST `body` (bytes and str as they are, anything else JSON-encoded) and return the raw answer."""
    if isinstance(body, str):
        data = body.encode()
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpAnswer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return HttpAnswer(exc.code, dict(exc.headers), exc.read())


def request(method: str, *params: Any, id_: int | str | None = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": list(params)}


def call_raw(url: str, method: str, *params: Any) -> dict[str, Any]:
    """One request; the whole response object (result or error)."""
    answer = post(url, request(method, *params))
    assert answer.status == 200, (answer.status, answer.body[:500])
    response = answer.json()
    assert isinstance(response, dict) and response["jsonrpc"] == "2.0" and response["id"] == 1, response
    return response


def batch(url: str, calls: list[tuple[str, list[Any]]], *, timeout: float = 30) -> list[dict[str, Any]]:
    """One HTTP request carrying a batch; the response objects in the order of `calls`."""
    if not calls:
        return []
    answer = post(url, [request(m, *p, id_=i) for i, (m, p) in enumerate(calls)], timeout=timeout)
    if answer.status != 200:
        raise http.client.HTTPException(f"HTTP {answer.status}: {answer.body[:300]!r}")
    responses = answer.json()
    assert isinstance(responses, list) and len(responses) == len(calls), responses
    by_id = {r["id"]: r for r in responses}
    return [by_id[i] for i in range(len(calls))]


def transfer(
    key: PrivateKey,
    to: bytes,
    value: int,
    nonce: int,
    *,
    gas_limit: int = TRANSFER_GAS,
    gas_price: int = MIN_GAS_PRICE,
    chain_id: int = CHAIN_ID,
) -> Transaction:
    tx = Transaction(chain_id, key.public_key, nonce, gas_limit, gas_price, TxKind.TRANSFER, to, value, b"")
    return tx.signed_by(key)


def raw(tx: Transaction) -> str:
    return "0x" + tx.encoded.hex()


def account(node: NodeProcess, address: bytes | str) -> dict[str, Any]:
    text = address if isinstance(address, str) else address_hex(address)
    return node.rpc.call("state_getAccount", text)


def balance(node: NodeProcess, address: bytes | str) -> int:
    return int(account(node, address)["balance"])


def pending_nonce(node: NodeProcess, address: bytes | str) -> int:
    return int(account(node, address)["pending_nonce"])


def send_and_wait(node: NodeProcess, tx: Transaction) -> dict[str, Any]:
    """tx_send, then tx_wait for its receipt; asserts it succeeded."""
    tx_hash = node.rpc.send(tx)
    assert tx_hash == "0x" + tx.hash.hex()
    receipt = node.rpc.call("tx_wait", tx_hash, 30)
    assert receipt is not None, f"{tx_hash} not committed within 30 s"
    assert receipt["status"] == "success", receipt
    return receipt


def fund(node: NodeProcess, amount: int, key: PrivateKey | None = None) -> PrivateKey:
    """A key holding `amount` units, paid by the dev account (waits until committed)."""
    key = key or PrivateKey.generate()
    send_and_wait(node, transfer(DEV_KEY, key.address, amount, pending_nonce(node, DEV_KEY.address)))
    return key


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of a /metrics family's samples at `url` whose labels include `labels`."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if line.startswith("#") or key.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in key for k, v in labels.items()):
            total += float(value)
    return total


def key_file(directory: Path, key: PrivateKey, name: str) -> str:
    """`key` written unencrypted to `directory/name.pem`, as the CLI's --from takes it."""
    path = directory / f"{name}.pem"
    write_key_file(path, key, None)
    return str(path)

"""JSON-RPC 2.0 over HTTP, checked with raw requests against a running node.

The protocol errors (-32700, -32600, -32601, -32602), batches and notifications follow
https://www.jsonrpc.org/specification; bodies over 5 MiB are refused with HTTP 413 from their
headers (or as soon as a chunked body passes the limit), before the server has read them;
every reason to refuse a transaction has its own server error code (core/errors.py) and a
message that says why.
"""

from __future__ import annotations

import re
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.keys import PrivateKey, address_hex
from core.transaction import Transaction
from tests.harness import NodeProcess, Rpc
from tests.integration.support import (
    DEV_ADDRESS,
    TRANSFER_GAS,
    batch,
    call_raw,
    fund,
    post,
    raw,
    request,
    send_and_wait,
    transfer,
)

MiB = 1024 * 1024
BODY_LIMIT = 5 * MiB
UNIT = 10**9


def error_of(response: dict[str, Any]) -> dict[str, Any]:
    assert "result" not in response, response
    error = response["error"]
    assert isinstance(error["code"], int) and isinstance(error["message"], str) and error["message"], error
    return error


# --- protocol errors -----------------------------------------------------------------------------


def test_parse_error_is_minus_32700_with_id_null(shared_node: NodeProcess) -> None:
    for body in (b"{", b'{"jsonrpc":"2.0","id":1,"method":"chain_head"', b"\xff\xfe{}", b"NaN", b'{"id": NaN}'):
        answer = post(shared_node.url, body)
        assert answer.status == 200, body
        response = answer.json()
        assert response["jsonrpc"] == "2.0" and response["id"] is None, response
        assert error_of(response)["code"] == -32700, body


@pytest.mark.parametrize(
    "body",
    [
        "{}",
        "[]",  # an empty batch is an invalid request, answered by one error object (not an array)
        '{"jsonrpc":"1.0","id":1,"method":"chain_head"}',
        '{"id":1,"method":"chain_head"}',
        '{"jsonrpc":"2.0","id":1,"method":5}',
        '{"jsonrpc":"2.0","id":1}',
        '{"jsonrpc":"2.0","id":1,"method":"chain_head","params":5}',
        '{"jsonrpc":"2.0","id":1,"method":"chain_head","params":"x"}',
        '{"jsonrpc":"2.0","id":{"a":1},"method":"chain_head"}',
        "5",
        '"chain_head"',
    ],
)
def test_invalid_request_is_minus_32600(shared_node: NodeProcess, body: str) -> None:
    answer = post(shared_node.url, body)
    assert answer.status == 200
    response = answer.json()
    assert isinstance(response, dict), response
    assert error_of(response)["code"] == -32600
    assert response["id"] in (None, 1)


def test_batch_of_invalid_elements_answers_each(shared_node: NodeProcess) -> None:
    responses = post(shared_node.url, "[1, 2, 3]").json()
    assert isinstance(responses, list) and len(responses) == 3
    assert all(error_of(r)["code"] == -32600 and r["id"] is None for r in responses)


def test_unknown_method_is_minus_32601_naming_it(shared_node: NodeProcess) -> None:
    response = post(shared_node.url, {"jsonrpc": "2.0", "id": "abc", "method": "eth_sendTransaction"}).json()
    assert response["id"] == "abc"
    error = error_of(response)
    assert error["code"] == -32601
    assert "eth_sendTransaction" in error["message"]


@pytest.mark.parametrize(
    ("method", "params", "named"),
    [
        ("chain_getBlockByHeight", ["abc"], "height"),
        ("chain_getBlockByHeight", [-1], "height"),
        ("chain_getBlockByHeight", [1, "yes"], "full"),
        ("tx_get", ["0x1234"], "hash"),
        ("tx_getReceipt", [123], "hash"),
        ("tx_send", ["not hex"], "raw"),
        ("tx_send", ["0xabc"], "raw"),  # odd number of digits
        ("tx_send", [], "raw"),  # missing
        ("state_getAccount", ["0x12"], "address"),
        ("state_getAccount", {"addr": DEV_ADDRESS}, "addr"),  # unknown name
        ("eth_getBalance", [DEV_ADDRESS, "yesterday"], "block"),
        ("eth_getBlockByNumber", ["0xzz", False], "block"),
    ],
)
def test_invalid_params_is_minus_32602_naming_the_param(
    shared_node: NodeProcess, method: str, params: Any, named: str
) -> None:
    response = post(shared_node.url, {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).json()
    assert response["id"] == 7
    error = error_of(response)
    assert error["code"] == -32602, error
    assert f"'{named}'" in error["message"], error["message"]


def test_too_many_params_is_minus_32602(shared_node: NodeProcess) -> None:
    error = error_of(call_raw(shared_node.url, "chain_head", 1))
    assert error["code"] == -32602 and "at most 0" in error["message"]


def test_params_by_name_are_accepted(shared_node: NodeProcess) -> None:
    response = post(
        shared_node.url,
        {"jsonrpc": "2.0", "id": 1, "method": "chain_getBlockByHeight", "params": {"height": 0, "full": True}},
    ).json()
    assert response["result"]["height"] == 0


# --- batches and notifications -------------------------------------------------------------------


def test_batch_mixes_results_and_errors_in_order(shared_node: NodeProcess) -> None:
    body = [
        {"jsonrpc": "2.0", "id": 1, "method": "chain_head"},
        {"jsonrpc": "2.0", "id": "two", "method": "no_such_method"},
        {"jsonrpc": "2.0", "method": "chain_head"},  # notification: no response element
        42,  # not a request
        {"jsonrpc": "2.0", "id": 5, "method": "chain_getBlockByHeight", "params": ["x"]},
        {"jsonrpc": "2.0", "id": 6, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": None, "method": "net_version"},  # id null is answered, with id null
    ]
    answer = post(shared_node.url, body)
    assert answer.status == 200
    responses = answer.json()
    assert isinstance(responses, list)
    assert [r["id"] for r in responses] == [1, "two", None, 5, 6, None]
    assert responses[0]["result"]["height"] >= 0
    assert error_of(responses[1])["code"] == -32601
    assert error_of(responses[2])["code"] == -32600
    assert error_of(responses[3])["code"] == -32602
    assert responses[4]["result"] == "0x1e61"
    assert responses[5]["result"] == "7777"


def test_notifications_get_no_response(shared_node: NodeProcess) -> None:
    for body in (
        {"jsonrpc": "2.0", "method": "chain_head"},
        {"jsonrpc": "2.0", "method": "no_such_method"},  # not even an error
        {"jsonrpc": "2.0", "method": "chain_getBlockByHeight", "params": ["bad"]},
        [{"jsonrpc": "2.0", "method": "chain_head"}, {"jsonrpc": "2.0", "method": "eth_blockNumber"}],
    ):
        answer = post(shared_node.url, body)
        assert answer.status == 204, (body, answer)
        assert answer.body == b""


def test_batch_over_the_limit_is_one_invalid_request(shared_node: NodeProcess) -> None:
    response = post(shared_node.url, [request("eth_chainId", id_=i) for i in range(1001)]).json()
    assert isinstance(response, dict) and error_of(response)["code"] == -32600
    assert "1000" in response["error"]["message"]


# --- HTTP ----------------------------------------------------------------------------------------


def _read_response_head(sock: socket.socket, timeout: float) -> bytes:
    """Bytes of the HTTP response up to the end of its JSON body (does not wait for the connection to close)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _raw_post_head(port: int, headers: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}\r\n".encode())
    return sock


def test_oversized_body_is_refused_from_its_content_length(shared_node: NodeProcess) -> None:
    # Announce 6 MiB, send 64 KiB of it, and expect the refusal without sending the rest.
    with _raw_post_head(shared_node.port, f"Content-Length: {6 * MiB}\r\n") as sock:
        sock.sendall(b"[" * 65536)
        started = time.monotonic()
        data = _read_response_head(sock, timeout=5)
        assert time.monotonic() - started < 3
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]
    assert b'"code":-32600' in data and str(BODY_LIMIT).encode() in data


def test_oversized_body_is_refused_before_100_continue(shared_node: NodeProcess) -> None:
    with _raw_post_head(shared_node.port, f"Content-Length: {BODY_LIMIT + 1}\r\nExpect: 100-continue\r\n") as sock:
        data = _read_response_head(sock, timeout=5)
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]
    assert b"100 Continue" not in data


def test_oversized_chunked_body_is_refused_once_past_the_limit(shared_node: NodeProcess) -> None:
    # No Content-Length: the server must stop at the limit, not wait for (or buffer) the end.
    with _raw_post_head(shared_node.port, "Transfer-Encoding: chunked\r\n") as sock:
        chunk = b" " * 65536
        sent = 0
        while sent <= BODY_LIMIT + len(chunk):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        data = _read_response_head(sock, timeout=5)  # the body is never terminated
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]


def test_body_under_the_limit_is_served(shared_node: NodeProcess) -> None:
    padded = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}' + b" " * (4 * MiB)
    answer = post(shared_node.url, padded)
    assert answer.status == 200 and answer.json()["result"] == "0x1e61"


def test_get_and_wrong_content_type_are_refused(shared_node: NodeProcess) -> None:
    try:
        urllib.request.urlopen(shared_node.url, timeout=10)
        raise AssertionError("GET / was answered with 2xx")
    except urllib.error.HTTPError as exc:
        assert exc.code == 405
    answer = post(shared_node.url, request("eth_chainId"), content_type="text/plain")
    assert answer.status == 415


# --- transaction rejections ----------------------------------------------------------------------


def _send_error(node: NodeProcess, raw_hex: str) -> dict[str, Any]:
    return error_of(call_raw(node.url, "tx_send", raw_hex))


def _with_signature(tx: Transaction, signature: bytes) -> Transaction:
    return Transaction(
        tx.chain_id, tx.sender, tx.nonce, tx.gas_limit, tx.gas_price, tx.kind, tx.to, tx.value, tx.data, signature
    )


def test_every_rejected_transaction_has_its_own_code_and_says_why(shared_node: NodeProcess) -> None:
    node = shared_node
    key = fund(node, 10 * UNIT)
    other = secrets.token_bytes(20)
    committed = transfer(key, other, 1, 0)
    send_and_wait(node, committed)
    balance = 10 * UNIT - 1 - TRANSFER_GAS
    assert int(node.rpc.call("state_getAccount", address_hex(key.address))["balance"]) == balance

    good = transfer(key, other, 1, 1)  # would be accepted: the rejections below differ by one thing
    flipped = bytes([good.signature[0] ^ 1]) + good.signature[1:]
    chain_field = bytes.fromhex("cd1e61")  # chain id 7777 as canonical msgpack uint16
    assert good.encoded[2:5] == chain_field
    non_canonical = good.encoded[:2] + bytes.fromhex("ce00001e61") + good.encoded[5:]  # same value as uint32

    stranger_signature = PrivateKey.generate().sign(b"x", 1, b"y")
    cases: dict[str, tuple[str, set[int], str]] = {
        "bad signature": (raw(_with_signature(good, flipped)), {-32003}, "signature"),
        "signed by another key": (raw(_with_signature(good, stranger_signature)), {-32003}, "signature"),
        "wrong chain id": (raw(transfer(key, other, 1, 1, chain_id=1)), {-32004}, "chain"),
        "nonce too low": (raw(transfer(key, other, 2, 0)), {-32005}, "nonce 0"),
        "nonce gap": (raw(transfer(key, other, 1, 5)), {-32006}, "gap"),
        "gas price too low": (raw(transfer(key, other, 1, 1, gas_price=0)), {-32007}, "gas price"),
        "insufficient balance": (raw(transfer(key, other, balance, 1)), {-32008}, "balance"),
        "gas limit too low": (raw(transfer(key, other, 1, 1, gas_limit=TRANSFER_GAS - 1)), {-32009}, "gas limit"),
        "garbage bytes": ("0xdeadbeef", {-32010}, "not a signed transaction"),
        "empty bytes": ("0x", {-32010}, "not a signed transaction"),
        "truncated": (raw(good)[:-10], {-32010}, "not a signed transaction"),
        "trailing bytes": (raw(good) + "00", {-32010}, "not a signed transaction"),
        "non-canonical": ("0x" + non_canonical.hex(), {-32011}, "canonical"),
        "too large": ("0x" + "00" * 200_000, {-32012}, "limit"),
        "already committed": (raw(committed), {-32016}, "already"),
    }
    codes: dict[str, int] = {}
    for name, (raw_hex, expected, why) in cases.items():
        error = _send_error(node, raw_hex)
        assert error["code"] in expected, (name, error)
        assert why.lower() in error["message"].lower(), (name, error)
        codes[name] = error["code"]

    # Already pending: the same transaction twice in one batch (no block can come in between).
    first, second = batch(node.url, [("tx_send", [raw(good)]), ("tx_send", [raw(good)])])
    assert first["result"] == {"hash": "0x" + good.hash.hex()}
    pending = error_of(second)
    assert pending["code"] == -32016 and "already" in pending["message"], pending
    codes["already pending"] = pending["code"]
    receipt = node.rpc.call("tx_wait", "0x" + good.hash.hex(), 30)
    assert receipt is not None and receipt["status"] == "success"

    # One documented code per reason: the same rule broken in different ways shares it, no two reasons do.
    reason_of = {
        "signed by another key": "bad signature",
        "empty bytes": "garbage bytes",
        "truncated": "garbage bytes",
        "trailing bytes": "garbage bytes",
        "already pending": "already committed",
    }
    by_reason: dict[str, set[int]] = {}
    for name, code in codes.items():
        by_reason.setdefault(reason_of.get(name, name), set()).add(code)
    assert all(len(group) == 1 for group in by_reason.values()), by_reason
    distinct = [code for group in by_reason.values() for code in group]
    assert len(set(distinct)) == len(distinct) == 11, by_reason

    # None of the refused transactions changed anything.
    after = node.rpc.call("state_getAccount", address_hex(key.address))
    assert after["nonce"] == 2 and int(after["balance"]) == balance - 1 - TRANSFER_GAS


def test_send_batch_reports_each_rejection(shared_node: NodeProcess) -> None:
    key = fund(shared_node, UNIT)
    other = secrets.token_bytes(20)
    ok = transfer(key, other, 1, 0)
    gap, wrong_chain = transfer(key, other, 1, 7), transfer(key, other, 1, 1, chain_id=2)
    results = shared_node.rpc.call("tx_sendBatch", [raw(ok), raw(ok), "0x00", raw(gap), raw(wrong_chain)])
    assert results[0] == {"hash": "0x" + ok.hash.hex()}
    assert [r["error"]["code"] for r in results[1:]] == [-32016, -32010, -32006, -32004]
    assert shared_node.rpc.call("tx_wait", "0x" + ok.hash.hex(), 30)["status"] == "success"
    again = shared_node.rpc.call("tx_sendBatch", [raw(ok)])
    assert again[0]["error"]["code"] == -32016


# --- unknown objects and metrics -----------------------------------------------------------------


def test_unknown_objects_are_null(shared_node: NodeProcess) -> None:
    url = shared_node.url
    random_hash = "0x" + secrets.token_hex(32)
    for method, params in (
        ("chain_getBlockByHeight", [10**9]),
        ("chain_getBlockByHeight", [10**9, True]),
        ("chain_getBlockByHeight", [2**64]),  # beyond the 64-bit heights of the store: still just unknown
        ("chain_getBlockByHeight", [hex(10**30)]),
        ("chain_getCommit", [2**64]),
        ("chain_getBlockByHash", [random_hash]),
        ("chain_getCommit", [10**9]),
        ("tx_get", [random_hash]),
        ("tx_getReceipt", [random_hash]),
        ("eth_getBlockByNumber", [hex(10**9), False]),
        ("eth_getBlockByHash", [random_hash, False]),
        ("eth_getTransactionByHash", [random_hash]),
    ):
        response = call_raw(url, method, *params)
        assert "error" not in response and response["result"] is None, (method, response)
    assert call_raw(url, "tx_wait", random_hash, 1)["result"] is None


def test_stopping_node_answers_a_pending_tx_wait_at_once(tmp_path: Path) -> None:
    # A long poll must not hold up Ctrl-C / SIGTERM: the node answers it (null) and exits promptly.
    node = NodeProcess(tmp_path, block_time_ms=200)
    with node:
        answers: list[object] = []
        waiter = threading.Thread(
            target=lambda: answers.append(Rpc(node.url, timeout=60).call("tx_wait", "0x" + "00" * 32, 60))
        )
        waiter.start()
        time.sleep(0.5)  # the tx_wait is in progress
        started = time.monotonic()
        assert node.stop() == 0
        waiter.join(10)
        assert time.monotonic() - started < 10
        assert answers == [None]


def test_metrics_are_prometheus_text_with_the_head_height(shared_node: NodeProcess) -> None:
    height = shared_node.rpc.call("chain_head")["height"]
    with urllib.request.urlopen(shared_node.url + "/metrics", timeout=10) as response:
        assert response.status == 200
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    assert content_type.startswith("text/plain") and "version=0.0.4" in content_type
    match = re.search(r"^aichain_head_height (\S+)$", text, re.MULTILINE)
    assert match is not None, text[:2000]
    assert float(match.group(1)) >= height
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["aichain_head_height"].type == "gauge"
    for name in ("aichain_finalized_height", "aichain_peers", "aichain_mempool_transactions"):
        assert name in families, sorted(families)
    # the process's own: what an operator reads first, and what bench testnet divides by transactions
    cpu = families["process_cpu_seconds"]
    assert cpu.type == "counter" and cpu.samples[0].value > 0
    assert families["process_resident_memory_bytes"].samples[0].value > 10_000_000


def test_wait_for_height_answers_when_the_block_is_committed(shared_node: NodeProcess) -> None:
    client = Rpc(shared_node.url, timeout=30)
    head = client.call("chain_head")["height"]
    assert client.call("chain_waitForHeight", head, 5)["height"] >= head  # already there: at once
    sender = threading.Timer(0.3, lambda: fund(shared_node, 1))  # a transaction makes the next block
    sender.start()
    try:
        started = time.monotonic()
        header = client.call("chain_waitForHeight", head + 1, 20)
        assert header is not None and header["height"] >= head + 1
        assert header["hash"] == client.call("chain_getBlockByHeight", header["height"], False)["hash"]
        assert time.monotonic() - started < 15
    finally:
        sender.join()
    started = time.monotonic()
    assert client.call("chain_waitForHeight", head + 10_000, 1) is None  # timed out: null
    assert 0.9 <= time.monotonic() - started < 5

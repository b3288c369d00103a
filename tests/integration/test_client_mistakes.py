"""Client mistakes on a real node get a 4xx or a documented JSON-RPC error in one log line at most:
never HTTP 500, -32603, a traceback, or thousands of log lines (issue 18, finding 10)."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.harness import NodeProcess
from tests.integration.support import post
from tests.node_health import Health, stall_lines, tracebacks

ZERO_ADDRESS = "0x" + "00" * 20


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with NodeProcess(tmp_path_factory.mktemp("mistakes"), block_time_ms=200) as running:
        yield running


def log_text(node: NodeProcess) -> str:
    return node.log_path.read_text()


def call_http(
    node: NodeProcess, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def rpc(node: NodeProcess, method: str, params: object, **extra: object) -> dict[str, object]:
    answer = post(node.url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params, **extra})
    assert answer.status == 200, answer.body
    return answer.json()  # type: ignore[no-any-return]


def error_code(answer: dict[str, object]) -> object:
    error = answer.get("error")
    return error.get("code") if isinstance(error, dict) else None


def test_repr_digest_that_is_not_base64_is_400(node: NodeProcess) -> None:
    for digest in ("sha-256=:abc:", "sha-256=:!!!!:", "sha-256=:" + "QUFB" * 4 + ":"):
        status, body = call_http(node, "PUT", "/artifacts", b"hello", {"Repr-Digest": digest})
        assert status == 400, (digest, status, body)
        assert b"Repr-Digest" in body


def test_range_numbers_of_thousands_of_digits_are_not_converted(node: NodeProcess) -> None:
    status, body = call_http(node, "PUT", "/artifacts", b"0123456789")
    assert status == 201, body
    path = "/artifacts/" + json.loads(body)["id"]
    huge = "9" * 5000
    assert call_http(node, "GET", path, headers={"Range": f"bytes={huge}-"})[0] == 416
    assert call_http(node, "GET", path, headers={"Range": f"bytes=2-{huge}"}) == (206, b"23456789")
    assert call_http(node, "GET", path, headers={"Range": f"bytes=-{huge}"}) == (206, b"0123456789")


def test_a_body_that_is_not_what_its_content_encoding_says_is_400(node: NodeProcess) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}'
    for encoding in ("gzip", "deflate", "br"):
        status, answer = call_http(
            node, "POST", "/", body, {"Content-Type": "application/json", "Content-Encoding": encoding}
        )
        assert status == 400, (encoding, status, answer)
        if encoding != "br":  # without the Brotli package aiohttp itself refuses br before the endpoint runs
            assert json.loads(answer)["error"]["code"] == -32700
        status, answer = call_http(node, "PUT", "/artifacts", b"not compressed at all", {"Content-Encoding": encoding})
        assert status == 400, (encoding, status, answer)
    status, answer = call_http(
        node, "POST", "/", gzip.compress(body), {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert status == 200 and "result" in json.loads(answer)


def test_contract_arguments_nested_500_deep_are_invalid_params_in_at_most_one_line(node: NodeProcess) -> None:
    lines_before = len(log_text(node).splitlines())
    nested = "[" * 500 + "]" * 500
    raw = f'{{"jsonrpc":"2.0","id":1,"method":"contract_call","params":["{ZERO_ADDRESS}","f",[{nested}]]}}'
    for _ in range(3):
        answer = post(node.url, raw)
        assert answer.status == 200
        assert error_code(answer.json()) == -32602, answer.body
    assert len(log_text(node).splitlines()) - lines_before <= 3


def test_block_numbers_of_thousands_of_digits_are_invalid_params(node: NodeProcess) -> None:
    hex_huge = "0x" + "f" * 4000  # about 4,800 decimal digits once converted
    for method, params in (
        ("eth_getBalance", [ZERO_ADDRESS, hex_huge]),
        ("eth_getBlockByNumber", [hex_huge]),
        ("chain_getBlockByHeight", [hex_huge]),
        ("contract_call", [ZERO_ADDRESS, "f", [], None, hex_huge]),
    ):
        answer = rpc(node, method, params)
        assert error_code(answer) == -32602, (method, answer)


def test_numbers_of_5000_digits_are_a_parse_error_that_names_no_python_internals(node: NodeProcess) -> None:
    for raw in (
        '{"jsonrpc":"2.0","id":' + "1" * 5000 + ',"method":"eth_blockNumber"}',
        '{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":[' + "1" * 5000 + "]}",
    ):
        answer = post(node.url, raw)
        error = answer.json()["error"]
        assert error["code"] == -32700 and "4300 digits" in error["message"], error
        assert "sys." not in error["message"]


def test_aborted_downloads_and_malformed_http_log_one_line_each(node: NodeProcess) -> None:
    big = bytes(range(256)) * 40_000  # 10 MB: more than the socket buffers hold
    status, body = call_http(node, "PUT", "/artifacts", big)
    assert status == 201, body
    artifact = json.loads(body)["id"]
    lines_before = len(log_text(node).splitlines())
    sent = 0
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", node.port)) as s:
            s.sendall(f"GET /artifacts/{artifact} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            s.recv(1000)
        sent += 1
    for junk in (
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    ):
        with socket.create_connection(("127.0.0.1", node.port)) as s:
            s.sendall(junk)
            s.settimeout(10)
            assert s.recv(100).startswith(b"HTTP/1.") or junk.startswith(b"\x16")
        sent += 1
    time.sleep(1.0)  # the aborted downloads notice the reset when their next write fails
    new_lines = log_text(node).splitlines()[lines_before:]
    assert len([line for line in new_lines if "aichain.http" in line]) <= sent, new_lines
    assert not tracebacks("\n".join(new_lines)), new_lines
    assert not [line for line in new_lines if line.startswith((" ", "Traceback"))], new_lines


def test_a_batch_of_a_thousand_large_answers_does_not_block_the_loop(node: NodeProcess) -> None:
    """1000 x rpc_methods is 10 MB of JSON to encode: never in one stretch of the event loop."""
    before = Health.of(node)
    body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "rpc_methods"} for i in range(1000)])
    answer = post(node.url, body, timeout=60)
    assert answer.status == 200 and len(answer.json()) == 1000
    assert Health.of(node).stalls_since(before) == 0


def test_none_of_it_left_a_traceback_or_a_stall(node: NodeProcess) -> None:
    """Runs last in this module: the node's whole log and loop figures after every mistake above."""
    text = log_text(node)
    assert not tracebacks(text), tracebacks(text)[:5]
    assert not stall_lines(text), stall_lines(text)
    assert Health.of(node).ticks > 0

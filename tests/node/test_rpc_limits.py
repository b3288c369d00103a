"""What one JSON-RPC request may ask of the dispatcher (docs/rpc.md, Limits): values in a body, param depth,
the answers of a batch, and QUANTITY sizes; each refusal is a documented error, never -32603."""

from __future__ import annotations

import json
from typing import Any

import pytest

from node.rpc import params as p
from node.rpc.jsonrpc import Dispatcher, RpcLimits
from node.rpc.registry import MethodRegistry, Param


def registry() -> MethodRegistry:
    reg = MethodRegistry()

    @reg.method("echo", Param("value", lambda v: v))
    def echo(value: Any) -> Any:
        return value

    @reg.method("block", Param("ref", p.block_ref))
    def block(ref: Any) -> Any:
        return str(ref)  # printing it must be cheap: a client's number is never long

    return reg


async def answer(dispatcher: Dispatcher, body: object) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    out = await dispatcher.handle_bytes(raw)
    return None if out is None else json.loads(out)


async def test_a_body_of_too_many_values_is_refused_before_it_is_parsed() -> None:
    dispatcher = Dispatcher(registry(), RpcLimits(max_json_values=1000))
    ok = await answer(dispatcher, {"jsonrpc": "2.0", "id": 1, "method": "echo", "params": [[0] * 990]})
    assert ok["result"] == [0] * 990
    refused = await answer(dispatcher, {"jsonrpc": "2.0", "id": 1, "method": "echo", "params": [[0] * 1001]})
    assert refused["id"] is None and refused["error"]["code"] == -32600
    assert "1000" in refused["error"]["message"] and refused["error"]["data"] == {"limit": 1000}


@pytest.mark.parametrize("depth", [31, 32, 33, 500, 900])
async def test_params_nest_at_most_32_deep(depth: int) -> None:
    value: Any = 0
    for _ in range(depth - 1):  # the params array itself is the first level
        value = [value] if depth % 2 else {"k": value}
    response = await answer(Dispatcher(registry()), {"jsonrpc": "2.0", "id": 7, "method": "echo", "params": [value]})
    if depth <= 32:
        assert "result" in response, response
    else:
        assert response["id"] == 7 and response["error"]["code"] == -32602
        assert "nested more than 32" in response["error"]["message"]


async def test_the_answers_of_a_batch_stop_at_their_budget_and_say_so() -> None:
    dispatcher = Dispatcher(registry(), RpcLimits(max_batch_response_bytes=10_000))
    batch = [{"jsonrpc": "2.0", "id": i, "method": "echo", "params": ["x" * 1000]} for i in range(30)]
    batch.append({"jsonrpc": "2.0", "method": "echo", "params": ["a notification gets no answer"]})
    batch.append({"jsonrpc": "1.0", "id": "bad", "method": "echo"})
    answers = await answer(dispatcher, batch)
    assert [a["id"] for a in answers] == [*range(30), "bad"]
    run = [a for a in answers[:30] if "result" in a]
    assert 9 <= len(run) <= 11 and all(a["result"] == "x" * 1000 for a in run)
    for refused in answers[len(run) : 30]:
        assert refused["error"]["code"] == -32600 and "was not run" in refused["error"]["message"]
    assert answers[30]["error"]["code"] == -32600 and '"jsonrpc"' in answers[30]["error"]["message"]


@pytest.mark.parametrize(
    ("ref", "ok"),
    [
        ("0x" + "f" * 64, True),
        ("0x" + "f" * 65, False),
        ("0x" + "f" * 4000, False),
        (2**256 - 1, True),
        (2**256, False),
        ("0x1 ", False),
        ("0x1_0", False),
        ("0x", False),
        ("-0x1", False),
        ("latest", True),
    ],
)
async def test_quantities_are_at_most_256_bits_of_plain_hex(ref: Any, ok: bool) -> None:
    response = await answer(Dispatcher(registry()), {"jsonrpc": "2.0", "id": 1, "method": "block", "params": [ref]})
    if ok:
        assert "result" in response, response
    else:
        assert response["error"]["code"] == -32602, response


async def test_a_number_of_5000_digits_is_a_parse_error_in_the_node_s_words() -> None:
    response = await answer(Dispatcher(registry()), b'{"jsonrpc":"2.0","id":' + b"9" * 5000 + b',"method":"echo"}')
    assert response["error"]["code"] == -32700
    assert "more than 4300 digits" in response["error"]["message"] and "sys." not in response["error"]["message"]

"""The transport-free JSON-RPC 2.0 protocol (node.rpc.jsonrpc), checked against the spec.

The "Examples" section of https://www.jsonrpc.org/specification is replayed verbatim; the
HTTP transport is tested in test_rpc_http.py.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from node.rpc.errors import InternalError, InvalidParams, InvalidRequest, MethodNotFound, ParseError, RpcError
from node.rpc.jsonrpc import Dispatcher, RpcLimits
from node.rpc.registry import REQUIRED, MethodRegistry, Param
from tests.node.rpc_fixtures import SPEC_EXAMPLES, make_registry, matches, parse_int

Calls = list[tuple[str, tuple[Any, ...]]]


@pytest.fixture
def calls() -> Calls:
    return []


@pytest.fixture
def dispatcher(calls: Calls) -> Dispatcher:
    return Dispatcher(make_registry(calls), RpcLimits(max_body_bytes=64 * 1024, max_batch=10))


async def rpc(dispatcher: Dispatcher, body: str | bytes) -> Any:
    """Send raw text, return the decoded answer (None when there is none)."""
    raw = body.encode() if isinstance(body, str) else body
    answer = await dispatcher.handle_bytes(raw)
    return None if answer is None else json.loads(answer)


def error_of(response: dict[str, Any]) -> tuple[int, str]:
    assert set(response) == {"jsonrpc", "id", "error"}
    return response["error"]["code"], response["error"]["message"]


# --- the specification's examples ------------------------------------------------------------------


@pytest.mark.parametrize(("body", "expected"), [e[1:] for e in SPEC_EXAMPLES], ids=[e[0] for e in SPEC_EXAMPLES])
async def test_spec_examples(dispatcher: Dispatcher, body: str, expected: Any) -> None:
    assert matches(await rpc(dispatcher, body), expected)


async def test_notifications_run_their_handlers(dispatcher: Dispatcher, calls: Calls) -> None:
    assert await rpc(dispatcher, '{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}') is None
    body = (
        '[{"jsonrpc":"2.0","method":"notify_sum","params":[1,2,4]},'
        '{"jsonrpc":"2.0","method":"notify_hello","params":[7]}]'
    )
    assert await rpc(dispatcher, body) is None
    assert calls == [("update", (1, 2, 3, 4, 5)), ("notify_sum", (1, 2, 4)), ("notify_hello", (7,))]


async def test_notification_errors_are_not_answered(dispatcher: Dispatcher) -> None:
    for method in ("boom", "nonce_too_low", "rpc_error", "unserialisable", "nope"):
        assert await rpc(dispatcher, json.dumps({"jsonrpc": "2.0", "method": method})) is None
    assert await rpc(dispatcher, '{"jsonrpc":"2.0","method":"subtract","params":[1]}') is None


# --- request objects ---------------------------------------------------------------------------------


async def test_null_id_is_answered(dispatcher: Dispatcher) -> None:
    assert await rpc(dispatcher, '{"jsonrpc":"2.0","method":"get_data","id":null}') == {
        "jsonrpc": "2.0",
        "id": None,
        "result": ["hello", 5],
    }


@pytest.mark.parametrize("id_", ["abc", "", 0, -7, 2**70, 1.5])
async def test_valid_ids_are_echoed(dispatcher: Dispatcher, id_: Any) -> None:
    response = await rpc(dispatcher, json.dumps({"jsonrpc": "2.0", "method": "get_data", "id": id_}))
    assert response["id"] == id_ and type(response["id"]) is type(id_)


@pytest.mark.parametrize("id_", [True, False, {"a": 1}, [1]])
async def test_bad_ids_are_invalid_requests(dispatcher: Dispatcher, id_: Any) -> None:
    response = await rpc(dispatcher, json.dumps({"jsonrpc": "2.0", "method": "get_data", "id": id_}))
    assert response["id"] is None
    assert error_of(response) == (-32600, 'invalid request: "id" must be a string, a number or null')


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"method": "get_data", "id": 5}, '"jsonrpc" must be exactly "2.0"'),
        ({"jsonrpc": "1.0", "method": "get_data", "id": 5}, '"jsonrpc" must be exactly "2.0"'),
        ({"jsonrpc": 2.0, "method": "get_data", "id": 5}, '"jsonrpc" must be exactly "2.0"'),
        ({"jsonrpc": "2.0", "id": 5}, '"method" is missing'),
        ({"jsonrpc": "2.0", "method": None, "id": 5}, '"method" must be a string'),
        ({"jsonrpc": "2.0", "method": "sum", "params": "bar", "id": 5}, '"params" must be an array or an object'),
        ({"jsonrpc": "2.0", "method": "sum", "params": 3, "id": 5}, '"params" must be an array or an object'),
        ({"jsonrpc": "2.0", "method": "sum", "params": None, "id": 5}, '"params" must be an array or an object'),
    ],
)
async def test_invalid_request_objects(dispatcher: Dispatcher, request_: dict[str, Any], message: str) -> None:
    response = await rpc(dispatcher, json.dumps(request_))
    assert error_of(response) == (-32600, f"invalid request: {message}")
    assert response["id"] == 5  # a usable id is echoed


async def test_invalid_requests_without_id_are_answered(dispatcher: Dispatcher) -> None:
    response = await rpc(dispatcher, '{"jsonrpc":"1.0","method":"update"}')
    assert response["id"] is None and response["error"]["code"] == -32600


@pytest.mark.parametrize("body", ['"hello"', "42", "null", "true", '[[{"jsonrpc":"2.0","method":"get_data","id":1}]]'])
async def test_non_objects_are_invalid_requests(dispatcher: Dispatcher, body: str) -> None:
    response = await rpc(dispatcher, body)
    item = response[0] if isinstance(response, list) else response
    assert item["id"] is None and item["error"]["code"] == -32600
    assert "expected a request object" in item["error"]["message"]


async def test_extra_members_are_ignored(dispatcher: Dispatcher) -> None:
    response = await rpc(dispatcher, '{"jsonrpc":"2.0","method":"get_data","id":1,"extra":true}')
    assert response["result"] == ["hello", 5]


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"{", b"\xff\xfe{}", b'{"jsonrpc":"2.0","method":"echo","params":[NaN],"id":1}', b"[" * 60_000],
)
async def test_parse_errors(dispatcher: Dispatcher, body: bytes) -> None:
    response = await rpc(dispatcher, body)
    assert response["id"] is None
    code, message = error_of(response)
    assert code == -32700 and message.startswith("parse error")


async def test_utf8_bom_and_unicode(dispatcher: Dispatcher) -> None:
    body = '\ufeff{"jsonrpc":"2.0","method":"echo","params":["héllo ✓"],"id":"ü"}'.encode()
    raw = await dispatcher.handle_bytes(body)
    assert raw is not None and raw.isascii()
    assert json.loads(raw) == {"jsonrpc": "2.0", "id": "ü", "result": "héllo ✓"}


async def test_responses_are_compact(dispatcher: Dispatcher) -> None:
    raw = await dispatcher.handle_bytes(b'{"jsonrpc":"2.0","method":"get_data","id":1}')
    assert raw == b'{"jsonrpc":"2.0","id":1,"result":["hello",5]}'


async def test_big_integers_are_json_numbers(dispatcher: Dispatcher) -> None:
    raw = await dispatcher.handle_bytes(b'{"jsonrpc":"2.0","method":"echo","params":[' + b"9" * 80 + b'],"id":1}')
    assert raw is not None and b'"result":' + b"9" * 80 + b"}" in raw
    response = await rpc(dispatcher, '{"jsonrpc":"2.0","method":"balance","params":["0x' + "ab" * 20 + '"],"id":1}')
    assert response["result"]["balance"] == 2**256 - 1


# --- batches and limits ------------------------------------------------------------------------------


async def test_batch_limit(dispatcher: Dispatcher) -> None:
    one = {"jsonrpc": "2.0", "method": "sum", "params": [1], "id": 1}
    response = await rpc(dispatcher, json.dumps([one] * 11))
    assert isinstance(response, dict)
    code, message = error_of(response)
    assert code == -32600 and "exceeds the limit of 10" in message
    assert response["error"]["data"] == {"limit": 10}
    assert len(await rpc(dispatcher, json.dumps([one] * 10))) == 10


async def test_batch_keeps_order_and_independence(dispatcher: Dispatcher) -> None:
    batch = [{"jsonrpc": "2.0", "method": "sum", "params": [i], "id": i} for i in range(5)]
    batch.insert(2, {"jsonrpc": "2.0", "method": "boom", "id": "x"})
    response = await rpc(dispatcher, json.dumps(batch))
    assert [r["id"] for r in response] == [0, 1, "x", 2, 3, 4]
    assert [r.get("result") for r in response] == [0, 1, None, 2, 3, 4]
    assert response[2]["error"]["code"] == -32603


async def test_body_limit(dispatcher: Dispatcher) -> None:
    body = json.dumps({"jsonrpc": "2.0", "method": "echo", "params": ["x" * 70_000], "id": 1})
    response = await rpc(dispatcher, body)
    assert response["id"] is None
    assert error_of(response) == (-32600, "invalid request: body exceeds the limit of 65536 bytes")


# --- methods and params ------------------------------------------------------------------------------


async def call(dispatcher: Dispatcher, method: str, params: Any = None) -> dict[str, Any]:
    request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": 1}
    if params is not None:
        request["params"] = params
    return await rpc(dispatcher, json.dumps(request))


async def test_unknown_method_is_named(dispatcher: Dispatcher) -> None:
    response = await call(dispatcher, "chain_nothing")
    assert error_of(response) == (-32601, "method not found: 'chain_nothing'")
    assert response["error"]["data"] == {"method": "chain_nothing"}


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("balance", ["0x1234"], "invalid params: 'address' (param 0): expected 0x-prefixed 20-byte hex"),
        ("balance", {"address": 5}, "invalid params: 'address' (param 0): expected 0x-prefixed 20-byte hex"),
        ("balance", [], "invalid params: missing required param 'address' (param 0)"),
        ("balance", {"block": "latest"}, "invalid params: missing required param 'address' (param 0)"),
        ("balance", [None], "invalid params: 'address' (param 0): expected 0x-prefixed 20-byte hex"),
        ("balance", ["0x" + "00" * 20, "latest", 3], "invalid params: balance takes at most 2 param(s), got 3"),
        ("subtract", [1, "2"], "invalid params: 'subtrahend' (param 1): expected an integer, got \"2\""),
        ("get_data", [1], "invalid params: get_data takes at most 0 param(s), got 1"),
        ("strict", ["nope"], "invalid params: 'address' (param 0): not a 0x-prefixed 20-byte hex address"),
    ],
)
async def test_param_errors_name_the_param(dispatcher: Dispatcher, method: str, params: Any, message: str) -> None:
    assert error_of(await call(dispatcher, method, params)) == (-32602, message)


async def test_unknown_named_param(dispatcher: Dispatcher) -> None:
    response = await call(dispatcher, "subtract", {"minuend": 1, "subtrahend": 2, "extra": 3})
    code, message = error_of(response)
    assert code == -32602 and message.startswith("invalid params: unknown param 'extra'")
    assert response["error"]["data"] == {"param": "extra"}


async def test_optional_params_take_defaults(dispatcher: Dispatcher) -> None:
    address = "0x" + "AB" * 20
    for params in ([address], [address, None], {"address": address}, {"address": address, "block": None}):
        assert (await call(dispatcher, "balance", params))["result"]["block"] == "latest"
    assert (await call(dispatcher, "balance", {"block": "0x10", "address": address}))["result"] == {
        "address": address.lower(),
        "block": "0x10",
        "balance": 2**256 - 1,
    }
    assert (await call(dispatcher, "sum"))["result"] == 0


async def test_aichain_error_mapping(dispatcher: Dispatcher) -> None:
    response = await call(dispatcher, "nonce_too_low")
    assert response["error"] == {"code": -32005, "message": "nonce 3 already used"}
    response = await call(dispatcher, "nonce_too_low", [True])
    assert response["error"] == {"code": -32005, "message": "nonce 3 already used", "data": {"expected": 4}}


async def test_rpc_error_passes_through(dispatcher: Dispatcher) -> None:
    assert (await call(dispatcher, "rpc_error"))["error"] == {
        "code": -32099,
        "message": "custom failure",
        "data": {"why": "testing"},
    }


async def test_unexpected_exception_is_internal(dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        raw = await dispatcher.handle_bytes(b'{"jsonrpc":"2.0","method":"boom","id":1}')
    assert json.loads(raw or b"") == {"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "internal error"}}
    assert b"secret" not in (raw or b"") and b"Traceback" not in (raw or b"")
    assert "secret internals" in caplog.text and "RuntimeError" in caplog.text  # logged with its traceback


@pytest.mark.parametrize("method", ["unserialisable", "nan"])
async def test_unserialisable_result_is_internal(dispatcher: Dispatcher, method: str) -> None:
    assert error_of(await call(dispatcher, method)) == (-32603, "internal error")


async def test_unserialisable_error_data_is_dropped() -> None:
    reg = MethodRegistry()

    @reg.method("bad")
    def bad() -> None:
        raise RpcError(-32001, "bad data", {"blob": b"\x00"})

    response = json.loads(await Dispatcher(reg).handle_bytes(b'{"jsonrpc":"2.0","method":"bad","id":1}') or b"")
    assert response["error"] == {"code": -32001, "message": "bad data"}


# --- errors and registry -----------------------------------------------------------------------------


def test_error_classes() -> None:
    for cls, code in [
        (ParseError, -32700),
        (InvalidRequest, -32600),
        (MethodNotFound, -32601),
        (InvalidParams, -32602),
        (InternalError, -32603),
    ]:
        error = cls()
        assert isinstance(error, RpcError) and error.code == code and error.message and error.data is None
        assert cls("why", {"x": 1}).to_dict() == {"code": code, "message": "why", "data": {"x": 1}}
    assert str(RpcError(-32000, "plain")) == "plain"


def test_registry_describe_and_names() -> None:
    reg = make_registry()
    assert reg.names() == sorted(reg.names()) and "subtract" in reg and len(reg) == len(reg.names())
    described = {d["name"]: d for d in reg.describe()}
    assert described["subtract"] == {
        "name": "subtract",
        "doc": "Minuend minus subtrahend.",
        "params": [
            {"name": "minuend", "doc": "", "required": True},
            {"name": "subtrahend", "doc": "", "required": True},
        ],
        "example": {"params": [42, 23]},
    }
    assert described["balance"]["params"][1] == {
        "name": "block",
        "doc": "block tag",
        "required": False,
        "default": "latest",
    }
    json.dumps(reg.describe())


def test_registry_rejects_mistakes() -> None:
    reg = MethodRegistry()
    reg.add("one", lambda a: a, [Param("a", parse_int)], doc="d")
    with pytest.raises(ValueError, match="already registered"):
        reg.add("one", lambda a: a, [Param("a", parse_int)])
    with pytest.raises(ValueError, match="non-empty"):
        reg.add("", lambda: None)
    with pytest.raises(TypeError, match="cannot take 2 positional"):
        reg.add("two", lambda a: a, [Param("a", parse_int), Param("b", parse_int)])
    with pytest.raises(ValueError, match="duplicate param"):
        reg.add("dup", lambda a, b: a, [Param("a", parse_int), Param("a", parse_int)])
    with pytest.raises(ValueError, match="follows an optional"):
        reg.add("order", lambda a, b: a, [Param("a", parse_int, 0), Param("b", parse_int)])
    with pytest.raises(ValueError, match="example"):
        reg.add("ex", lambda: None, example={"result": object()})
    with pytest.raises(ValueError, match="param name"):
        Param("", parse_int)
    assert Param("a", parse_int).required and Param("a", parse_int).default is REQUIRED
    assert not Param("a", parse_int, None).required
    assert reg.names() == ["one"]

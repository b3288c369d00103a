"""Shared by the JSON-RPC tests: a method registry (the spec's example methods and more) and the spec's examples."""

from __future__ import annotations

import json
import re
from typing import Any

from core.errors import InvalidAddress, NonceTooLow
from node.rpc.errors import RpcError
from node.rpc.registry import MethodRegistry, Param

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def parse_int(value: Any) -> int:
    """A JSON integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {json.dumps(value)}")
    return value


def parse_address(value: Any) -> str:
    """A 0x-prefixed 20-byte hex address."""
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise ValueError("expected 0x-prefixed 20-byte hex")
    return value.lower()


def parse_strict_address(value: Any) -> str:
    """Like parse_address, but failing with a node error."""
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise InvalidAddress("not a 0x-prefixed 20-byte hex address")
    return value.lower()


def make_registry(calls: list[tuple[str, tuple[Any, ...]]] | None = None) -> MethodRegistry:
    """The test methods; notifications append (name, args) to `calls`."""
    log = calls if calls is not None else []
    reg = MethodRegistry()

    @reg.method("subtract", Param("minuend", parse_int), Param("subtrahend", parse_int), example={"params": [42, 23]})
    async def subtract(minuend: int, subtrahend: int) -> int:
        """Minuend minus subtrahend."""
        return minuend - subtrahend

    @reg.method("sum", Param("a", parse_int, 0), Param("b", parse_int, 0), Param("c", parse_int, 0))
    async def sum_(a: int, b: int, c: int) -> int:
        return a + b + c

    @reg.method("get_data")
    def get_data() -> list[Any]:  # a plain (non-async) handler
        return ["hello", 5]

    async def record(name: str, *args: Any) -> None:
        log.append((name, args))

    reg.add("update", lambda *a: record("update", *a), [Param(n, parse_int) for n in "abcde"])
    reg.add("notify_hello", lambda x: record("notify_hello", x), [Param("x", parse_int)])
    reg.add("notify_sum", lambda *a: record("notify_sum", *a), [Param(n, parse_int) for n in "abc"])

    @reg.method("balance", Param("address", parse_address), Param("block", str, "latest", doc="block tag"))
    async def balance(address: str, block: str) -> dict[str, Any]:
        return {"address": address, "block": block, "balance": 2**256 - 1}

    @reg.method("strict", Param("address", parse_strict_address))
    async def strict(address: str) -> str:
        return address

    @reg.method("nonce_too_low", Param("with_data", bool, False))
    async def nonce_too_low(with_data: bool) -> None:
        if with_data:
            raise NonceTooLow("nonce 3 already used", expected=4)
        raise NonceTooLow("nonce 3 already used")

    @reg.method("rpc_error")
    async def rpc_error() -> None:
        raise RpcError(-32099, "custom failure", {"why": "testing"})

    @reg.method("boom")
    async def boom() -> None:
        raise RuntimeError("secret internals at /srv/node.py line 12")

    @reg.method("unserialisable")
    async def unserialisable() -> object:
        return {"value": object()}

    @reg.method("nan")
    async def nan() -> float:
        return float("nan")

    @reg.method("echo", Param("value", lambda v: v))
    async def echo(value: Any) -> Any:
        return value

    return reg


# --- the "Examples" section of https://www.jsonrpc.org/specification, verbatim -------------------

SPEC_EXAMPLES: list[tuple[str, str, Any]] = [
    (
        "positional params",
        '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
        {"jsonrpc": "2.0", "result": 19, "id": 1},
    ),
    (
        "positional params, swapped",
        '{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
        {"jsonrpc": "2.0", "result": -19, "id": 2},
    ),
    (
        "named params",
        '{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
        {"jsonrpc": "2.0", "result": 19, "id": 3},
    ),
    (
        "named params, other order",
        '{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}',
        {"jsonrpc": "2.0", "result": 19, "id": 4},
    ),
    ("notification", '{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}', None),
    ("notification of a missing method", '{"jsonrpc": "2.0", "method": "foobar"}', None),
    (
        "non-existent method",
        '{"jsonrpc": "2.0", "method": "foobar", "id": "1"}',
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "*"}, "id": "1"},
    ),
    (
        "invalid JSON",
        '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
        {"jsonrpc": "2.0", "error": {"code": -32700, "message": "*"}, "id": None},
    ),
    (
        "invalid request object",
        '{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "*"}, "id": None},
    ),
    (
        "batch, invalid JSON",
        '[ {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"}, {"jsonrpc": "2.0", "method" ]',
        {"jsonrpc": "2.0", "error": {"code": -32700, "message": "*"}, "id": None},
    ),
    ("empty array", "[]", {"jsonrpc": "2.0", "error": {"code": -32600, "message": "*"}, "id": None}),
    ("invalid batch", "[1]", [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "*"}, "id": None}]),
    (
        "invalid batch of three",
        "[1,2,3]",
        [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "*"}, "id": None}] * 3,
    ),
    (
        "batch with notifications and errors",
        """[
            {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
            {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
            {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
            {"foo": "boo"},
            {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
            {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
        ]""",
        [
            {"jsonrpc": "2.0", "result": 7, "id": "1"},
            {"jsonrpc": "2.0", "result": 19, "id": "2"},
            {"jsonrpc": "2.0", "error": {"code": -32600, "message": "*"}, "id": None},
            {"jsonrpc": "2.0", "error": {"code": -32601, "message": "*"}, "id": "5"},
            {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"},
        ],
    ),
    (
        "batch of notifications only",
        """[
            {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
            {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
        ]""",
        None,
    ),
]


def matches(actual: Any, expected: Any) -> bool:
    """Equality where "*" matches any non-empty string and error objects may add "data"."""
    if expected == "*":
        return isinstance(actual, str) and bool(actual)
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        keys = set(actual) - {"data"} if "code" in expected else set(actual)
        return keys == set(expected) and all(matches(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(map(matches, actual, expected))
    return type(actual) is type(expected) and actual == expected

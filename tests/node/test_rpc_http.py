"""JSON-RPC 2.0 over HTTP (node.rpc.http), on real 127.0.0.1 sockets."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from node.rpc.http import add_rpc_routes
from node.rpc.jsonrpc import Dispatcher, RpcLimits
from tests.node.rpc_fixtures import SPEC_EXAMPLES, make_registry, matches

LIMIT = 4096
JSON = {"Content-Type": "application/json"}
CALL = b'{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}'


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., Any]]:
    servers: list[TestServer] = []

    async def start(cors_origins: Sequence[str] = (), path: str = "/", read_timeout: float = 30.0) -> TestServer:
        app = web.Application()
        dispatcher = Dispatcher(make_registry(), RpcLimits(max_body_bytes=LIMIT, max_batch=10))
        add_rpc_routes(app, dispatcher, path=path, cors_origins=cors_origins, read_timeout=read_timeout)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def server(make_server: Callable[..., Any]) -> TestServer:
    return await make_server()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


async def post(
    session: aiohttp.ClientSession, server: TestServer, body: bytes, headers: dict[str, str] | None = None
) -> tuple[aiohttp.ClientResponse, bytes]:
    async with session.post(server.make_url("/"), data=body, headers=JSON if headers is None else headers) as resp:
        return resp, await resp.read()


async def raw_exchange(server: TestServer, head: bytes, chunks: Sequence[bytes] = ()) -> tuple[int, bytes]:
    """Send raw bytes on a socket (never finishing the body) and return the status and response body."""
    assert server.host is not None and server.port is not None
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(head)
        for chunk in chunks:
            writer.write(chunk)
        await writer.drain()
        async with asyncio.timeout(2):
            status_line = await reader.readline()
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), body
    finally:
        writer.close()


# --- the specification's examples, over HTTP ---------------------------------------------------------


@pytest.mark.parametrize(("body", "expected"), [e[1:] for e in SPEC_EXAMPLES], ids=[e[0] for e in SPEC_EXAMPLES])
async def test_spec_examples_over_http(
    server: TestServer, session: aiohttp.ClientSession, body: str, expected: Any
) -> None:
    resp, raw = await post(session, server, body.encode())
    if expected is None:
        assert resp.status == 204 and raw == b""
    else:
        assert resp.status == 200 and resp.content_type == "application/json"
        assert matches(json.loads(raw), expected)


async def test_success_and_errors_are_200(server: TestServer, session: aiohttp.ClientSession) -> None:
    resp, raw = await post(session, server, CALL)
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
    assert json.loads(raw) == {"jsonrpc": "2.0", "id": 1, "result": 19}
    resp, raw = await post(session, server, b'{"jsonrpc":"2.0","method":"nonce_too_low","id":2}')
    assert resp.status == 200 and json.loads(raw)["error"] == {"code": -32005, "message": "nonce 3 already used"}
    resp, raw = await post(session, server, b'{"jsonrpc":"2.0","method":"boom","id":3}')
    assert resp.status == 200 and json.loads(raw)["error"] == {"code": -32603, "message": "internal error"}
    assert b"secret" not in raw


async def test_custom_path(make_server: Callable[..., Any], session: aiohttp.ClientSession) -> None:
    server = await make_server(path="/rpc")
    async with session.post(server.make_url("/rpc"), data=CALL, headers=JSON) as resp:
        assert resp.status == 200
    async with session.post(server.make_url("/"), data=CALL, headers=JSON) as resp:
        assert resp.status == 404


# --- content types -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/json-rpc",
        "application/vnd.x+json",
    ],
)
async def test_json_content_types_accepted(
    server: TestServer, session: aiohttp.ClientSession, content_type: str
) -> None:
    resp, _ = await post(session, server, CALL, {"Content-Type": content_type})
    assert resp.status == 200


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/octet-stream"],
)
async def test_other_content_types_refused(
    server: TestServer, session: aiohttp.ClientSession, content_type: str
) -> None:
    resp, raw = await post(session, server, CALL, {"Content-Type": content_type})
    assert resp.status == 415
    error = json.loads(raw)["error"]
    assert error["code"] == -32600 and "Content-Type" in error["message"]


async def test_missing_content_type(server: TestServer) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(CALL)
    status, body = await raw_exchange(server, head, [CALL])
    assert status == 200 and json.loads(body)["result"] == 19
    # from a foreign web page, a request without Content-Type would skip the CORS preflight: refused
    head = head.replace(b"Host: x\r\n", b"Host: x\r\nOrigin: https://evil.example\r\n")
    status, body = await raw_exchange(server, head, [CALL])
    assert status == 415 and b"cross-origin" in body


# --- size limits -------------------------------------------------------------------------------------


async def test_body_at_limit_is_served(server: TestServer, session: aiohttp.ClientSession) -> None:
    prefix, suffix = b'{"jsonrpc":"2.0","method":"echo","params":["', b'"],"id":1}'
    body = prefix + b"x" * (LIMIT - len(prefix) - len(suffix)) + suffix
    assert len(body) == LIMIT
    resp, raw = await post(session, server, body)
    assert resp.status == 200 and len(json.loads(raw)["result"]) > 4000
    resp, raw = await post(session, server, body + b" ")
    assert resp.status == 413


async def test_oversized_content_length_refused_before_body(server: TestServer) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n"
    status, body = await raw_exchange(server, head, [b'{"jsonrpc":"2.0"'])
    assert status == 413
    response = json.loads(body)
    assert response["id"] is None and response["error"]["code"] == -32600
    assert response["error"]["message"] == f"invalid request: body exceeds the limit of {LIMIT} bytes"


async def test_oversized_expect_continue_refused_without_continue(server: TestServer) -> None:
    head = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10000000\r\nExpect: 100-continue\r\n\r\n"
    )
    status, _ = await raw_exchange(server, head)
    assert status == 413


async def test_expect_continue_within_limit(server: TestServer) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(CALL)
    assert server.host is not None and server.port is not None
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(head + b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(2):
            assert (await reader.readline()).startswith(b"HTTP/1.1 100")
            await reader.readline()
            writer.write(CALL)
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
            assert (await reader.read()).endswith(b'"result":19}')
    finally:
        writer.close()


async def test_oversized_chunked_body_refused_while_streaming(server: TestServer) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n%s\r\n" % (1000, b" " * 1000)
    status, body = await raw_exchange(server, head, [chunk] * 5)  # 5000 bytes, the final chunk never sent
    assert status == 413 and json.loads(body)["error"]["code"] == -32600


async def test_chunked_body_within_limit(server: TestServer, session: aiohttp.ClientSession) -> None:
    async def stream() -> AsyncIterator[bytes]:
        yield CALL[:10]
        yield CALL[10:]

    async with session.post(server.make_url("/"), data=stream(), headers=JSON) as resp:
        assert resp.status == 200 and (await resp.json())["result"] == 19


async def test_compressed_body_counts_decompressed_bytes(server: TestServer, session: aiohttp.ClientSession) -> None:
    gzip_json = {**JSON, "Content-Encoding": "gzip"}
    resp, raw = await post(session, server, gzip.compress(CALL), gzip_json)
    assert resp.status == 200 and json.loads(raw)["result"] == 19
    bomb = gzip.compress(b"[" + b" " * 10_000_000 + b"]")  # ~10 kB that inflate to 10 MB
    resp, raw = await post(session, server, bomb, gzip_json)
    assert resp.status == 413 and json.loads(raw)["error"]["code"] == -32600


async def test_slow_body_times_out(make_server: Callable[..., Any]) -> None:
    server = await make_server(read_timeout=0.2)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    status, body = await raw_exchange(server, head, [b"{"])
    assert status == 408 and json.loads(body)["error"]["code"] == -32600


# --- other methods -----------------------------------------------------------------------------------


async def test_notification_is_204(server: TestServer, session: aiohttp.ClientSession) -> None:
    resp, raw = await post(session, server, b'{"jsonrpc":"2.0","method":"boom"}')
    assert resp.status == 204 and raw == b""


async def test_get_is_405_with_help(server: TestServer, session: aiohttp.ClientSession) -> None:
    async with session.get(server.make_url("/")) as resp:
        assert resp.status == 405 and resp.headers["Allow"] == "POST, OPTIONS"
        body = await resp.json()
    assert body["id"] is None and body["error"]["code"] == -32600 and "POST" in body["error"]["message"]
    async with session.put(server.make_url("/"), data=CALL) as resp:
        assert resp.status == 405


# --- CORS --------------------------------------------------------------------------------------------


PREFLIGHT = {
    "Origin": "https://app.example",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type",
}


async def test_cors_closed_by_default(server: TestServer, session: aiohttp.ClientSession) -> None:
    async with session.options(server.make_url("/"), headers=PREFLIGHT) as resp:
        assert resp.status == 204
        assert not any(h.lower().startswith("access-control-") for h in resp.headers)
    resp, _ = await post(session, server, CALL, {**JSON, "Origin": "https://app.example"})
    assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers


async def test_cors_open_for_listed_origins(make_server: Callable[..., Any], session: aiohttp.ClientSession) -> None:
    server = await make_server(cors_origins=["https://App.example/", "http://localhost:3000"])
    async with session.options(server.make_url("/"), headers=PREFLIGHT) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        assert "content-type" in resp.headers["Access-Control-Allow-Headers"].lower()
        assert resp.headers["Vary"] == "Origin"
    resp, _ = await post(session, server, CALL, {**JSON, "Origin": "https://app.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    resp, _ = await post(session, server, CALL, {**JSON, "Origin": "https://other.example"})
    assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers
    async with session.options(server.make_url("/"), headers={**PREFLIGHT, "Origin": "https://other.example"}) as r:
        assert "Access-Control-Allow-Origin" not in r.headers


async def test_cors_wildcard(make_server: Callable[..., Any], session: aiohttp.ClientSession) -> None:
    server = await make_server(cors_origins=["*"])
    async with session.options(server.make_url("/"), headers=PREFLIGHT) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    resp, _ = await post(session, server, CALL, {**JSON, "Origin": "https://any.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    resp, _ = await post(session, server, CALL, {"Content-Type": "text/plain", "Origin": "https://any.example"})
    assert resp.status == 415 and resp.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_origins_must_not_be_a_string() -> None:
    with pytest.raises(TypeError):
        add_rpc_routes(web.Application(), Dispatcher(make_registry()), cors_origins="*")

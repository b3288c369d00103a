"""The one JSON-RPC client (`AsyncClient.rpc`, and `Client.rpc` on top of it) against servers that are not
a well-behaved node: each answer it cannot use is `NodeUnreachable` saying what came back, in bounded time."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from aichain_node import AsyncClient, Client, NodeError, NodeUnreachable
from core.errors import NonceTooLow

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def answer_with(handler: Handler, timeout: float = 5.0) -> object:
    async for url in serve(handler):
        async with AsyncClient(url, timeout=timeout) as client:
            return await client.rpc("node_status")
    raise AssertionError("unreachable")


async def test_a_web_page_is_not_a_node() -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(status=404, text="<html>not found</html>", content_type="text/html")

    with pytest.raises(NodeUnreachable, match="answered HTTP 404, not JSON-RPC"):
        await answer_with(page)


@pytest.mark.parametrize(
    "body", ["[1, 2]", '"text"', "null", '{"error": "no"}', '{"error": {"code": "x"}}', '{"error": {"code": true}}']
)
async def test_json_that_is_not_a_json_rpc_answer(body: str) -> None:
    async def odd(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    with pytest.raises(NodeUnreachable, match="JSON-RPC"):
        await answer_with(odd)


async def test_a_server_that_does_not_answer_in_time() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="{}")

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(NodeUnreachable, match="no node answers"):
        await answer_with(slow, timeout=0.5)
    assert loop.time() - started < 5


async def test_errors_come_back_typed() -> None:
    async def refusing(request: web.Request) -> web.Response:
        code = -32005 if (await request.json())["id"] == 1 else -32601
        return web.json_response({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "said the node"}})

    async for url in serve(refusing):
        async with AsyncClient(url) as client:
            with pytest.raises(NonceTooLow, match="said the node"):
                await client.rpc("tx_send", "0x00")
            with pytest.raises(NodeError, match=r"said the node \(code -32601\)"):
                await client.rpc("no_such_method")


def test_the_blocking_client_when_nothing_listens() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        with Client(f"http://127.0.0.1:{port}", timeout=2) as client, pytest.raises(NodeUnreachable) as refused:
            client.rpc("node_status")
    assert f"no node answers at http://127.0.0.1:{port}" in str(refused.value)
    assert "--rpc URL" in str(refused.value) and "aichain-node start --dev" in str(refused.value)

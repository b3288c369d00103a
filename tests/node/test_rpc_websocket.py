"""/ws on a real aiohttp server: answers, subscriptions, and what a client that stops reading gets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from node.rpc.admin import LOOPBACK_ONLY
from node.rpc.head_feed import HeadFeed
from node.rpc.jsonrpc import Dispatcher
from node.rpc.websocket import WebSocketEndpoint
from tests.node.rpc_fixtures import make_registry


@pytest.fixture
async def served() -> AsyncIterator[tuple[TestServer, WebSocketEndpoint]]:
    endpoint = WebSocketEndpoint(
        Dispatcher(make_registry()), HeadFeed(1), LOOPBACK_ONLY, ["https://explorer.example"], max_queued=16
    )
    app = web.Application()
    app.router.add_get("/ws", endpoint.handle)
    app.on_shutdown.append(endpoint.close_all)
    server = TestServer(app)
    await server.start_server()
    try:
        yield server, endpoint
    finally:
        await server.close()


def _call(id_: int, method: str, *params: object) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": list(params)})


async def test_requests_are_answered_and_heads_pushed_to_subscribers(
    served: tuple[TestServer, WebSocketEndpoint],
) -> None:
    server, endpoint = served
    async with aiohttp.ClientSession() as session, session.ws_connect(server.make_url("/ws")) as ws:
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subtract", "params": [42, 23]}))
        assert json.loads((await ws.receive()).data) == {"jsonrpc": "2.0", "id": 1, "result": 19}
        await ws.send_str("{not json")
        assert json.loads((await ws.receive()).data)["error"]["code"] == -32700  # and the connection stays
        await ws.send_bytes(b"{}")
        assert json.loads((await ws.receive()).data)["error"]["code"] == -32600
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "eth_subscribe", "params": ["logs"]}))
        refused = json.loads((await ws.receive()).data)
        assert refused["error"]["code"] == -32602 and "newHeads" in refused["error"]["message"]
        for params, says in (
            (["aichain_transactions"], '{"account": "0x…"}'),
            (["aichain_transactions", {"account": "0x12"}], "needs 'account'"),
            (["aichain_events", {"name": "Licensed"}], "needs 'address'"),
            (["aichain_events", {"address": "0x" + "11" * 20, "name": 7}], "name is a string"),
        ):
            await ws.send_str(_call(9, "eth_subscribe", *params))
            answer = json.loads((await ws.receive()).data)
            assert answer["error"]["code"] == -32602 and says in answer["error"]["message"], answer
        await ws.send_str(_call(10, "eth_subscribe", "aichain_events", {"address": "0x" + "11" * 20}))
        events = json.loads((await ws.receive()).data)["result"]
        await ws.send_str(_call(11, "eth_unsubscribe", events))
        assert json.loads((await ws.receive()).data)["result"] is True and len(endpoint.heads) == 0

        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "eth_subscribe", "params": ["newHeads"]}))
        subscription = json.loads((await ws.receive()).data)["result"]
        assert subscription.startswith("0x") and len(subscription) == 34 and len(endpoint.heads) == 1
        endpoint.heads.publish_text('{"number":"0x7"}')
        pushed = json.loads((await ws.receive()).data)
        assert pushed == {
            "jsonrpc": "2.0",
            "method": "eth_subscription",
            "params": {"subscription": subscription, "result": {"number": "0x7"}},
        }
        assert endpoint.counts() == {"connections": 1, "subscriptions": 1, "dropped_slow": 0}
        await ws.send_str(
            json.dumps({"jsonrpc": "2.0", "id": 4, "method": "eth_unsubscribe", "params": [subscription]})
        )
        assert json.loads((await ws.receive()).data)["result"] is True
        await ws.send_str(
            json.dumps({"jsonrpc": "2.0", "id": 5, "method": "eth_unsubscribe", "params": [subscription]})
        )
        assert json.loads((await ws.receive()).data)["result"] is False
        assert len(endpoint.heads) == 0
    await asyncio.sleep(0.05)
    assert endpoint.connections == 0


async def test_a_subscription_ends_with_its_connection(served: tuple[TestServer, WebSocketEndpoint]) -> None:
    server, endpoint = served
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(server.make_url("/ws")) as ws:
            for i in range(3):
                await ws.send_str(
                    json.dumps({"jsonrpc": "2.0", "id": i, "method": "eth_subscribe", "params": ["newHeads"]})
                )
                await ws.receive()
            assert len(endpoint.heads) == 3
        for _ in range(50):
            if len(endpoint.heads) == 0:
                break
            await asyncio.sleep(0.01)
    assert len(endpoint.heads) == 0 and endpoint.connections == 0


async def test_a_client_that_stops_reading_is_dropped_and_the_others_are_served(
    served: tuple[TestServer, WebSocketEndpoint],
) -> None:
    server, endpoint = served
    subscribe = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]})
    async with aiohttp.ClientSession() as session:
        slow = await session.ws_connect(server.make_url("/ws"), autoping=False)
        fast = await session.ws_connect(server.make_url("/ws"))
        for ws in (slow, fast):
            await ws.send_str(subscribe)
            await ws.receive()
        head = json.dumps({"number": "0x1", "padding": "x" * 4000})
        for _ in range(4000):  # ~16 MB: more than the socket buffers hold for the client that does not read
            endpoint.heads.publish_text(head)
            message = await asyncio.wait_for(fast.receive(), 5)  # the other client reads each one
            assert message.type == WSMsgType.TEXT
            if endpoint.dropped_slow:
                break
        assert endpoint.dropped_slow == 1, "the client that does not read is dropped"
        assert len(endpoint.heads) >= 1  # the fast client is still subscribed
        endpoint.heads.publish_text('{"number":"0x2"}')
        while True:
            message = await asyncio.wait_for(fast.receive(), 5)
            if '"0x2"' in message.data:
                break
        closed = None
        while closed is None:  # what the slow client finds when it reads again
            message = await asyncio.wait_for(slow.receive(), 10)
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED):
                closed = message
        # 1008 with the reason when the close frame still fits behind what is unread; else the TCP connection ends.
        assert slow.close_code in (1006, 1008) and slow.closed
        await slow.close()
        await fast.close()


async def test_a_page_from_an_origin_cors_does_not_allow_cannot_open_it(
    served: tuple[TestServer, WebSocketEndpoint],
) -> None:
    server, _ = served
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(server.make_url("/ws"), headers={"Origin": "https://evil.example"})
        assert refused.value.status == 403
        async with session.ws_connect(server.make_url("/ws"), headers={"Origin": "https://explorer.example"}) as ws:
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subtract", "params": [2, 1]}))
            assert json.loads((await ws.receive()).data)["result"] == 1

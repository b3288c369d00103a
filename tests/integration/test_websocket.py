"""`/ws` on a real node: new heads pushed as they are committed, in the shape of `eth_getBlockByNumber`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from tests.harness import NodeProcess
from tests.integration.support import fund, metric

AIC = 10**9
SUBSCRIBE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]})


def _ws_url(node: NodeProcess) -> str:
    return node.url.replace("http://", "ws://") + "/ws"


def test_a_subscriber_gets_each_new_head_as_it_is_committed(shared_node: NodeProcess) -> None:
    async def main() -> tuple[list[dict[str, object]], float]:
        async with aiohttp.ClientSession() as session, session.ws_connect(_ws_url(shared_node)) as ws:
            await ws.send_str(SUBSCRIBE)
            subscription = json.loads((await ws.receive(timeout=10)).data)["result"]
            # Plain calls go over the same connection.
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []}))
            heads: list[dict[str, object]] = []
            while True:
                message = json.loads((await ws.receive(timeout=10)).data)
                if message.get("id") == 2:
                    break
                heads.append(message)  # a head pushed before the answer
            assert metric(shared_node.url, "aichain_rpc_websocket_subscriptions") >= 1
            sent_at = time.monotonic()
            await asyncio.to_thread(fund, shared_node, AIC)  # a transaction, so blocks are made now
            waited = time.monotonic() - sent_at
            while len([h for h in heads if h["method"] == "eth_subscription"]) < 2:
                heads.append(json.loads((await ws.receive(timeout=10)).data))
            assert all(h["params"]["subscription"] == subscription for h in heads)  # type: ignore[index]
            return [h["params"]["result"] for h in heads], waited  # type: ignore[index]

    pushed, _ = asyncio.run(main())
    numbers = [int(str(h["number"]), 16) for h in pushed]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)  # each head once, in order
    for head in pushed:
        block = shared_node.rpc.call("eth_getBlockByNumber", head["number"], False)
        assert {k: block[k] for k in head} == head  # the same fields as eth_getBlockByNumber's


def test_stopping_the_node_closes_its_websockets_at_once(tmp_path: Path) -> None:
    with NodeProcess(tmp_path, block_time_ms=200) as node:

        async def connect_and_wait() -> tuple[int | None, float]:
            async with aiohttp.ClientSession() as session, session.ws_connect(_ws_url(node)) as ws:
                await ws.send_str(SUBSCRIBE)
                await ws.receive(timeout=10)
                started = time.monotonic()
                stopping = asyncio.create_task(asyncio.to_thread(node.stop))
                while not ws.closed:  # reading, as a client does, while the node stops
                    await ws.receive(timeout=15)
                await stopping
                return ws.close_code, time.monotonic() - started

        code, seconds = asyncio.run(connect_and_wait())
        assert code == 1001 and seconds < 15  # going away, without waiting out aiohttp's shutdown timeout

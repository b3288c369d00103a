"""`/ws` on a real node: new heads pushed as they are committed, in the shape of `eth_getBlockByNumber`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from aichain_node import Client
from core.keys import PrivateKey, address_hex
from core.system_addresses import MODELS
from node.bench.onnx_model import build_mlp
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
            for _ in range(2):  # two transactions, one after the other: two blocks now (an idle chain waits)
                await asyncio.to_thread(fund, shared_node, AIC)
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


def test_an_account_and_a_contract_are_followed_as_their_blocks_commit(
    shared_node: NodeProcess, tmp_path: Path
) -> None:
    owner = fund(shared_node, 10 * AIC)
    watched = PrivateKey.generate()
    name = f"ws-{owner.address.hex()[:8]}"

    async def main() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        async with aiohttp.ClientSession() as session, session.ws_connect(_ws_url(shared_node)) as ws:
            follow = {"account": address_hex(watched.address)}
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                          "params": ["aichain_transactions", follow]}))  # fmt: skip
            transactions = json.loads((await ws.receive(timeout=10)).data)["result"]
            events_of = {"address": address_hex(MODELS), "name": "VersionPublished"}
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "eth_subscribe",
                                          "params": ["aichain_events", events_of]}))  # fmt: skip
            events = json.loads((await ws.receive(timeout=10)).data)["result"]
            await asyncio.to_thread(fund, shared_node, 3 * AIC, watched)
            with Client(shared_node.url, owner) as node:
                await asyncio.to_thread(node.models.publish, build_mlp(tmp_path / "m.onnx", seed=4), name)
            got: dict[str, list[dict[str, object]]] = {transactions: [], events: []}
            deadline = time.monotonic() + 15
            while not (got[transactions] and any(e["fields"]["model"] == name for e in got[events])):  # type: ignore[index]
                message = json.loads((await ws.receive(timeout=max(0.1, deadline - time.monotonic()))).data)
                got[message["params"]["subscription"]].append(message["params"]["result"])
            return got[transactions], got[events]

    transactions, events = asyncio.run(main())
    assert transactions[0]["to"] == address_hex(watched.address) and transactions[0]["value"] == str(3 * AIC)
    assert transactions[0]["status"] == "success"
    located = shared_node.rpc.call("tx_get", transactions[0]["hash"])
    assert located["block_height"] == transactions[0]["block_height"]
    published = [e for e in events if e["fields"]["model"] == name]  # type: ignore[index]
    assert published[0]["name"] == "VersionPublished" and published[0]["fields"]["version"] == 1  # type: ignore[index]


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

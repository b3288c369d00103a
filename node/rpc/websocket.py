"""JSON-RPC 2.0 over WebSocket at `/ws`: every method of the HTTP endpoint, plus subscriptions.

- A text frame carries one request or a batch, answered as over HTTP (the same dispatcher, the
  same limits, the same admin rule: decided at the upgrade from the TCP peer and its
  `Authorization` header). Binary frames are refused with a -32600 answer.
- `eth_subscribe("newHeads")` answers a subscription id; from then on each committed block's
  header is pushed in Ethereum's shape, so web3 tools that follow heads work unchanged:
  `{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":ID,"result":HEADER}}`.
  `eth_subscribe("aichain_transactions", {"account": "0x…"})` pushes each committed transaction
  the account sent or received, and `eth_subscribe("aichain_events", {"address": "0x…", "name":
  "Licensed"})` each event a contract emits (all of them without `name`), in the same envelope.
  `eth_unsubscribe(ID)` answers true (false for an unknown id). Subscribe calls are taken as
  single requests, not inside a batch.
- Limits. At most `max_connections` at once (503 at the upgrade), `MAX_SUBSCRIPTIONS` per
  connection. What is pushed waits in a queue of `max_queued` messages; a client that lets it fill,
  or does not take one message within `SEND_TIMEOUT_S`, is disconnected (close code 1008 with the
  reason, when the close frame still fits behind what it left unread), so it never holds up the
  node or the other subscribers. aiohttp pings every `HEARTBEAT_S` and drops
  a peer that stops answering; a frame over the body limit closes the connection (1009).
- A browser page may open it only from an origin CORS allows (403 at the upgrade otherwise), so a
  web page cannot use a visitor's browser to reach a node on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Sequence
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, hdrs, web

from core.errors import InvalidAddress
from core.keys import parse_address
from node.rpc.admin import AdminGate
from node.rpc.caller import set_client
from node.rpc.errors import InvalidParams, InvalidRequest, RpcError, encode_error
from node.rpc.head_feed import HeadFeed
from node.rpc.jsonrpc import Dispatcher

log = logging.getLogger("aichain.rpc")

MAX_SUBSCRIPTIONS = 16
SEND_TIMEOUT_S = 10.0
HEARTBEAT_S = 30.0
TOO_SLOW = WSCloseCode.POLICY_VIOLATION  # 1008
SUBSCRIPTION_KINDS = {
    "newHeads": "no options",
    "aichain_transactions": '{"account": "0x…"}: each committed transaction it sent or received',
    "aichain_events": '{"address": "0x…", "name": "…" (optional)}: each event the contract emits',
}
_CLOSING: set[asyncio.Task[bool]] = set()


class WebSocketEndpoint:
    def __init__(
        self,
        dispatcher: Dispatcher,
        heads: HeadFeed,
        admin: AdminGate,
        cors_origins: Sequence[str] = (),
        *,
        max_connections: int = 256,
        max_queued: int = 256,
    ) -> None:
        self.dispatcher = dispatcher
        self.heads = heads
        self.admin = admin
        self._cors_any = "*" in cors_origins
        self._origins = frozenset(o.rstrip("/").lower() for o in cors_origins if o != "*")
        self.max_connections = max_connections
        self.max_queued = max_queued
        self.connections = 0
        self.dropped_slow = 0
        self._open: set[web.WebSocketResponse] = set()

    async def close_all(self, app: web.Application | None = None) -> None:
        """The node is stopping: close every connection (1001, going away) so none holds the shutdown."""
        for ws in list(self._open):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the node is stopping")

    def counts(self) -> dict[str, int]:
        """What /metrics shows: connections open, newHeads subscriptions, clients dropped for being slow."""
        return {"connections": self.connections, "subscriptions": len(self.heads), "dropped_slow": self.dropped_slow}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and not (self._cors_any or origin.rstrip("/").lower() in self._origins):
            return web.json_response(
                {"error": f"WebSocket from origin {origin!r} refused: add it to [rpc] cors_origins to allow it"},
                status=403,
            )
        if self.connections >= self.max_connections:
            return web.json_response(
                {"error": f"all {self.max_connections} WebSocket connections are taken; retry later"}, status=503
            )
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=self.dispatcher.limits.max_body_bytes)
        await ws.prepare(request)
        refusal = self.admin.refusal(request.remote, request.headers.get(hdrs.AUTHORIZATION))
        connection = _Connection(ws, self.max_queued, self._on_too_slow)
        self.connections += 1
        self._open.add(ws)
        sender = asyncio.create_task(connection.send_loop(), name="ws-send")
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_text(connection, message.data, request.remote, refusal)
                elif message.type == WSMsgType.BINARY:
                    error = InvalidRequest("invalid request: send JSON-RPC requests as text frames")
                    connection.push(encode_error(error).decode())
        finally:
            for number in connection.subscriptions.values():
                self.heads.unsubscribe(number)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            self.connections -= 1
            self._open.discard(ws)
        return ws

    def _on_too_slow(self) -> None:
        self.dropped_slow += 1

    async def _on_text(self, connection: _Connection, data: str, remote: str | None, refusal: str | None) -> None:
        request = _single_request(data)
        if request is not None and request.get("method") in ("eth_subscribe", "eth_unsubscribe"):
            connection.push(self._subscription_call(connection, request))
            return
        set_client(remote, refusal)
        answer = await self.dispatcher.handle_bytes(data.encode())
        if answer is not None:
            connection.push(answer.decode())

    def _subscription_call(self, connection: _Connection, request: dict[str, Any]) -> str:
        id_ = request.get("id")
        params = request.get("params", [])
        try:
            if not isinstance(params, list) or not params:
                raise InvalidParams(f"invalid params: {request['method']} takes a list with one value")
            if request["method"] == "eth_unsubscribe":
                number = connection.subscriptions.pop(str(params[0]), None)
                result: Any = number is not None and self.heads.unsubscribe(number)
            else:
                result = self._subscribe(connection, params)
        except RpcError as exc:
            return encode_error(exc, id_).decode()
        return json.dumps({"jsonrpc": "2.0", "id": id_, "result": result})

    def _subscribe(self, connection: _Connection, params: list[Any]) -> str:
        kind = params[0]
        if kind not in SUBSCRIPTION_KINDS:
            offered = ", ".join(f"'{k}'" for k in SUBSCRIPTION_KINDS)
            raise InvalidParams(f"invalid params: this node offers the subscriptions {offered}, not {kind!r}")
        if len(connection.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise InvalidParams(f"invalid params: at most {MAX_SUBSCRIPTIONS} subscriptions per connection")
        subscription = "0x" + secrets.token_hex(16)
        prefix = '{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"' + subscription

        def push(item: str) -> None:
            connection.push(prefix + '","result":' + item + "}}")

        if kind == "newHeads":
            number = self.heads.subscribe(push)
        else:
            options = params[1] if len(params) > 1 else None
            if not isinstance(options, dict):
                usage = SUBSCRIPTION_KINDS[kind]
                raise InvalidParams(f"invalid params: {kind} takes an object after its name ({usage})")
            if kind == "aichain_transactions":
                number = self.heads.subscribe_account(_address(options, "account", kind), push)
            else:
                name = options.get("name")
                if name is not None and not isinstance(name, str):
                    raise InvalidParams("invalid params: an event's name is a string")
                number = self.heads.subscribe_events(_address(options, "address", kind), name, push)
        connection.subscriptions[subscription] = number
        return subscription


def _address(options: dict[str, Any], key: str, kind: str) -> bytes:
    try:
        return parse_address(options.get(key))  # type: ignore[arg-type]
    except InvalidAddress as exc:
        raise InvalidParams(f"invalid params: {kind} needs {key!r}: {exc}") from None


class _Connection:
    """One client: what is pushed to it waits in a bounded queue that one task sends from."""

    def __init__(self, ws: web.WebSocketResponse, max_queued: int, on_too_slow: Any) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=max_queued)
        self.subscriptions: dict[str, int] = {}  # subscription id -> the feed's number
        self.closing = False
        self._on_too_slow = on_too_slow

    def push(self, text: str) -> None:
        if self.closing:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self._drop(f"{self.queue.maxsize} messages wait unread")

    async def send_loop(self) -> None:
        while True:
            text = await self.queue.get()
            try:
                await asyncio.wait_for(self.ws.send_str(text), SEND_TIMEOUT_S)
            except TimeoutError:
                self._drop(f"a message was not taken within {SEND_TIMEOUT_S:g} s")
                return
            except ConnectionError:
                return  # the client went away: the reading side ends the connection

    def _drop(self, why: str) -> None:
        if self.closing:
            return
        self.closing = True
        self._on_too_slow()
        log.info("WebSocket client dropped: too slow (%s)", why)
        message = f"too slow: {why}; read faster or subscribe to less".encode()[:120]
        closer = asyncio.get_running_loop().create_task(self.ws.close(code=TOO_SLOW, message=message))
        _CLOSING.add(closer)  # held until done: the loop keeps only a weak reference to a task
        closer.add_done_callback(_CLOSING.discard)


def _single_request(data: str) -> dict[str, Any] | None:
    """The request object if `data` is one JSON-RPC request (not a batch), else None (the dispatcher
    then answers it, parse errors included)."""
    if '"eth_subscribe"' not in data and '"eth_unsubscribe"' not in data:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


__all__ = ["WebSocketEndpoint"]

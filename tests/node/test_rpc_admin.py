"""Admin calls (node.rpc.admin): the rule, on the JSON-RPC endpoint with the peer address made up, and the
admin token file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from core.errors import ConfigError
from node.rpc.admin import AdminGate, bearer_token, is_loopback, read_admin_token
from node.rpc.caller import set_client
from node.rpc.http import add_rpc_routes
from node.rpc.jsonrpc import Dispatcher
from node.rpc.registry import MethodRegistry

TOKEN = "0123456789abcdef0123456789abcdef"
REMOTE = "192.0.2.7"  # TEST-NET-1: an address that is not this machine's


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.0.2.7", False),
        ("10.0.0.1", False),
        ("::ffff:192.0.2.7", False),
        ("fe80::1%eth0", False),
        ("", False),
        (None, False),
        ("localhost", False),  # the transport reports addresses, never names
    ],
)
def test_loopback_peers(peer: str | None, loopback: bool) -> None:
    assert is_loopback(peer) is loopback


def test_bearer_token() -> None:
    assert bearer_token(f"Bearer {TOKEN}") == TOKEN
    assert bearer_token(f"bearer   {TOKEN} ") == TOKEN
    assert bearer_token("AichainRead abc") is None
    assert bearer_token(None) is None and bearer_token("") is None


def test_the_rule() -> None:
    open_gate = AdminGate()
    with_token = AdminGate(token=TOKEN.encode())
    token_only = AdminGate(from_loopback=False, token=TOKEN.encode())
    bearer = f"Bearer {TOKEN}"
    assert open_gate.refusal("127.0.0.1", None) is None and open_gate.refusal("::1", None) is None
    assert with_token.refusal(REMOTE, bearer) is None and token_only.refusal("127.0.0.1", bearer) is None
    remote = open_gate.refusal(REMOTE, None)
    assert remote is not None and REMOTE in remote
    assert "admin_from_loopback" in remote and "admin_token_file" in remote and "Authorization: Bearer" in remote
    wrong = with_token.refusal(REMOTE, "Bearer " + "x" * 32)
    assert wrong is not None and "not this node's" in wrong
    none_here = open_gate.refusal(REMOTE, bearer)
    assert none_here is not None and "has none" in none_here
    proxied = token_only.refusal("127.0.0.1", None)
    assert proxied is not None and "admin_from_loopback = false" in proxied
    assert token_only.refusal("127.0.0.1", "Bearer " + "x" * 32) is not None
    # A wrong token is refused from loopback too (a script with a stale token learns it here) ...
    stale = with_token.refusal("127.0.0.1", "Bearer " + "x" * 32)
    assert stale is not None and "not this node's" in stale
    # ... while a token sent to a node that has none is not a mismatch: loopback is served.
    assert open_gate.refusal("127.0.0.1", bearer) is None


def registry() -> MethodRegistry:
    methods = MethodRegistry()

    @methods.method("wipe", admin=True)
    def wipe() -> str:
        return "wiped"

    @methods.method("look")
    def look() -> str:
        return "looked"

    @methods.method("rpc_methods")
    def rpc_methods() -> list[dict[str, Any]]:
        return methods.describe()

    return methods


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., Awaitable[TestServer]]]:
    servers: list[TestServer] = []

    async def start(gate: AdminGate, peer: str) -> TestServer:
        @web.middleware
        async def from_peer(request: web.Request, handler: Handler) -> web.StreamResponse:
            # The peer as the transport would report it for a client on another machine; a forwarding
            # header sent along must change nothing.
            return await handler(request.clone(remote=peer))

        app = web.Application(middlewares=[from_peer])
        add_rpc_routes(app, Dispatcher(registry()), admin=gate)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


async def call(server: TestServer, method: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": []}
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.make_url("/"), json=body, headers=headers or {}) as response,
    ):
        assert response.status == 200
        answer: dict[str, Any] = json.loads(await response.read())
        return answer


async def test_a_remote_peer_needs_the_token(make_server: Callable[..., Awaitable[TestServer]]) -> None:
    server = await make_server(AdminGate(token=TOKEN.encode()), REMOTE)
    refused = await call(server, "wipe", {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"})
    assert refused["error"]["code"] == -32040 and "wipe administers this node" in refused["error"]["message"]
    assert "admin_token_file" in refused["error"]["message"]
    wrong = await call(server, "wipe", {"Authorization": "Bearer " + "f" * 32})
    assert wrong["error"]["code"] == -32040 and "not this node's" in wrong["error"]["message"]
    assert (await call(server, "wipe", {"Authorization": f"Bearer {TOKEN}"}))["result"] == "wiped"
    assert (await call(server, "look"))["result"] == "looked"  # other methods stay open


async def test_loopback_can_be_turned_off(make_server: Callable[..., Awaitable[TestServer]]) -> None:
    served = await make_server(AdminGate(), "127.0.0.1")
    assert (await call(served, "wipe"))["result"] == "wiped"
    behind_proxy = await make_server(AdminGate(from_loopback=False, token=TOKEN.encode()), "127.0.0.1")
    refused = await call(behind_proxy, "wipe")
    assert refused["error"]["code"] == -32040 and "admin_from_loopback = false" in refused["error"]["message"]
    assert (await call(behind_proxy, "wipe", {"Authorization": f"Bearer {TOKEN}"}))["result"] == "wiped"


async def test_rpc_methods_marks_admin_methods(make_server: Callable[..., Awaitable[TestServer]]) -> None:
    server = await make_server(AdminGate(), REMOTE)
    described = {m["name"]: m for m in (await call(server, "rpc_methods"))["result"]}
    assert described["wipe"]["admin"] is True and "admin" not in described["look"]


def write_token(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_admin_token_file(tmp_path: Path) -> None:
    good = write_token(tmp_path / "token", TOKEN + "\n", 0o600)
    assert read_admin_token(good) == TOKEN.encode()
    assert read_admin_token(write_token(tmp_path / "ro", TOKEN, 0o400)) == TOKEN.encode()
    with pytest.raises(ConfigError, match="no such file"):
        read_admin_token(tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"mode 0644.*chmod 600"):
        read_admin_token(write_token(tmp_path / "open", TOKEN, 0o644))
    with pytest.raises(ConfigError, match="mode 0660"):
        read_admin_token(write_token(tmp_path / "group", TOKEN, 0o660))
    with pytest.raises(ConfigError, match="at least 16 characters"):
        read_admin_token(write_token(tmp_path / "short", "secret", 0o600))
    with pytest.raises(ConfigError, match="one word"):
        read_admin_token(write_token(tmp_path / "two", TOKEN + " " + TOKEN, 0o600))


async def test_refused_admin_calls_are_reported_by_code() -> None:
    """Every error answer is reported to `on_error` (the node counts it in /metrics by code)."""
    codes: list[int] = []
    dispatcher = Dispatcher(registry(), on_error=codes.append)
    set_client(REMOTE, AdminGate().refusal(REMOTE, None))
    await dispatcher.handle_bytes(b'{"jsonrpc": "2.0", "id": 1, "method": "wipe", "params": []}')
    await dispatcher.handle_bytes(b'{"jsonrpc": "2.0", "id": 2, "method": "look", "params": []}')
    await dispatcher.handle_bytes(b'{"jsonrpc": "2.0", "id": 3, "method": "nope", "params": []}')
    assert codes == [-32040, -32601]  # the answered call is not an error

"""Connecting two managers, and every way the handshake refuses a peer."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from core.hashing import sha256
from core.keys import PrivateKey
from node.p2p import HandshakeRefused, Peer, PeerManager
from node.p2p.tls import TLSIdentity, client_context
from tests.p2p.support import APP, Cluster, bootnode, connected, fast_config, wait_until


async def test_two_managers_exchange_messages_both_ways(cluster: Cluster) -> None:
    a, b = await cluster.start(), await cluster.start()
    got: dict[str, list[tuple[bytes, object]]] = {"a": [], "b": []}

    def recorder(name: str):
        async def handler(peer: Peer, payload: object) -> None:
            got[name].append((peer.node_key, payload))

        return handler

    a.register(APP, recorder("a"))
    b.register(APP, recorder("b"))
    events: list[str] = []
    a.on_peer_connected(lambda p: events.append("up"))
    peer_b = await a.connect("127.0.0.1", b.listen_port, b.node_id)
    assert peer_b.node_key == b.node_id and peer_b.direction == "outbound"
    await wait_until(lambda: connected(a, b), what="connection")
    await peer_b.send(APP, [APP, b"from a"])
    peer_a = b.peer(a.node_id)
    assert peer_a is not None and peer_a.direction == "inbound"
    await peer_a.send(APP, [APP, b"from b"])
    assert await b.broadcast(APP, [APP, b"broadcast from b"]) == 1
    assert await b.broadcast(APP, [APP, b"excluded"], exclude=a.node_id) == 0
    await wait_until(lambda: len(got["a"]) == 2 and len(got["b"]) == 1, what="messages")
    assert got["b"] == [(a.node_id, [APP, b"from a"])]
    assert got["a"] == [(b.node_id, [APP, b"from b"]), (b.node_id, [APP, b"broadcast from b"])]
    info = {i.node_key: i for i in a.peers()}[b.node_id]
    assert (info.host, info.port, info.direction, info.score) == ("127.0.0.1", b.listen_port, "outbound", 0.0)
    assert events == ["up"]
    assert a.metrics.messages_out[APP] == 1 and a.metrics.messages_in[APP] == 2
    assert a.metrics.bytes_in > 0 and a.metrics.bytes_out > 0 and a.metrics.peers == 1


@pytest.mark.parametrize(
    ("override", "code", "text"),
    [({"chain_id": 9}, "wrong_chain", "is on chain 9"), ({"genesis_hash": sha256(b"other")}, "wrong_genesis", "0x")],
)
async def test_another_chain_or_genesis_is_refused_on_both_sides(
    cluster: Cluster, caplog: pytest.LogCaptureFixture, override: dict, code: str, text: str
) -> None:
    caplog.set_level(logging.WARNING, logger="node.p2p")
    a, b = await cluster.start(), await cluster.start(**override)
    with pytest.raises(HandshakeRefused) as refused:
        await a.connect("127.0.0.1", b.listen_port)
    assert refused.value.code == code
    await wait_until(lambda: b.metrics.refused_by_us[code] == 1, what="refusal by b")
    assert a.metrics.refused_by_us[code] == 1
    assert not a.peers() and not b.peers()
    messages = [r.getMessage() for r in caplog.records]
    refusals = [m for m in messages if "is on chain" in m and "we are on chain" in m]
    assert len(refusals) == 2 and any(text in m for m in refusals)  # logged by each side
    entry = a.book.get("127.0.0.1", b.listen_port)
    assert entry is not None and text in entry.last_error


class Relay:
    """A man in the middle: terminates TLS with its own certificate, relays the plaintext."""

    def __init__(self, target_port: int, terminate_tls: bool = True) -> None:
        self.target_port, self.terminate_tls = target_port, terminate_tls
        self.identity = TLSIdentity.create(PrivateKey.generate())
        self.tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        ssl_ctx = self.identity.server_context if self.terminate_tls else None
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=ssl_ctx)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, r1: asyncio.StreamReader, w1: asyncio.StreamWriter) -> None:
        ssl_ctx = client_context() if self.terminate_tls else None
        r2, w2 = await asyncio.open_connection(
            "127.0.0.1", self.target_port, ssl=ssl_ctx, server_hostname="" if ssl_ctx else None
        )

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(r1, w2), pipe(r2, w1), return_exceptions=True)

    async def stop(self) -> None:
        self.server.close()


async def test_a_relay_terminating_tls_is_detected_by_the_channel_binding(cluster: Cluster) -> None:
    a, b = await cluster.start(), await cluster.start()
    relay = Relay(b.listen_port)
    port = await relay.start()
    with pytest.raises(HandshakeRefused) as refused:
        await a.connect("127.0.0.1", port, b.node_id)  # the relay forwards B's genuine Hello
    assert refused.value.code == "bad_signature"
    await wait_until(lambda: b.metrics.refused_by_us["bad_signature"] == 1, what="b detects the relay")
    assert a.metrics.refused_by_us["bad_signature"] == 1
    assert not a.peers() and not b.peers()
    await relay.stop()
    # A plain TCP forwarder does not touch TLS: the binding matches and the peers connect.
    tcp = Relay(b.listen_port, terminate_tls=False)
    peer = await a.connect("127.0.0.1", await tcp.start(), b.node_id)
    assert peer.node_key == b.node_id
    await a.stop()
    await tcp.stop()


async def test_allow_list_refuses_unknown_keys(cluster: Cluster) -> None:
    key_a = PrivateKey.generate()
    b = await cluster.start(allow_list=frozenset({key_a.public_key}))
    a, c = await cluster.start(key_a), await cluster.start()
    with pytest.raises(HandshakeRefused) as refused:
        await c.connect("127.0.0.1", b.listen_port)
    assert refused.value.code == "not_allowed" and refused.value.by_peer
    assert b.metrics.refused_by_us["not_allowed"] == 1 and c.metrics.refused_by_peer["not_allowed"] == 1
    await a.connect("127.0.0.1", b.listen_port)
    await wait_until(lambda: connected(a, b), what="allowed peer")
    assert [p.node_key for p in b.peers()] == [a.node_id]


async def test_connecting_to_ourselves_is_refused_and_not_retried(cluster: Cluster) -> None:
    a = await cluster.start()
    with pytest.raises(HandshakeRefused) as refused:
        await a.connect("127.0.0.1", a.listen_port)
    assert refused.value.code == "self"
    entry = a.book.get("127.0.0.1", a.listen_port)
    assert entry is not None and entry.is_self
    dials = a.metrics.dials
    await asyncio.sleep(0.3)
    assert a.metrics.dials == dials and not a.peers()


async def test_wrong_expected_key_and_full_inbound_slots(cluster: Cluster) -> None:
    b = await cluster.start(max_inbound=1)
    a, c = await cluster.start(), await cluster.start()
    with pytest.raises(HandshakeRefused) as refused:
        await a.connect("127.0.0.1", b.listen_port, PrivateKey.generate().public_key)
    assert refused.value.code == "unexpected_key"
    await a.connect("127.0.0.1", b.listen_port, b.node_id)
    with pytest.raises(HandshakeRefused) as refused:
        await c.connect("127.0.0.1", b.listen_port)
    assert refused.value.code == "too_many_peers" and refused.value.by_peer


async def test_simultaneous_dials_keep_exactly_one_connection(cluster: Cluster) -> None:
    ka, kb = sorted((PrivateKey.generate() for _ in range(2)), key=lambda k: k.public_key)
    a, b = PeerManager(fast_config(), ka), PeerManager(fast_config(), kb)
    cluster.managers += [a, b]
    await a.start()
    await b.start()
    a.add_address(bootnode(b))
    b.add_address(bootnode(a))
    await wait_until(lambda: connected(a, b), what="connection")
    await asyncio.sleep(0.5)  # let any duplicate be resolved
    pa, pb = a.peer(b.node_id), b.peer(a.node_id)
    assert pa is not None and pb is not None and len(a.peers()) == 1 and len(b.peers()) == 1
    # Both ends keep the connection dialed by the smaller key (a's).
    assert (pa.direction, pb.direction) == ("outbound", "inbound")

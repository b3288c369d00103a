"""Scores, rate limits, bans, slow and silent peers."""

from __future__ import annotations

import asyncio
import ssl
import struct

import pytest

from core.keys import PrivateKey
from node.p2p import HandshakeRefused, MsgType, Peer
from node.p2p.framing import encode_frame, frame_from_body
from node.p2p.tls import client_context
from tests.p2p.support import APP, Cluster, RawClient, connected, wait_until


async def test_oversized_frame_disconnects_and_bans_key_and_ip_others_still_served(cluster: Cluster) -> None:
    a, b = await cluster.start(), await cluster.start()
    got: list[object] = []

    async def handler(peer: Peer, payload: object) -> None:
        got.append(payload)

    a.register(APP, handler)
    await b.connect("127.0.0.1", a.listen_port)
    attacker = await RawClient.connect(a.listen_port, source="127.0.0.2")
    await attacker.send_raw(struct.pack(">I", a.config.max_frame_size + 1) + bytes([APP]))
    frames = await attacker.read_until_closed()
    assert (MsgType.DISCONNECT, [2, "banned", frames[-1][1][2]]) == frames[-1]
    assert a.bans.key_banned(attacker.key.public_key) and a.bans.ip_banned("127.0.0.2")
    await wait_until(lambda: a.metrics.disconnects["banned"] == 1, what="disconnect recorded")
    assert a.metrics.bans == 1 and a.metrics.peers == 1
    # During the ban, the IP is refused before TLS, whatever key it brings.
    with pytest.raises((OSError, ssl.SSLError, asyncio.IncompleteReadError)):
        await RawClient.connect(a.listen_port, source="127.0.0.2")
    # The node keeps serving its peer and accepts new ones from elsewhere.
    peer_a = b.peer(a.node_id)
    assert peer_a is not None
    await peer_a.send(APP, [APP, b"still here"])
    await wait_until(lambda: got == [[APP, b"still here"]], what="message after the attack")
    c = await cluster.start()
    await c.connect("127.0.0.1", a.listen_port)
    await wait_until(lambda: connected(a, c), what="new peer after the attack")


MALFORMED = frame_from_body(APP, b"\xc1")
NON_CANONICAL = frame_from_body(APP, b"\xcc\x01")
UNKNOWN = encode_frame(200, [200])
UNSOLICITED = encode_frame(MsgType.PONG, [int(MsgType.PONG), 12345])


@pytest.mark.parametrize(
    ("frame", "penalty", "count"),
    [(MALFORMED, 25, 4), (NON_CANONICAL, 25, 4), (UNKNOWN, 10, 10), (UNSOLICITED, 10, 10)],
    ids=["bad-msgpack", "non-canonical", "unknown-type", "unsolicited-pong"],
)
async def test_bad_frames_lower_the_score_until_ban(cluster: Cluster, frame: bytes, penalty: int, count: int) -> None:
    a = await cluster.start()
    got: list[object] = []

    async def handler(peer: Peer, payload: object) -> None:
        got.append(payload)

    a.register(APP, handler)
    raw = await RawClient.connect(a.listen_port)
    await wait_until(lambda: a.peer(raw.key.public_key) is not None, what="raw peer")
    # One bad frame costs score but not the connection.
    await raw.send_raw(frame + encode_frame(APP, [APP, 1]))
    await wait_until(lambda: got == [[APP, 1]], what="valid message after a bad one")
    peer = a.peer(raw.key.public_key)
    assert peer is not None and peer.score.value == -penalty
    await raw.send_raw(frame * (count - 1))
    frames = await raw.read_until_closed()
    assert frames[-1][0] == MsgType.DISCONNECT and frames[-1][1][1] == "banned"
    assert a.bans.key_banned(raw.key.public_key) and a.metrics.bans == 1 and not a.peers()


async def test_flood_beyond_the_rate_limit_leads_to_a_ban(cluster: Cluster) -> None:
    a = await cluster.start(rate_messages=50, rate_messages_burst=50)
    got: list[object] = []

    async def handler(peer: Peer, payload: object) -> None:
        got.append(payload)

    a.register(APP, handler)
    raw = await RawClient.connect(a.listen_port)
    await raw.send_raw(b"".join(encode_frame(APP, [APP, i]) for i in range(500)))
    frames = await raw.read_until_closed()
    assert frames[-1][0] == MsgType.DISCONNECT and frames[-1][1][1] == "banned"
    assert a.metrics.dropped_rate_limited >= 20  # 20 drops x 5 points reach -100
    assert len(got) <= 55  # the burst, plus what refilled meanwhile
    assert a.bans.key_banned(raw.key.public_key)


async def test_ban_expires(cluster: Cluster) -> None:
    a = await cluster.start(ban_seconds=0.5, ban_ip=False)
    key = PrivateKey.generate()
    raw = await RawClient.connect(a.listen_port, key=key)
    await raw.send_raw(struct.pack(">I", 10**9))
    await raw.read_until_closed()
    assert a.bans.key_banned(key.public_key)
    with pytest.raises(HandshakeRefused) as refused:
        await RawClient.connect(a.listen_port, key=key)
    assert refused.value.code == "banned" and refused.value.by_peer
    await asyncio.sleep(0.55)
    raw = await RawClient.connect(a.listen_port, key=key)
    await wait_until(lambda: a.peer(key.public_key) is not None, what="reconnection after the ban")
    raw.close()


async def test_silent_peer_is_dropped_by_the_keepalive(cluster: Cluster) -> None:
    a = await cluster.start(ping_interval=0.1, ping_timeout=0.2)
    b = await cluster.start(ping_interval=0.1, ping_timeout=0.2)
    await a.connect("127.0.0.1", b.listen_port)
    raw = await RawClient.connect(a.listen_port)  # never answers pings
    frames = await raw.read_until_closed(timeout=3)
    assert (MsgType.PING in [t for t, _ in frames]) and frames[-1][1][1] == "ping_timeout"
    await wait_until(lambda: a.metrics.disconnects["ping_timeout"] == 1, what="disconnect recorded")
    await asyncio.sleep(0.3)  # the managers answer each other's pings
    peer = a.peer(b.node_id)
    assert peer is not None and peer.rtt is not None


async def test_a_peer_that_does_not_read_is_dropped_without_blocking_broadcast(cluster: Cluster) -> None:
    a = await cluster.start(send_queue_bytes=256 * 1024, max_frame_size=128 * 1024)
    b = await cluster.start(max_frame_size=128 * 1024, rate_bytes_burst=64 << 20, rate_bytes=64 << 20)
    received: list[int] = []

    async def handler(peer: Peer, payload: object) -> None:
        received.append(1)

    b.register(APP, handler)
    await b.connect("127.0.0.1", a.listen_port)
    raw = await RawClient.connect(a.listen_port)  # reads nothing from now on
    await wait_until(lambda: len(a.peers()) == 2, what="two peers")
    blob = b"\x00" * (100 * 1024)
    loop = asyncio.get_running_loop()
    for i in range(600):  # ~60 MB, more than loopback socket buffers hold
        started = loop.time()
        await a.broadcast(APP, [APP, i, blob])
        assert loop.time() - started < 0.05  # broadcast never waits for a peer
        await asyncio.sleep(0)
        if a.peer(raw.key.public_key) is None:
            break
    await wait_until(lambda: a.peer(raw.key.public_key) is None, what="slow peer dropped")
    assert a.metrics.penalties["slow"] >= 1 and a.peer(b.node_id) is not None
    raw.close()


async def test_a_slow_handler_does_not_make_its_peer_look_dead(cluster: Cluster) -> None:
    a = await cluster.start(ping_interval=0.1, ping_timeout=0.15)
    b = await cluster.start(ping_interval=0.1, ping_timeout=0.15)
    done: list[int] = []

    async def slow(peer: Peer, payload: object) -> None:
        await asyncio.sleep(0.6)  # longer than ping_interval + ping_timeout
        done.append(1)

    a.register(APP, slow)
    peer = await b.connect("127.0.0.1", a.listen_port)
    await wait_until(lambda: connected(a, b), what="connection")
    await peer.send(APP, [APP])
    await wait_until(lambda: done == [1], what="slow handler")
    await asyncio.sleep(0.2)
    assert connected(a, b) and not a.metrics.disconnects and not b.metrics.disconnects


async def test_a_full_receive_queue_pauses_reading_without_loss_or_penalty(cluster: Cluster) -> None:
    a = await cluster.start(recv_queue_frames=4)
    b = await cluster.start()
    gate = asyncio.Event()
    got: list[int] = []

    async def handler(peer: Peer, payload: list) -> None:
        await gate.wait()
        got.append(payload[1])

    a.register(APP, handler)
    peer = await b.connect("127.0.0.1", a.listen_port)
    for i in range(50):
        await peer.send(APP, [APP, i])
    await asyncio.sleep(0.2)
    assert got == [] and connected(a, b)
    gate.set()
    await wait_until(lambda: len(got) == 50, what="all messages after the handler resumes")
    assert got == list(range(50))
    assert a.peer(b.node_id).score.value == 0  # type: ignore[union-attr]
    # Closing while the reader waits on a full queue still ends promptly.
    gate.clear()
    for i in range(50):
        await peer.send(APP, [APP, i])
    await asyncio.sleep(0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await a.stop()
    assert loop.time() - started < 2.0


async def test_handshake_and_idle_timeouts(cluster: Cluster) -> None:
    a = await cluster.start(handshake_timeout=0.3, idle_timeout=0.4)
    # A TCP connection that never starts TLS, and a TLS connection that never says hello.
    plain_reader, plain = await asyncio.open_connection("127.0.0.1", a.listen_port)
    tls_reader, tls = await asyncio.open_connection(
        "127.0.0.1", a.listen_port, ssl=client_context(), server_hostname=""
    )
    async with asyncio.timeout(2):  # the server says hello, waits for ours, then closes
        while await tls_reader.read(65536):
            pass
        assert await plain_reader.read() == b""
    assert a.metrics.handshake_errors == 2
    plain.close()
    tls.close()
    # After the handshake, a peer that sends nothing at all is dropped by the watchdog.
    raw = await RawClient.connect(a.listen_port)
    frames = await raw.read_until_closed(timeout=3)
    assert frames[-1][0] == MsgType.DISCONNECT and frames[-1][1][1] == "timeout"


URGENT = 21  # a second application type, declared urgent


async def test_urgent_messages_overtake_a_blocked_bulk_handler(cluster: Cluster) -> None:
    """Consensus messages (urgent types) are handled while a bulk handler is stuck (a big batch
    of transactions being verified), in their own order, and the bulk ones follow unharmed."""
    a = await cluster.start(urgent_types=frozenset({URGENT}))
    b = await cluster.start()  # sends in order: the receiver alone must let urgent ones overtake
    gate = asyncio.Event()
    bulk: list[int] = []
    urgent: list[int] = []

    async def slow_bulk(peer: Peer, payload: list) -> None:
        await gate.wait()
        bulk.append(payload[1])

    async def on_urgent(peer: Peer, payload: list) -> None:
        urgent.append(payload[1])

    a.register(APP, slow_bulk)
    a.register(URGENT, on_urgent)
    peer = await b.connect("127.0.0.1", a.listen_port)
    for i in range(5):
        await peer.send(APP, [APP, i])
    await asyncio.sleep(0.1)  # the bulk frames are on the wire first
    for i in range(3):
        await peer.send(URGENT, [URGENT, i])
    await wait_until(lambda: urgent == [0, 1, 2], what="urgent messages past the blocked bulk handler")
    assert bulk == []
    gate.set()
    await wait_until(lambda: bulk == [0, 1, 2, 3, 4], what="bulk messages after the gate opens")


def test_the_send_queue_hands_out_urgent_frames_before_queued_bulk_frames() -> None:
    from node.p2p.queues import FrameQueue

    async def scenario() -> list[bytes]:
        queue = FrameQueue(100, 1 << 20, urgent=lambda f: f.startswith(b"U"))
        for frame in (b"b1", b"b2", b"U1", b"b3", b"U2"):
            assert queue.try_put(frame)
        assert len(queue) == 5 and queue.queued_bytes == 10
        first = await queue.get_batch(max_bytes=4)
        rest = await queue.get_batch()
        return [*first, b"|", *rest]

    assert asyncio.run(scenario()) == [b"U1", b"U2", b"|", b"b1", b"b2", b"b3"]

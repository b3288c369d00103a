"""Reconnection, peer exchange, gossip without loops, and a clean stop."""

from __future__ import annotations

import asyncio

from core.keys import PrivateKey
from node.p2p import Gossip, Peer, PeerManager
from tests.p2p.support import APP, Cluster, bootnode, connected, fast_config, wait_until


async def test_reconnects_with_backoff_after_the_peer_restarts(cluster: Cluster) -> None:
    key_b = PrivateKey.generate()
    b = await cluster.start(key_b)
    port = b.listen_port
    a = await cluster.start(bootnodes=(bootnode(b),), backoff_initial=0.05, backoff_max=0.4)
    down: list[bytes] = []
    a.on_peer_disconnected(lambda p: down.append(p.node_key))
    await wait_until(lambda: connected(a, b), what="first connection")
    await b.stop()
    await wait_until(lambda: down == [b.node_id], what="disconnect noticed")
    failures_before = a.metrics.dial_failures
    await asyncio.sleep(1.2)
    entry = a.book.get("127.0.0.1", port)
    assert entry is not None and entry.failures >= 3
    # Backoff 0.05, 0.1, 0.2, 0.4, 0.4, ... (x 0.75..1): a handful of dials, not hundreds.
    assert 3 <= a.metrics.dial_failures - failures_before <= 9
    b2 = await cluster.start(key_b, port=port)
    await wait_until(lambda: connected(a, b2), timeout=3, what="reconnection")
    assert entry.busy and entry.last_error == ""  # connected (the count resets once it proves stable)


async def test_peer_exchange_a_learns_c_from_b(cluster: Cluster) -> None:
    c = await cluster.start()
    b = await cluster.start(bootnodes=(bootnode(c),))
    await wait_until(lambda: connected(b, c), what="b-c")
    a = await cluster.start(bootnodes=(bootnode(b, with_key=False),))
    await wait_until(lambda: connected(a, b) and connected(a, c), what="a connects to c via b's peer list")
    assert {i.node_key for i in a.peers()} == {b.node_id, c.node_id}
    assert all(i.direction == "outbound" for i in a.peers())


async def test_peer_exchange_respects_the_outbound_limit(cluster: Cluster) -> None:
    hub = await cluster.start()
    spokes = [await cluster.start(bootnodes=(bootnode(hub),)) for _ in range(4)]
    await wait_until(lambda: all(connected(s, hub) for s in spokes), what="spokes")
    a = await cluster.start(bootnodes=(bootnode(hub),), max_outbound=2)

    def outbound() -> int:
        return sum(i.direction == "outbound" for i in a.peers())

    await wait_until(lambda: outbound() == 2, what="a fills its outbound slots")
    await asyncio.sleep(0.5)  # several peer-exchange rounds; spokes may still dial a (inbound)
    assert outbound() == 2 and a.metrics.peers_outbound == 2


async def _gossip_nodes(cluster: Cluster, n: int, **overrides: object) -> tuple[list[PeerManager], list[list[int]]]:
    managers = [await cluster.start(peer_exchange=False, **overrides) for _ in range(n)]
    received: list[list[int]] = [[] for _ in managers]
    for i, manager in enumerate(managers):
        gossip = Gossip(manager)
        manager.gossip = gossip  # type: ignore[attr-defined]

        def make(i: int, gossip: Gossip):
            async def handler(peer: Peer, payload: list) -> None:
                received[i].append(payload[1])
                await gossip.publish(APP, payload, origin=peer)

            return handler

        manager.register(APP, make(i, gossip))
    return managers, received


async def test_gossip_over_a_three_node_line_reaches_all_once(cluster: Cluster) -> None:
    (a, b, c), received = await _gossip_nodes(cluster, 3)
    await b.connect("127.0.0.1", a.listen_port)
    await b.connect("127.0.0.1", c.listen_port)
    await wait_until(lambda: connected(a, b) and connected(b, c), what="line a-b-c")
    assert not connected(a, c)
    for n in range(5):
        assert await a.gossip.publish(APP, [APP, n])  # type: ignore[attr-defined]
    await wait_until(lambda: len(received[2]) == 5, what="c receives")
    await asyncio.sleep(0.2)
    assert received == [[], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
    assert not await a.gossip.publish(APP, [APP, 0])  # type: ignore[attr-defined]


async def test_gossip_in_a_triangle_stops(cluster: Cluster) -> None:
    (a, b, c), received = await _gossip_nodes(cluster, 3)
    await a.connect("127.0.0.1", b.listen_port)
    await b.connect("127.0.0.1", c.listen_port)
    await c.connect("127.0.0.1", a.listen_port)
    await wait_until(lambda: connected(a, b) and connected(b, c) and connected(c, a), what="triangle")
    await a.gossip.publish(APP, [APP, 7])  # type: ignore[attr-defined]
    await wait_until(lambda: received[1] and received[2], what="b and c receive")
    await asyncio.sleep(0.3)
    counts = [len(r) for r in received]
    await asyncio.sleep(0.2)
    assert [len(r) for r in received] == counts  # nothing circulates any more
    assert all(n <= 2 for n in counts) and 2 <= sum(counts) <= 6


async def test_stop_leaves_no_pending_tasks() -> None:
    managers = [PeerManager(fast_config(ping_interval=0.05), PrivateKey.generate()) for _ in range(3)]
    for m in managers:
        await m.start()
    managers[1].add_address(bootnode(managers[0]))
    managers[2].add_address(bootnode(managers[1]))
    await wait_until(lambda: all(len(m.peers()) == 2 for m in managers), what="all connected via pex")
    await managers[0].broadcast(APP, [APP, b"x"])
    loop = asyncio.get_running_loop()
    started = loop.time()
    for m in managers:
        await m.stop()
    assert loop.time() - started < 3.0
    await asyncio.sleep(0)
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert pending == []
    assert all(not m.peers() for m in managers)

"""Idle connections cannot lock new peers out: pending handshakes are bounded per IP and in all, and the
oldest gives way to a newer connection (issue 18, finding 9). Real sockets, real TLS, real managers."""

from __future__ import annotations

import asyncio
import time

from tests.p2p.support import Cluster, connected, wait_until

Idle = list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]


async def idle_connections(port: int, count: int, source: str = "127.0.0.1") -> Idle:
    """`count` TCP connections that never say a word (no TLS ClientHello)."""
    return [await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)) for _ in range(count)]


def still_open(connections: Idle) -> int:
    """How many of them the manager has not closed (a close shows as EOF or a reset here)."""
    return sum(1 for reader, writer in connections if not reader.at_eof() and not writer.transport.is_closing())


def close_all(connections: Idle) -> None:
    for _, writer in connections:
        writer.transport.abort()


async def test_a_peer_connects_at_once_past_a_hundred_idle_connections_from_its_own_ip(cluster: Cluster) -> None:
    a = await cluster.start(handshake_timeout=30.0)  # idle connections would hold their slot for 30 s
    b = await cluster.start()
    idle = await idle_connections(a.listen_port, 100)
    try:
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await b.connect("127.0.0.1", a.listen_port)
        await wait_until(lambda: connected(a, b), timeout=5, what="a and b connected")
        took = time.monotonic() - started
        assert took < 1.0, took
        assert a.metrics.refused_by_us["pending_evicted"] >= 100 - a.config.max_pending_per_ip
        await asyncio.sleep(0.2)
        assert still_open(idle) <= a.config.max_pending_per_ip
    finally:
        close_all(idle)


async def test_pending_handshakes_are_bounded_per_ip_and_in_all(cluster: Cluster) -> None:
    a = await cluster.start(handshake_timeout=30.0, max_pending_per_ip=4, max_pending_handshakes=10)
    first = await idle_connections(a.listen_port, 4, source="127.0.0.2")
    second = await idle_connections(a.listen_port, 4, source="127.0.0.3")
    try:
        await asyncio.sleep(0.2)
        assert still_open(first) == 4 and still_open(second) == 4  # within both bounds: all kept
        more = await idle_connections(a.listen_port, 2, source="127.0.0.3")  # over 127.0.0.3's four
        await asyncio.sleep(0.2)
        assert still_open(first) == 4, "another IP's connections must not make room for 127.0.0.3's"
        assert still_open(second) == 2 and still_open(more) == 2
        third = await idle_connections(a.listen_port, 4, source="127.0.0.4")  # 8 + 4 > 10 in all
        await asyncio.sleep(0.2)
        assert still_open(first) == 2, "the oldest of all gave way"
        assert still_open(third) == 4
        assert a.metrics.refused_by_us["pending_evicted"] == 4
        close_all(more + third)
    finally:
        close_all(first + second)

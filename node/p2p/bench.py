"""Loopback throughput of the P2P layer: `python -m node.p2p.bench [--seconds S]`.

Prints, on this machine and in this run (a figure beside its limit):
  1. plain TCP over asyncio streams, one connection (the ceiling without TLS);
  2. TLS 1.3 over asyncio streams with our contexts, one connection (the raw TLS ceiling);
  3. PeerManager to PeerManager, 1 MiB frames (framing, queues, decoding included);
  4. PeerManager to PeerManager, small frames (messages/s, one connection).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import time
from typing import Any

from core.hashing import sha256
from core.keys import PrivateKey
from node.p2p.config import P2PConfig
from node.p2p.manager import PeerManager
from node.p2p.peer import Peer
from node.p2p.tls import TLSIdentity, client_context

CHUNK = 1024 * 1024
MiB = 1024 * 1024


async def stream_throughput(seconds: float, tls: bool) -> float:
    """MB/s of one asyncio stream connection on 127.0.0.1, writer and reader in this process."""
    identity = TLSIdentity.create(PrivateKey.generate())
    received = 0
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        while data := await reader.read(4 * CHUNK):
            received += len(data)
        done.set()
        writer.close()

    server = await asyncio.start_server(
        serve, "127.0.0.1", 0, ssl=identity.server_context if tls else None, limit=4 * CHUNK
    )
    port = server.sockets[0].getsockname()[1]
    ctx: ssl.SSLContext | None = client_context() if tls else None
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="" if tls else None)
    block = bytes(CHUNK)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        writer.write(block)
        await writer.drain()
    writer.close()
    await done.wait()
    elapsed = time.perf_counter() - started
    server.close()
    await server.wait_closed()
    return received / elapsed / 1e6


async def manager_throughput(seconds: float, payload_size: int) -> tuple[float, float]:
    """(messages/s, MB/s) from one PeerManager to another over one connection."""
    genesis = sha256(b"bench")
    config = P2PConfig(
        chain_id=1,
        genesis_hash=genesis,
        rate_messages=1e9,
        rate_messages_burst=1e9,
        rate_bytes=1e12,
        rate_bytes_burst=1e12,
        send_queue_frames=65536,
    )
    a, b = PeerManager(config, PrivateKey.generate()), PeerManager(config, PrivateKey.generate())
    count = 0
    nbytes = 0

    async def handler(peer: Peer, payload: list[Any]) -> None:
        nonlocal count, nbytes
        count += 1
        nbytes += len(payload[1])

    b.register(20, handler)
    await a.start()
    await b.start()
    try:
        peer = await a.connect("127.0.0.1", b.listen_port)
        blob = bytes(payload_size)
        sent = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            for _ in range(256):
                await peer.send(20, [20, blob])
                sent += 1
            await asyncio.sleep(0)
        while count < sent:
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - started
    finally:
        await a.stop()
        await b.stop()
    return count / elapsed, nbytes / elapsed / 1e6


async def main(seconds: float) -> None:
    tcp = await stream_throughput(seconds, tls=False)
    tls = await stream_throughput(seconds, tls=True)
    big_rate, big_mb = await manager_throughput(seconds, MiB)
    small_rate, small_mb = await manager_throughput(seconds, 64)
    print(f"plain TCP, asyncio streams, 1 connection : {tcp:9.0f} MB/s")
    print(f"TLS 1.3 (AES-GCM), 1 connection          : {tls:9.0f} MB/s")
    print(f"PeerManager, 1 MiB frames                : {big_mb:9.0f} MB/s  ({big_rate:,.0f} msg/s)")
    print(f"PeerManager, 64-byte payloads            : {small_rate:9,.0f} msg/s ({small_mb:.1f} MB/s of payload)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each measurement")
    asyncio.run(main(parser.parse_args().seconds))

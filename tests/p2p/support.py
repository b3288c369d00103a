"""Helpers for P2P tests: fast configs, managers that stop themselves, raw clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from core.hashing import sha256
from core.keys import PrivateKey
from node.p2p import P2PConfig, PeerManager
from node.p2p.framing import decode_body, limits_for, read_frame
from node.p2p.handshake import Hello, LocalNode, perform_handshake
from node.p2p.tls import client_context, peer_channel_binding

CHAIN_ID = 7
GENESIS = sha256(b"test genesis")
APP = 20  # an application message type registered by the tests


def fast_config(**overrides: Any) -> P2PConfig:
    """A config with short timers so that tests finish quickly."""
    base = P2PConfig(
        chain_id=CHAIN_ID,
        genesis_hash=GENESIS,
        host="127.0.0.1",
        port=0,
        handshake_timeout=2.0,
        close_timeout=0.3,
        ping_interval=5.0,
        ping_timeout=2.0,
        backoff_initial=0.05,
        backoff_max=0.4,
        pex_interval=0.2,
        score_recovery_per_s=0.0,
        max_frame_size=64 * 1024,
        rate_bytes_burst=1024 * 1024,
    )
    return replace(base, **overrides)


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class RawClient:
    """A hand-driven client: real TLS and a real Hello, then raw bytes of our choosing."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: PrivateKey, hello: Hello):
        self.reader, self.writer, self.key, self.peer_hello = reader, writer, key, hello

    @classmethod
    async def connect(
        cls, port: int, *, key: PrivateKey | None = None, source: str = "127.0.0.1", chain_id: int = CHAIN_ID
    ) -> RawClient:
        key = key or PrivateKey.generate()
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(), server_hostname="", local_addr=(source, 0)
        )
        local = LocalNode(key, chain_id, GENESIS)
        hello = await perform_handshake(
            reader, writer, local, side="client", binding=peer_channel_binding(writer), peer_label="manager"
        )
        return cls(reader, writer, key, hello)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_until_closed(self, timeout: float = 5.0) -> list[tuple[int, Any]]:
        """Frames received until the manager closes the connection."""
        frames: list[tuple[int, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                try:
                    frame = await read_frame(self.reader, max_frame_size=1 << 24, idle_timeout=None, body_timeout=5)
                except Exception:
                    return frames
                frames.append((frame.msg_type, decode_body(frame.body, limits_for(1 << 24))))

    def close(self) -> None:
        self.writer.transport.abort()


class Cluster:
    """Creates managers and stops whatever is still running at the end of a test."""

    def __init__(self) -> None:
        self.managers: list[PeerManager] = []

    async def start(self, key: PrivateKey | None = None, **overrides: Any) -> PeerManager:
        manager = PeerManager(fast_config(**overrides), key or PrivateKey.generate())
        self.managers.append(manager)
        await manager.start()
        return manager

    async def stop_all(self) -> None:
        for manager in self.managers:
            await manager.stop()


def bootnode(manager: PeerManager, with_key: bool = True) -> str:
    prefix = manager.node_id.hex() + "@" if with_key else ""
    return f"{prefix}127.0.0.1:{manager.listen_port}"


def connected(a: PeerManager, b: PeerManager) -> bool:
    return a.peer(b.node_id) is not None and b.peer(a.node_id) is not None

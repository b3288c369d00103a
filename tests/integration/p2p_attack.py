"""A hostile peer against a running node, and what is checked of the node afterwards.

`Attacker` completes a real TLS connection and a real signed Hello with the node (it is a peer
like any other), then sends the raw bytes it is given. A background reader keeps every frame the
node sends (so the node's writer is never the one held up, unless a test wants a slow reader:
`reading=False`), answers the node's pings, and notes how the connection ended. When the node
bans or drops it, the next `send` comes back under a fresh node key, as a real attacker would.
`settle()` returns once the node has dealt with everything sent so far: a Ping (answered by the
reader loop) and a GetPeers (answered by the dispatcher of bulk messages, after what came before).

`Target` is a running node seen from outside: its RPC, P2P port, process and log.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.keys import PrivateKey
from node import testnet
from node.p2p.errors import P2PError
from node.p2p.framing import decode_body, encode_frame, limits_for, read_frame
from node.p2p.handshake import LocalNode, perform_handshake
from node.p2p.messages import MsgType
from node.p2p.tls import client_context, peer_channel_binding
from node.testnet import TestnetNode
from tests.harness import NodeProcess, Rpc
from tests.integration.support import metric
from tests.node_health import Health

CONNECT_ERRORS = (OSError, ssl.SSLError, asyncio.IncompleteReadError, ConnectionError, P2PError, TimeoutError)
_LIMITS = limits_for(1 << 24)


@dataclass
class Target:
    """A running node, as a client and a peer see it: its RPC, P2P port, process and log."""

    url: str
    log_path: Path
    pid_of: Callable[[], int | None]
    chain_id: int
    genesis_hash: bytes
    p2p_port: int

    @classmethod
    def at(cls, url: str, log_path: Path, pid_of: Callable[[], int | None]) -> Target:
        status = Rpc(url, timeout=10).call("node_status")
        return cls(
            url, log_path, pid_of, status["chain_id"], bytes.fromhex(status["genesis_hash"][2:]), status["p2p_port"]
        )

    @classmethod
    def of(cls, node: TestnetNode) -> Target:
        """A node of a testnet."""
        return cls.at(node.rpc_url, node.dir / "node.log", lambda: testnet._pid(node))

    @classmethod
    def of_process(cls, node: NodeProcess) -> Target:
        """A dev node."""
        return cls.at(node.url, node.log_path, lambda: None if node.proc is None else node.proc.pid)

    @property
    def pid(self) -> int:
        pid = self.pid_of()
        assert pid is not None, f"the node at {self.url} is not running"
        return pid

    def health(self) -> Health:
        return Health.at(self.url, self.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def status(self) -> dict[str, Any]:
        return Rpc(self.url, timeout=10).call("node_status")

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a /metrics family's samples whose labels include `labels`."""
        return metric(self.url, name, **labels)


@dataclass
class Session:
    """One connection of an attacker: what the node sent on it and how it ended."""

    key: PrivateKey
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    frames: list[tuple[int, Any]] = field(default_factory=list)
    received: Counter[int] = field(default_factory=Counter)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: str | None = None  # the code of the node's Disconnect, if it sent one
    pongs: set[int] = field(default_factory=set)
    peers_answers: int = 0
    keep: int = 200  # frames kept for templates (the rest only counted)


class Attacker:
    """A hostile peer that comes back under a new key whenever it is banned or dropped."""

    def __init__(self, target: Target, *, source: str = "127.0.0.1", reading: bool = True) -> None:
        self.target = target
        self.source = source
        self.reading = reading
        self.session: Session | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.sessions = 0
        self.ended: Counter[str] = Counter()  # close codes of sessions the node ended
        self.sent_frames = 0

    async def connect(self, key: PrivateKey | None = None) -> Session:
        await self.close()
        key = key or PrivateKey.generate()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1",
                self.target.p2p_port,
                ssl=client_context(),
                server_hostname="",
                local_addr=(self.source, 0),
                limit=1 << 25,
            ),
            10,
        )
        local = LocalNode(key, self.target.chain_id, self.target.genesis_hash)
        await perform_handshake(
            reader, writer, local, side="client", binding=peer_channel_binding(writer), peer_label="target"
        )
        self.session = Session(key, reader, writer)
        self.sessions += 1
        if self.reading:
            self._reader_task = asyncio.create_task(self._read(self.session))
        return self.session

    async def ensure(self) -> Session:
        if self.session is None or self.session.closed.is_set() or self.session.writer.is_closing():
            return await self.connect()
        return self.session

    async def send(self, data: bytes) -> None:
        """Send raw bytes on the current session (a new one if the node ended the last)."""
        session = await self.ensure()
        try:
            session.writer.write(data)
            await asyncio.wait_for(session.writer.drain(), 10)
            self.sent_frames += 1
        except CONNECT_ERRORS:
            session.closed.set()

    async def settle(self, timeout: float = 10.0) -> bool:
        """Wait until the node has handled all sent so far; False if it ended the session instead."""
        session = self.session
        if session is None or session.closed.is_set():
            return False
        nonce = secrets.randbits(63)
        before = session.peers_answers
        try:
            session.writer.write(
                encode_frame(MsgType.PING, [int(MsgType.PING), nonce])
                + encode_frame(MsgType.GET_PEERS, [int(MsgType.GET_PEERS)])
            )
            await session.writer.drain()
            async with asyncio.timeout(timeout):
                while not (nonce in session.pongs and session.peers_answers > before):
                    if session.closed.is_set():
                        return False
                    await asyncio.sleep(0.002)
        except CONNECT_ERRORS:
            return False
        return True

    async def wait_closed(self, timeout: float = 10.0) -> str | None:
        """Wait until the node ends the session; its Disconnect code (None if it sent none)."""
        session = self.session
        assert session is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await session.closed.wait()
        return session.close_code if session.closed.is_set() else "still open"

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
            self._reader_task = None
        if self.session is not None:
            self.session.writer.transport.abort()
            self.session.closed.set()

    async def _read(self, session: Session) -> None:
        try:
            while True:
                frame = await read_frame(session.reader, max_frame_size=1 << 24, idle_timeout=None, body_timeout=None)
                value = decode_body(frame.body, _LIMITS)
                session.received[frame.msg_type] += 1
                if len(session.frames) < session.keep:
                    session.frames.append((frame.msg_type, value))
                if frame.msg_type == MsgType.PING:
                    session.writer.write(encode_frame(MsgType.PONG, [int(MsgType.PONG), value[1]]))
                elif frame.msg_type == MsgType.PONG:
                    session.pongs.add(value[1])
                elif frame.msg_type == MsgType.PEERS:
                    session.peers_answers += 1
                elif frame.msg_type == MsgType.DISCONNECT:
                    session.close_code = value[1]
                    self.ended[value[1]] += 1
        except (Exception, asyncio.CancelledError):
            pass
        finally:
            session.closed.set()


def captured(attackers: list[Attacker], msg_type: int) -> list[Any]:
    """The payloads of `msg_type` the node sent to these attackers' current sessions."""
    return [v for a in attackers if a.session for t, v in a.session.frames if t == msg_type]


def client_hello() -> bytes:
    """The first TLS record a client sends (a ClientHello), made by a real TLS client in memory."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(incoming, outgoing, server_hostname=None)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


async def raw_connection(target: Target, data: bytes, *, hold_s: float = 0.0, source: str = "127.0.0.1") -> bool:
    """Send `data` on a plain TCP connection, keep it open `hold_s`; True if the node closed it first."""
    reader, writer = await asyncio.open_connection("127.0.0.1", target.p2p_port, local_addr=(source, 0))
    try:
        writer.write(data)
        await writer.drain()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(hold_s):
                while await reader.read(65536):
                    pass
                return True
        return False
    except CONNECT_ERRORS:
        return True
    finally:
        writer.transport.abort()


async def tls_connection(target: Target, data: bytes, *, hold_s: float = 0.0, source: str = "127.0.0.1") -> bool:
    """TLS done, then `data` instead of a Hello; True if the node closed the connection within `hold_s`."""
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", target.p2p_port, ssl=client_context(), server_hostname="", local_addr=(source, 0)
        )
    except CONNECT_ERRORS:
        return True
    try:
        writer.write(data)
        await writer.drain()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(hold_s):
                while await reader.read(65536):
                    pass
                return True
        return False
    except CONNECT_ERRORS:
        return True
    finally:
        writer.transport.abort()

"""PeerManager: listens, dials, authenticates, deduplicates, bans and routes messages.

Its parts: the connected peers (`node.p2p.peer_set`: one per node key), the handshake and the
refusals decided in it (`node.p2p.connector`), dialing (`node.p2p.dialer`), peer exchange
(`node.p2p.pex`: fills the address book from peers' peer lists). Rules kept here:
- Inbound: a connection from a banned IP is closed before TLS. TLS and the Hello exchange
  share one deadline (`handshake_timeout`).
- Pending handshakes (inbound connections not through TLS and the Hello yet) are bounded per
  IP (`max_pending_per_ip`) and in all (`max_pending_handshakes`). A connection beyond either
  bound is not refused: the oldest pending handshake (of its IP, or of all) is dropped for it
  (`pending_evicted`). An honest peer finishes its handshake in milliseconds, so the oldest is
  the likeliest to be idle; idle connections cannot lock new peers out, and on loopback, where a
  local testnet's nodes all share 127.0.0.1, honest peers still get through.
- A peer that loses the one-connection-per-key rule after its handshake is closed with reason
  `duplicate`.
- A peer whose score reaches the threshold is disconnected and its key and IP banned for
  `ban_seconds`. An IP ban refuses new connections only; peers already connected from that
  IP with other keys stay (they may share a NAT).
- `stop()` says goodbye to every peer, waits up to `close_timeout` for them, cancels all
  that is left and returns with no task of the manager pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Coroutine
from typing import Any

from core.codec import Value
from core.keys import PrivateKey
from node.p2p.addrbook import AddressBook, AddressEntry
from node.p2p.config import Bootnode, P2PConfig
from node.p2p.connector import Connector
from node.p2p.dialer import Dialer
from node.p2p.errors import HandshakeError, HandshakeRefused, Reason
from node.p2p.framing import encode_frame
from node.p2p.handshake import LocalNode
from node.p2p.messages import FIRST_APP_TYPE
from node.p2p.metrics import P2PMetrics
from node.p2p.peer import Handler, Peer, PeerInfo
from node.p2p.peer_set import PeerCallback, PeerSet
from node.p2p.pex import PeerExchange
from node.p2p.scoring import BanList
from node.p2p.tls import TLSIdentity

log = logging.getLogger("node.p2p")


class PeerManager:
    """The P2P layer of one node. Use `async with PeerManager(...)` or `start()`/`stop()`
    (once each: a stopped manager is not restarted; make a new one).

    Handlers and the connect/disconnect callbacks run on the event loop and should be quick;
    a connect callback runs before the peer is served, a handler blocks only its own peer.
    """

    def __init__(self, config: P2PConfig, node_key: PrivateKey) -> None:
        self.config = config
        self.key = node_key
        self.identity = TLSIdentity.create(node_key)
        self.metrics = P2PMetrics()
        self.bans = BanList()
        self.book = AddressBook(
            backoff_initial=config.backoff_initial,
            backoff_max=config.backoff_max,
            max_failures=config.max_dial_failures,
            max_entries=config.max_addresses,
        )
        self.pex = PeerExchange(self)
        self._handlers: dict[int, Handler] = self.pex.handlers()
        self._peers = PeerSet(node_key.public_key, self.metrics)
        self._connector = Connector(
            config, self.identity, self.metrics, self.bans, self._peers, self._local, self._handlers, self._ban_peer
        )
        self._dialer = Dialer(
            config, self.book, self.bans, self._peers, self._connector, self.metrics, self._spawn, self._run_peer
        )
        self._peer_tasks: dict[asyncio.Task[Any], Peer] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._listen_port = 0
        self._head = (0, config.genesis_hash)
        self._pending: dict[asyncio.StreamWriter, tuple[str, asyncio.Task[None]]] = {}  # oldest first
        self._stopping = False
        for text in config.bootnodes:
            self.add_address(text)

    # --- public API -----------------------------------------------------------------------

    @property
    def node_id(self) -> bytes:
        return self.key.public_key

    @property
    def listen_port(self) -> int:
        return self._listen_port

    def register(self, msg_type: int, handler: Handler) -> None:
        """Route frames of `msg_type` (FIRST_APP_TYPE..255) to `async handler(peer, payload)`."""
        if not FIRST_APP_TYPE <= msg_type <= 255:
            raise ValueError(f"message types {FIRST_APP_TYPE}..255 are for upper layers, not {msg_type}")
        if msg_type in self._handlers:
            raise ValueError(f"message type {msg_type} already has a handler")
        self._handlers[msg_type] = handler

    def on_peer_connected(self, callback: PeerCallback) -> None:
        self._peers.on_connected(callback)

    def on_peer_disconnected(self, callback: PeerCallback) -> None:
        self._peers.on_disconnected(callback)

    def set_head(self, height: int, head_hash: bytes) -> None:
        """Our head, announced in the Hello of later connections."""
        self._head = (height, head_hash)

    def add_address(self, address: str | Bootnode, *, persistent: bool = True) -> None:
        """Dial `[nodekeyhex@]host:port` and keep it connected (with backoff)."""
        bn = Bootnode.parse(address) if isinstance(address, str) else address
        self.book.add(bn.host, bn.port, bn.node_key, persistent=persistent)
        self._dialer.wake()

    def wake_dialer(self) -> None:
        """Let the dial loop look at the address book now."""
        self._dialer.wake()

    def peers(self) -> list[PeerInfo]:
        return [p.info() for p in self._peers.connected()]

    def peer(self, node_key: bytes) -> Peer | None:
        return self._peers.get(node_key)

    def connected_peers(self) -> list[Peer]:
        return self._peers.connected()

    async def broadcast(
        self, msg_type: int, payload: Value, *, exclude: bytes | Collection[bytes] | None = None
    ) -> int:
        """Queue one message to every peer but `exclude` (node key(s)); never waits for a
        peer (a full queue drops that peer). Returns how many peers it was queued to."""
        frame = encode_frame(msg_type, payload)
        if len(frame) - 4 > self.config.max_frame_size:
            raise ValueError(f"a frame of {len(frame)} bytes exceeds the maximum of {self.config.max_frame_size}")
        skip = {exclude} if isinstance(exclude, bytes) else set(exclude or ())
        return sum(1 for p in self.connected_peers() if p.node_key not in skip and p.offer(frame))

    def ban(
        self, node_key: bytes | None, ip: str | None = None, *, seconds: float | None = None, reason: str = ""
    ) -> None:
        """Refuse this key (and IP, if `ban_ip`) for `seconds`; disconnect the key's peer."""
        seconds = self.config.ban_seconds if seconds is None else seconds
        self.bans.ban(node_key=node_key, ip=ip if self.config.ban_ip else None, seconds=seconds)
        self.metrics.bans += 1
        log.warning(
            "banned %s%s for %.0f s: %s",
            node_key.hex()[:16] if node_key else "",
            f" ({ip})" if ip else "",
            seconds,
            reason,
        )
        peer = self._peers.held(node_key) if node_key else None
        if peer is not None:
            peer.close(Reason.BANNED, f"banned for {seconds:.0f} s: {reason}")

    async def connect(self, host: str, port: int, node_key: bytes | None = None) -> Peer:
        """Dial now and return the peer once the handshake is done (raises `HandshakeError`,
        `OSError`); the address is kept (persistent) for reconnects."""
        entry = self.book.add(host, port, node_key, persistent=True)
        assert entry is not None
        ready: asyncio.Future[Peer] = asyncio.get_running_loop().create_future()
        self.book.dial_started(entry)
        self._spawn(self._dialer.dial(entry, ready), f"p2p-dial-{entry}")
        return await ready

    async def start(self) -> None:
        if self.config.listen:
            self._server = await asyncio.start_server(
                self._on_inbound, self.config.host, self.config.port, limit=256 * 1024
            )
            self._listen_port = self._server.sockets[0].getsockname()[1]
            log.info("p2p listening on %s:%d as %s", self.config.host, self._listen_port, self.node_id.hex())
        self._spawn(self._dialer.run(), "p2p-dial-loop")
        self._spawn(self.pex.run(), "p2p-pex-loop")

    async def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for peer in self._peers.all():
            peer.close(Reason.SHUTDOWN, "node shutting down")
        for task in self._tasks - self._peer_tasks.keys():
            task.cancel()
        if self._peer_tasks:
            await asyncio.wait(list(self._peer_tasks), timeout=self.config.close_timeout + 0.5)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.close_timeout):
                    await self._server.wait_closed()

    async def __aenter__(self) -> PeerManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- connections ----------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _local(self) -> LocalNode:
        return LocalNode(
            self.key,
            self.config.chain_id,
            self.config.genesis_hash,
            self.config.role,
            self._listen_port,
            self._head[0],
            self._head[1],
            self.config.client_version,
            self.config.allow_list,
        )

    def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Accept callback: refuse at once, or serve the connection in a task of our own."""
        peername = writer.get_extra_info("peername")
        if not peername:
            writer.transport.abort()
            return
        host, port = peername[:2]
        if self._stopping or (self.config.ban_ip and self.bans.ip_banned(host)):
            writer.transport.abort()
            return
        same_ip = [w for w, (h, _) in self._pending.items() if h == host]
        if len(same_ip) >= self.config.max_pending_per_ip:
            self._evict(same_ip[0])
        elif len(self._pending) >= self.config.max_pending_handshakes:
            self._evict(next(iter(self._pending)))
        task = self._spawn(self._serve_inbound(reader, writer, host, port), f"p2p-inbound-{host}:{port}")
        self._pending[writer] = (host, task)

    def _evict(self, writer: asyncio.StreamWriter) -> None:
        """Drop a pending handshake to make room for a newer connection."""
        host, task = self._pending.pop(writer)
        self.metrics.refused_by_us["pending_evicted"] += 1
        log.debug("dropped the pending handshake of %s (the oldest) for a newer connection", host)
        writer.transport.abort()
        task.cancel()

    async def _serve_inbound(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
    ) -> None:
        deadline = time.monotonic() + self.config.handshake_timeout
        try:
            async with asyncio.timeout(self.config.handshake_timeout):
                await writer.start_tls(self.identity.server_context)
            peer = await self._connector.handshake(reader, writer, "server", host, port, None, deadline)
        except (HandshakeError, OSError, TimeoutError) as exc:
            if not isinstance(exc, HandshakeError):  # TLS itself failed or timed out
                self.metrics.handshake_errors += 1
            log.debug("inbound %s:%s failed: %s", host, port, exc)
            await self._connector.close_stream(writer)
            return
        except asyncio.CancelledError:  # stopping, or evicted for a newer connection
            writer.transport.abort()
            raise
        finally:
            self._pending.pop(writer, None)
        await self._run_peer(peer, None)

    async def _run_peer(
        self, peer: Peer, entry: AddressEntry | None, ready: asyncio.Future[Peer] | None = None
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._peer_tasks[task] = peer
        admitted = not self._stopping and self._peers.admit(peer)
        if not admitted:
            peer.close(Reason.DUPLICATE if not self._stopping else Reason.SHUTDOWN, "already connected")
        elif ready is not None and not ready.done():
            ready.set_result(peer)
        try:
            if admitted:
                log.info("peer %s connected (%s)", peer, peer.direction)
                await self._peers.connected_now(peer)
                self.pex.ask(peer)
            await peer.run()
        finally:
            self._peer_tasks.pop(task, None)
            self._peers.remove(peer)
            self.metrics.disconnects[peer.close_code or "unknown"] += 1
            if entry is not None:
                self.book.disconnected(entry, f"{peer.close_code}: {peer.close_reason}")
            if ready is not None and not ready.done():
                ready.set_exception(HandshakeRefused(peer.close_code or "closed", peer.close_reason))
            if admitted:
                log.info("peer %s disconnected: %s (%s)", peer, peer.close_reason, peer.close_code)
                await self._peers.disconnected_now(peer)
            self._dialer.wake()

    def _ban_peer(self, peer: Peer, reason: str) -> None:
        self.ban(peer.node_key, peer.host, reason=f"score {peer.score.value:.0f} at or below threshold: {reason}")

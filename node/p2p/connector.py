"""From a TLS stream to an authenticated `Peer`: the Hello exchange, and the refusals decided in it.

Rules, checked when the other side's Hello arrives (after its key is proven):
- a banned node key is refused with `banned`, saying for how long;
- a key already connected is refused with `duplicate` unless the new connection is the one to
  keep (`PeerSet.prefer_new`);
- an inbound peer beyond `max_inbound` is refused with `too_many_peers`.
A dialed address that did not say whose it is learns the key its node proved. Every handshake
is counted: succeeded, refused (by whom, why) or failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from node.p2p.addrbook import AddressEntry
from node.p2p.config import P2PConfig
from node.p2p.errors import HandshakeError, HandshakeRefused, Reason
from node.p2p.handshake import Hello, LocalNode, Side, perform_handshake
from node.p2p.metrics import P2PMetrics
from node.p2p.peer import Direction, Handler, Peer
from node.p2p.peer_set import PeerSet
from node.p2p.scoring import BanList
from node.p2p.tls import TLSIdentity, peer_channel_binding


class Connector:
    """Makes peers for the manager: `local()` is this node as its Hello states it now, `handlers`
    the message routes every peer serves, `on_ban` how a peer whose score ran out is banned."""

    def __init__(
        self,
        config: P2PConfig,
        identity: TLSIdentity,
        metrics: P2PMetrics,
        bans: BanList,
        peers: PeerSet,
        local: Callable[[], LocalNode],
        handlers: Mapping[int, Handler],
        on_ban: Callable[[Peer, str], None],
    ) -> None:
        self.config = config
        self.identity = identity
        self.metrics = metrics
        self.bans = bans
        self.peers = peers
        self._local = local
        self._handlers = handlers
        self._on_ban = on_ban

    async def handshake(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        side: Side,
        host: str,
        port: int,
        entry: AddressEntry | None,
        deadline: float,
    ) -> Peer:
        """The peer at the other end of this TLS stream (raises `HandshakeError`, `HandshakeRefused`)."""
        binding = self.identity.binding if side == "server" else peer_channel_binding(writer)
        direction: Direction = "inbound" if side == "server" else "outbound"
        try:
            hello = await perform_handshake(
                reader,
                writer,
                self._local(),
                side=side,
                binding=binding,
                peer_label=f"{host}:{port}",
                timeout=max(0.05, deadline - time.monotonic()),
                expected_key=entry.node_key if entry is not None else None,
                check=self._checker(direction, entry),
            )
        except HandshakeRefused as exc:
            (self.metrics.refused_by_peer if exc.by_peer else self.metrics.refused_by_us)[exc.code] += 1
            raise
        except HandshakeError:
            self.metrics.handshake_errors += 1
            raise
        self.metrics.handshakes_ok += 1
        return Peer(
            reader,
            writer,
            hello,
            direction=direction,
            host=host,
            port=port,
            config=self.config,
            metrics=self.metrics,
            handlers=self._handlers,
            on_ban=self._on_ban,
        )

    async def close_stream(self, writer: asyncio.StreamWriter) -> None:
        """Close a stream that did not become a peer, aborting it after `close_timeout`."""
        writer.close()
        try:
            async with asyncio.timeout(self.config.close_timeout):
                await writer.wait_closed()
        except (TimeoutError, OSError):
            pass
        finally:
            writer.transport.abort()

    def _checker(self, direction: Direction, entry: AddressEntry | None) -> Callable[[Hello], None]:
        def check(hello: Hello) -> None:
            key = hello.node_public_key
            if entry is not None and entry.node_key is None:
                entry.node_key = key
            if self.bans.key_banned(key):
                left = self.bans.remaining(node_key=key)
                raise HandshakeRefused(Reason.BANNED, f"node key {key.hex()[:16]}.. is banned for another {left:.0f} s")
            existing = self.peers.get(key)
            if existing is not None and not self.peers.prefer_new(direction, key, existing):
                raise HandshakeRefused(Reason.DUPLICATE, f"already connected to {key.hex()[:16]}..")
            if direction == "inbound" and existing is None and self.peers.count("inbound") >= self.config.max_inbound:
                raise HandshakeRefused(Reason.TOO_MANY_PEERS, f"all {self.config.max_inbound} inbound slots are taken")

        return check

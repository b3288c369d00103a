"""The connected peers of one node, one per node key, and who is told when one comes or goes.

Rules:
- one connection per node key. When two exist (simultaneous dials), both ends keep the one
  dialed by the smaller node key (bytewise); of two in the same direction the newer wins.
  The loser is closed with reason `duplicate`;
- a peer that is closing no longer counts (nor is it listed);
- connect callbacks run before the peer is served, disconnect callbacks after it closed; a
  callback that fails is logged and the others still run.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable

from node.p2p.errors import Reason
from node.p2p.metrics import P2PMetrics
from node.p2p.peer import Direction, Peer

log = logging.getLogger("node.p2p")

PeerCallback = Callable[[Peer], Awaitable[None] | None]


class PeerSet:
    def __init__(self, node_id: bytes, metrics: P2PMetrics) -> None:
        self.node_id = node_id
        self._metrics = metrics  # its peer gauges are kept here
        self._peers: dict[bytes, Peer] = {}
        self._connected_cbs: list[PeerCallback] = []
        self._disconnected_cbs: list[PeerCallback] = []

    def __contains__(self, node_key: bytes) -> bool:
        """Whether a connection to `node_key` is held (closing or not)."""
        return node_key in self._peers

    def get(self, node_key: bytes) -> Peer | None:
        """The peer of `node_key`, unless it is closing."""
        p = self._peers.get(node_key)
        return p if p is not None and not p.closing else None

    def held(self, node_key: bytes) -> Peer | None:
        """The connection held for `node_key`, closing or not."""
        return self._peers.get(node_key)

    def connected(self) -> list[Peer]:
        return [p for p in self._peers.values() if not p.closing]

    def all(self) -> list[Peer]:
        """Every connection held, closing ones too."""
        return list(self._peers.values())

    def count(self, direction: Direction) -> int:
        return sum(1 for p in self._peers.values() if p.direction == direction and not p.closing)

    def prefer_new(self, direction: Direction, key: bytes, existing: Peer) -> bool:
        """Whether a new connection to `key` in `direction` replaces `existing` (see the module docstring)."""
        if direction == existing.direction:
            return True
        dialer = self.node_id if direction == "outbound" else key
        return dialer == min(self.node_id, key)

    def admit(self, peer: Peer) -> bool:
        """Hold `peer`, closing the connection it replaces; False if an existing one is kept instead."""
        existing = self._peers.get(peer.node_key)
        if existing is not None and not existing.closing:
            if not self.prefer_new(peer.direction, peer.node_key, existing):
                return False
            existing.close(Reason.DUPLICATE, "replaced by another connection")
        self._peers[peer.node_key] = peer
        self._update_gauges()
        return True

    def remove(self, peer: Peer) -> None:
        """`peer`'s connection ended (a newer one of its key stays)."""
        if self._peers.get(peer.node_key) is peer:
            del self._peers[peer.node_key]
        self._update_gauges()

    def on_connected(self, callback: PeerCallback) -> None:
        self._connected_cbs.append(callback)

    def on_disconnected(self, callback: PeerCallback) -> None:
        self._disconnected_cbs.append(callback)

    async def connected_now(self, peer: Peer) -> None:
        await _notify(self._connected_cbs, peer)

    async def disconnected_now(self, peer: Peer) -> None:
        await _notify(self._disconnected_cbs, peer)

    def _update_gauges(self) -> None:
        self._metrics.peers_inbound = self.count("inbound")
        self._metrics.peers_outbound = self.count("outbound")


async def _notify(callbacks: list[PeerCallback], peer: Peer) -> None:
    for callback in callbacks:
        try:
            result = callback(peer)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("peer event callback failed")
